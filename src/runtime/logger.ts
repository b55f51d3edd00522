/**
 * The operator's structured logger: pino underneath, four levels (debug, info, warn, error),
 * child loggers that carry fields (`controller`, `key`) into every line they write, and the
 * redaction of redact.ts applied to every line on its way out.
 *
 * Lines are JSON (one object per line: `level` as a word, `time` in ISO 8601, `msg`, then the
 * fields) for log collectors, or a short human-readable form when the output is a terminal.
 * Tests and embedders can take the lines as objects instead (`sink`).
 *
 * Redaction happens at the output, after pino has put the line together, so nothing a caller
 * writes can skip it: not the fields, not a child's bindings, not a serialized Error. `msg` is
 * meant to be fixed text of the operator's code (variable parts go in fields); it is cleaned of
 * secret shapes and of the platform's own secrets, but not of values tenants chose, so a
 * tenant's password that happens to be "reconciled" cannot blank out what log searches look for.
 */
import pino from "pino";
import { redact, redactDeep } from "./redact";

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, unknown>;

/** One finished line, as written: `level`, `time`, `msg` and the fields. */
export type LogLine = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Writes at `level` (for callers that compute it). */
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  /** A logger whose lines all carry `bindings` (e.g. `{ controller: "Cluster" }`, then `{ key }`). */
  child(bindings: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

/** What receives the text output: process.stdout by default. */
export interface LogOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface LoggerOptions {
  /** Lines below this level are dropped. Default `info`. */
  readonly level?: LogLevel;
  /** Secret values to redact from fields (every value the operator knows). Read for every line. */
  readonly secrets?: () => readonly string[];
  /** Secret values to redact from `msg` too (the platform's own); secret shapes always are. */
  readonly messageSecrets?: () => readonly string[];
  /** Receives each redacted line as an object instead of writing text (tests, embedders). */
  readonly sink?: (line: LogLine) => void;
  /** Where text goes without a sink. Default process.stdout. */
  readonly output?: LogOutput;
  /** `text` (human-readable), `json`, or `auto`: text when the output is a terminal. Default `auto`. */
  readonly format?: "auto" | "json" | "text";
}

/** Parses a `--log-level` value; the error names the flag and the levels there are. */
export function parseLogLevel(value: string, flag = "--log-level"): LogLevel {
  const level = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new Error(`${flag}: "${value}" is not a log level; use one of ${LOG_LEVELS.join(", ")}`);
}

/** Fields pino writes itself; the rest of a line is the caller's and gets redacted. */
const FIXED_FIELDS = new Set(["level", "time", "msg"]);

export function createLogger(options: LoggerOptions = {}): Logger {
  const output = options.output ?? process.stdout;
  const format = options.format ?? "auto";
  const text = format === "text" || (format === "auto" && output.isTTY === true);
  const color = text && output.isTTY === true;
  const secrets = options.secrets ?? (() => []);
  const messageSecrets = options.messageSecrets ?? (() => []);

  const emit = (line: LogLine) => {
    if (options.sink) options.sink(line);
    else output.write(text ? formatText(line, color) : `${JSON.stringify(line)}\n`);
  };
  const destination = {
    write(chunk: string) {
      let line: LogLine;
      try {
        line = JSON.parse(chunk) as LogLine;
      } catch {
        // pino writes one JSON object per call; anything else is redacted whole as text.
        line = { level: "error", time: new Date().toISOString(), msg: "unparsable log line", line: chunk };
      }
      emit(redactLine(line, secrets(), messageSecrets()));
    },
  };
  const root = pino(
    {
      level: options.level ?? "info",
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    },
    destination,
  );
  return wrap(root);
}

/** A logger that drops everything (library defaults, tests that do not look at logs). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  log: () => undefined,
  child: () => silentLogger,
  isLevelEnabled: () => false,
};

/**
 * Writes a line in the operator's older shape, `{ level, msg, ...fields }` (the `log` callbacks
 * other modules take), through `logger`; a missing or unknown level counts as `info`.
 */
export function logLine(logger: Logger, line: LogLine): void {
  const { level, msg, ...fields } = line;
  const known = (LOG_LEVELS as readonly unknown[]).includes(level) ? (level as LogLevel) : "info";
  logger.log(known, typeof msg === "string" ? msg : String(msg ?? ""), fields);
}

function wrap(p: pino.Logger): Logger {
  const at = (level: LogLevel) => (msg: string, fields?: LogFields) => (fields ? p[level](fields, msg) : p[level](msg));
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    log: (level, msg, fields) => at(level)(msg, fields),
    child: (bindings) => wrap(p.child(bindings)),
    isLevelEnabled: (level) => p.isLevelEnabled(level),
  };
  return logger;
}

function redactLine(line: LogLine, secrets: readonly string[], messageSecrets: readonly string[]): LogLine {
  const out: LogLine = {};
  for (const [key, value] of Object.entries(line)) {
    if (key === "msg") out.msg = typeof value === "string" ? redact(value, messageSecrets) : redactDeep(value, messageSecrets);
    else out[key] = FIXED_FIELDS.has(key) ? value : redactDeep(value, secrets);
  }
  return out;
}

const LEVEL_COLORS: Record<string, string> = { debug: "\x1b[90m", info: "\x1b[36m", warn: "\x1b[33m", error: "\x1b[31m" };

/** `12:04:05.123 WARN  cluster watch failed; restarting restartInMs=2000 error="HTTP 500"`. */
export function formatText(line: LogLine, color = false): string {
  const { level, time, msg, ...fields } = line;
  const clock = typeof time === "string" ? time.slice(11, 23) : "";
  const label = String(level ?? "info").toUpperCase().padEnd(5);
  const shownLevel = color ? `${LEVEL_COLORS[String(level)] ?? ""}${label}\x1b[0m` : label;
  const rest = Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`);
  return `${[clock, shownLevel, String(msg ?? ""), ...rest].filter((s) => s !== "").join(" ")}\n`;
}

function formatValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value !== null && typeof value === "object") {
    // A serialized Error: its stack says it all, on lines of its own.
    const stack = (value as { stack?: unknown }).stack;
    if (typeof stack === "string") return `\n  ${stack.split("\n").join("\n  ")}`;
  }
  return JSON.stringify(value) ?? String(value);
}

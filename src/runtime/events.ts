/**
 * Kubernetes Events about our objects (`kubectl describe kc my-cluster` shows them), written as
 * client-go's legacy EventRecorder does: a core/v1 Event in the object's namespace, and identical
 * events within a window folded into one by bumping `count` and `lastTimestamp`, so a Cluster that
 * fails the same way every backoff period does not bury its history under hundreds of Events.
 *
 * Events are best effort: a failure to record one is reported to `onError`, never thrown into
 * the reconcile that wanted to tell the user something.
 */
import { randomBytes } from "node:crypto";
import type { CoreV1Api, CoreV1Event } from "@kubernetes/client-node";
import { isNotFound } from "./api-errors";
import { realClock, type Clock } from "./clock";
import { formatTime } from "./conditions";
import { redact } from "./redact";

export const EventType = { Normal: "Normal", Warning: "Warning" } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export const REPORTING_COMPONENT = "kube-on-kube-operator";

/** The fields of an object an Event refers to. */
export interface EventSubject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly uid?: string; readonly resourceVersion?: string };
}

export type EventApi = Pick<CoreV1Api, "createNamespacedEvent" | "patchNamespacedEvent">;

export interface EventRecorderOptions {
  readonly api: EventApi;
  /** This replica (pod name); goes to `reportingInstance` and `source.host`. */
  readonly instance: string;
  readonly clock?: Clock;
  /** Identical events closer together than this are aggregated. Default 10 minutes. */
  readonly aggregationWindowMs?: number;
  /** Values that must never appear in a message about an object of `namespace` (passphrases, tokens). */
  readonly secrets?: (namespace?: string) => readonly string[];
  readonly onError?: (err: unknown, event: { reason: string; subject: string }) => void;
}

/** The apiserver keeps messages short; longer ones are cut with a marker. */
const MAX_MESSAGE = 1024;
/** Bounds memory: beyond this many remembered series the oldest are dropped. */
const MAX_SERIES = 4096;

interface Series {
  readonly name: string;
  readonly namespace: string;
  count: number;
  lastSeen: number;
}

export class EventRecorder {
  private readonly options: EventRecorderOptions;
  private readonly clock: Clock;
  private readonly windowMs: number;
  private readonly series = new Map<string, Series>();
  /** Serialises writes per series so two identical events at once still make one Event. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(options: EventRecorderOptions) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    this.windowMs = options.aggregationWindowMs ?? 600_000;
  }

  normal(subject: EventSubject, reason: string, message: string): Promise<void> {
    return this.record(subject, EventType.Normal, reason, message);
  }

  warning(subject: EventSubject, reason: string, message: string): Promise<void> {
    return this.record(subject, EventType.Warning, reason, message);
  }

  /** Records an Event; resolves when written (or when writing failed and was reported). */
  record(subject: EventSubject, type: EventType, reason: string, message: string): Promise<void> {
    const text = truncate(redact(message, this.options.secrets?.(subject.metadata?.namespace) ?? []));
    const meta = subject.metadata ?? {};
    const seriesKey = JSON.stringify([meta.namespace, subject.kind, meta.name, meta.uid, type, reason, text]);
    const previous = this.chains.get(seriesKey) ?? Promise.resolve();
    const next = previous.then(() => this.write(seriesKey, subject, type, reason, text));
    this.chains.set(seriesKey, next);
    void next.then(() => {
      if (this.chains.get(seriesKey) === next) this.chains.delete(seriesKey);
    });
    return next;
  }

  private async write(seriesKey: string, subject: EventSubject, type: EventType, reason: string, message: string): Promise<void> {
    const now = this.clock.now();
    this.forgetOldSeries(now);
    const known = this.series.get(seriesKey);
    try {
      if (known && now - known.lastSeen <= this.windowMs) {
        try {
          await this.options.api.patchNamespacedEvent({
            name: known.name,
            namespace: known.namespace,
            body: [
              { op: "replace", path: "/count", value: known.count + 1 },
              { op: "replace", path: "/lastTimestamp", value: formatTime(now) },
            ],
          });
          known.count++;
          known.lastSeen = now;
          // Re-insert so the map stays ordered by lastSeen (see forgetOldSeries).
          this.series.delete(seriesKey);
          this.series.set(seriesKey, known);
          return;
        } catch (err) {
          // The Event expired (the apiserver keeps them an hour) or was deleted: start a new one.
          if (!isNotFound(err)) throw err;
        }
      }
      const created = await this.options.api.createNamespacedEvent({ namespace: eventNamespace(subject), body: this.newEvent(subject, type, reason, message, now) });
      this.series.delete(seriesKey);
      this.series.set(seriesKey, { name: created.metadata?.name ?? "", namespace: eventNamespace(subject), count: 1, lastSeen: now });
    } catch (err) {
      try {
        this.options.onError?.(err, { reason, subject: `${subject.kind}/${meta(subject)}` });
      } catch {
        // Logging must not break reconciling.
      }
    }
  }

  private newEvent(subject: EventSubject, type: EventType, reason: string, message: string, now: number): CoreV1Event {
    const m = subject.metadata ?? {};
    const time = new Date(Math.floor(now / 1000) * 1000);
    return {
      metadata: { name: eventName(m.name ?? "unknown", now), namespace: eventNamespace(subject) },
      involvedObject: { apiVersion: subject.apiVersion, kind: subject.kind, name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
      reason,
      message,
      type,
      count: 1,
      firstTimestamp: time,
      lastTimestamp: time,
      source: { component: REPORTING_COMPONENT, host: this.options.instance },
      reportingComponent: REPORTING_COMPONENT,
      reportingInstance: this.options.instance,
    };
  }

  private forgetOldSeries(now: number): void {
    for (const [key, s] of this.series) {
      if (now - s.lastSeen > this.windowMs || this.series.size > MAX_SERIES) this.series.delete(key);
      else break; // the map is ordered by lastSeen: the rest are younger
    }
  }
}

/** Events live beside their object; cluster-scoped objects' events go to `default`, as kubectl expects. */
function eventNamespace(subject: EventSubject): string {
  return subject.metadata?.namespace || "default";
}

function meta(subject: EventSubject): string {
  const m = subject.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : String(m.name);
}

/** `<object>.<hex time><random>`, like client-go; unique without a round trip. */
function eventName(objectName: string, now: number): string {
  return `${objectName.slice(0, 200)}.${now.toString(16)}${randomBytes(4).toString("hex")}`;
}

function truncate(message: string): string {
  const marker = "... (truncated)";
  return message.length <= MAX_MESSAGE ? message : message.slice(0, MAX_MESSAGE - marker.length) + marker;
}

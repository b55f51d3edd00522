/**
 * The docs cannot drift from the CLI: every `kok …` command line written in README.md and
 * docs/*.md — in code blocks and in inline code — is checked against the command tree of
 * src/cli/program.ts: the commands exist, the options exist on that command, option values are
 * among its choices, and there are not more arguments than it takes. Code blocks are commands to
 * run, so there a missing argument or option value is wrong too; inline code may name a command
 * or a flag without its values. Placeholders (FILE, <pod>, [--purge]) stand for values.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram, commandPath } from "../../src/cli/program";

const REPO = join(__dirname, "..", "..");

interface DocCommand {
  readonly file: string;
  readonly line: number;
  /** The words after `kok` (or `npx kok`, `npm run kok --`, `node dist/cli/main.js`…). */
  readonly words: string[];
  /** From a code block: a command to run, not a mention. */
  readonly runnable: boolean;
}

/** The ways the docs invoke the CLI; `kok` must stand at a command position (line start, after `|`, `$(`…). */
const INVOCATION = /(?:npx\s+kok|npm\s+run\s+(?:-s\s+)?kok(?:\s+--)?|kok|node\s+dist\/cli\/main\.js|(?:npx\s+)?tsx\s+src\/cli\/main\.ts)(?=\s|$)/g;
const COMMAND_POSITION = /(?:^|[|;&(`]|\bsudo|\b[A-Z_]+=\S*)\s*$/;

/** Shell words up to the first unquoted `|`, `;`, `&`, `)`, backtick or comment. */
function wordsUntilOperator(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let quote: string | undefined;
  let inWord = false;
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = undefined;
      else word += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if ("|;&)`".includes(c) || ((c === "#" || c === ">") && !inWord)) {
      // A pipe, list, comment or output redirection ends the command's words (`<pod>` is a placeholder).
      break;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Every kok invocation in one line of shell (a code block's line, or an inline code span). */
function invocationsIn(shell: string, atStartOnly: boolean): string[][] {
  const found: string[][] = [];
  for (const match of shell.matchAll(INVOCATION)) {
    const before = shell.slice(0, match.index);
    if (atStartOnly ? before.trim() !== "" : !COMMAND_POSITION.test(before)) continue;
    found.push(wordsUntilOperator(shell.slice(match.index + match[0].length)));
  }
  return found;
}

/** The kok command lines of one Markdown text. */
function docCommands(file: string, markdown: string): DocCommand[] {
  const found: DocCommand[] = [];
  const lines = markdown.split("\n");
  let fence: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const fenceMark = /^\s*(```|~~~)/.exec(lines[i])?.[1];
    if (fenceMark && (!fence || fence === fenceMark)) {
      fence = fence ? undefined : fenceMark;
      continue;
    }
    if (fence) {
      // A backslash continues the command on the next line.
      let shell = lines[i];
      const first = i;
      while (shell.endsWith("\\") && i + 1 < lines.length) shell = `${shell.slice(0, -1)} ${lines[++i]}`;
      for (const words of invocationsIn(shell, false)) found.push({ file, line: first + 1, words, runnable: true });
      continue;
    }
    for (const span of lines[i].matchAll(/`([^`]+)`/g)) {
      for (const words of invocationsIn(span[1], true)) found.push({ file, line: i + 1, words, runnable: false });
    }
  }
  return found;
}

/** FILE, NS, <pod>, <dir>: a stand-in for a value. */
const isPlaceholder = (word: string) => /^<[^>]+>$/.test(word) || /^[A-Z][A-Z0-9_]*$/.test(word);

/** What is wrong with one command line, against the program's command tree; [] when nothing. */
function commandLineProblems(root: Command, command: DocCommand): string[] {
  // `[--purge]`, `[FILE...]`: the brackets and ellipses of a synopsis, not part of the words.
  const words = command.words.map((w) => w.replace(/^\[+/, "").replace(/\]+$/, "").replace(/\.\.\.$/, "")).filter((w) => w !== "");
  const where = `${command.file}:${command.line}: kok ${command.words.join(" ")}`;
  const isHelp = (w: string) => w === "--help" || w === "-h";
  let cmd = root;
  let i = 0;
  while (i < words.length && cmd.commands.length > 0 && !words[i].startsWith("-")) {
    const sub = cmd.commands.find((c) => c.name() === words[i] || c.aliases().includes(words[i]));
    if (!sub) return [`${where}: "${commandPath(cmd)}" has no command "${words[i]}" (${cmd.commands.map((c) => c.name()).join(", ")})`];
    cmd = sub;
    i++;
  }
  if (words.some(isHelp) || (cmd === root && words.some((w) => w === "--version" || w === "-V"))) return [];
  const problems: string[] = [];
  let positionals = 0;
  for (; i < words.length; i++) {
    const word = words[i];
    if (!word.startsWith("-") || word === "-") {
      positionals++;
      continue;
    }
    const [flag, inline] = word.includes("=") ? [word.slice(0, word.indexOf("=")), word.slice(word.indexOf("=") + 1)] : [word, undefined];
    const option = cmd.options.find((o) => o.long === flag || o.short === flag);
    if (!option) {
      problems.push(`${where}: "${commandPath(cmd)}" has no option ${flag} (${cmd.options.map((o) => o.long).join(", ")})`);
      // Its value, if it has one, is not an argument: one mistake, one problem.
      if (inline === undefined && words[i + 1] !== undefined && !words[i + 1].startsWith("-")) i++;
      continue;
    }
    let value = inline;
    if (value === undefined && (option.required || option.optional)) {
      const next = words[i + 1];
      if (next !== undefined && !next.startsWith("-")) value = words[++i];
      else if (option.required && command.runnable) problems.push(`${where}: ${flag} needs a value`);
    }
    if (value !== undefined && option.argChoices && !isPlaceholder(value) && !option.argChoices.includes(value)) {
      problems.push(`${where}: ${flag} "${value}" is not one of ${option.argChoices.join(", ")}`);
    }
  }
  const args = cmd.registeredArguments;
  const max = args.some((a) => a.variadic) ? Infinity : args.length;
  const min = args.filter((a) => a.required).length;
  if (positionals > max) problems.push(`${where}: "${commandPath(cmd)}" takes ${max} argument(s), the line gives ${positionals}`);
  if (command.runnable && cmd.commands.length === 0 && positionals < min) problems.push(`${where}: "${commandPath(cmd)}" needs ${args.map((a) => a.name()).join(" ")}`);
  return problems;
}

const DOCS = ["README.md", ...readdirSync(join(REPO, "docs")).filter((f) => f.endsWith(".md")).map((f) => join("docs", f))];
const documented = DOCS.flatMap((file) => docCommands(file, readFileSync(join(REPO, file), "utf8")));

describe("kok command lines in the docs", () => {
  it("are found in code blocks and inline code of README.md and docs/*.md", () => {
    const files = new Set(documented.map((c) => c.file));
    for (const file of ["README.md", "docs/operations.md", "docs/dev-cluster.md", "docs/security.md"]) expect(files).toContain(file);
    expect(documented.filter((c) => c.runnable).length).toBeGreaterThanOrEqual(8);
    expect(documented.length).toBeGreaterThanOrEqual(50);
  });

  it("each names commands and options the CLI has", () => {
    const program = buildProgram();
    expect(documented.flatMap((c) => commandLineProblems(program, c))).toEqual([]);
  });
});

describe("docs/operations.md on kok operator", () => {
  const text = readFileSync(join(REPO, "docs", "operations.md"), "utf8");
  const section = text.slice(text.indexOf("## Run the operator outside the cluster"), text.indexOf("\n## ", text.indexOf("## Run the operator outside the cluster") + 3));
  const operator = buildProgram().commands.find((c) => c.name() === "operator")!;
  const flags = operator.options.map((o) => o.long!);

  it("its flag table names flags the operator has", () => {
    const rows = section.split("\n").filter((l) => l.startsWith("| `--"));
    expect(rows.length).toBeGreaterThanOrEqual(10);
    const tabled = rows.flatMap((row) => [...row.split("|")[1].matchAll(/`(--[a-z-]+)/g)].map((m) => m[1]));
    expect(tabled.filter((f) => !flags.includes(f))).toEqual([]);
  });

  it("the section mentions every flag of the operator", () => {
    expect(flags.filter((f) => !new RegExp(`${f}(?![a-z-])`).test(section))).toEqual([]);
  });
});

describe("the docs check itself", () => {
  const program = buildProgram();
  const check = (markdown: string) => docCommands("x.md", markdown).flatMap((c) => commandLineProblems(program, c));

  it("reads code blocks (continued lines, npm run and $(…) forms, comments) and inline code", () => {
    const markdown = [
      "Run `kok dev up` first, then `npx kok validate --policy FILE a.yaml | cat`; not `grep kok x` nor kok-dev.",
      "```bash",
      'eval "$(npm run -s kok -- dev env)"     # the admin kubeconfig',
      "sudo kok operator --kubeconfig ~/.kube/meta.yaml \\",
      "  --resync-interval 5m &",
      "ip netns list | grep kok",
      "```",
    ].join("\n");
    expect(docCommands("x.md", markdown).map((c) => [c.line, c.runnable, c.words])).toEqual([
      [1, false, ["dev", "up"]],
      [1, false, ["validate", "--policy", "FILE", "a.yaml"]],
      [3, true, ["dev", "env"]],
      [4, true, ["operator", "--kubeconfig", "~/.kube/meta.yaml", "--resync-interval", "5m"]],
    ]);
  });

  it("names an unknown command, an unknown option, a bad choice, extra and missing arguments", () => {
    const problems = check(
      [
        "`kok operater`, `kok operator --resync 5m`, `kok dev logs a b`, `kok manifests --operator-heap-mb`",
        "```",
        "kok operator --log-level loud",
        "kok dev up --purge",
        "kok validate",
        "kok manifests --policy",
        "```",
      ].join("\n"),
    );
    expect(problems.map((p) => p.replace(/^x\.md:\d+: /, ""))).toEqual([
      expect.stringMatching(/^kok operater: "kok" has no command "operater"/),
      expect.stringMatching(/^kok operator --resync 5m: "kok operator" has no option --resync/),
      'kok dev logs a b: "kok dev logs" takes 1 argument(s), the line gives 2',
      'kok operator --log-level loud: --log-level "loud" is not one of debug, info, warn, error',
      expect.stringMatching(/^kok dev up --purge: "kok dev up" has no option --purge/),
      'kok validate: "kok validate" needs files',
      "kok manifests --policy: --policy needs a value",
    ]);
  });

  it("accepts synopses: placeholders, [optional] parts, --help and --version", () => {
    expect(check("```\nkok dev logs <pod> [--namespace NS] [--container NAME]\nkok dev down [--purge]\nkok validate FILE...\nkok demo --help\nkok --version\n```")).toEqual([]);
  });
});

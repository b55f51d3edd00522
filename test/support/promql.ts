/**
 * Enough of PromQL to name the metrics an expression reads: a tokenizer that knows strings,
 * label matchers, range and subquery brackets, numbers and durations, functions, aggregation
 * modifiers (`by (...)`, `on (...)`, `group_left (...)`) and keywords. Everything else that is an
 * identifier is a metric name. It refuses what it does not understand (an unknown character,
 * unbalanced brackets), so a typo in a dashboard fails the test instead of slipping through.
 *
 * Grafana's template variables are replaced first: `$__rate_interval` and friends by a duration,
 * `$var` / `${var}` inside label values stay as text. `label_values(metric, label)` (a Grafana
 * variable query, not PromQL) names its first argument.
 */

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"]);
/** Modifiers whose parenthesised list holds label names, not expressions. */
const LABEL_LIST_MODIFIERS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);

/** Replaces Grafana's interval variables by a duration, so what is left is plain PromQL. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g, "5m");
}

/** The metric names `expr` reads, in order of first use; throws naming what it cannot read. */
export function metricNamesOf(source: string): string[] {
  const expr = withoutGrafanaVariables(source);
  const labelValues = /^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(expr);
  if (labelValues) return [labelValues[1]];
  const names: string[] = [];
  const closers: string[] = [];
  let i = 0;
  let expectLabelList = false;
  const fail = (why: string): never => {
    throw new Error(`PromQL "${source}": ${why} at offset ${i}`);
  };
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      const end = skipString(expr, i);
      if (end < 0) fail("unterminated string");
      i = end;
      continue;
    }
    if (c === "{") {
      // Label matchers: names, operators and quoted values (which may hold braces) only.
      let j = i + 1;
      for (;;) {
        if (j >= expr.length) fail("unclosed {");
        if (expr[j] === "}") break;
        if (expr[j] === '"' || expr[j] === "'") {
          j = skipString(expr, j);
          if (j < 0) fail("unterminated label value");
        } else if (/[a-zA-Z0-9_\s,=!~]/.test(expr[j])) j++;
        else fail(`unexpected "${expr[j]}" in label matchers`);
      }
      i = j + 1;
      continue;
    }
    if (c === "[") {
      // A range or subquery: durations, a colon, nothing else.
      const end = expr.indexOf("]", i);
      if (end < 0 || !/^\[\s*\d+[smhdwy](\d+[smhdwy])*\s*(:\s*(\d+[smhdwy])*\s*)?\]$/.test(expr.slice(i, end + 1))) fail("bad range");
      i = end + 1;
      continue;
    }
    if (c === "(") {
      if (expectLabelList) {
        const end = expr.indexOf(")", i);
        if (end < 0 || !/^\(\s*([a-zA-Z_][a-zA-Z0-9_]*\s*(,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*)*,?\s*)?\)$/.test(expr.slice(i, end + 1))) fail("bad label list");
        i = end + 1;
        expectLabelList = false;
        continue;
      }
      closers.push(")");
      i++;
      continue;
    }
    if (c === ")") {
      if (closers.pop() !== ")") fail("unbalanced )");
      i++;
      continue;
    }
    const number = /^(0x[0-9a-fA-F]+|\d+(\.\d+)?([eE][+-]?\d+)?|\.\d+)([smhdwy]|ms)?/.exec(expr.slice(i));
    if (number) {
      i += number[0].length;
      continue;
    }
    const ident = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i));
    if (ident) {
      const word = ident[0];
      i += word.length;
      const rest = expr.slice(i).trimStart();
      const next = rest[0];
      // `sum by (le) (...)`: an aggregation, its modifier before its argument.
      const modifierFollows = /^(by|without)\s*\(/.test(rest);
      if (LABEL_LIST_MODIFIERS.has(word)) {
        // `group_left` may come without a list.
        expectLabelList = next === "(";
      } else if (KEYWORDS.has(word.toLowerCase())) {
        // an operator or a literal
      } else if (next === "(" || modifierFollows) {
        // a function or an aggregation
      } else if (!names.includes(word)) {
        names.push(word);
      }
      continue;
    }
    if (/[-+*/%^=!<>,@]/.test(c)) {
      i++;
      continue;
    }
    fail(`unexpected "${c}"`);
  }
  if (closers.length) fail("unclosed (");
  return names;
}

function skipString(text: string, start: number): number {
  const quote = text[start];
  for (let j = start + 1; j < text.length; j++) {
    if (text[j] === "\\" && quote !== "`") j++;
    else if (text[j] === quote) return j + 1;
  }
  return -1;
}

/** The metric families a Prometheus text scrape declares (`# TYPE name type`), with their type. */
export function familiesOf(scrape: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const match of scrape.matchAll(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/gm)) families.set(match[1], match[2]);
  return families;
}

/** The series names a family exposes: a histogram's `_bucket`, `_sum` and `_count`, a summary's `_sum` and `_count` too. */
export function exportedNames(families: Map<string, string>): Set<string> {
  const names = new Set<string>();
  for (const [name, type] of families) {
    names.add(name);
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    if (type === "summary") for (const suffix of ["_sum", "_count"]) names.add(name + suffix);
  }
  return names;
}

/** Each expression's metric names that the scrape does not export, as "name (in: expr)". */
export function missingMetrics(exprs: readonly string[], exported: Set<string>): string[] {
  return exprs.flatMap((expr) => metricNamesOf(expr).filter((n) => !exported.has(n)).map((n) => `${n} (in: ${expr})`));
}

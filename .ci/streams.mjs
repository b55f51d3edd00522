// Splits the e2e files over CI's two test streams so that both end at about the same time.
// Stream 1 runs `npm test` first, then its e2e files; stream 2 runs only e2e files. Longest
// file first, each to the stream that would end sooner (the classic greedy schedule), with the
// seconds of .ci/test-seconds.json; a file not listed there counts as DEFAULT_SECONDS.
// Prints two lines: stream 1's files, then stream 2's, separated by spaces (either may be empty),
// and to stderr the planned seconds of each stream.
import { readdirSync, readFileSync } from "node:fs";

const DEFAULT_SECONDS = 300;
const seconds = JSON.parse(readFileSync(new URL("./test-seconds.json", import.meta.url), "utf8"));
const files = readdirSync("test/e2e").filter((f) => f.endsWith(".test.ts")).map((f) => `test/e2e/${f}`).sort();
const cost = (file) => (typeof seconds[file] === "number" ? seconds[file] : DEFAULT_SECONDS);
const streams = [
  { files: [], total: typeof seconds["npm test"] === "number" ? seconds["npm test"] : 0 },
  { files: [], total: 0 },
];
for (const file of [...files].sort((a, b) => cost(b) - cost(a) || a.localeCompare(b))) {
  const to = streams[0].total <= streams[1].total ? streams[0] : streams[1];
  to.files.push(file);
  to.total += cost(file);
}
for (const s of streams) console.log(s.files.join(" "));
console.error(`planned: stream 1 (npm test, then ${streams[0].files.length} e2e files) ${streams[0].total} s; stream 2 (${streams[1].files.length} e2e files) ${streams[1].total} s`);

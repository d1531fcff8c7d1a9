/**
 * bench:engine — 200,000 rows SQLite → canonical → SQLite through the full engine (staging and ledger on), against
 * the same copy done by a plain loop with the same driver, measured in the same run. Each part runs in its own
 * process (peak memory is then its own), alternating, three rounds; medians are reported.
 *
 *   npm run bench:engine [-- --rows 200000 --rounds 3]
 *
 * The last line printed is JSON: {"bench":"engine","rows":…,"wall_s":…,"reference_wall_s":…,"ratio":…,"peak_rss_mb":…}
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { median } from "./bulk-shared.ts";
import { cliEnv, cliNodeFlags } from "./cli-settings.ts";

const { values } = parseArgs({
  options: { rows: { type: "string", default: "200000" }, rounds: { type: "string", default: "3" } },
});
const rows = Number(values.rows);
const rounds = Number(values.rounds);
const dir = fileURLToPath(new URL("./.work/engine", import.meta.url));
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

// the source: one table of customers, ~150 bytes a row
const source = new DatabaseSync(join(dir, "source.db"));
source.exec("PRAGMA journal_mode = WAL");
source.exec(
  "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, amount TEXT, updated_at TEXT, note TEXT)",
);
const insert = source.prepare("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)");
source.exec("BEGIN");
for (let id = 1; id <= rows; id++) {
  insert.run(
    id,
    `Customer ${id}`,
    `customer.${id}@example.org`,
    (((id * 37) % 100000) / 100).toFixed(2),
    new Date(Date.UTC(2025, 0, 1) + id * 1000).toISOString(),
    `account opened through channel ${id % 7}, segment ${id % 13}`,
  );
}
source.exec("COMMIT");
// an incremental source indexes its cursor, as any table read by `updated_at` should be
source.exec("CREATE INDEX customers_updated ON customers (updated_at, id)");
source.close();

const partScript = fileURLToPath(new URL("./engine-part.ts", import.meta.url));
function measure(part: string): { wall_s: number; peak_rss_mb: number; rows: number } {
  // the same V8 settings as the franca command (bin/franca.js) gives every run
  const out = execFileSync(process.execPath, [...cliNodeFlags, partScript, part, dir], {
    encoding: "utf8",
    env: cliEnv,
  });
  return JSON.parse(out.trim().split("\n").at(-1) as string);
}

const engineWalls: number[] = [];
const referenceWalls: number[] = [];
const peaks: number[] = [];
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? ["reference", "engine"] : ["engine", "reference"];
  for (const part of order) {
    const result = measure(part);
    if (result.rows !== rows) throw new Error(`${part} moved ${result.rows} rows, expected ${rows}`);
    if (part === "engine") {
      engineWalls.push(result.wall_s);
      peaks.push(result.peak_rss_mb);
    } else referenceWalls.push(result.wall_s);
    console.log(`round ${round + 1} ${part.padEnd(9)} ${result.wall_s.toFixed(3)} s  peak ${result.peak_rss_mb} MB`);
  }
}
const wall = median(engineWalls);
const reference = median(referenceWalls);
console.log(
  JSON.stringify({
    bench: "engine",
    rows,
    wall_s: Number(wall.toFixed(3)),
    reference_wall_s: Number(reference.toFixed(3)),
    ratio: Number((wall / reference).toFixed(2)),
    peak_rss_mb: Math.max(...peaks),
  }),
);

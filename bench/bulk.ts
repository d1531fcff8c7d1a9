/**
 * bench:bulk — 1,000,000 rows (id bigint, name, email, amount numeric(12,2), updated_at timestamptz, a ~200-byte
 * jsonb) copied PostgreSQL → PostgreSQL and PostgreSQL → MariaDB through the Franca engine (a mapping that renames
 * every field, full TypeBox validation, both stages staged, the ledger on), against the raw moves measured in the
 * same run: `COPY (…) TO STDOUT` piped into `COPY … FROM STDIN` for PostgreSQL, and for MariaDB the fastest of the
 * plain mysql2 moves tried (LOAD DATA LOCAL INFILE fed the COPY stream, multi-row INSERTs of several sizes). Then the
 * peak resident memory of a 10,000,000-row engine run, PostgreSQL → PostgreSQL.
 *
 * Each part runs in its own process (bench/bulk-part.ts), parts alternate over the rounds, medians are reported.
 *
 *   npm run bench:bulk [-- --rows 1000000 --big-rows 10000000 --rounds 3 --skip-big --skip-maria
 *                          --maria-raw load,insert-1000,insert-5000 --chunk-size N --load-concurrency N --threads N
 *                          --node-flags "--max-semi-space-size=4 …"]
 *
 * The last line printed is JSON: {"bench":"bulk","rows":…,"pg_rows_per_s":…,"pg_raw_rows_per_s":…,"pg_ratio":…,
 * "maria_rows_per_s":…,"maria_raw_rows_per_s":…,"maria_raw":…,"maria_ratio":…,"maria_load_rows_per_s":…,
 * "maria_load_ratio":…,"big_rows":…,"peak_rss_mb":…}: maria_ratio against the reference, the fastest plain
 * mysql2 batched INSERT (maria_raw names it); maria_load_ratio against LOAD DATA, the fastest raw move of all.
 * pg_machine_cpu_s and pg_raw_machine_cpu_s are the CPU seconds the whole machine (the databases included) spent on
 * each move, pg_cpu_ratio the raw move's over the engine's. Each round's line shows them, with how many cores were
 * busy on average.
 */
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import mysql from "mysql2/promise";
import pg from "pg";
import {
  defaultMariaUrl,
  defaultPgUrl,
  fillSource,
  mariaTarget,
  mariaTargetColumns,
  median,
  type PartResult,
  pgTargetColumns,
  runPart,
  sourceColumns,
} from "./bulk-shared.ts";
import { cliNodeFlags } from "./cli-settings.ts";

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    "big-rows": { type: "string", default: "10000000" },
    rounds: { type: "string", default: "3" },
    "skip-big": { type: "boolean", default: false },
    "skip-maria": { type: "boolean", default: false },
    "maria-raw": { type: "string", default: "load,insert-1000,insert-5000" },
    "chunk-size": { type: "string" },
    "load-concurrency": { type: "string" },
    // the engine parts' transform threads (default: the engine's, the machine's cores less one; 0: none)
    threads: { type: "string" },
    // V8 settings of the parts, space-separated (default: the franca command's)
    "node-flags": { type: "string" },
    pg: { type: "string", default: defaultPgUrl },
    maria: { type: "string", default: defaultMariaUrl },
  },
});
const rows = Number(values.rows);
const bigRows = Number(values["big-rows"]);
const rounds = Number(values.rounds);
const schema = "franca_bench_bulk";
const nodeFlags = values["node-flags"] === undefined ? cliNodeFlags : values["node-flags"].split(/\s+/).filter(Boolean);
mkdirSync(fileURLToPath(new URL("./.work/bulk", import.meta.url)), { recursive: true });

/** Makes `<schema>.<table>` hold `count` rows, reusing it when it already does. */
async function source(client: pg.Client, table: string, count: number): Promise<void> {
  const relation = `${schema}.${table}`;
  const exists = (await client.query("SELECT to_regclass($1) IS NOT NULL AS found", [relation])).rows[0].found;
  if (exists && Number((await client.query(`SELECT count(*) AS n FROM ${relation}`)).rows[0].n) === count) return;
  console.error(`filling ${relation} with ${count} rows…`);
  await client.query(`DROP TABLE IF EXISTS ${relation}`);
  await client.query(`CREATE TABLE ${relation} (${sourceColumns})`);
  // incremental reads go by (updated_at, id): an incremental table indexes its cursor
  await client.query(`CREATE INDEX ON ${relation} (updated_at, id)`);
  await fillSource(client, relation, count);
}

const setup = new pg.Client({ connectionString: values.pg });
await setup.connect();
await setup.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
await source(setup, "src", rows);
if (!values["skip-big"]) await source(setup, "src_big", bigRows);
await setup.query(`DROP TABLE IF EXISTS ${schema}.dst`);
await setup.query(`CREATE TABLE ${schema}.dst (${pgTargetColumns})`);
await setup.end();
if (!values["skip-maria"]) {
  const connection = await mysql.createConnection({ uri: values.maria });
  await connection.query(`DROP TABLE IF EXISTS ${mariaTarget}`);
  await connection.query(`CREATE TABLE ${mariaTarget} (${mariaTargetColumns})`);
  await connection.end();
}

const script = fileURLToPath(new URL("./bulk-part.ts", import.meta.url));
const common = ["--pg", values.pg as string, "--maria", values.maria as string];
const flowSettings: string[] = [];
if (values["chunk-size"] !== undefined) flowSettings.push("--chunk-size", values["chunk-size"]);
if (values["load-concurrency"] !== undefined) flowSettings.push("--load-concurrency", values["load-concurrency"]);
if (values.threads !== undefined) flowSettings.push("--threads", values.threads);

/** A part's name → its arguments. */
const parts = new Map<string, string[]>([
  ["pg-raw", ["pg-raw"]],
  ["pg-engine", ["pg-engine", ...flowSettings]],
]);
if (!values["skip-maria"]) {
  parts.set("maria-engine", ["maria-engine", ...flowSettings]);
  for (const method of (values["maria-raw"] as string).split(",")) {
    const [kind, batch] = method.split("-");
    parts.set(
      `maria-raw-${method}`,
      kind === "load" ? ["maria-raw", "--method", "load"] : ["maria-raw", "--method", "insert", "--batch", `${batch}`],
    );
  }
}

const results = new Map<string, PartResult[]>();
for (let round = 0; round < rounds; round++) {
  const order = [...parts.keys()];
  if (round % 2 === 1) order.reverse();
  for (const name of order) {
    const result = runPart(script, [...(parts.get(name) as string[]), ...common], nodeFlags);
    if (result.rows !== rows) throw new Error(`${name} moved ${result.rows} rows, expected ${rows}`);
    results.set(name, [...(results.get(name) ?? []), result]);
    console.log(
      `round ${round + 1} ${name.padEnd(22)} ${result.wall_s.toFixed(2).padStart(7)} s ${String(result.rows_per_s).padStart(8)} rows/s  peak ${result.peak_rss_mb} MB  machine ${String(result.machine_cpu_s).padStart(6)} CPU-s (${result.busy_cores} cores busy; node ${result.node_cpu_s}, databases ${result.databases_cpu_s})`,
    );
  }
}
const rate = (name: string): number => median((results.get(name) ?? []).map((result) => result.rows_per_s));
/** A part's median CPU seconds of the whole machine (databases included) for the move. */
const machineCpu = (name: string): number =>
  median((results.get(name) ?? []).map((result) => Number(result.machine_cpu_s)));

let peak: number | null = null;
let bigRate: number | null = null;
if (!values["skip-big"]) {
  const big = runPart(script, ["pg-engine", "--source", "src_big", ...flowSettings, ...common], nodeFlags);
  if (big.rows !== bigRows) throw new Error(`the ${bigRows}-row run moved ${big.rows} rows`);
  peak = big.peak_rss_mb;
  bigRate = big.rows_per_s;
  console.log(`big  pg-engine ${bigRows} rows ${big.wall_s.toFixed(1)} s ${big.rows_per_s} rows/s  peak ${peak} MB`);
}

const pgRate = rate("pg-engine");
const pgRaw = rate("pg-raw");
const summary: Record<string, unknown> = {
  bench: "bulk",
  rows,
  pg_rows_per_s: pgRate,
  pg_raw_rows_per_s: pgRaw,
  pg_ratio: Number((pgRate / pgRaw).toFixed(2)),
  // what each move cost the whole machine, and the raw move's cost over the engine's: where both keep every core
  // busy, pg_ratio is this ratio
  pg_machine_cpu_s: machineCpu("pg-engine"),
  pg_raw_machine_cpu_s: machineCpu("pg-raw"),
  pg_cpu_ratio: Number((machineCpu("pg-raw") / machineCpu("pg-engine")).toFixed(2)),
};
if (!values["skip-maria"]) {
  const raws = [...parts.keys()].filter((name) => name.startsWith("maria-raw-"));
  for (const name of raws) console.log(`${name}: median ${rate(name)} rows/s`);
  const mariaRate = rate("maria-engine");
  const fastestOf = (names: string[]): string | undefined =>
    names.reduce<string | undefined>(
      (best, name) => (best === undefined || rate(name) > rate(best) ? name : best),
      undefined,
    );
  // maria_ratio is against the reference, the fastest plain mysql2 batched INSERT; maria_load_ratio against
  // LOAD DATA fed the same COPY stream (a bulk path the issue does not name, faster than any INSERT)
  const insert = fastestOf(raws.filter((name) => name.startsWith("maria-raw-insert-")));
  const load = raws.includes("maria-raw-load") ? "maria-raw-load" : undefined;
  const ratio = (name: string): number => Number((mariaRate / rate(name)).toFixed(2));
  Object.assign(summary, {
    maria_rows_per_s: mariaRate,
    ...(insert === undefined
      ? {}
      : {
          maria_raw_rows_per_s: rate(insert),
          maria_raw: insert.slice("maria-raw-".length),
          maria_ratio: ratio(insert),
        }),
    ...(load === undefined ? {} : { maria_load_rows_per_s: rate(load), maria_load_ratio: ratio(load) }),
  });
}
Object.assign(summary, { big_rows: values["skip-big"] ? null : bigRows, big_rows_per_s: bigRate, peak_rss_mb: peak });
console.log(JSON.stringify(summary));

/**
 * What the database benchmarks share (bench:bulk, bench/pg-copy-part.ts; bench:scale uses withPg): the source table
 * and how it is filled, the running of a measured part in a process of its own, medians and peak memory.
 */
import { execFileSync } from "node:child_process";
import pg from "pg";
import { cliEnv, cliNodeFlags } from "./cli-settings.ts";

export const defaultPgUrl = "postgres://postgres@127.0.0.1:5432/test";
export const defaultMariaUrl = "mysql://root@127.0.0.1:3306/test";

export { mariaTarget, mariaTargetColumns, pgTargetColumns, sourceColumns, targetNames } from "./bulk-tables.ts";

/**
 * Fills `relation` (created with sourceColumns) with `rows` rows, ~200 bytes of jsonb text each: a nested object, an
 * array, numbers, booleans, a string with an escape now and then. Runs on the server, in one statement.
 */
export async function fillSource(client: pg.ClientBase, relation: string, rows: number): Promise<void> {
  await client.query(
    `INSERT INTO ${relation}
     SELECT i, 'Customer ' || i, 'customer' || i || '@example.org', round((i * 1.37) % 100000, 2),
            '2025-01-01 00:00:00+00'::timestamptz + i * interval '1.000001 second',
            jsonb_build_object('segment', (ARRAY['retail','wholesale','online'])[1 + i % 3], 'score', i % 97,
              'tags', jsonb_build_array('t' || (i % 11), 't' || (i % 13), 'vip'), 'active', i % 2 = 0,
              'address', jsonb_build_object('street', i || ' Main Street', 'city', 'Springfield', 'zip', lpad((i % 99999)::text, 5, '0')),
              'note', 'Line one' || chr(10) || 'tab' || chr(9) || 'quote "q" ' || repeat('x', 30))
       FROM generate_series(1, $1::int) AS i`,
    [rows],
  );
  await client.query(`VACUUM ANALYZE ${relation}`);
}

/** Runs `work` on a connection of its own, closed afterwards. */
export async function withPg<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** What every measured part prints as its last line. */
export interface PartResult {
  part: string;
  rows: number;
  wall_s: number;
  rows_per_s: number;
  peak_rss_mb: number;
  [more: string]: unknown;
}

/** This process's peak resident memory so far, in MB (the kernel's high-water mark). */
export function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** A part's result line, from its row count and wall time. */
export function partResult(part: string, rows: number, wallSeconds: number, more: object = {}): PartResult {
  return {
    part,
    rows,
    wall_s: Number(wallSeconds.toFixed(3)),
    rows_per_s: Math.round(rows / wallSeconds),
    peak_rss_mb: peakRssMb(),
    // CPU time of the whole process (every thread): less sensitive than wall time to what else runs on the machine
    cpu_s: Number(((process.cpuUsage().user + process.cpuUsage().system) / 1e6).toFixed(2)),
    ...more,
  };
}

/**
 * Runs a part script in its own process (its peak memory is then its own), with the V8 settings (unless told others)
 * and the environment the franca command gives every run, and returns the JSON of its last line. Its stderr passes through.
 */
export function runPart(script: string, args: readonly string[], nodeFlags = cliNodeFlags): PartResult {
  const out = execFileSync(process.execPath, [...nodeFlags, script, ...args], {
    encoding: "utf8",
    env: cliEnv,
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out.trim().split("\n").at(-1) as string) as PartResult;
}

export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
}

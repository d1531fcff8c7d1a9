/**
 * What the database benchmarks share (bench:bulk, bench/pg-copy-part.ts; bench:scale uses withPg): the source table
 * and how it is filled, the running of a measured part in a process of its own, medians and peak memory.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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

/**
 * CPU seconds the whole machine has spent busy since boot, every core and process (`/proc/stat`: user, nice, system,
 * irq, softirq; not idle, iowait or steal). The difference over a part is what the move cost the machine, its
 * databases included: on this 2-core machine, where the raw moves keep both cores busy too, the ratio of two parts'
 * machine CPU is what their throughput ratio is made of.
 */
export function machineBusySeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields;
  // USER_HZ is 100 on Linux whatever the kernel's tick (the proc(5) fields are in it)
  return (user + nice + system + irq + softirq) / 100;
}

/**
 * CPU seconds spent so far by the database servers' processes on this machine (PostgreSQL's and MariaDB's or MySQL's,
 * every backend; a server in another PID namespace, a container's, is not seen and counts 0): each live
 * process's own time, plus what its exited children spent (a backend that ended is counted in its parent's cutime
 * and cstime, the postmaster's). The difference over a part is what the databases did for the move.
 */
export function databaseCpuSeconds(): number {
  let ticks = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // gone since the listing
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    if (name !== "postgres" && name !== "mariadbd" && name !== "mysqld") continue;
    // after ") ": state is field 3; utime, stime, cutime, cstime are fields 14–17
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return ticks / 100;
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

/**
 * bench:scale — a latency-bound flow run by 1, 2 and 4 `franca worker` processes on the PostgreSQL store.
 *
 * Each record needs one call of ~20 ms to an API (a real HTTP server on 127.0.0.1, one record per POST, idempotency
 * keys honoured); the API allows 64 calls in flight across every worker, and each worker process makes at most 16
 * of its own at once (bench/scale-hub.ts). So one worker can at best deliver 16 / 20 ms = 800 records/s, and four
 * 3,200/s: the ideal speedup of 4 workers is 4. For each worker count the benchmark starts the workers, waits until
 * each is working, then times one run from the moment it is queued to the moment its finishing worker recorded its
 * end (workers are long-lived services: their start is not counted). It then checks the API: a record missing is
 * `lost`, a record created twice a `duplicate`.
 *
 * Reference, in the same run: the same calls made by 1, 2 and 4 plain processes with no engine (bench/scale-raw.ts,
 * 16 at once each): the speedup this machine itself allows (cores shared by the workers, the API, PostgreSQL and
 * the loopback network), reported as `raw_wall_s` and `raw_speedup_4`.
 *
 *   npm run bench:scale [-- --n 48000 --workers 1,2,4 --jobs 2 --chunk 500 --latency 20]
 *
 * The last line printed is JSON: {"bench":"scale","workers":[1,2,4],"wall_s":[…],"speedup_4":…,"lost":0,"duplicates":0}
 * (with n, raw_wall_s, raw_speedup_4 and the largest number of calls the API saw in flight).
 *
 * Diagnostics (environment): FRANCA_SCALE_LOG=debug prints the workers' logs (a line per job started and done);
 * FRANCA_SCALE_NODE_ARGS="--cpu-prof --cpu-prof-dir=…" passes flags to the workers' Node; FRANCA_SCALE_TRACE=1
 * prints the calls in flight at the API every ~20 ms.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { startSimApi } from "../sim/api.ts";
import { Engine } from "../src/engine/engine.ts";
import { withPg } from "./bulk-shared.ts";
import { cliEnv, cliNodeFlags } from "./cli-settings.ts";
import { scaleHub, scaleUrl } from "./scale-hub.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "48000" },
    workers: { type: "string", default: "1,2,4" },
    jobs: { type: "string", default: "2" },
    chunk: { type: "string", default: "500" },
    latency: { type: "string", default: "20" },
  },
});
const n = Number(values.n);
const workerCounts = (values.workers as string).split(",").map(Number);
const jobs = Number(values.jobs);
const latencyMs = Number(values.latency);
const root = resolve(import.meta.dirname, "..");
const bin = join(root, "bin", "franca.js");
const config = join(root, "bench", "scale-hub.ts");
const raw = join(root, "bench", "scale-raw.ts");
const app = "franca_bench_scale_app";

/** Runs the statements one after the other on a connection of their own. */
const sql = (statements: readonly string[]): Promise<void> =>
  withPg(scaleUrl, async (client) => {
    for (const statement of statements) await client.query(statement);
  });

function dropSchemas(schema: string): string[] {
  return [`DROP SCHEMA IF EXISTS ${schema} CASCADE`, `DROP SCHEMA IF EXISTS ${schema}_queue CASCADE`];
}

/** Starts `franca worker`; resolves once it says it is working jobs. */
async function startWorker(env: Record<string, string>): Promise<{ process: ChildProcess; exited: Promise<unknown> }> {
  const child = spawn(
    process.execPath,
    [
      ...cliNodeFlags,
      ...(process.env.FRANCA_SCALE_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
      bin,
      "worker",
      "-c",
      config,
      "--jobs",
      String(jobs),
      "--log-level",
      process.env.FRANCA_SCALE_LOG ?? "warn",
      "--log",
      "-",
    ],
    { env: { ...cliEnv, ...env }, stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = once(child, "exit");
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  await new Promise<void>((ready, fail) => {
    child.stderr?.on("data", (text: string) => {
      if (process.env.FRANCA_SCALE_LOG !== undefined) process.stdout.write(text);
      stderr += text;
      if (stderr.includes("working jobs")) ready();
    });
    void exited.then(() => fail(new Error(`worker exited before it was ready:\n${stderr}`)));
  });
  return { process: child, exited };
}

/** Busy and total CPU time of the whole machine so far, in clock ticks (Linux /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** CPU seconds a process has used (Linux /proc/<pid>/stat: utime + stime, in ticks of 10 ms). */
function cpuSeconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Measured {
  workers: number;
  wall_s: number;
  lost: number;
  duplicates: number;
  maxInFlight: number;
  /** Share of the machine's CPU busy while the run went on (all processes: workers, API, PostgreSQL). */
  machineBusy: number;
  /** CPU seconds per record of the workers together, and of this process (the simulated API). */
  workerCpuMs: number;
  apiCpuMs: number;
}

async function measure(workers: number): Promise<Measured> {
  const schema = `franca_bench_scale_w${workers}`;
  await sql(dropSchemas(schema));
  const api = await startSimApi({
    collections: { items: { key: "id" } },
    create: { latencyMs, concurrency: { max: 64 } },
  });
  const env = {
    FRANCA_SCALE_SCHEMA: schema,
    FRANCA_SCALE_SOURCE: `${app}.items`,
    FRANCA_SCALE_API: api.url,
    FRANCA_SCALE_CHUNK: values.chunk as string,
  };
  const dir = mkdtempSync(join(tmpdir(), "franca-scale-"));
  // this process queues the run and watches it; it works no job
  const engine = await Engine.open({ hub: scaleHub(env), baseDir: dir, executor: "distributed" });
  const started = await Promise.all(Array.from({ length: workers }, () => startWorker(env)));
  try {
    const cpu0 = started.map((worker) => cpuSeconds(worker.process.pid));
    const api0 = process.cpuUsage();
    const ticks0 = machineTicks();
    const t0 = Date.now();
    const queued = await engine.enqueue("scale");
    let run = queued;
    const trace: number[] = [];
    while (run.status === "running") {
      await sleep(process.env.FRANCA_SCALE_TRACE === undefined ? 100 : 20);
      if (process.env.FRANCA_SCALE_TRACE !== undefined) trace.push(api.stats.inFlight);
      run = (await engine.store.getRun(queued.id)) ?? run;
    }
    // the run's end as its finishing worker recorded it (same machine, same clock): no polling delay in the figure
    const wall = ((run.endedAt ?? Date.now()) - t0) / 1000;
    const ticks = machineTicks();
    if (trace.length > 0) console.log(`in flight every ~20 ms: ${trace.join(" ")}`);
    const apiCpu = process.cpuUsage(api0);
    const workerCpu = started.reduce((sum, worker, i) => sum + cpuSeconds(worker.process.pid) - (cpu0[i] ?? 0), 0);
    if (run.status !== "succeeded") throw new Error(`run ${run.id} ended ${run.status}: ${JSON.stringify(run.error)}`);
    const creates = api.creates("items");
    return {
      workers,
      wall_s: Number(wall.toFixed(2)),
      lost: n - creates.size,
      duplicates: api.duplicates("items"),
      maxInFlight: api.stats.maxInFlight,
      machineBusy: (ticks.busy - ticks0.busy) / (ticks.total - ticks0.total),
      workerCpuMs: (workerCpu * 1000) / n,
      apiCpuMs: (apiCpu.user + apiCpu.system) / 1000 / n,
    };
  } finally {
    for (const worker of started) worker.process.kill("SIGTERM");
    await Promise.all(started.map((worker) => worker.exited));
    await engine.close();
    await api.close();
    await sql(dropSchemas(schema));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The reference: `processes` plain processes making the same calls, n / processes each, 16 at once. */
async function measureRaw(processes: number): Promise<number> {
  const api = await startSimApi({ collections: { items: { key: "id" } }, create: { latencyMs } });
  try {
    const share = Math.ceil(n / processes);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: processes }, async (_, i) => {
        const child = spawn(
          process.execPath,
          [raw, "--url", api.url, "--from", String(1 + i * share), "--count", String(Math.min(share, n - i * share))],
          { stdio: ["ignore", "ignore", "inherit"] },
        );
        const [code] = await once(child, "exit");
        if (code !== 0) throw new Error(`bench/scale-raw.ts exited with ${code}`);
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    if (api.creates("items").size !== n) throw new Error("the reference lost records");
    return Number(wall.toFixed(2));
  } finally {
    await api.close();
  }
}

await sql([
  `DROP SCHEMA IF EXISTS ${app} CASCADE`,
  `CREATE SCHEMA ${app}`,
  `CREATE TABLE ${app}.items (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL,
     updated_at timestamptz NOT NULL)`,
  `CREATE INDEX ON ${app}.items (updated_at, id)`,
  `INSERT INTO ${app}.items SELECT i, 'item ' || i, round(i * 1.37, 2), '2026-01-01'::timestamptz + i * interval '1 second'
     FROM generate_series(1, ${n}) AS i`,
]);
console.log(
  `${n.toLocaleString("en-US")} records, one ${latencyMs} ms call each; API cap 64 in flight, 16 per worker process`,
);
const rawWalls: number[] = [];
for (const processes of workerCounts) {
  const wall = await measureRaw(processes);
  rawWalls.push(wall);
  console.log(
    `reference, ${processes} plain process(es), no engine: ${wall.toFixed(2)} s, ${Math.round(n / wall)} calls/s (process start included)`,
  );
}
const results: Measured[] = [];
for (const workers of workerCounts) {
  const result = await measure(workers);
  const ideal = (n * latencyMs) / 1000 / Math.min(64, 16 * workers);
  console.log(
    `${workers} worker(s): ${result.wall_s.toFixed(2)} s (ideal ${ideal.toFixed(2)} s, ${((ideal / result.wall_s) * 100).toFixed(0)} %), ` +
      `${Math.round(n / result.wall_s)} records/s, max in flight ${result.maxInFlight}, lost ${result.lost}, duplicates ${result.duplicates}; ` +
      `machine CPU ${(result.machineBusy * 100).toFixed(0)} % busy, CPU per record: workers ${result.workerCpuMs.toFixed(3)} ms, API ${result.apiCpuMs.toFixed(3)} ms`,
  );
  results.push(result);
}
await sql([`DROP SCHEMA IF EXISTS ${app} CASCADE`]);
const wallOf = (workers: number) => results.find((result) => result.workers === workers)?.wall_s;
const one = wallOf(1);
const four = wallOf(4);
const rawOf = (workers: number) => rawWalls[workerCounts.indexOf(workers)];
const rawOne = rawOf(1);
const rawFour = rawOf(4);
console.log(
  JSON.stringify({
    bench: "scale",
    n,
    workers: results.map((result) => result.workers),
    wall_s: results.map((result) => result.wall_s),
    speedup_4: one !== undefined && four !== undefined ? Number((one / four).toFixed(2)) : null,
    raw_wall_s: rawWalls,
    raw_speedup_4: rawOne !== undefined && rawFour !== undefined ? Number((rawOne / rawFour).toFixed(2)) : null,
    max_in_flight: Math.max(...results.map((result) => result.maxInFlight)),
    lost: results.reduce((sum, result) => sum + result.lost, 0),
    duplicates: results.reduce((sum, result) => sum + result.duplicates, 0),
  }),
);

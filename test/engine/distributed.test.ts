/**
 * The distributed executor with real worker processes (`franca worker`), a real PostgreSQL store and queue, and a
 * simulated API on 127.0.0.1 as the target: workers killed with SIGKILL at random points, a concurrency cap held
 * across processes, SIGTERM in the middle of a chunk, `franca run --wait` with no worker alive, a job delivered twice.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { PgBoss } from "pg-boss";
import { type RouteBehavior, type SimApi, startSimApi } from "../../sim/api.ts";
import { seededRandom } from "../../sim/random.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { queueOwner } from "../../src/engine/distributed/owner.ts";
import { type JobData, queues, startQueue } from "../../src/engine/distributed/queue.ts";
import { queuedChunksAhead } from "../../src/engine/distributed/worker.ts";
import { Engine } from "../../src/engine/engine.ts";
import type { RunRecord } from "../../src/store/types.ts";
import { distHub, distSetupSql, distUrl } from "../support/dist-hub.ts";
import { distSlowHub, slowPageSize } from "../support/dist-slow-hub.ts";
import { dropStoreSchemas, pgStatements } from "../support/pg-schema.ts";

const root = resolve(import.meta.dirname, "../..");
const bin = join(root, "bin", "franca.js");
const config = join(root, "test", "support", "dist-hub.ts");
const slowConfig = join(root, "test", "support", "dist-slow-hub.ts");

interface Setup {
  schema: string;
  env: Record<string, string>;
  /** The configuration file the workers load (the hub the test's engine was opened with). */
  config: string;
  api: SimApi;
  engine: Engine;
  dir: string;
  workers: Set<Worker>;
  dispose(): Promise<void>;
}

interface Worker {
  process: ChildProcess;
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * A fresh store schema, source tables of `rows` rows, the simulated API (batch latency `latencyMs`, and the rest of
 * `batch`); the hub of dist-hub.ts unless another is given (with the configuration file of it the workers load).
 */
async function createSetup(
  rows: number,
  cap: number,
  latencyMs: number,
  hub: { of: typeof distHub; config: string } = { of: distHub, config },
  batch: RouteBehavior = {},
): Promise<Setup> {
  const schema = `franca_d${Math.random().toString(36).slice(2, 10)}`;
  await pgStatements([`CREATE SCHEMA ${schema}_app`, ...distSetupSql(schema, rows)]);
  const api = await startSimApi({
    seed: 7,
    collections: { items: { key: "id", maxBatch: 50 }, others: { key: "id", maxBatch: 50 } },
    batch: { latencyMs, ...batch },
  });
  const env = { FRANCA_DIST_SCHEMA: schema, FRANCA_DIST_API: api.url, FRANCA_DIST_CAP: String(cap) };
  const dir = mkdtempSync(join(tmpdir(), "franca-dist-"));
  // the test process queues runs and watches them; it does not work jobs
  const engine = await Engine.open({ hub: hub.of(env), baseDir: dir, executor: "distributed" });
  const workers = new Set<Worker>();
  return {
    schema,
    env,
    config: hub.config,
    api,
    engine,
    dir,
    workers,
    async dispose() {
      for (const worker of workers) worker.process.kill("SIGKILL");
      await Promise.all([...workers].map((worker) => worker.exited));
      await engine.close();
      await api.close();
      await dropStoreSchemas(schema);
      await pgStatements([`DROP SCHEMA IF EXISTS ${schema}_app CASCADE`]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A setup of dist-slow-hub.ts: its source the simulated API's collection `source`, `rows` records read a page at a
 * time (the test holds or slows the pages), into the API's `items` (batch behaviour `batch`), `cap` calls at once.
 */
async function createSlowSetup(rows: number, cap: number, batch: RouteBehavior = {}): Promise<Setup> {
  const setup = await createSetup(0, cap, 0, { of: distSlowHub, config: slowConfig }, batch);
  setup.api.configureCollection("source", { key: "id", pagination: "page" });
  setup.api.upsert(
    "source",
    Array.from({ length: rows }, (_, i) => ({ id: String(i + 1), name: `source ${i + 1}`, amount: "1.00" })),
  );
  return setup;
}

/** Starts `franca worker` as its own process. */
function startWorker(setup: Setup, jobs: number): Worker {
  const child = spawn(
    process.execPath,
    [
      "--max-semi-space-size=4",
      bin,
      "worker",
      "-c",
      setup.config,
      "--jobs",
      String(jobs),
      "--log",
      "-",
      "--log-level",
      process.env.FRANCA_DIST_LOG ?? "warn",
    ],
    { env: { ...process.env, ...setup.env }, stdio: ["ignore", "ignore", "pipe"] },
  );
  const stderr: string[] = [];
  child.stderr?.setEncoding("utf8").on("data", (text: string) => stderr.push(text));
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const worker = { process: child, stderr, exited };
  setup.workers.add(worker);
  void exited.then(() => setup.workers.delete(worker));
  return worker;
}

/** Waits (polling every `everyMs`) until `done` says so; fails naming `what` after `limitMs` (60 s). */
async function waitUntil(what: string, done: () => Promise<boolean>, everyMs = 100, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await done())) {
    assert.ok(Date.now() < deadline, `not within ${limitMs / 1000} s: ${what}`);
    await sleep(everyMs);
  }
}

/** The setup's queue, as the test's own client of it (stopped when the test ends). */
async function queueOf(setup: Setup, t: TestContext): Promise<PgBoss> {
  const boss = await startQueue(distUrl, setup.schema);
  t.after(() => boss.stop({ graceful: false }));
  return boss;
}

/**
 * Sends a job to the queue once more, as pg-boss delivers a job again whose worker it took for lost, and waits until a
 * worker has completed it.
 */
async function deliverAgain(setup: Setup, boss: PgBoss, queue: string, data: JobData): Promise<void> {
  const again = await boss.send(queue, data);
  assert.ok(again !== null, "the second delivery was queued");
  await waitUntil(
    "the second delivery done",
    async () => {
      const [job] = await pgStatements([`SELECT state FROM ${setup.schema}_queue.job WHERE id = '${again}'`]);
      return job?.state === "completed";
    },
    20,
  );
}

/** Cancels a run as a cancelled `franca run --wait` does (Engine#execute): it ends `cancelled`, resumable. */
function cancelRun(setup: Setup, id: number): Promise<void> {
  return setup.engine.store.finishRun(
    id,
    queueOwner,
    { status: "cancelled", error: { code: ErrorCode.RunCancelled, message: "the run was cancelled" } },
    Date.now(),
  );
}

async function waitForEnd(setup: Setup, id: number, limitMs = 120_000): Promise<RunRecord> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const run = (await setup.engine.store.getRun(id)) as RunRecord;
    if (run.status !== "running") return run;
    if (Date.now() > deadline) {
      const logs = [...setup.workers].map((worker) => worker.stderr.join("").slice(-6000)).join("\n---\n");
      const jobs = await pgStatements([
        `SELECT name, state, retry_count, count(*)::int AS n, min(start_after - now())::text AS soonest, max(start_after - now())::text AS latest, min(created_on - now())::text AS created FROM ${setup.schema}_queue.job GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      ]);
      const counts = await setup.engine.store.counts(id);
      throw new Error(
        `run ${id} still running after ${limitMs} ms\njobs: ${JSON.stringify(jobs)}\ncounts: ${JSON.stringify(counts)}\nrun: ${JSON.stringify(run)}\nworker logs:\n${logs}`,
      );
    }
    await sleep(200);
  }
}

/** Every source row arrived exactly once, with its content; the ledger says so too. */
async function assertExactlyOnce(setup: Setup, run: RunRecord, collection: "items" | "others", rows: number) {
  assert.equal(run.status, "succeeded", JSON.stringify(run.error));
  const records = setup.api.records(collection);
  assert.equal(records.length, rows, "every source row is in the target");
  for (const record of records) {
    const id = Number(record.id);
    assert.equal(record.name, `${collection} ${id} ✓`);
    assert.equal(record.amount, (Math.round(id * 137) / 100).toFixed(2));
  }
  assert.equal(setup.api.duplicates(collection), 0, "no record created twice");
  const creates = setup.api.creates(collection);
  assert.equal(creates.size, rows);
  assert.ok(
    [...creates.values()].every((count) => count === 1),
    "each key applied once",
  );
  const counts = await setup.engine.store.counts(run.id);
  assert.equal(counts.extracted, rows, "extracted once each");
  assert.deepEqual(counts.targets[`api-${collection}`], { loaded: rows, unchanged: 0, quarantined: 0, failed: 0 });
  const ledger = await setup.engine.store.records(run.id, { limit: rows + 100 });
  assert.equal(ledger.length, rows, "one ledger entry per record");
  assert.equal(new Set(ledger.map((entry) => entry.key)).size, rows);
  assert.ok(ledger.every((entry) => entry.status === "loaded"));
}

describe("distributed executor with worker processes", { timeout: 300_000 }, () => {
  it("three workers, one killed with SIGKILL at random points ten times: the run completes, every record exactly once", async (t) => {
    const rows = 12_000;
    const setup = await createSetup(rows, 6, 250);
    t.after(() => setup.dispose());
    const random = seededRandom(42);
    for (let i = 0; i < 3; i++) startWorker(setup, 4);
    // The run needs at least 240 batch calls (12,000 rows, 50 a call): the API lets 200 through and holds the rest
    // until the kills are done, so that the run is still running at each kill, however fast it goes.
    const releaseLoads = setup.api.hold("batch", 200);
    const run = await setup.engine.enqueue("items");
    let kills = 0;
    while (kills < 10) {
      await sleep(200 + random() * 700);
      const current = await setup.engine.store.getRun(run.id);
      assert.equal(current?.status, "running", `the run ended before kill ${kills + 1}: make it longer`);
      const alive = [...setup.workers];
      const victim = alive[Math.floor(random() * alive.length)] as Worker;
      victim.process.kill("SIGKILL");
      const { signal } = await victim.exited;
      assert.equal(signal, "SIGKILL");
      kills++;
      startWorker(setup, 4);
    }
    releaseLoads();
    const ended = await waitForEnd(setup, run.id);
    await assertExactlyOnce(setup, ended, "items", rows);
    const queue = await pgStatements([
      `SELECT count(*)::int AS n FROM ${setup.schema}_queue.job WHERE state NOT IN ('completed')`,
    ]);
    assert.equal(queue[0]?.n, 0, "no job left behind: every chunk-stage completed");
  });

  it("a queued run continues the flow's cancelled run, as franca run does, unless fresh", async (t) => {
    const rows = 600;
    const setup = await createSetup(rows, 4, 0);
    t.after(() => setup.dispose());
    // no worker yet: the runs wait in the queue
    const first = await setup.engine.enqueue("items");
    await cancelRun(setup, first.id);
    const fresh = await setup.engine.enqueue("items", { fresh: true });
    assert.notEqual(fresh.id, first.id, "fresh: a new run");
    await cancelRun(setup, fresh.id);
    const continued = await setup.engine.enqueue("items");
    assert.equal(continued.id, fresh.id, "the flow's latest unfinished run is continued");
    assert.equal(continued.status, "running");
    // its extraction job, queued before the cancel and still waiting, is not queued a second time
    const extractions = await pgStatements([
      `SELECT count(*)::int AS n FROM ${setup.schema}_queue.job WHERE name = 'franca.extract' AND data->>'run' = '${continued.id}'`,
    ]);
    assert.equal(extractions[0]?.n, 1);
    startWorker(setup, 4);
    await assertExactlyOnce(setup, await waitForEnd(setup, continued.id), "items", rows);
    assert.equal((await setup.engine.store.getRun(first.id))?.status, "cancelled", "the older run stays as it was");
  });

  it("a cancel reaches the jobs in flight: the run's extraction stops within a heartbeat, not at the source's end", async (t) => {
    // loads slow (one call at a time, 200 ms each): the extraction runs only as far ahead of them as they take
    const rows = 200_000;
    const setup = await createSetup(rows, 1, 200);
    t.after(() => setup.dispose());
    startWorker(setup, 1);
    const run = await setup.engine.enqueue("items");
    await waitUntil(
      "a chunk loaded",
      async () => ((await setup.engine.store.counts(run.id)).targets["api-items"]?.loaded ?? 0) > 0,
    );
    await cancelRun(setup, run.id);
    // Once the run's jobs have ended: the cancelled run's other jobs skip at once, so without the stop its extraction
    // would read the whole source (2,000 chunks) at full speed.
    await waitUntil("the run's jobs ended", async () => {
      const [live] = await pgStatements([
        `SELECT count(*)::int AS n FROM ${setup.schema}_queue.job WHERE data->>'run' = '${run.id}' AND state = 'active'`,
      ]);
      return live?.n === 0;
    });
    const { extracted } = await setup.engine.store.counts(run.id);
    assert.ok(extracted < rows / 2, `the extraction went on to ${extracted} of ${rows} rows after the cancel`);
    assert.equal((await setup.engine.store.getRun(run.id))?.status, "cancelled");
  });

  it("a transform job delivered twice transforms its chunk once: the second finds the chunk transformed and leaves it", async (t) => {
    // The API holds every load until the test releases it: the first chunk stays transformed and not loaded, its
    // source rows still staged, while a second delivery of its transform job comes (as pg-boss delivers a job again
    // whose worker it took for lost). That delivery must not transform the chunk again (its outcomes rewritten, its
    // loads sent again).
    const rows = 50; // one chunk (a run's first chunk is of 50 rows), one call
    const setup = await createSetup(rows, 1, 0);
    t.after(() => setup.dispose());
    const releaseLoads = setup.api.hold("batch");
    const boss = await queueOf(setup, t);
    startWorker(setup, 4);
    const run = await setup.engine.enqueue("items");
    const first = async (): Promise<{ transformed: string | null; loads: number }> => {
      const [chunk] = await pgStatements([
        `SELECT c.transformed_at::text AS transformed,
                (SELECT count(*)::int FROM ${setup.schema}.chunk_loads l WHERE l.run_id = c.run_id AND l.seq = c.seq) AS loads
           FROM ${setup.schema}.chunks c WHERE c.run_id = ${run.id} AND c.seq = 0`,
      ]);
      return { transformed: chunk?.transformed ?? null, loads: chunk?.loads ?? 0 };
    };
    await waitUntil("the first chunk transformed", async () => (await first()).transformed !== null, 20);
    const before = await first();
    await deliverAgain(setup, boss, queues.transform, { run: run.id, seq: 0 });
    const after = await first();
    assert.equal(after.loads, 0, "the chunk was not loaded yet when the second delivery came: it could have redone it");
    assert.equal(after.transformed, before.transformed, "the chunk was not transformed again");
    releaseLoads();
    await assertExactlyOnce(setup, await waitForEnd(setup, run.id), "items", rows);
  });

  it("a load job delivered twice loads its chunk once: the second finds the chunk loaded and leaves it", async (t) => {
    // The source is the simulated API, 50 records a page, and one record of its first page is refused by the API
    // (quarantined): that chunk is not loaded clean, and its canonical records stay staged after its load, so a second
    // delivery of its load job could write it again. The API holds every page after the first until the test releases
    // them: the extraction waits mid-source, and the run is still running when that delivery comes.
    const rows = 100; // two pages, two chunks
    const setup = await createSlowSetup(rows, 1, {
      reject: { when: (record) => record.id === "1", error: "no ones" }, // on the first page in any order
    });
    t.after(() => setup.dispose());
    const { api } = setup;
    const releasePages = api.hold("list", 1);
    const boss = await queueOf(setup, t);
    startWorker(setup, 4);
    const run = await setup.engine.enqueue("slow");
    const firstLoad = async (): Promise<pg.QueryResultRow | undefined> =>
      (
        await pgStatements([
          `SELECT loaded, quarantined, attempts, loaded_at::text AS at FROM ${setup.schema}.chunk_loads
            WHERE run_id = ${run.id} AND seq = 0`,
        ])
      )[0];
    await waitUntil("the first chunk loaded", async () => (await firstLoad()) !== undefined, 20);
    const before = await firstLoad();
    assert.deepEqual(before && { loaded: before.loaded, quarantined: before.quarantined }, {
      loaded: slowPageSize - 1,
      quarantined: 1,
    });
    await deliverAgain(setup, boss, queues.load, { run: run.id, seq: 0, target: "api-items" });
    assert.equal((await setup.engine.store.getRun(run.id))?.status, "running", "the run was still running then");
    assert.deepEqual(await firstLoad(), before, "the chunk was not loaded again");
    releasePages();
    const ended = await waitForEnd(setup, run.id);
    assert.equal(ended.status, "partial", JSON.stringify(ended.error));
    const counts = await setup.engine.store.counts(run.id);
    assert.deepEqual(counts.targets["api-items"], { loaded: rows - 1, unchanged: 0, quarantined: 1, failed: 0 });
    assert.equal(api.records("items").length, rows - 1);
    assert.equal(api.duplicates("items"), 0);
  });

  it("a cancel reaches an extraction that is its run's only job through the worker's heartbeat: it stops mid-source, its page never answered", async (t) => {
    // The source is the simulated API, 50 records a page. Its first page comes; every page asked for after it is held
    // until the API closes: the extraction, its first chunk staged, then waits mid-source with no chunk to send. Once
    // that chunk is loaded the extraction is the run's only job, in flight, and nothing of the run is queued: no other
    // job of the run is taken after the cancel to find the run ended (#runState). The worker's heartbeat (every
    // second) alone can stop it; without it the extraction would wait on for the page.
    const rows = 100_000;
    const setup = await createSlowSetup(rows, 4);
    t.after(() => setup.dispose());
    const { api } = setup;
    api.hold("list", 1);
    const worker = startWorker(setup, 2);
    const run = await setup.engine.enqueue("slow");
    const jobsOfRun = () =>
      pgStatements([
        `SELECT name, state FROM ${setup.schema}_queue.job WHERE data->>'run' = '${run.id}' ORDER BY name, state`,
      ]);
    await waitUntil("the first chunk loaded, the extraction then the run's only job", async () => {
      const loaded = (await setup.engine.store.counts(run.id)).targets["api-items"]?.loaded ?? 0;
      const live = (await jobsOfRun()).filter((job) => job.state !== "completed");
      return loaded > 0 && live.length === 1 && live[0]?.name === "franca.extract" && live[0]?.state === "active";
    });
    const jobs = (await jobsOfRun()).length;
    const pages = api.stats.requests.list;
    const abandoned = api.stats.clientAborts;
    const cancelledAt = Date.now();
    await cancelRun(setup, run.id);
    await waitUntil(
      "the run's extraction stopped after the cancel (only the worker's heartbeat could stop it)",
      async () => (await jobsOfRun()).every((job) => job.state === "completed"),
      50,
      30_000,
    );
    const took = Date.now() - cancelledAt;
    // a heartbeat later: the source was asked for no page after the one the extraction was stopped waiting for
    await sleep(1_500);
    assert.equal(api.stats.requests.list, pages, "no page of the source was asked for after the cancel");
    assert.equal(
      api.stats.clientAborts,
      abandoned + 1,
      "the page the extraction waited for was abandoned, not awaited",
    );
    const { extracted } = await setup.engine.store.counts(run.id);
    assert.ok(extracted >= slowPageSize, `the extraction had staged its first chunk (${extracted} rows)`);
    assert.ok(extracted < rows / 100, `the extraction staged ${extracted} of the source's ${rows} rows`);
    assert.equal((await setup.engine.store.getRun(run.id))?.status, "cancelled");
    const after = await jobsOfRun();
    assert.equal(after.length, jobs, `no job of the run was sent after the cancel: ${JSON.stringify(after)}`);
    assert.ok(
      after.every((job) => job.state === "completed"),
      `no job of the run left: ${JSON.stringify(after)}`,
    );
    assert.equal(worker.process.exitCode, null, "the worker goes on");
    t.diagnostic(`the extraction stopped ${took} ms after the cancel, having staged ${extracted} of ${rows} rows`);
  });

  it("a run cancelled while its jobs run and continued at once ends with every record exactly once", async (t) => {
    const rows = 3_000;
    const setup = await createSetup(rows, 4, 20);
    t.after(() => setup.dispose());
    startWorker(setup, 4);
    // the API holds every load until the run is continued: the run cannot end before the cancel, however fast it goes
    const releaseLoads = setup.api.hold("batch");
    const run = await setup.engine.enqueue("items");
    await waitUntil("a chunk extracted", async () => (await setup.engine.store.counts(run.id)).extracted > 0, 20);
    await cancelRun(setup, run.id);
    // the worker stops the cancelled run's jobs in flight while the run is continued: none of them may be lost
    const continued = await setup.engine.enqueue("items");
    assert.equal(continued.id, run.id);
    releaseLoads();
    await assertExactlyOnce(setup, await waitForEnd(setup, run.id), "items", rows);
  });

  it("two flows contending for a system capped at 2 across 3 workers: never more than 2 calls in flight", async (t) => {
    const rows = 2_000;
    const setup = await createSetup(rows, 2, 40);
    t.after(() => setup.dispose());
    for (let i = 0; i < 3; i++) startWorker(setup, 4);
    const first = await setup.engine.enqueue("items");
    const second = await setup.engine.enqueue("others");
    const [a, b] = await Promise.all([waitForEnd(setup, first.id), waitForEnd(setup, second.id)]);
    await assertExactlyOnce(setup, a, "items", rows);
    await assertExactlyOnce(setup, b, "others", rows);
    assert.equal(setup.api.stats.maxInFlight, 2, "the cap of 2 was reached and never passed");
    assert.equal(setup.api.stats.requests.batch, (2 * rows) / 50);
  });

  it("the extraction runs only as far ahead of the loads as the workers take its chunks", async (t) => {
    const rows = 3_000;
    const setup = await createSetup(rows, 4, 40);
    t.after(() => setup.dispose());
    const jobs = 1;
    startWorker(setup, jobs);
    const run = await setup.engine.enqueue("items");
    // chunks staged and not yet loaded, and the staged outputs the store holds, sampled while the run goes on
    let most = 0;
    let mostStaged = 0;
    let samples = 0;
    const watching = (async () => {
      for (;;) {
        const [row] = await pgStatements([
          `SELECT (SELECT count(*) FROM ${setup.schema}.chunks WHERE run_id = ${run.id})::int
                - (SELECT count(*) FROM ${setup.schema}.chunk_loads WHERE run_id = ${run.id} AND failed = 0)::int AS ahead,
                  (SELECT count(*) FROM ${setup.schema}.staged WHERE run_id = ${run.id})::int AS staged,
                  (SELECT status FROM ${setup.schema}.runs WHERE id = ${run.id}) AS status`,
        ]);
        if (row?.status !== "running") return;
        most = Math.max(most, Number(row.ahead));
        mostStaged = Math.max(mostStaged, Number(row.staged));
        samples++;
        await sleep(20);
      }
    })();
    const ended = await waitForEnd(setup, run.id);
    await watching;
    await assertExactlyOnce(setup, ended, "items", rows);
    assert.ok(samples > 20, `the run was sampled ${samples} times`);
    // at most: the jobs queued when the extraction last looked, the chunk it then staged, one transform and one load
    // at work; without the hold the whole source (31 chunks) was staged within the first loads
    assert.ok(most >= 2, `the extraction ran ahead (${most} chunks)`);
    assert.ok(most <= queuedChunksAhead + 2 * jobs, `${most} chunks were staged and not loaded at once`);
    // a loaded chunk's staged outputs (extracted, canonical) are released as the run goes: without that, all 31
    // chunks' 62 were in the store at the end; one more chunk may be between its load's commit and its release
    assert.ok(mostStaged >= 2, `staged outputs were sampled (${mostStaged})`);
    assert.ok(
      mostStaged <= 2 * (queuedChunksAhead + 2 * jobs + 1),
      `${mostStaged} staged outputs were in the store at once`,
    );
  });

  it("SIGTERM in the middle of a chunk: the worker finishes it, exits 0, and a new worker completes the run", async (t) => {
    const rows = 3_000;
    const setup = await createSetup(rows, 4, 300);
    t.after(() => setup.dispose());
    const first = startWorker(setup, 2);
    const run = await setup.engine.enqueue("items");
    while (setup.api.stats.inFlight === 0) await sleep(10);
    const createdBefore = setup.api.creates("items").size;
    first.process.kill("SIGTERM");
    const exit = await first.exited;
    assert.equal(exit.code, 0, first.stderr.join(""));
    assert.ok(setup.api.creates("items").size > createdBefore, "the batches in flight were finished");
    const active = await pgStatements([
      `SELECT count(*)::int AS n FROM ${setup.schema}_queue.job WHERE state = 'active'`,
    ]);
    assert.equal(active[0]?.n, 0, "no job is left held by the stopped worker");
    assert.equal((await setup.engine.store.getRun(run.id))?.status, "running", "the run waits for a worker");
    startWorker(setup, 2);
    await assertExactlyOnce(setup, await waitForEnd(setup, run.id), "items", rows);
  });

  it("a second SIGTERM hands the chunks in flight back at once; another worker does them", async (t) => {
    const rows = 1_000;
    const setup = await createSetup(rows, 4, 2_000);
    t.after(() => setup.dispose());
    const first = startWorker(setup, 2);
    const run = await setup.engine.enqueue("items");
    while (setup.api.stats.inFlight === 0) await sleep(10);
    first.process.kill("SIGTERM");
    await sleep(100);
    first.process.kill("SIGTERM");
    const exit = await first.exited;
    assert.equal(exit.code, 1, "a worker that handed work back says so");
    const active = await pgStatements([
      `SELECT count(*)::int AS n FROM ${setup.schema}_queue.job WHERE state = 'active'`,
    ]);
    assert.equal(active[0]?.n, 0, "the jobs went back to the queue at once");
    setup.api.configure({ batch: { latencyMs: 20 } });
    startWorker(setup, 2);
    await assertExactlyOnce(setup, await waitForEnd(setup, run.id), "items", rows);
  });

  it("franca run --wait with no worker alive works the run in its own process", async (t) => {
    const rows = 500;
    const setup = await createSetup(rows, 4, 5);
    t.after(() => setup.dispose());
    const child = spawn(
      process.execPath,
      ["--max-semi-space-size=4", bin, "run", "items", "--wait", "--json", "-c", config],
      {
        env: { ...process.env, ...setup.env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (out += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (err += text));
    // "close", not "exit": the process may have exited before its last output was read from the pipe
    const [code] = await once(child, "close");
    assert.equal(code, 0, err);
    const summary = JSON.parse(out) as { run: { id: number; status: string } };
    assert.equal(summary.run.status, "succeeded");
    await assertExactlyOnce(setup, (await setup.engine.store.getRun(summary.run.id)) as RunRecord, "items", rows);

    // --resend, worked the same way: every record read and sent again, with idempotency keys of the resend's own, so
    // the API applies each write rather than answering it as a replay of the first run's
    // (not spawnSync: the simulated API answers from this process's event loop)
    const again = spawn(
      process.execPath,
      ["--max-semi-space-size=4", bin, "run", "items", "--resend", "--wait", "--json", "-c", config],
      { env: { ...process.env, ...setup.env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let againOut = "";
    let againErr = "";
    again.stdout.setEncoding("utf8").on("data", (text: string) => (againOut += text));
    again.stderr.setEncoding("utf8").on("data", (text: string) => (againErr += text));
    const [againCode] = await once(again, "close");
    assert.equal(againCode, 0, againErr);
    const resent = JSON.parse(againOut) as {
      run: { status: string; stats: { resend?: boolean } };
      counts: { extracted: number; targets: Record<string, unknown> };
    };
    assert.equal(resent.run.status, "succeeded");
    assert.equal(resent.run.stats.resend, true);
    assert.equal(resent.counts.extracted, rows);
    assert.deepEqual(resent.counts.targets["api-items"], { loaded: rows, unchanged: 0, quarantined: 0, failed: 0 });
    const creates = setup.api.creates("items");
    assert.equal(creates.size, rows);
    assert.ok(
      [...creates.values()].every((count) => count === 2),
      "each record applied again",
    );
  });
});

/**
 * Records that fail on the distributed executor: transiently, in a transform or in a load whose job then ends (the run
 * loads the others and ends failed, where it used to wait for them for ever, and continuing it retries them); refused
 * by the target, then replayed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import { type SimApi, startSimApi } from "../../sim/api.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { jobKey, queueSchemaOf, queues, startQueue } from "../../src/engine/distributed/queue.ts";
import { Engine } from "../../src/engine/engine.ts";
import type { RunSummary } from "../../src/engine/run.ts";
import { finishLockClass, type PostgresStore } from "../../src/store/postgres/store.ts";
import { entriesHub, entriesTablesSql, withEntrySchemas } from "../support/dist-entries.ts";
import { distHub, distSetupSql } from "../support/dist-hub.ts";
import { diedBeforeFinish, ended, sendJob, withWorker } from "../support/dist-jobs.ts";
import { tempDir } from "../support/fixtures.ts";
import { captureLogs } from "../support/logs.ts";
import { pgStatements, pgUrl } from "../support/pg-schema.ts";
import { until } from "../support/poll.ts";

/** How many jobs of the queue `name` the engine logged as done (its `job done` lines), or as started. */
function jobsDone(logs: string, name: string, msg = "job done"): number {
  return logs.split("\n").filter((line) => line.includes(`"msg":"${msg}"`) && line.includes(`"job":"${name}"`)).length;
}

/** How many finish jobs the run has had sent. */
async function finishJobs(schema: string, runId: number): Promise<number> {
  const [row] = await pgStatements([
    `SELECT count(*)::int AS n FROM ${queueSchemaOf(schema)}.job WHERE name = 'franca.finish' AND data->>'run' = '${runId}'`,
  ]);
  return Number(row?.n);
}

/**
 * Continues run `runId` of `flow` while a part of it is held (until `release`): once the continued run's first load
 * is done (its `job done` line in `logs`), the run must not have been finished yet, on what its first execution
 * recorded for the part held. Then releases it, and returns the run's end.
 */
async function continueHeld(
  engine: Engine,
  flow: string,
  schema: string,
  runId: number,
  logs: () => string,
  release: () => void,
): Promise<RunSummary> {
  const loadsBefore = jobsDone(logs(), "franca.load");
  const finishesBefore = await finishJobs(schema, runId);
  const continued = engine.run(flow);
  try {
    await until(() => jobsDone(logs(), "franca.load") > loadsBefore, "the continued run's first load");
    assert.equal(await finishJobs(schema, runId), finishesBefore, "the run was finished early");
  } finally {
    release();
  }
  const summary = await continued;
  assert.equal(summary.run.id, runId, "the failed run is continued");
  return summary;
}

/**
 * The entries flow whose mapping of the records `failing` fails in its first run (a lookup's system timing out, say);
 * in the runs after `again()`, the last of them waits until `release()`.
 */
function failingOnce(schema: string, app: string, failing: readonly number[], heartbeatMs?: number) {
  let first = true;
  const held = Promise.withResolvers<void>();
  const hub = entriesHub({
    schema,
    app,
    ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
    toCanonical: (row) => {
      const entry = { id: row.id as number, name: row.name as string };
      if (first && failing.includes(row.id as number))
        throw new FrancaError(ErrorCode.SystemUnavailable, "timed out", { errorClass: "transient" });
      return !first && row.id === failing.at(-1) ? held.promise.then(() => entry) : entry;
    },
  });
  return { hub, again: () => (first = false), release: () => held.resolve() };
}

/**
 * dist-hub.ts's flows on a test's schemas (250 records each), into a simulated API that refuses items 15 and 115
 * (chunks 0 and 1) of its batches, answering `status` (422 when undefined), until the test configures it otherwise;
 * the engine works the run's jobs in this process.
 */
async function withRefusingApi(
  schema: string,
  status: number | undefined,
  work: (api: SimApi, engine: Engine, logs: () => string) => Promise<void>,
): Promise<void> {
  await pgStatements(distSetupSql(schema, 250));
  const api = await startSimApi({
    seed: 7,
    collections: { items: { key: "id", maxBatch: 50 }, others: { key: "id", maxBatch: 50 } },
    batch: {
      reject: {
        when: (record) => record.id === "15" || record.id === "115",
        ...(status === undefined ? {} : { status }),
      },
    },
  });
  try {
    using tmp = tempDir();
    const hub = distHub({ FRANCA_DIST_SCHEMA: schema, FRANCA_DIST_API: api.url });
    const { logger, text } = captureLogs();
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
    await work(api, engine, text);
  } finally {
    await api.close();
  }
}

describe("the distributed executor with records that fail", { timeout: 120_000 }, () => {
  it("in a transform: the run loads the others and ends failed; continued, it transforms those chunks again", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      await pgStatements(entriesTablesSql(app, 30));
      // records 5 and 25 (chunks 0 and 2) fail the first time; in the continued run, record 25 waits for the test
      const { hub, again, release } = failingOnce(schema, app, [5, 25]);
      using tmp = tempDir();
      const { logger, text } = captureLogs();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
      const first = await engine.run("entries");
      assert.equal(first.run.status, "failed");
      assert.equal(first.counts.failed, 2);
      assert.equal(first.counts.targets.dst?.loaded, 28);
      const count = async () => Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n);
      assert.equal(await count(), 28);
      const failed = await engine.store.records(first.run.id, { status: "failed" });
      assert.deepEqual(failed.map((record) => record.key).sort(), ["25", "5"]);
      // Continued: chunks 0 and 2 transformed again; chunk 0's load ends while chunk 2's transform waits, and must
      // not read the run as complete (its finish job sent) on chunk 2's transform and load of the first run.
      again();
      const second = await continueHeld(engine, "entries", schema, first.run.id, text, release);
      assert.equal(second.run.status, "succeeded");
      assert.equal(second.counts.failed, 0);
      assert.equal(second.counts.targets.dst?.loaded, 30);
      assert.equal(await count(), 30);
    });
  });

  it("in a transform, with a load job of that transform still queued when the run is continued: it loads nothing", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      await pgStatements(entriesTablesSql(app, 30));
      // record 5 fails the first time; in the continued run it waits for the test
      const { hub, again, release } = failingOnce(schema, app, [5]);
      using tmp = tempDir();
      let first: RunSummary;
      let transformedAt: number | undefined;
      {
        // this engine works the run's jobs while no worker is alive, and stops at its close
        await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
        first = await engine.run("entries");
        transformedAt = (await (engine.store as PostgresStore).chunkState(first.run.id, 0))?.transformedAt;
      }
      assert.equal(first.run.status, "failed");
      assert.notEqual(transformedAt, undefined);
      // chunk 0's load job of its first transform, queued as a run stopped before the job ran leaves it
      await sendJob(schema, queues.load, {
        run: first.run.id,
        seq: 0,
        target: "dst",
        ...(transformedAt === undefined ? {} : { transformedAt }),
      });
      // Continued: chunk 0 transformed again, record 5 with it. The stale job runs while that transform waits, and
      // must not load the chunk of then, whose load the new transform's would then take for done.
      again();
      const { logger, text } = captureLogs();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
      const continued = engine.run("entries");
      try {
        await until(() => jobsDone(text(), "franca.load") > 0, "the stale load job done");
      } finally {
        release();
      }
      const second = await continued;
      assert.equal(second.run.id, first.run.id);
      assert.equal(second.run.status, "succeeded");
      assert.equal(second.counts.targets.dst?.loaded, 30);
      assert.equal(Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n), 30);
    });
  });

  it("in a transform, with a load of that transform writing when the run is continued: it records nothing", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      const lock = 4_242_018;
      await pgStatements([
        ...entriesTablesSql(app, 30),
        // a write of record 7 (chunk 0) waits while the test holds the lock
        `CREATE FUNCTION ${app}.hold_7() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.id = 7 THEN PERFORM pg_advisory_xact_lock_shared(${lock}); END IF;
           RETURN NEW;
         END $$`,
        `CREATE TRIGGER hold_7 BEFORE INSERT OR UPDATE ON ${app}.dst FOR EACH ROW EXECUTE FUNCTION ${app}.hold_7()`,
      ]);
      // record 5 fails the first time, and waits for the test in the continued run; the worker's heartbeat is slow,
      // so that it does not see the cancel below and stop the load it is running
      const { hub, again, release } = failingOnce(schema, app, [5], 60_000);
      const holder = new pg.Client({ connectionString: pgUrl });
      await holder.connect();
      try {
        await holder.query("SELECT pg_advisory_lock($1)", [lock]);
        using tmp = tempDir();
        const { logger, text } = captureLogs();
        await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
        // the first execution is cancelled while chunk 0's load (its transform of then, record 5 failed) writes
        const cancel = new AbortController();
        const first = engine.run("entries", { signal: cancel.signal });
        await until(
          async () =>
            // this test's lock (a one-key advisory lock: objid its low 32 bits, objsubid 1), not another test file's
            (
              await holder.query(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND objsubid = 1 AND NOT granted",
                [lock],
              )
            ).rows.length > 0,
          "chunk 0's load waiting in its write",
        );
        cancel.abort();
        const cancelled = await first;
        assert.equal(cancelled.run.status, "cancelled");
        const then = (await (engine.store as PostgresStore).chunkState(cancelled.run.id, 0))?.transformedAt;
        // continued: chunk 0 reopened and transformed again (its mapping held); then the old load's write ends, and
        // its commit must record nothing, or the new transform's load would take the chunk for loaded
        again();
        const transformsBefore = jobsDone(text(), "franca.transform", "job started");
        const continued = engine.run("entries");
        try {
          await until(
            () => jobsDone(text(), "franca.transform", "job started") > transformsBefore,
            "chunk 0's transform again",
          );
          await holder.query("SELECT pg_advisory_unlock($1)", [lock]);
          // that load job's own end (its data carry the transform of then)
          const old = `"job":"franca.load","data":{"run":${cancelled.run.id},"seq":0,"target":"dst","transformedAt":${then}}`;
          await until(
            () =>
              text()
                .split("\n")
                .some((line) => line.includes(old) && line.includes('"msg":"job done"')),
            "the old load's end",
          );
        } finally {
          release();
        }
        const second = await continued;
        assert.equal(second.run.status, "succeeded");
        assert.equal(second.counts.targets.dst?.loaded, 30);
        assert.equal(Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n), 30);
      } finally {
        await holder.end();
      }
    });
  });

  it("in a transform, with a finish job of the first execution arriving while the run is continued: it waits for the plan", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      await pgStatements(entriesTablesSql(app, 30));
      // record 5 (chunk 0) fails the first time only
      const { hub, again, release } = failingOnce(schema, app, [5]);
      release();
      using tmp = tempDir();
      const { logger, text } = captureLogs();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
      const first = await engine.run("entries");
      assert.equal(first.run.status, "failed");
      const holder = new pg.Client({ connectionString: pgUrl });
      const watcher = new pg.Client({ connectionString: pgUrl });
      await Promise.all([holder.connect(), watcher.connect()]);
      const boss = await startQueue(pgUrl, schema);
      try {
        // the test holds chunk 0's row, so that the continued run's plan waits in its transaction, where it reopens
        // the chunk (the chunk's transform and loads of the first execution still read as done outside it)
        await holder.query("BEGIN");
        await holder.query(`SELECT 1 FROM ${schema}.chunks WHERE run_id = $1 AND seq = 0 FOR UPDATE`, [first.run.id]);
        again();
        const continued = engine.run("entries");
        // asked on a connection of its own: pg_stat_activity stays as it was first read in a transaction
        const waiting = async (sql: string, params: unknown[]) => (await watcher.query(sql, params)).rows.length > 0;
        await until(
          () =>
            waiting(
              "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND query LIKE '%FOR UPDATE%'",
              [`%"${schema}".chunks%`],
            ),
          "the plan waiting for chunk 0's row",
        );
        // a finish job of the first execution (two loads that ended together each sent one), late
        const finishesBefore = jobsDone(text(), "franca.finish");
        await boss.send(queues.finish, { run: first.run.id }, { singletonKey: jobKey({ run: first.run.id }) });
        // the finish job waits for the run's finish lock, which the plan holds (or, were it free, has ended the run)
        await until(
          async () =>
            jobsDone(text(), "franca.finish") > finishesBefore ||
            (await waiting(
              `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2
                AND classid = $1 AND objid::bigint = (hashtext($2)::bigint & 4294967295)`,
              [finishLockClass, `${schema}/${first.run.id}`],
            )),
          "the late finish job at the run's finish lock",
        );
        await holder.query("COMMIT");
        const second = await continued;
        assert.equal(second.run.id, first.run.id);
        assert.equal(second.run.status, "succeeded", "the late finish job ended the run on its first execution");
        assert.equal(second.counts.targets.dst?.loaded, 30);
        assert.equal(Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n), 30);
      } finally {
        await boss.stop({ graceful: false });
        await Promise.all([holder.end(), watcher.end()]);
      }
    });
  });

  it("in a load whose job ends: the run loads the others and ends failed; continued, it loads them", async () => {
    await withEntrySchemas("franca_failed", async (schema) => {
      // the API answers items 15 and 115 (chunks 0 and 1) 503 until told otherwise: the connector's retries run out
      await withRefusingApi(schema, 503, async (api, engine, text) => {
        const first = await engine.run("items");
        assert.equal(first.run.status, "failed");
        assert.deepEqual(first.counts.targets["api-items"], { loaded: 248, unchanged: 0, quarantined: 0, failed: 2 });
        assert.equal(api.records("items").length, 248);
        api.configure({ batch: { reject: undefined } });
        // Continued: the two loads again. The first one's write passes, the second's is held: the first's end must not
        // read the run as complete (its finish job sent) while the second is still to do.
        const release = api.hold("batch", 1);
        const second = await continueHeld(engine, "items", schema, first.run.id, text, release);
        assert.equal(second.run.status, "succeeded");
        assert.deepEqual(second.counts.targets["api-items"], { loaded: 250, unchanged: 0, quarantined: 0, failed: 0 });
        assert.equal(api.records("items").length, 250);
        assert.equal(api.duplicates("items"), 0);
      });
    });
  });

  it("in a load whose job ends, retried after its commit: the chunk is not written again, and the run ends", async () => {
    await withEntrySchemas("franca_failed", async (schema) => {
      await withRefusingApi(schema, 503, async (api, engine) => {
        const first = await engine.run("items");
        assert.equal(first.run.status, "failed");
        const batches = api.stats.requests.batch;
        // The state a worker leaves when it dies after chunk 0's load committed (item 15 failed) and before it sent
        // the finish job: the run running, no finish job. pg-boss gives the load job to another worker, as it came.
        await diedBeforeFinish(schema, first.run.id);
        await sendJob(schema, queues.load, { run: first.run.id, seq: 0, target: "api-items" });
        assert.equal((await ended(engine, first.run.id)).status, "failed");
        // written again, its items would have gone to the API again, and a later chunk's newer version of a key
        // could have been overwritten by this chunk's
        assert.equal(api.stats.requests.batch, batches, "the retried load wrote its chunk again");
        assert.deepEqual((await engine.store.counts(first.run.id)).targets["api-items"], {
          loaded: 248,
          unchanged: 0,
          quarantined: 0,
          failed: 2,
        });
      });
    });
  });

  it("in a load whose job ends, given up on after its commit: the run is finished, not failed for it", async () => {
    await withEntrySchemas("franca_failed", async (schema) => {
      await withRefusingApi(schema, 503, async (_api, engine) => {
        const first = await engine.run("items");
        assert.equal(first.run.status, "failed");
        // chunk 0's load committed (item 15 failed), its last attempt lost before the finish job: moved to the
        // dead-letter queue. Its work is done (its chunk does not read as loaded, its load is recorded).
        await diedBeforeFinish(schema, first.run.id);
        await sendJob(schema, queues.dead, { run: first.run.id, seq: 0, target: "api-items" });
        const run = await ended(engine, first.run.id);
        assert.equal(run.status, "failed");
        assert.notEqual(run.error?.code, ErrorCode.JobGivenUp, "the load whose work was done failed the run");
        assert.equal((await engine.store.counts(first.run.id)).targets["api-items"]?.failed, 2);
      });
    });
  });

  it("in a transform, its system down while its worker stops gracefully: the job goes back to the queue, the run does not fail", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      await pgStatements(entriesTablesSql(app, 30));
      // record 5's mapping finds its lookup's system down (the chunk's transform job fails transiently), once the test
      // lets it go on
      let down = true;
      const reached = Promise.withResolvers<void>();
      const gate = Promise.withResolvers<void>();
      const hub = entriesHub({
        schema,
        app,
        toCanonical: async (row) => {
          if (down && row.id === 5) {
            reached.resolve();
            await gate.promise;
            throw new FrancaError(ErrorCode.SystemDown, "the lookup's system is down", { errorClass: "transient" });
          }
          return { id: row.id as number, name: row.name as string };
        },
      });
      using tmp = tempDir();
      const { logger, text } = captureLogs();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
      const stop = new AbortController();
      const working = engine.work({ signal: stop.signal });
      const queued = await engine.enqueue("entries");
      await reached.promise;
      // the worker stops (SIGTERM) while the transform runs: it lets the job end, and the job, failing transiently,
      // goes back to the queue for another worker rather than failing the run
      stop.abort();
      await until(() => text().includes('"msg":"worker stopping"'), "the worker stopping");
      gate.resolve();
      await working;
      assert.equal((await engine.store.getRun(queued.id))?.status, "running");
      down = false;
      // the next worker
      assert.equal((await withWorker(engine, () => ended(engine, queued.id))).status, "succeeded");
      assert.equal(Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n), 30);
    });
  });

  it("in a transform, its system down longer than a run may pause: the run stops, resumable, not retried by the queue", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      await pgStatements(entriesTablesSql(app, 30));
      let down = true;
      let attempts = 0;
      const hub = entriesHub({
        schema,
        app,
        toCanonical: async (row) => {
          if (down && row.id === 5) {
            attempts++;
            throw new FrancaError(ErrorCode.SystemDown, "the lookup's system is down", { errorClass: "transient" });
          }
          return { id: row.id as number, name: row.name as string };
        },
      });
      using tmp = tempDir();
      const { logger, text } = captureLogs();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
      const queued = await engine.enqueue("entries");
      const stopped = await withWorker(engine, () => ended(engine, queued.id));
      assert.equal(stopped.status, "failed");
      assert.equal(stopped.error?.code, ErrorCode.SystemDown);
      assert.equal(attempts, 1, "the job was not retried");
      // the worker says so, as itself (not the queue its runs are recorded under), with the run's flow
      const failed = text()
        .split("\n")
        .filter((line) => line.includes("run failed (resumable)"))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.equal(failed.length, 1);
      assert.equal(failed[0]?.flow, "entries");
      assert.equal(failed[0]?.code, ErrorCode.SystemDown);
      assert.equal(failed[0]?.worker, engine.owner);
      down = false;
      assert.equal((await withWorker(engine, () => engine.resume(queued.id))).run.status, "succeeded");
      assert.equal(Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n), 30);
    });
  });

  it("a worker stopping while it extracts stops taking jobs, hands the extraction back at its next chunk and ends", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      // 600 rows in chunks of 10: the extraction runs ahead of the transforms, which take a while, by 4 jobs at most
      await pgStatements(entriesTablesSql(app, 600));
      const hub = entriesHub({
        schema,
        app,
        toCanonical: async (row) => {
          await new Promise((resolve) => setTimeout(resolve, 2));
          return { id: row.id as number, name: row.name as string };
        },
      });
      using tmp = tempDir();
      const { logger, text } = captureLogs("debug");
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
      const stop = new AbortController();
      // 2 transform and 2 load jobs at once: 4 pollers, each of which may have a fetch under way when the stop comes
      const working = engine.work({ signal: stop.signal, jobs: 2 });
      const queued = await engine.enqueue("entries");
      await until(async () => (await engine.store.counts(queued.id)).chunks >= 5, "the extraction under way");
      stop.abort();
      // the worker ends although the extraction had most of the source to read, and no other worker takes its chunks
      await working;
      const lines = text().split("\n");
      const stopping = lines.findIndex((line) => line.includes('"msg":"worker stopping"'));
      assert.ok(stopping >= 0);
      // at most what the pollers' fetches under way at the stop brought (taken, those jobs are done); the worker took
      // jobs on for as long as its extraction read, before
      const startedAfter = lines.slice(stopping).filter((line) => line.includes('"msg":"job started"'));
      assert.ok(startedAfter.length <= 4, `jobs started after the stop began: ${startedAfter.length}`);
      assert.equal((await engine.store.getRun(queued.id))?.status, "running", "handed back, not failed");
      assert.ok((await engine.store.counts(queued.id)).chunks < 60, "the extraction stopped before the source's end");
      // the next worker takes the extraction up where it stopped: every row once
      assert.equal((await withWorker(engine, () => ended(engine, queued.id))).status, "succeeded");
      const [row] = await pgStatements([`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM ${app}.dst`]);
      assert.deepEqual({ ...row }, { n: 600, d: 600 });
    });
  });

  it("refused by the target, then replayed: the replay's chunks are loaded in order and none stays pending", async () => {
    await withEntrySchemas("franca_failed", async (schema) => {
      // items 15 and 115 (chunks 0 and 1) refused (422) until the API is fixed
      await withRefusingApi(schema, undefined, async (api, engine) => {
        const first = await engine.run("items");
        assert.equal(first.run.status, "partial");
        assert.equal(api.records("items").length, 248);
        api.configure({ batch: { reject: undefined } });
        const replay = await engine.replay(first.run.id);
        assert.equal(replay.run.status, "succeeded");
        assert.deepEqual(replay.plan, { retransform: 0, reload: { "api-items": 2 } });
        assert.equal(api.records("items").length, 250);
        const [pending] = await pgStatements([`SELECT count(*)::int AS n FROM ${schema}.pending_loads`]);
        assert.equal(pending?.n, 0);
      });
    });
  });
});

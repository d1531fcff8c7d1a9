/**
 * Jobs of the distributed executor that the queue gave up on (their dead letters, in `franca.dead`) whose work is no
 * longer to do: those of a run continued since (its plan deletes them), a transform whose chunk was transformed, a load
 * of an earlier transform of its chunk; none of them may end the run failed. And a run marked abandoned (no worker
 * alive) taken up again by its next job, only while it still is.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { queueOwner } from "../../src/engine/distributed/owner.ts";
import { type JobData, jobKey, queueSchemaOf, queues, startQueue } from "../../src/engine/distributed/queue.ts";
import { Engine } from "../../src/engine/engine.ts";
import { finishLockClass, type PostgresStore } from "../../src/store/postgres/store.ts";
import type { RunRecord } from "../../src/store/types.ts";
import { entriesHub, entriesTablesSql, withEntrySchemas } from "../support/dist-entries.ts";
import { diedBeforeFinish, ended, markAbandoned, withWorker } from "../support/dist-jobs.ts";
import { tempDir } from "../support/fixtures.ts";
import { captureLogs } from "../support/logs.ts";
import { pgStatements, pgUrl } from "../support/pg-schema.ts";
import { until } from "../support/poll.ts";

/**
 * `entries` (30 records) on a distributed engine of the test's own schemas, whose mapping fails the records in
 * `failing` (transiently: a lookup's system timing out) and holds the record `hold` sets until `release()`. Nothing
 * works the run's jobs but the test's `withWorker`.
 */
async function withEntries(
  work: (
    engine: Engine,
    schema: string,
    app: string,
    mapping: { failing: Set<number>; hold: (id: number) => void; release: () => void },
    logs: () => string,
  ) => Promise<void>,
): Promise<void> {
  await withEntrySchemas("franca_dead", async (schema, app) => {
    await pgStatements(entriesTablesSql(app, 30));
    const failing = new Set<number>();
    let held: number | undefined;
    const gate = Promise.withResolvers<void>();
    const hub = entriesHub({
      schema,
      app,
      toCanonical: (row) => {
        const entry = { id: row.id as number, name: row.name as string };
        if (failing.has(entry.id))
          throw new FrancaError(ErrorCode.SystemUnavailable, "timed out", { errorClass: "transient" });
        return entry.id === held ? gate.promise.then(() => entry) : entry;
      },
    });
    using tmp = tempDir();
    const { logger, text } = captureLogs("info");
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed", logger });
    await work(
      engine,
      schema,
      app,
      {
        failing,
        hold: (id) => {
          held = id;
        },
        release: () => gate.resolve(),
      },
      text,
    );
  });
}

/**
 * A job of queue `name` given up on, as pg-boss gives up a job whose every attempt's worker died: sent (not to be taken
 * before an hour, so that no worker takes it; with a priority of its own, by which the test finds it), taken by the test
 * on its last attempt and failed as a lapsed heartbeat fails it, and so moved to the dead-letter queue, where a worker
 * takes it at once.
 */
async function giveUp(schema: string, name: string, data: JobData & Record<string, unknown>): Promise<void> {
  const boss = await startQueue(pgUrl, schema);
  try {
    const id = await boss.send(name, data, {
      singletonKey: jobKey(data),
      retryLimit: 0,
      priority: 1,
      startAfter: 3600,
    });
    const [job] = await boss.fetch(name, { minPriority: 1, ignoreStartAfter: true });
    assert.equal(job?.id, id, "the test took the job it sent");
    await boss.fail(name, id as string, { message: "job heartbeat timeout" });
  } finally {
    await boss.stop({ graceful: false });
  }
}

/** How many dead letters of run `runId` the queue holds: all, those not worked yet (`live`), or those worked. */
async function deadLetters(schema: string, runId: number, which?: "live" | "worked"): Promise<number> {
  const state = which === undefined ? "" : which === "live" ? " AND state < 'completed'" : " AND state = 'completed'";
  const [row] = await pgStatements([
    `SELECT count(*)::int AS n FROM ${queueSchemaOf(schema)}.job
      WHERE name = '${queues.dead}' AND data->>'run' = '${runId}'${state}`,
  ]);
  return Number(row?.n);
}

async function loadedRows(app: string): Promise<number> {
  return Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n);
}

/** Run `runId` worked in the test's process while `work` runs, the held record released after it; the run at its end. */
function workWhileHeld(
  engine: Engine,
  runId: number,
  release: () => void,
  work: () => Promise<void>,
): Promise<RunRecord> {
  return withWorker(engine, async () => {
    try {
      await work();
    } finally {
      release();
    }
    return ended(engine, runId);
  });
}

/** The run succeeded, with every record of `entries` loaded. */
async function assertAllLoaded(engine: Engine, app: string, run: RunRecord): Promise<void> {
  assert.equal(run.status, "succeeded", `the continued run ended ${run.status} (${run.error?.code ?? "no error"})`);
  assert.equal((await engine.store.counts(run.id)).targets.dst?.loaded, 30);
  assert.equal(await loadedRows(app), 30);
}

describe("the distributed executor's jobs given up on whose work is no longer to do", { timeout: 120_000 }, () => {
  it("a run a job given up on ended failed, continued with a dead letter of it not worked yet: the plan deletes it, and the run succeeds", async () => {
    await withEntries(async (engine, schema, app, mapping) => {
      // the first execution: record 5 (chunk 0) fails, the run ends failed
      mapping.failing.add(5);
      const queued = await engine.enqueue("entries");
      assert.equal((await withWorker(engine, () => ended(engine, queued.id))).status, "failed");
      // Its finish job was given up on (every worker that took it died) before it ended the run: the state a run is in
      // then (running, no finish job), and the job's dead letter, whose worker ends the run failed.
      await diedBeforeFinish(schema, queued.id);
      await giveUp(schema, queues.finish, { run: queued.id });
      const givenUp = await withWorker(engine, () => ended(engine, queued.id));
      assert.equal(givenUp.status, "failed");
      assert.equal(givenUp.error?.code, ErrorCode.JobGivenUp);
      // The run's other finish job (two loads that ended together each sent one), given up on too: its dead letter is
      // still to be worked when the run is continued (no worker alive since). Left queued, it would end the continued
      // run failed as the first one did: no finish job of the continued run is live while chunk 0 is transformed again.
      await giveUp(schema, queues.finish, { run: queued.id });
      assert.equal(await deadLetters(schema, queued.id, "live"), 1);
      // continued: chunk 0 transformed again, its record 5 held until the dead letter is gone or worked
      mapping.failing.clear();
      mapping.hold(5);
      const continued = await engine.enqueue("entries");
      assert.equal(continued.id, queued.id, "the failed run is continued");
      const run = await workWhileHeld(engine, queued.id, mapping.release, () =>
        until(async () => (await deadLetters(schema, queued.id, "live")) === 0, "the dead letter deleted (or worked)"),
      );
      await assertAllLoaded(engine, app, run);
      assert.equal(await deadLetters(schema, queued.id), 0, "the plan left the run's dead letters in the queue");
    });
  });

  it("a dead letter a worker took before a plan of the run continued deleted it does not end the continued run", async () => {
    await withEntries(async (engine, schema, app, mapping, logs) => {
      mapping.failing.add(5);
      const queued = await engine.enqueue("entries");
      assert.equal((await withWorker(engine, () => ended(engine, queued.id))).status, "failed");
      mapping.failing.clear();
      mapping.hold(5);
      // the run's finish lock held by the test (as by a finish job ending the run), so that the worker that takes the
      // dead letter below and the plan of the run continued both wait for it, the plan first to have it
      const holder = new pg.Client({ connectionString: pgUrl });
      await holder.connect();
      try {
        await holder.query("BEGIN");
        await holder.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [
          finishLockClass,
          `${schema}/${queued.id}`,
        ]);
        // a finish job of the run given up on (the run failed meanwhile, no other finish job queued)
        await diedBeforeFinish(schema, queued.id);
        await pgStatements([`UPDATE ${schema}.runs SET status = 'failed' WHERE id = ${queued.id}`]);
        await giveUp(schema, queues.finish, { run: queued.id });
        const run = await workWhileHeld(engine, queued.id, mapping.release, async () => {
          await until(
            async () => logs().includes('"msg":"job given up by the queue"'),
            "the dead letter taken by the worker",
          );
          const continued = engine.enqueue("entries");
          await until(
            async () =>
              (
                await pgStatements([
                  `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = ${finishLockClass}`,
                ])
              ).length > 0,
            "the plan waiting for the finish lock",
          );
          await holder.query("COMMIT");
          assert.equal((await continued).id, queued.id, "the run is continued");
          // the worker, given the lock after the plan, finds its dead letter deleted (or, were it not, ends the run)
          await until(
            async () =>
              logs().includes('"msg":"job given up on not needed') ||
              (await engine.store.getRun(queued.id))?.status !== "running",
            "the dead letter's worker done",
          );
        });
        await assertAllLoaded(engine, app, run);
      } finally {
        await holder.end();
      }
    });
  });

  for (const failed of [false, true]) {
    const how = failed ? " with a record that failed" : "";
    it(`a transform job given up on once its chunk was transformed${how}: the run is not failed for it`, async () => {
      await withEntries(async (engine, schema, app, mapping) => {
        // record 25 (chunk 2) held, so that the run is still running when the dead letter is worked
        if (failed) mapping.failing.add(5);
        mapping.hold(25);
        const queued = await engine.enqueue("entries");
        const run = await workWhileHeld(engine, queued.id, mapping.release, async () => {
          const store = engine.store as PostgresStore;
          await until(
            async () => (await store.chunkState(queued.id, 0))?.transformedAt !== undefined,
            "chunk 0 transformed",
          );
          // chunk 0's transform job, given up on after another execution of it (one pg-boss took for lost) had
          // transformed the chunk
          await giveUp(schema, queues.transform, { run: queued.id, seq: 0 });
          await until(async () => (await deadLetters(schema, queued.id, "worked")) === 1, "the dead letter worked");
        });
        assert.notEqual(run.error?.code, ErrorCode.JobGivenUp, "the transform whose work was done failed the run");
        assert.equal(run.status, failed ? "failed" : "succeeded");
        const counts = await engine.store.counts(queued.id);
        assert.equal(counts.failed, failed ? 1 : 0);
        assert.equal(counts.targets.dst?.loaded, failed ? 29 : 30);
        assert.equal(await loadedRows(app), failed ? 29 : 30);
      });
    });
  }

  it("a load job of an earlier transform of its chunk, given up on while the continued run transforms it again: the run is not failed for it", async () => {
    await withEntries(async (engine, schema, app, mapping) => {
      mapping.failing.add(5);
      const queued = await engine.enqueue("entries");
      assert.equal((await withWorker(engine, () => ended(engine, queued.id))).status, "failed");
      const store = engine.store as PostgresStore;
      const then = (await store.chunkState(queued.id, 0))?.transformedAt;
      assert.notEqual(then, undefined);
      // continued: chunk 0 reopened (its transform and load of then void) and transformed again, record 5 held
      mapping.failing.clear();
      mapping.hold(5);
      const continued = await engine.enqueue("entries");
      assert.equal(continued.id, queued.id, "the failed run is continued");
      const run = await workWhileHeld(engine, queued.id, mapping.release, async () => {
        // chunk 0's load job of its first transform, given up on now: the chunk is neither loaded nor has a load
        // recorded, and no load job of it is live; the new transform's load job does the work
        await giveUp(schema, queues.load, { run: queued.id, seq: 0, target: "dst", transformedAt: then });
        await until(async () => (await deadLetters(schema, queued.id, "worked")) === 1, "the dead letter worked");
        assert.equal((await store.chunkState(queued.id, 0))?.transformedAt, undefined, "chunk 0 not transformed yet");
      });
      await assertAllLoaded(engine, app, run);
    });
  });
});

describe("the distributed executor's runs marked abandoned", { timeout: 120_000 }, () => {
  it("a run marked abandoned (no worker alive) is taken up again by the worker that takes its next job", async () => {
    await withEntries(async (engine, _schema, app) => {
      const queued = await engine.enqueue("entries");
      await markAbandoned(engine, queued.id);
      // its extraction job, queued, is the first a worker takes
      const run = await withWorker(engine, () => ended(engine, queued.id));
      assert.equal(run.status, "succeeded");
      assert.equal(run.stats.resumes, 1, "taken up as a resume");
      assert.equal(await loadedRows(app), 30);
    });
  });

  it("a run marked abandoned that ends meanwhile (a job given up on) is not taken up again by its next job", async () => {
    await withEntries(async (engine, schema, app) => {
      const queued = await engine.enqueue("entries");
      await markAbandoned(engine, queued.id);
      const store = engine.store as PostgresStore;
      const q = queueSchemaOf(schema);
      await withWorker(engine, async () => {
        // The run ended failed, as a job given up on ends it (endRunning), in a transaction that commits only once the
        // worker that took the run's extraction job, having read the run as abandoned, waits to claim it.
        await store.withTransaction(async (tx) => {
          await tx.finishRun(
            queued.id,
            queueOwner,
            { status: "failed", error: { code: ErrorCode.JobGivenUp, message: "franca.load was given up" } },
            Date.now(),
          );
          await until(
            async () =>
              (
                await pgStatements([
                  `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                      AND query LIKE '%"${schema}".runs WHERE id = $1 FOR UPDATE%'`,
                ])
              ).length > 0,
            "the worker's claim of the run waiting for its row",
          );
        });
        await until(
          async () =>
            (
              await pgStatements([
                `SELECT 1 FROM ${q}.job WHERE name = '${queues.extract}' AND data->>'run' = '${queued.id}'
                    AND state = 'completed'`,
              ])
            ).length > 0,
          "the extraction job done",
        );
      });
      const run = (await engine.store.getRun(queued.id)) ?? assert.fail("the run is gone");
      assert.equal(run.status, "failed", "the ended run was taken up again");
      assert.equal(run.error?.code, ErrorCode.JobGivenUp);
      assert.equal(run.stats.resumes ?? 0, 0);
      assert.deepEqual(await engine.store.chunkStates(queued.id), [], "the run's source was read");
      assert.equal(await loadedRows(app), 0);
    });
  });
});

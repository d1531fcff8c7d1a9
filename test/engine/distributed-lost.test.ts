/**
 * Jobs of the distributed executor that are lost on the way: a load whose worker died after its commit, before it sent
 * the run's finish job; a job that pg-boss gave up on (its attempts ran out without its handler ending them). Neither
 * may leave its run 'running' with nothing left to do it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode } from "../../src/core/errors.ts";
import { queueSchemaOf, queues, startQueue } from "../../src/engine/distributed/queue.ts";
import { Engine } from "../../src/engine/engine.ts";
import type { PostgresStore } from "../../src/store/postgres/store.ts";
import { entriesHub, entriesTablesSql, withEntrySchemas } from "../support/dist-entries.ts";
import { diedBeforeFinish, ended, markAbandoned, sendJob, withWorker } from "../support/dist-jobs.ts";
import { tempDir } from "../support/fixtures.ts";
import { pgStatements, pgUrl } from "../support/pg-schema.ts";
import { until } from "../support/poll.ts";

/** `entries` (30 records) on a distributed engine of the test's own schemas. */
async function withEntries(work: (engine: Engine, schema: string, app: string) => Promise<void>): Promise<void> {
  await withEntrySchemas("franca_lost", async (schema, app) => {
    await pgStatements(entriesTablesSql(app, 30));
    using tmp = tempDir();
    const hub = entriesHub({ schema, app, toCanonical: (row) => ({ id: row.id as number, name: row.name as string }) });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
    await work(engine, schema, app);
  });
}

describe("the distributed executor's lost jobs", { timeout: 120_000 }, () => {
  it("a load retried after its worker died past the commit sends the run's finish job", async () => {
    await withEntries(async (engine, schema, app) => {
      const first = await engine.run("entries");
      assert.equal(first.run.status, "succeeded");
      const last = (await engine.store.chunkStates(first.run.id)).at(-1)?.seq as number;
      // The state a worker leaves when it dies after the last load's commit and before it sends the finish job (every
      // chunk loaded, no load pending). pg-boss then gives the load job to another worker (the same job, as it came).
      await diedBeforeFinish(schema, first.run.id);
      await sendJob(schema, queues.load, { run: first.run.id, seq: last, target: "dst" });
      const run = await withWorker(engine, () => ended(engine, first.run.id));
      assert.equal(run.status, "succeeded", "the retried load did not send the finish job");
      assert.equal(Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n), 30);
    });
  });

  for (const abandoned of [false, true]) {
    const as = abandoned ? ", marked abandoned meanwhile (no worker alive)," : "";
    it(`a job the queue gave up on ends its run${as} failed, and the run continued then succeeds`, async () => {
      await withEntries(async (engine, schema) => {
        // queued, with no worker yet: its extraction job is taken by the test, as by a worker that then dies, on the
        // job's last attempt; pg-boss fails it, as its monitor fails a job whose heartbeat stopped, and moves it to the
        // dead-letter queue
        const queued = await engine.enqueue("entries");
        const boss = await startQueue(pgUrl, schema);
        try {
          await pgStatements([
            `UPDATE ${queueSchemaOf(schema)}.job SET retry_limit = 0 WHERE name = '${queues.extract}' AND data->>'run' = '${queued.id}'`,
          ]);
          const [job] = await boss.fetch(queues.extract);
          assert.ok(job !== undefined);
          await boss.fail(queues.extract, job.id, { message: "heartbeat stopped" });
        } finally {
          await boss.stop({ graceful: false });
        }
        const [dead] = await pgStatements([
          `SELECT count(*)::int AS n FROM ${queueSchemaOf(schema)}.job WHERE name = '${queues.dead}'`,
        ]);
        assert.equal(dead?.n, 1, "pg-boss moved the job to the dead-letter queue");
        if (abandoned) await markAbandoned(engine, queued.id);
        await withWorker(engine, async () => {
          const run = await ended(engine, queued.id);
          assert.equal(run.status, "failed");
          assert.equal(run.error?.code, ErrorCode.JobGivenUp);
          // with what its last attempt failed of, as the queue kept it
          assert.match(
            run.error?.message ?? "",
            /^franca\.extract was given up after its attempts ran out; its last attempt: heartbeat stopped$/,
          );
          // a job of the run still queued (here a finish job) finds it ended, and does not take it up again, as it
          // would a run abandoned while no worker was alive: nothing would then send the job given up on again
          await sendJob(schema, queues.finish, { run: queued.id });
          await until(
            async () =>
              (
                await pgStatements([
                  `SELECT count(*)::int AS n FROM ${queueSchemaOf(schema)}.job
                  WHERE name = '${queues.finish}' AND state = 'completed'`,
                ])
              )[0]?.n === 1,
            "the late finish job done",
          );
          assert.equal((await engine.store.getRun(queued.id))?.status, "failed", "a later job took the run up again");
          // resumable: the run continued sends the extraction again
          const continued = await engine.run("entries");
          assert.equal(continued.run.id, queued.id);
          assert.equal(continued.run.status, "succeeded");
          assert.equal(continued.counts.targets.dst?.loaded, 30);
        });
      });
    });
  }

  for (const abandoned of [false, true]) {
    const as = abandoned ? ", its run marked abandoned meanwhile (no worker alive)" : "";
    it(`a load given up on after its commit (its last attempt died before the finish job)${as}: the finish job is sent`, async () => {
      await withEntries(async (engine, schema) => {
        const first = await engine.run("entries");
        assert.equal(first.run.status, "succeeded");
        const last = (await engine.store.chunkStates(first.run.id)).at(-1)?.seq as number;
        await diedBeforeFinish(schema, first.run.id);
        if (abandoned) await markAbandoned(engine, first.run.id);
        // the load job of the last chunk, its last attempt lost after its commit: moved to the dead-letter queue
        await sendJob(schema, queues.dead, { run: first.run.id, seq: last, target: "dst" });
        const run = await withWorker(engine, () => ended(engine, first.run.id));
        assert.equal(
          run.status,
          "succeeded",
          "the run was not finished (or was failed) for a load whose work was done",
        );
      });
    });
  }

  it("the dead-letter queue retries its jobs as the other queues do, also one made by an earlier version", async () => {
    await withEntrySchemas("franca_lost", async (schema) => {
      const settings = async () => {
        const boss = await startQueue(pgUrl, schema);
        try {
          const [dead, load] = await Promise.all([boss.getQueue(queues.dead), boss.getQueue(queues.load)]);
          return { dead: [dead?.retryLimit, dead?.retryBackoff], load: [load?.retryLimit, load?.retryBackoff] };
        } finally {
          await boss.stop({ graceful: false });
        }
      };
      const made = await settings();
      assert.deepEqual(made.dead, made.load);
      // as an earlier version made it: pg-boss's defaults
      await pgStatements([
        `UPDATE ${queueSchemaOf(schema)}.queue SET retry_limit = 2, retry_backoff = false WHERE name = '${queues.dead}'`,
      ]);
      assert.deepEqual((await settings()).dead, made.load);
    });
  });

  it("a load job of an earlier transform, still queued, does not stand for the chunk's load when the run is continued", async () => {
    await withEntries(async (engine, schema, app) => {
      // record 5 refused by the target: chunk 0 keeps its staged records (a resume or a replay may need them)
      await pgStatements([`ALTER TABLE ${app}.dst ADD CONSTRAINT no_5 CHECK (id <> 5)`]);
      const first = await engine.run("entries");
      assert.equal(first.run.status, "partial");
      const store = engine.store as PostgresStore;
      const current = (await store.chunkState(first.run.id, 0))?.transformedAt as number;
      // The state a run is left in when chunk 0, transformed again, was not loaded before the run stopped (failed,
      // resumable), while a load job of the chunk's earlier transform waits for its retry (here: not before an hour).
      await pgStatements([
        `DELETE FROM ${schema}.chunk_loads WHERE run_id = ${first.run.id} AND seq = 0`,
        `INSERT INTO ${schema}.pending_loads (run_id, target, seq) VALUES (${first.run.id}, 'dst', 0)`,
        `UPDATE ${schema}.runs SET status = 'failed', error = '{"code":"SYSTEM_UNAVAILABLE","message":"down","errorClass":"transient"}'
          WHERE id = ${first.run.id}`,
      ]);
      await sendJob(
        schema,
        queues.load,
        { run: first.run.id, seq: 0, target: "dst", transformedAt: current - 1 },
        3600,
      );
      // continued: the plan must send chunk 0's load; counting the stale job as live, it left the run waiting for ever
      const continued = await Promise.race([
        engine.run("entries"),
        sleep(30_000).then(() => assert.fail("the continued run never ended: chunk 0's load was not sent")),
      ]);
      assert.equal(continued.run.id, first.run.id);
      assert.equal(continued.run.status, "partial");
      assert.deepEqual(continued.counts.targets.dst, { loaded: 29, unchanged: 0, quarantined: 1, failed: 0 });
      assert.equal(Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n), 29);
    });
  });
});

/**
 * Records that fail on the distributed executor: transiently, in a transform or in a load whose job then ends (the run
 * loads the others and ends failed, where it used to wait for them for ever, and continuing it retries them); refused
 * by the target, then replayed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startSimApi } from "../../sim/api.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { Engine } from "../../src/engine/engine.ts";
import { entriesHub, entriesTablesSql, withEntrySchemas } from "../support/dist-entries.ts";
import { distHub, distSetupSql } from "../support/dist-hub.ts";
import { tempDir } from "../support/fixtures.ts";
import { pgStatements } from "../support/pg-schema.ts";

describe("the distributed executor with records that fail", { timeout: 120_000 }, () => {
  it("in a transform: the run loads the others and ends failed; continued, it transforms the chunk again", async () => {
    await withEntrySchemas("franca_failed", async (schema, app) => {
      await pgStatements(entriesTablesSql(app, 30));
      // record 15's mapping fails once (a lookup's system timing out, say), then works
      let failures = 1;
      const hub = entriesHub({
        schema,
        app,
        toCanonical: (row) => {
          if (row.id === 15 && failures-- > 0)
            throw new FrancaError(ErrorCode.SystemUnavailable, "timed out", { errorClass: "transient" });
          return { id: row.id as number, name: row.name as string };
        },
      });
      using tmp = tempDir();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
      const first = await engine.run("entries");
      assert.equal(first.run.status, "failed");
      assert.equal(first.counts.failed, 1);
      assert.equal(first.counts.targets.dst?.loaded, 29);
      const count = async () => Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n);
      assert.equal(await count(), 29);
      const [record] = await engine.store.records(first.run.id, { status: "failed" });
      assert.equal(record?.key, "15");
      const second = await engine.run("entries");
      assert.equal(second.run.id, first.run.id, "the failed run is continued");
      assert.equal(second.run.status, "succeeded");
      assert.equal(await count(), 30);
    });
  });

  it("in a load whose job ends: the run loads the others and ends failed; continued, it loads them", async () => {
    await withEntrySchemas("franca_failed", async (schema) => {
      await pgStatements(distSetupSql(schema, 250));
      // the API answers item 15 of its batches 503 until told otherwise: the connector's retries run out
      const api = await startSimApi({
        seed: 7,
        collections: { items: { key: "id", maxBatch: 50 }, others: { key: "id", maxBatch: 50 } },
        batch: { reject: { when: (record) => record.id === "15", status: 503 } },
      });
      try {
        using tmp = tempDir();
        const hub = distHub({ FRANCA_DIST_SCHEMA: schema, FRANCA_DIST_API: api.url });
        await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
        const first = await engine.run("items");
        assert.equal(first.run.status, "failed");
        assert.deepEqual(first.counts.targets["api-items"], { loaded: 249, unchanged: 0, quarantined: 0, failed: 1 });
        assert.equal(api.records("items").length, 249);
        api.configure({ batch: { reject: undefined } });
        const second = await engine.run("items");
        assert.equal(second.run.id, first.run.id, "the failed run is continued");
        assert.equal(second.run.status, "succeeded");
        assert.equal(api.records("items").length, 250);
        assert.equal(api.duplicates("items"), 0);
      } finally {
        await api.close();
      }
    });
  });

  it("refused by the target, then replayed: the replay's chunks are loaded in order and none stays pending", async () => {
    await withEntrySchemas("franca_failed", async (schema) => {
      await pgStatements(distSetupSql(schema, 250));
      // items 15 and 115 (chunks 0 and 1) refused until the API is fixed
      const api = await startSimApi({
        seed: 7,
        collections: { items: { key: "id", maxBatch: 50 }, others: { key: "id", maxBatch: 50 } },
        batch: { reject: { when: (record) => record.id === "15" || record.id === "115" } },
      });
      try {
        using tmp = tempDir();
        const hub = distHub({ FRANCA_DIST_SCHEMA: schema, FRANCA_DIST_API: api.url });
        await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
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
      } finally {
        await api.close();
      }
    });
  });
});

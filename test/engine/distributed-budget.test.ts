/**
 * The failure policy on the distributed executor: a run's problems are counted from the ledger, where every worker
 * records its own, not by each worker from its own jobs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MapContext, Row } from "../../src/core/binding.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { Engine } from "../../src/engine/engine.ts";
import { entriesHub, entriesTablesSql, withEntrySchemas } from "../support/dist-entries.ts";
import { tempDir } from "../support/fixtures.ts";
import { pgStatements } from "../support/pg-schema.ts";

describe("the distributed executor's failure policy", { timeout: 120_000 }, () => {
  it("counts the problems every worker recorded in the ledger, not only this worker's own", async () => {
    await withEntrySchemas("franca_budget", async (schema, app) => {
      // 30 rows in chunks of 10, one in each chunk invalid (an empty name): 3 problems of this worker's own
      await pgStatements(entriesTablesSql(app, 30, "CASE WHEN i % 10 = 5 THEN '' ELSE 'n' || i END"));
      /**
       * While chunk 1 is mapped, another worker records 5 problems of the run in a target of its own (a row of the
       * ledger as any worker's load writes it): 8 in all, over the policy's 5, where this worker saw 3 of its own.
       */
      const elsewhere = async (row: Row, context: MapContext) => {
        await pgStatements([
          `INSERT INTO ${schema}.chunk_loads (run_id, target, seq, loaded, unchanged, quarantined, failed, attempts, loaded_at)
           VALUES (${context.run.id}, 'elsewhere', 0, 0, 0, 5, 0, 1, 0) ON CONFLICT DO NOTHING`,
        ]);
        return { id: row.id as number, name: row.name as string };
      };
      const hub = entriesHub({
        schema,
        app,
        toCanonical: (row, context) =>
          row.id === 15 ? elsewhere(row, context) : { id: row.id as number, name: row.name as string },
        failure: { maxFailed: 5 },
      });
      using tmp = tempDir();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
      const summary = await engine.run("entries");
      assert.equal(summary.run.status, "failed");
      assert.equal(summary.run.error?.code, ErrorCode.FailureThreshold);
    });
  });
});

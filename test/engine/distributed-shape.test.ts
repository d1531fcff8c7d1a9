/**
 * A worker whose configuration breaks the shape a queued run staged its records in (a deploy under a run going on)
 * ends the run failed, naming the change, rather than loading the staged records unchecked.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { EntityShape } from "../../src/core/entity-shape.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { Engine } from "../../src/engine/engine.ts";
import { entriesHub, entriesTablesSql, withEntrySchemas } from "../support/dist-entries.ts";
import { ended, withWorker } from "../support/dist-jobs.ts";
import { tempDir } from "../support/fixtures.ts";
import { pgStatements } from "../support/pg-schema.ts";

describe("a distributed run whose entity a worker's configuration breaks", { timeout: 120_000 }, () => {
  it("is ended failed (RUN_NOT_RESUMABLE) by the worker, and nothing is loaded", async () => {
    await withEntrySchemas("franca_shape", async (schema, app) => {
      await pgStatements(entriesTablesSql(app, 30));
      const hub = entriesHub({
        schema,
        app,
        toCanonical: (row) => ({ id: row.id as number, name: row.name as string }),
      });
      using tmp = tempDir();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
      const queued = await engine.enqueue("entries");
      // the run as an earlier configuration staged it: its entity had a required field today's lacks
      const shape = queued.stats.entity as EntityShape;
      const schemaThen = shape.schema as { properties: Record<string, unknown>; required: string[] };
      const then = {
        ...schemaThen,
        properties: { ...schemaThen.properties, legacy: { type: "string" } },
        required: [...schemaThen.required, "legacy"],
      };
      await engine.store.updateStats(queued.id, {
        ...queued.stats,
        entity: { ...shape, schema: then },
      });
      const run = await withWorker(engine, () => ended(engine, queued.id));
      assert.equal(run.status, "failed");
      assert.equal(run.error?.code, ErrorCode.RunNotResumable);
      assert.match(run.error?.message ?? "", /\/legacy/);
      const [row] = await pgStatements([`SELECT count(*)::int AS n FROM ${app}.dst`]);
      assert.equal(row?.n, 0);
    });
  });
});

/**
 * Records staged under one shape of an entity are not loaded once the entity changed: a resume (or a plain run that
 * would continue the run) and a replay that would load staged records again stop, naming the way out.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import Type from "typebox";
import { entity } from "../../src/core/entity.ts";
import { changedShapeError, type EntityShape, entityShape } from "../../src/core/entity-shape.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { Engine } from "../../src/engine/engine.ts";
import type { Store } from "../../src/store/types.ts";
import {
  Customer,
  createClientsTarget,
  createCustomerSource,
  customersHub,
  failedAtFirstLoad,
  openStore,
  tempDir,
} from "../support/fixtures.ts";

/** Makes run `id` look staged under an earlier shape of its entity (a schema since changed, version 1 kept). */
async function stagedUnderAnotherShape(store: Store, id: number): Promise<void> {
  const run = await store.getRun(id);
  assert.ok(run !== undefined);
  const shape = run.stats.entity as EntityShape;
  assert.deepEqual(shape, entityShape(Customer), "a run records the shape it stages its records in");
  // the earlier schema had a required field that today's does not: a field removed, breaking
  const schema = shape.schema as { properties: Record<string, unknown>; required: string[] };
  const earlier = {
    ...schema,
    properties: { ...schema.properties, legacy: { type: "string" } },
    required: [...schema.required, "legacy"],
  };
  await store.updateStats(id, { ...run.stats, entity: { ...shape, schema: earlier } });
}

describe("an entity changed since a run staged its records", () => {
  it("is told by what the schema's change breaks, not by its version", () => {
    const v1 = entity("Thing", { version: 1, key: "id", schema: Type.Object({ id: Type.String() }) });
    const widened = entity("Thing", {
      version: 2,
      key: "id",
      schema: Type.Object({ id: Type.String(), status: Type.String() }),
    });
    const run = { id: 4, stats: { entity: entityShape(v1) } };
    assert.equal(changedShapeError(run, v1, "x"), undefined);
    const error = changedShapeError(run, widened, "start a fresh run");
    assert.equal(error?.code, ErrorCode.RunNotResumable);
    assert.match(
      error?.message ?? "",
      /run 4 staged its records as Thing v1 and the entity has changed since in a way they may not fit \(\/status required field added\) \(now v2\): start a fresh run/,
    );
    assert.equal(changedShapeError({ id: 4, stats: {} }, widened, "x"), undefined, "a run from before: no shape");
    // a change every staged record still fits: an optional field, a description, another order of the fields
    const fits = entity("Thing", {
      version: 1,
      key: "id",
      schema: Type.Object({ note: Type.Optional(Type.String()), id: Type.String({ description: "the id" }) }),
    });
    assert.equal(changedShapeError(run, fits, "x"), undefined);
    // a schema with keywords schema-compat does not judge (a record's key pattern): any change refuses
    const marks = (key: ReturnType<typeof Type.String>) =>
      entity("Marks", {
        version: 1,
        key: "id",
        schema: Type.Object({ id: Type.String(), marks: Type.Record(key, Type.Integer()) }),
      });
    const anyKey = { id: 5, stats: { entity: entityShape(marks(Type.String())) } };
    const refused = changedShapeError(anyKey, marks(Type.String({ pattern: "^[a-z]+$" })), "x");
    assert.equal(refused?.code, ErrorCode.RunNotResumable);
  });

  it("stops a resume, and the plain run that would continue it, before anything is loaded; a fresh run loads all", async () => {
    using tmp = tempDir();
    await using store = await openStore(tmp.dir);
    const stopped = await failedAtFirstLoad(tmp.dir, store);
    const { target, failed } = stopped;
    await using engine = stopped.engine;
    await stagedUnderAnotherShape(store, failed.run.id);

    for (const attempt of [() => engine.resume(failed.run.id), () => engine.run("customers")]) {
      await assert.rejects(attempt(), (error: Error & { code?: string }) => {
        assert.equal(error.code, ErrorCode.RunNotResumable);
        assert.match(error.message, /Start a fresh run instead: 'franca run customers --fresh'/);
        return true;
      });
    }
    assert.equal((target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n, 0);
    assert.equal((await store.getRun(failed.run.id))?.status, "failed", "left as it was");

    const fresh = await engine.run("customers", { fresh: true });
    assert.equal(fresh.run.status, "succeeded");
    assert.equal((target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n, 300);
  });

  it("stops a replay that would load staged records again; one that transforms its records again goes", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 20, badEmails: [3] });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    // the target refuses customer 7's row (a CHECK): a load-stage problem, whose replay loads the staged record
    target.exec(
      "CREATE TRIGGER no_seven BEFORE INSERT ON clients WHEN NEW.code = '7' BEGIN SELECT RAISE(ABORT, 'no'); END",
    );
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    const partial = await engine.run("customers");
    assert.equal(partial.run.status, "partial");
    await stagedUnderAnotherShape(store, partial.run.id);
    await assert.rejects(engine.replay(partial.run.id), (error: Error & { code?: string }) => {
      assert.equal(error.code, ErrorCode.RunNotResumable);
      assert.match(error.message, /the records its targets refused would be loaded again unchecked/);
      return true;
    });
    // customer 3 (quarantined by validation) is transformed again from its source row: nothing staged is loaded
    const replayed = await engine.replay(partial.run.id, { keys: ["3"] });
    assert.equal(replayed.plan.retransform, 1);
  });
});

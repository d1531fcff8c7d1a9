/**
 * Source drift: the source's fields as a run sees them against the flow's last whole extraction's (new, retyped,
 * missing), under each policy. A source whose rows each carry every field (SQL, CSV) tells a missing field in its
 * first chunk, so that `fail` stops before anything is loaded; one that does not (NDJSON) only after the whole
 * extraction. `acceptDrift` takes the source as it is under `fail`.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { file } from "../../src/connectors/file/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub, type Hub } from "../../src/core/hub.ts";
import { compareProfiles, keptFinding, nextProfile, profileRows, untold } from "../../src/engine/drift.ts";
import { Engine, type StartOptions } from "../../src/engine/engine.ts";
import type { RunSummary } from "../../src/engine/run.ts";
import { type EntriesSpec, entriesHub, entriesTablesSql, withEntrySchemas } from "../support/dist-entries.ts";
import { ended, withWorker } from "../support/dist-jobs.ts";
import {
  Customer,
  type CustomersHubOverrides,
  createClientsTarget,
  createCustomerSource,
  customersHub,
  openStore,
  tempDir,
  toClient,
  toCustomer,
} from "../support/fixtures.ts";
import { captureLogs } from "../support/logs.ts";
import { pgStatements } from "../support/pg-schema.ts";

type Policy = "warn" | "fail" | "ignore";

/** Rows `ids` renamed and moved past the cursor (the next run reads them, and only them). */
function touch(source: DatabaseSync, ids: readonly number[], name: string, at = "2030-01-01T00:00:00.000Z"): void {
  source.exec(`UPDATE customers SET name = '${name}', updated_at = '${at}' WHERE id IN (${ids.join(", ")})`);
}

function names(target: DatabaseSync, name: string): number {
  return (target.prepare("SELECT count(*) AS n FROM clients WHERE full_name = ?").get(name) as { n: number }).n;
}

function driftOf(summary: RunSummary): unknown {
  return summary.run.stats.drift;
}

/**
 * crm.customers (with a `tier` column, text) → erp.clients under `policy`: a first run has seen the source whole (its
 * profile saved), then `work` changes it and runs again.
 */
async function withCustomers(
  policy: Policy,
  work: (setup: {
    engine: Engine;
    source: DatabaseSync;
    target: DatabaseSync;
    logs: () => string;
    profile: () => Promise<Record<string, string> | undefined>;
  }) => Promise<void>,
  options: { rows?: number; toCanonical?: CustomersHubOverrides["toCanonical"] } = {},
): Promise<void> {
  using tmp = tempDir();
  const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: options.rows ?? 200 });
  // no declared type: SQLite keeps each value's own (a number stays one)
  source.exec("ALTER TABLE customers ADD COLUMN tier");
  source.exec("UPDATE customers SET tier = 'basic'");
  const target = createClientsTarget(join(tmp.dir, "erp.db"));
  await using store = await openStore(tmp.dir);
  const { logger, text } = captureLogs("warn");
  await using engine = await Engine.open({
    hub: customersHub(tmp.dir, {
      drift: policy,
      ...(options.toCanonical === undefined ? {} : { toCanonical: options.toCanonical }),
    }),
    baseDir: tmp.dir,
    store,
    logger,
  });
  const first = await engine.run("customers");
  assert.equal(first.run.status, "succeeded");
  assert.equal(driftOf(first), undefined, "a first run has nothing to compare with");
  assert.deepEqual(await store.getProfile("customers"), {
    id: "number",
    name: "string",
    email: "string",
    balance: "string",
    updated_at: "string",
    tier: "string",
  });
  await work({ engine, source, target, logs: text, profile: () => store.getProfile("customers") });
}

const allRows = Array.from({ length: 1000 }, (_, i) => i + 1);

/**
 * A run of the customers stopped mid-source: the mapping holds record 60 (chunk 1) while `cancelled` runs, so that the
 * extraction stays a channel's length ahead of the transform, and the run is cancelled once 3 chunks are extracted.
 */
function midSource(): {
  toCanonical: NonNullable<CustomersHubOverrides["toCanonical"]>;
  cancelled: (engine: Engine, options?: StartOptions) => Promise<RunSummary>;
} {
  let hold: PromiseWithResolvers<void> | undefined;
  return {
    toCanonical: async (row) => {
      if (row.id === 60 && hold !== undefined) await hold.promise;
      return toCustomer(row);
    },
    async cancelled(engine, options = {}) {
      hold = Promise.withResolvers<void>();
      const cancel = new AbortController();
      const summary = await engine.run("customers", {
        ...options,
        signal: cancel.signal,
        onProgress: (progress) => {
          if (progress.chunks >= 3 && !cancel.signal.aborted) {
            cancel.abort();
            hold?.resolve();
          }
        },
      });
      hold = undefined;
      assert.equal(summary.run.status, "cancelled");
      assert.equal(summary.run.extractDone, false, "the test needs a run stopped mid-source");
      return summary;
    },
  };
}

/**
 * `entries` (PostgreSQL → PostgreSQL, chunks of 10) on the distributed executor, its source table set up by `setup`
 * (statements over `app`, after `entriesTablesSql`), its first run done (the flow's profile saved), then `work`.
 */
async function withDistributedEntries(
  setup: (app: string) => string[],
  spec: Pick<EntriesSpec, "drift" | "failure"> & { toCanonical?: EntriesSpec["toCanonical"] },
  work: (engine: Engine, app: string) => Promise<void>,
): Promise<void> {
  await withEntrySchemas("franca_drift", async (schema, app) => {
    await pgStatements(setup(app));
    using tmp = tempDir();
    const hub = entriesHub({
      schema,
      app,
      toCanonical: (row) => ({ id: row.id as number, name: row.name as string }),
      ...spec,
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
    assert.equal((await engine.run("entries")).run.status, "succeeded");
    await work(engine, app);
  });
}

/** customers.ndjson in `dir`: one JSON document a line. */
function writeDocuments(dir: string, documents: readonly Record<string, unknown>[]): void {
  writeFileSync(join(dir, "customers.ndjson"), documents.map((doc) => `${JSON.stringify(doc)}\n`).join(""));
}

/** A customer document (the fields Customer's mapping reads), with `extra` fields. */
function customerDocument(id: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, name: `Customer ${id}`, email: `c${id}@example.org`, balance: "1.00", ...extra };
}

/** customers.<format> in `dir` → erp.clients, under the policy `fail`, in chunks of `chunkSize` (100). */
function fileCustomers(dir: string, format: "csv" | "ndjson", chunkSize = 100): { hub: Hub; target: DatabaseSync } {
  const inbox = file("inbox", { dir });
  const erp = sqlite("erp", { file: join(dir, "erp.db") });
  const target = createClientsTarget(join(dir, "erp.db"));
  const hub = defineHub({
    systems: [inbox, erp],
    entities: [Customer],
    flows: [
      flow("customers", {
        from: bind(inbox, Customer, { path: `customers.${format}`, format, key: "id", toCanonical: toCustomer }),
        to: bind(erp, Customer, { table: "clients", key: "code", fromCanonical: toClient }),
        drift: "fail",
        chunkSize,
      }),
    ],
  });
  return { hub, target };
}

describe("source drift", () => {
  it("profiles and compares: new and retyped fields at once, missing ones only when told the whole source was seen", () => {
    const previous = profileRows([{ a: 1, b: "x", c: null, d: true }]);
    assert.deepEqual(previous, { a: "number", b: "string", c: "null", d: "boolean" });
    // c was only ever null: a value now is no retyping; b seen as a number beside strings
    const current = profileRows([
      { a: 2, b: 3, c: "now", e: [1] },
      { a: 3, b: "y", c: null, e: null },
    ]);
    assert.deepEqual(current, { a: "number", b: "number|string", c: "string", e: "array" });
    assert.deepEqual(compareProfiles(previous, current, false), {
      added: ["e"],
      missing: [],
      retyped: [{ field: "b", from: "string", to: "number|string" }],
    });
    assert.deepEqual(compareProfiles(previous, current, true)?.missing, ["d"]);
    assert.equal(compareProfiles(previous, { ...previous }, true), undefined);
    // a row the source could not read says nothing of its fields, nor counts toward the sample
    assert.deepEqual(profileRows([{ $error: "bad line", $line: 3 }]), {});
    assert.deepEqual(profileRows([{ $error: "bad", $line: 1 }, { $error: "bad", $line: 2 }, { a: 1 }], {}, 1), {
      a: "number",
    });
    // types as sets: a sample showing fewer of a field's types is no change, one showing a type never seen is
    assert.equal(compareProfiles({ x: "number|string" }, { x: "number" }, true), undefined);
    assert.equal(compareProfiles({ x: "number|string" }, { x: "string|number" }, true), undefined);
    assert.deepEqual(compareProfiles({ x: "string" }, { x: "string|number" }, false)?.retyped, [
      { field: "x", from: "string", to: "string|number" },
    ]);
    // what a later finding adds to an earlier one
    assert.deepEqual(
      untold(
        { added: ["e", "f"], missing: ["d"], retyped: [{ field: "b", from: "string", to: "number" }] },
        {
          added: ["e"],
          missing: [],
          retyped: [{ field: "b", from: "string", to: "number" }],
        },
      ),
      { added: ["f"], missing: ["d"], retyped: [] },
    );
    assert.equal(
      untold({ added: ["e"], missing: [], retyped: [] }, { added: ["e"], missing: [], retyped: [] }),
      undefined,
    );
    // a field told retyped from number to string, found with a boolean too, is told again
    const asText = { field: "t", from: "number", to: "string" };
    const toBoolean = { field: "t", from: "number", to: "boolean|string" };
    assert.deepEqual(
      untold({ added: [], missing: [], retyped: [toBoolean] }, { added: [], missing: [], retyped: [asText] }),
      {
        added: [],
        missing: [],
        retyped: [toBoolean],
      },
    );
    // the next run's profile: the fields seen, each with every type seen before or now; a field not seen goes only
    // when what was seen was the whole source
    const before = { x: "number|string", y: "string", gone: "string" };
    const seen = { x: "number", y: "null", z: "boolean" };
    assert.deepEqual(nextProfile(before, seen, true), { x: "number|string", y: "string", z: "boolean" });
    assert.deepEqual(nextProfile(before, seen, false), {
      x: "number|string",
      y: "string",
      gone: "string",
      z: "boolean",
    });
    assert.deepEqual(nextProfile(undefined, seen, true), { x: "number", y: "null", z: "boolean" });
  });

  it("keeps what earlier executions found and loaded, drops what stopped one, and joins a retried attempt's", () => {
    const first = { added: ["a"], missing: [], retyped: [] };
    const second = { added: ["a", "b"], missing: [], retyped: [] };
    // an earlier execution that loaded its rows with the change: kept, with what this one adds
    assert.deepEqual(keptFinding({ drift: first, driftExecution: 1 }, 2, undefined), first);
    assert.deepEqual(keptFinding({ drift: first, driftExecution: 1 }, 2, second), second);
    // an earlier execution that stopped for it (nothing of it loaded): this one's own finding, none if set right
    assert.equal(keptFinding({ drift: first, driftExecution: 1, driftStopped: first }, 2, undefined), undefined);
    assert.deepEqual(keptFinding({ drift: first, driftExecution: 1, driftStopped: first }, 2, second), second);
    // a retried attempt of the execution that stopped: what the attempts found together
    assert.deepEqual(keptFinding({ drift: first, driftExecution: 2, driftStopped: first }, 2, second), second);
    assert.deepEqual(keptFinding({}, 0, first), first);
    // only the part that stopped goes: what an earlier execution loaded (a retype, accepted then) stays
    const loaded = { field: "t", from: "number", to: "number|string" };
    const both = { added: ["b"], missing: [], retyped: [loaded] };
    const stopper = { added: ["b"], missing: [], retyped: [] };
    assert.deepEqual(keptFinding({ drift: both, driftExecution: 1, driftStopped: stopper }, 2, undefined), {
      added: [],
      missing: [],
      retyped: [loaded],
    });
  });

  it("warn: a new field and a retyped one are logged and recorded, and the run loads", async () => {
    await withCustomers("warn", async ({ engine, source, target, logs }) => {
      source.exec("ALTER TABLE customers ADD COLUMN region TEXT");
      source.exec("UPDATE customers SET region = 'north', tier = 3 WHERE id <= 5"); // a number where text was
      touch(source, [1, 2, 3, 4, 5], "Edited");
      const second = await engine.run("customers");
      assert.equal(second.run.status, "succeeded");
      assert.deepEqual(driftOf(second), {
        added: ["region"],
        missing: [],
        retyped: [{ field: "tier", from: "string", to: "number" }],
      });
      assert.equal(names(target, "Edited"), 5);
      assert.match(logs(), /source drift in crm\.Customer: new field\(s\) region; tier changed from string to number/);
    });
  });

  it("warn: a dropped column of a SQL source is missing from the run's first chunk, recorded and logged once", async () => {
    await withCustomers("warn", async ({ engine, source, target, logs }) => {
      source.exec("ALTER TABLE customers DROP COLUMN tier");
      touch(source, [7, 8], "Edited");
      const second = await engine.run("customers");
      assert.equal(second.run.status, "succeeded");
      assert.deepEqual(driftOf(second), { added: [], missing: ["tier"], retyped: [] });
      assert.equal(names(target, "Edited"), 2);
      const told = logs()
        .split("\n")
        .filter((line) => line.includes("missing field(s) tier"));
      assert.equal(told.length, 1, "told at the first chunk, not again at the end");
      assert.match(told[0] as string, /"stage":"extract"/, "told by the extraction, at the run's first chunk");
    });
  });

  for (const change of ["new", "missing"] as const) {
    it(`fail: a ${change} field stops the run before anything is loaded; continued, it stops again; accepted, it loads`, async () => {
      await withCustomers("fail", async ({ engine, source, target }) => {
        if (change === "new") source.exec("ALTER TABLE customers ADD COLUMN region TEXT");
        else source.exec("ALTER TABLE customers DROP COLUMN tier");
        touch(source, [1, 2, 3], "Edited");
        const expected =
          change === "new"
            ? { added: ["region"], missing: [], retyped: [] }
            : { added: [], missing: ["tier"], retyped: [] };
        const stopped = await engine.run("customers");
        assert.equal(stopped.run.status, "failed");
        assert.equal(stopped.run.error?.code, ErrorCode.SourceDrift);
        assert.match(stopped.run.error?.message ?? "", /--accept-drift/);
        assert.deepEqual(driftOf(stopped), expected);
        assert.equal(stopped.counts.chunks, 0, "nothing extracted");
        assert.equal(names(target, "Edited"), 0, "nothing loaded");

        const again = await engine.run("customers");
        assert.equal(again.run.id, stopped.run.id, "the failed run is continued");
        assert.equal(again.run.status, "failed");
        assert.equal(again.run.error?.code, ErrorCode.SourceDrift);

        const accepted = await engine.run("customers", { acceptDrift: true });
        assert.equal(accepted.run.id, stopped.run.id);
        assert.equal(accepted.run.status, "succeeded");
        assert.equal(accepted.run.stats.acceptDrift, true);
        assert.deepEqual(driftOf(accepted), expected);
        assert.equal(names(target, "Edited"), 3);

        // the source as the accepting run saw it is the flow's profile now: the next run finds no drift
        touch(source, [4], "Later");
        const next = await engine.run("customers");
        assert.equal(next.run.status, "succeeded");
        assert.equal(driftOf(next), undefined);
        assert.equal(names(target, "Later"), 1);
      });
    });
  }

  it("fail: a run stopped by drift and continued once the source is set right records no drift, and loads", async () => {
    await withCustomers("fail", async ({ engine, source, target }) => {
      source.exec("ALTER TABLE customers ADD COLUMN region TEXT");
      touch(source, [1, 2], "Edited");
      const stopped = await engine.run("customers");
      assert.equal(stopped.run.error?.code, ErrorCode.SourceDrift);
      assert.deepEqual(driftOf(stopped), { added: ["region"], missing: [], retyped: [] });
      source.exec("ALTER TABLE customers DROP COLUMN region");
      const continued = await engine.run("customers");
      assert.equal(continued.run.id, stopped.run.id);
      assert.equal(continued.run.status, "succeeded");
      assert.equal(driftOf(continued), undefined, "the drift of the stopped execution outlived it");
      assert.equal(names(target, "Edited"), 2);
    });
  });

  it("fail: a run stopped by drift, cancelled before it compares again, then continued once the source is set right records no drift", async () => {
    await withCustomers("fail", async ({ engine, source }) => {
      source.exec("ALTER TABLE customers ADD COLUMN region TEXT");
      touch(source, [1, 2], "Edited");
      const stopped = await engine.run("customers");
      assert.equal(stopped.run.error?.code, ErrorCode.SourceDrift);
      // continued, and cancelled before its extraction compares anything
      const cancelled = await engine.run("customers", { signal: AbortSignal.abort() });
      assert.equal(cancelled.run.id, stopped.run.id);
      assert.equal(cancelled.run.status, "cancelled");
      source.exec("ALTER TABLE customers DROP COLUMN region");
      const continued = await engine.run("customers");
      assert.equal(continued.run.status, "succeeded");
      assert.equal(driftOf(continued), undefined, "what stopped the first execution outlived it");
    });
  });

  it("fail: a run resumed mid-source that stops for a dropped column, accepted, makes the source as it is the flow's profile", async () => {
    const mid = midSource();
    await withCustomers(
      "fail",
      async ({ engine, source, target, profile }) => {
        touch(source, allRows, "Edited");
        const cancelled = await mid.cancelled(engine);
        source.exec("ALTER TABLE customers DROP COLUMN tier");
        const stopped = await engine.run("customers");
        assert.equal(stopped.run.id, cancelled.run.id);
        assert.equal(stopped.run.error?.code, ErrorCode.SourceDrift);
        assert.equal(stopped.counts.chunks, cancelled.counts.chunks, "stopped at the resumed extraction's first chunk");

        const accepted = await engine.run("customers", { acceptDrift: true });
        assert.equal(accepted.run.status, "succeeded");
        assert.deepEqual(driftOf(accepted), { added: [], missing: ["tier"], retyped: [] });
        assert.equal(names(target, "Edited"), 1000);
        // every row of this source carries every column: what the resumed extraction saw is the whole source's shape
        assert.equal((await profile())?.tier, undefined, "the flow's profile still has the dropped column");
        touch(source, [7], "Later", "2031-01-01T00:00:00.000Z");
        const next = await engine.run("customers");
        assert.equal(next.run.status, "succeeded", "the next run stopped again for the drift accepted");
        assert.equal(names(target, "Later"), 1);
      },
      { rows: 1000, toCanonical: mid.toCanonical },
    );
  });

  it("fail: an acceptance holds for the continuation that gives it; continued again without it, the run stops again", async () => {
    const mid = midSource();
    await withCustomers(
      "fail",
      async ({ engine, source }) => {
        source.exec("ALTER TABLE customers ADD COLUMN region TEXT");
        touch(source, allRows, "Edited");
        const stopped = await engine.run("customers");
        assert.equal(stopped.run.error?.code, ErrorCode.SourceDrift);
        // continued with the acceptance, and cancelled mid-source
        const accepting = await mid.cancelled(engine, { acceptDrift: true });
        assert.equal(accepting.run.id, stopped.run.id);
        assert.equal(accepting.run.stats.acceptDrift, true);
        // continued without it: a change met now was seen by no one
        const continued = await engine.run("customers");
        assert.equal(continued.run.id, stopped.run.id);
        assert.equal(continued.run.status, "failed");
        assert.equal(continued.run.error?.code, ErrorCode.SourceDrift);
        assert.equal(continued.run.stats.acceptDrift, undefined);
      },
      { rows: 1000, toCanonical: mid.toCanonical },
    );
  });

  it("warn: a field's types seen across runs stay in the flow's profile: a run whose rows show fewer of them finds nothing", async () => {
    await withCustomers("warn", async ({ engine, source, profile }) => {
      source.exec("UPDATE customers SET tier = 3 WHERE id = 1");
      touch(source, [1], "Edited");
      assert.deepEqual(driftOf(await engine.run("customers")), {
        added: [],
        missing: [],
        retyped: [{ field: "tier", from: "string", to: "number" }],
      });
      assert.equal((await profile())?.tier, "number|string", "the profile forgot the type the run did not see");
      // a run that reads only a row whose tier is text: no change
      touch(source, [2], "Edited", "2031-01-01T00:00:00.000Z");
      assert.equal(driftOf(await engine.run("customers")), undefined);
    });
  });

  it("warn: what an execution cancelled mid-source found is on the run's record, and stays when the run is continued", async () => {
    const mid = midSource();
    await withCustomers(
      "warn",
      async ({ engine, source }) => {
        // a number in chunk 1 (rows 51–150), which the cancelled execution reads; the rest text
        source.exec("UPDATE customers SET tier = 3 WHERE id = 60");
        touch(source, allRows, "Edited");
        const retyped = { added: [], missing: [], retyped: [{ field: "tier", from: "string", to: "string|number" }] };
        const cancelled = await mid.cancelled(engine);
        assert.deepEqual(driftOf(cancelled), retyped);
        const continued = await engine.run("customers");
        assert.equal(continued.run.status, "succeeded");
        assert.deepEqual(driftOf(continued), retyped, "the continuation dropped what its rows were loaded with");
      },
      { rows: 1000, toCanonical: mid.toCanonical },
    );
  });

  it("ignore: nothing is compared, and the run loads", async () => {
    await withCustomers("ignore", async ({ engine, source, target, logs }) => {
      source.exec("ALTER TABLE customers DROP COLUMN tier");
      source.exec("ALTER TABLE customers ADD COLUMN region TEXT");
      touch(source, [1, 2], "Edited");
      const second = await engine.run("customers");
      assert.equal(second.run.status, "succeeded");
      assert.equal(driftOf(second), undefined);
      assert.equal(names(target, "Edited"), 2);
      assert.doesNotMatch(logs(), /source drift/);
    });
  });

  it("fail, CSV source: a column gone from the header stops the run at its first chunk; rows that could not be read say nothing missing", async () => {
    using tmp = tempDir();
    const { hub, target } = fileCustomers(tmp.dir, "csv");
    const write = (header: string, lines: readonly string[]) =>
      writeFileSync(join(tmp.dir, "customers.csv"), `${header}\n${lines.map((line) => `${line}\n`).join("")}`);
    const line = (id: number, name: string, note = true) => `${id},${name},c${id}@example.org,1.00${note ? ",x" : ""}`;
    write(
      "id,name,email,balance,note",
      Array.from({ length: 80 }, (_, i) => line(i + 1, "First")),
    );
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    assert.equal((await engine.run("customers")).run.status, "succeeded");

    // the first chunk's 50 lines have a field too many (unreadable, quarantined); the rest are good
    write(
      "id,name,email,balance,note",
      Array.from({ length: 80 }, (_, i) => (i < 50 ? `${line(i + 1, "Bad")},extra` : line(i + 1, "Second"))),
    );
    const unreadable = await engine.run("customers");
    assert.equal(unreadable.run.status, "partial", "not stopped for drift: unreadable lines say nothing of the fields");
    assert.equal(driftOf(unreadable), undefined);
    assert.equal(unreadable.counts.quarantined, 50);
    assert.equal(names(target, "Second"), 30);

    // a new column, and the first chunk's lines unreadable: judged at the first chunk whose lines could be read,
    // before any is loaded
    write(
      "id,name,email,balance,note,vip",
      Array.from({ length: 80 }, (_, i) => (i < 50 ? line(i + 1, "Bad") : `${line(i + 1, "Vip")},yes`)),
    );
    const added = await engine.run("customers");
    assert.equal(added.run.status, "failed");
    assert.equal(added.run.error?.code, ErrorCode.SourceDrift);
    assert.deepEqual(driftOf(added), { added: ["vip"], missing: [], retyped: [] });
    assert.equal(added.counts.quarantined, 50);
    assert.equal(names(target, "Vip"), 0, "nothing loaded");

    write(
      "id,name,email,balance",
      Array.from({ length: 80 }, (_, i) => line(i + 1, "Third", false)),
    );
    const dropped = await engine.run("customers", { fresh: true });
    assert.equal(dropped.run.status, "failed");
    assert.equal(dropped.run.error?.code, ErrorCode.SourceDrift);
    assert.deepEqual(driftOf(dropped), { added: [], missing: ["note"], retyped: [] });
    assert.equal(names(target, "Third"), 0, "nothing loaded");
  });

  it("fail, NDJSON source: a field absent from the first chunk does not stop the run (a later document may carry it); missing from the whole extraction, it is recorded at the end; a field new in a later chunk stops the run there", async () => {
    using tmp = tempDir();
    const { hub, target } = fileCustomers(tmp.dir, "ndjson");
    const write = (documents: readonly Record<string, unknown>[]) => writeDocuments(tmp.dir, documents);
    // the first run sees `note` only in the last document, past the first chunk (50 documents)
    write(Array.from({ length: 120 }, (_, i) => customerDocument(i + 1, i === 119 ? { note: "vip" } : {})));
    await using store = await openStore(tmp.dir);
    const { logger, text: logs } = captureLogs("warn");
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store, logger });
    assert.equal((await engine.run("customers")).run.status, "succeeded");
    assert.equal((await store.getProfile("customers"))?.note, "string");

    // the same: `note` absent from the first chunk, present later; nothing missing
    const same = await engine.run("customers");
    assert.equal(same.run.status, "succeeded");
    assert.equal(driftOf(same), undefined);

    // no document carries `note` now: not known missing before the end, so the run loads, and records it then
    write(Array.from({ length: 120 }, (_, i) => customerDocument(i + 1, { name: `Renamed ${i + 1}` })));
    const gone = await engine.run("customers");
    assert.equal(gone.run.status, "succeeded");
    assert.deepEqual(driftOf(gone), { added: [], missing: ["note"], retyped: [] });
    assert.equal(
      (target.prepare("SELECT count(*) AS n FROM clients WHERE full_name LIKE 'Renamed %'").get() as { n: number }).n,
      120,
    );
    // under 'fail', what only the end showed is not taken as the source's shape: the next run tells it again
    assert.equal((await store.getProfile("customers"))?.note, "string");
    assert.deepEqual(driftOf(await engine.run("customers")), { added: [], missing: ["note"], retyped: [] });

    // a field new from the 101st document on (the second chunk: 50, then 100): the run stops at that chunk, before
    // loading it (the first chunk loaded)
    write(
      Array.from({ length: 120 }, (_, i) =>
        customerDocument(i + 1, { name: `Vip ${i + 1}`, ...(i >= 100 ? { vip: true } : {}) }),
      ),
    );
    const late = await engine.run("customers");
    assert.equal(late.run.status, "failed");
    assert.equal(late.run.error?.code, ErrorCode.SourceDrift);
    assert.deepEqual(driftOf(late), { added: ["vip"], missing: [], retyped: [] });
    assert.match(logs(), /source drift in inbox\.Customer at chunk 1: new field\(s\) vip/);
    const vips = () =>
      (target.prepare("SELECT count(*) AS n FROM clients WHERE full_name LIKE 'Vip %'").get() as { n: number }).n;
    assert.equal(vips(), 50, "only the first chunk loaded");

    // accepted, the run continued reads on; a resumed read of documents cannot tell `note` gone, nor drop it
    const accepted = await engine.run("customers", { acceptDrift: true });
    assert.equal(accepted.run.id, late.run.id);
    assert.equal(accepted.run.status, "succeeded");
    assert.equal(vips(), 120);
    const kept = await store.getProfile("customers");
    assert.equal(kept?.vip, "boolean");
    assert.equal(kept?.note, "string");
    // a whole read tells it; accepted, the source as it is now is the flow's shape, and the next run finds nothing
    assert.deepEqual(driftOf(await engine.run("customers")), { added: [], missing: ["note"], retyped: [] });
    assert.deepEqual(driftOf(await engine.run("customers", { acceptDrift: true })), {
      added: [],
      missing: ["note"],
      retyped: [],
    });
    const profile = await store.getProfile("customers");
    assert.equal(profile?.vip, "boolean");
    assert.equal(profile?.note, undefined);
    assert.equal(driftOf(await engine.run("customers")), undefined);
  });

  it("fail, NDJSON source: fields are judged on every document read, not only on the sampled ones", async () => {
    using tmp = tempDir();
    // chunks of 50, 100, 200, 400: of the third (documents 151–350) only the first 100 are sampled for types
    const { hub } = fileCustomers(tmp.dir, "ndjson", 1000);
    const write = (documents: readonly Record<string, unknown>[]) => writeDocuments(tmp.dir, documents);
    const documents = (extra: (id: number) => Record<string, unknown>) =>
      Array.from({ length: 400 }, (_, i) => customerDocument(i + 1, extra(i + 1)));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    // `note` in a sampled document
    write(documents((id) => (id === 120 ? { note: "x" } : {})));
    assert.equal((await engine.run("customers")).run.status, "succeeded");
    // moved past the sample: still there
    write(documents((id) => (id === 300 ? { note: "x" } : {})));
    const moved = await engine.run("customers");
    assert.equal(moved.run.status, "succeeded");
    assert.equal(driftOf(moved), undefined, "a field of an unsampled document read as missing");
    // a new field in an unsampled document only: new, and the run stops at its chunk
    write(documents((id) => (id === 300 ? { note: "x", vip: true } : {})));
    const added = await engine.run("customers");
    assert.equal(added.run.error?.code, ErrorCode.SourceDrift);
    assert.deepEqual(driftOf(added), { added: ["vip"], missing: [], retyped: [] });
  });

  it("distributed: a drift found by an extraction is on the run's record when the run ends before the extraction does", async () => {
    await withDistributedEntries(
      (app) => entriesTablesSql(app, 2000),
      {
        drift: "warn",
        // the first quarantined record stops the run (chunk 0), while the extraction is far from its end
        failure: { maxFailed: 0 },
        toCanonical: (row) => {
          if (row.id === 5 && row.tier !== undefined) throw new FrancaError(ErrorCode.ValidationFailed, "refused");
          return { id: row.id as number, name: row.name as string };
        },
      },
      async (engine, app) => {
        await pgStatements([`ALTER TABLE ${app}.src ADD COLUMN tier text`]);
        const stopped = await engine.run("entries");
        assert.equal(stopped.run.status, "failed");
        assert.equal(stopped.run.extractDone, false, "the test needs a run that ended before its extraction");
        assert.deepEqual(driftOf(stopped), { added: ["tier"], missing: [], retyped: [] });
      },
    );
  });

  it("distributed, fail: a type first seen after the first chunk stops the run at that chunk; accepted, it is taken", async () => {
    // `meta` an object in every row: the flow's profile
    const objects = (app: string) => [
      ...entriesTablesSql(app, 30),
      `ALTER TABLE ${app}.src ADD COLUMN meta jsonb`,
      `UPDATE ${app}.src SET meta = '{"a": 1}'`,
    ];
    await withDistributedEntries(objects, { drift: "fail" }, async (engine, app) => {
      // an array in the rows of the last chunk only (chunks of 10): the run stops at that chunk, the others loaded
      await pgStatements([`UPDATE ${app}.src SET meta = '[1]', name = 'later' WHERE id > 20`]);
      const retyped = { added: [], missing: [], retyped: [{ field: "meta", from: "object", to: "object|array" }] };
      const later = async () =>
        Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst WHERE name = 'later'`]))[0]?.n);
      const stopped = await engine.run("entries");
      assert.equal(stopped.run.status, "failed");
      assert.equal(stopped.run.error?.code, ErrorCode.SourceDrift);
      assert.deepEqual(driftOf(stopped), retyped);
      assert.equal(await later(), 0, "the chunk that showed the change was loaded");
      // continued, it stops again there
      assert.equal((await engine.run("entries")).run.error?.code, ErrorCode.SourceDrift);
      // accepted, it loads the rest, and the change is the flow's shape
      const accepted = await engine.run("entries", { acceptDrift: true });
      assert.equal(accepted.run.status, "succeeded");
      // the continuation's own finding: it read the last chunk only
      assert.deepEqual(driftOf(accepted), {
        added: [],
        missing: [],
        retyped: [{ field: "meta", from: "object", to: "array" }],
      });
      assert.equal(await later(), 10);
      assert.equal(driftOf(await engine.run("entries")), undefined, "the accepted change was not taken");
    });
  });

  it("distributed, PostgreSQL source: a dropped column stops the run at its extraction; set right, the run continued records no drift; accepted (queued), it loads", async () => {
    const tiers = (app: string) => [
      ...entriesTablesSql(app, 30),
      `ALTER TABLE ${app}.src ADD COLUMN tier text DEFAULT 'basic'`,
    ];
    await withDistributedEntries(tiers, { drift: "fail" }, async (engine, app) => {
      const edited = async () =>
        Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst WHERE name = 'edited'`]))[0]?.n);

      await pgStatements([`ALTER TABLE ${app}.src DROP COLUMN tier`, `UPDATE ${app}.src SET name = 'edited'`]);
      const stopped = await engine.run("entries");
      assert.equal(stopped.run.status, "failed");
      assert.equal(stopped.run.error?.code, ErrorCode.SourceDrift);
      assert.deepEqual(driftOf(stopped), { added: [], missing: ["tier"], retyped: [] });
      assert.equal(await edited(), 0, "nothing loaded");

      // the column back: continued, the run finds no drift, and its record says so
      await pgStatements([`ALTER TABLE ${app}.src ADD COLUMN tier text DEFAULT 'gold'`]);
      const setRight = await engine.run("entries");
      assert.equal(setRight.run.id, stopped.run.id);
      assert.equal(setRight.run.status, "succeeded");
      assert.equal(driftOf(setRight), undefined, "the drift of the stopped execution outlived it");
      assert.equal(await edited(), 30);

      // dropped again, and accepted as the franca command queues a run for the workers
      await pgStatements([`ALTER TABLE ${app}.src DROP COLUMN tier`, `UPDATE ${app}.src SET name = 'again'`]);
      const again = await engine.run("entries");
      assert.equal(again.run.error?.code, ErrorCode.SourceDrift);
      const queued = await engine.enqueue("entries", { acceptDrift: true });
      assert.equal(queued.id, again.run.id);
      const accepted = await withWorker(engine, () => ended(engine, queued.id));
      assert.equal(accepted.status, "succeeded");
      assert.equal(accepted.stats.acceptDrift, true);
      assert.equal(
        Number((await pgStatements([`SELECT count(*) AS n FROM ${app}.dst WHERE name = 'again'`]))[0]?.n),
        30,
      );
      const next = await engine.run("entries");
      assert.equal(next.run.status, "succeeded");
      assert.equal(driftOf(next), undefined);
    });
  });
});

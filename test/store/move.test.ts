import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import pg from "pg";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { Engine } from "../../src/engine/engine.ts";
import { type MoveProgress, moveStore } from "../../src/store/move.ts";
import { PostgresStore } from "../../src/store/postgres/store.ts";
import type { Store } from "../../src/store/types.ts";
import {
  createClientsTarget,
  createCustomerSource,
  customersHub,
  openStore,
  tempDir,
  toClient,
} from "../support/fixtures.ts";

const url = "postgres://postgres@127.0.0.1:5432/test";
const prefix = `franca_mv${randomBytes(4).toString("hex")}`;
const schemas: string[] = [];
function newSchema(): string {
  const schema = `${prefix}_${schemas.length}`;
  schemas.push(schema);
  return schema;
}

after(async () => {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
});

const erpTarget = "erp.Customer";
const allKeys = Array.from({ length: 300 }, (_, i) => String(i + 1));

/** Everything a store says about the hub's state, through the Store interface. */
async function snapshot(store: Store) {
  const runs = await store.listRuns({ limit: 1000 });
  const perRun = [];
  for (const run of runs) {
    const chunks = await store.chunkStates(run.id);
    const staged = [];
    for (const chunk of chunks) {
      staged.push([
        await store.readStaged(run.id, chunk.seq, "extracted"),
        await store.readStaged(run.id, chunk.seq, "canonical"),
      ]);
    }
    perRun.push({
      id: run.id,
      counts: await store.counts(run.id),
      records: await store.records(run.id, { limit: 1_000_000 }),
      chunks,
      staged,
    });
  }
  return {
    runs,
    perRun,
    cursor: await store.getCursor("customers"),
    profile: await store.getProfile("customers"),
    hashes: [...(await store.getHashes(erpTarget, allKeys)).entries()].sort(),
    cache: [...(await store.cacheGet("taxRate", ["DE", "FR"], 1_500)).entries()].sort(),
  };
}

describe("moving a SQLite store to PostgreSQL", () => {
  it("moves every run, record, cursor, hash and staged chunk; the failed run resumes from PostgreSQL", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300, badEmails: [3, 150] });
    const erp = createClientsTarget(join(tmp.dir, "erp.db"));
    const down = { erp: false };
    // erp's writes of customer 250 fail while `down.erp` is set
    const hub = customersHub(tmp.dir, {
      fromCanonical: (customer) => {
        if (down.erp && customer.id === "250") {
          throw new FrancaError(ErrorCode.SystemUnavailable, "erp is restarting", { errorClass: "transient" });
        }
        return toClient(customer);
      },
    });
    const file = join(tmp.dir, "franca.db");

    // --- on SQLite: a partial run (two quarantined), a replay of it, then a run that fails on one record
    const sqliteStore = await openStore(tmp.dir);
    let before: Awaited<ReturnType<typeof snapshot>>;
    let failedRunId: number;
    try {
      const engine = await Engine.open({ hub, baseDir: tmp.dir, store: sqliteStore });
      const first = await engine.run("customers");
      assert.equal(first.run.status, "partial");
      assert.equal(first.counts.quarantined, 2);
      const replay = await sqliteStore.startRun({
        flow: "customers",
        kind: "replay",
        trigger: "test",
        targets: [erpTarget],
        owner: engine.owner,
        now: Date.now(),
        parentId: first.run.id,
      });
      await sqliteStore.finishRun(replay.id, engine.owner, { status: "succeeded" }, Date.now());
      source.exec(
        "UPDATE customers SET name = 'Renamed', updated_at = '2030-01-01T00:00:00.000Z' WHERE id IN (250, 251)",
      );
      down.erp = true;
      const failed = await engine.run("customers");
      assert.equal(failed.run.status, "failed");
      assert.equal(failed.counts.targets[erpTarget]?.failed, 1);
      failedRunId = failed.run.id;
      await sqliteStore.cacheSet(
        "taxRate",
        [
          { key: "DE", value: "0.19" },
          { key: "FR", value: { rate: "0.20" } },
        ],
        2_000,
        1_000,
      );
      await engine.close();
      before = await snapshot(sqliteStore);
    } finally {
      await sqliteStore.close();
    }
    assert.equal(before.runs.length, 3);
    const failedBefore = before.perRun.find((run) => run.id === failedRunId);
    assert.ok(
      failedBefore?.staged.every(([extracted, canonical]) => extracted !== undefined && canonical !== undefined),
    );

    // --- the move
    const schema = newSchema();
    const progress: MoveProgress[] = [];
    const counts = await moveStore(file, url, { schema, onProgress: (item) => progress.push(item) });
    const db = new DatabaseSync(file, { readOnly: true });
    const rowsOf = (table: string) => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    const stagedBefore = before.perRun.reduce(
      (sum, run) =>
        sum +
        run.staged.reduce(
          (n, [extracted, canonical]) => n + Number(extracted !== undefined) + Number(canonical !== undefined),
          0,
        ),
      0,
    );
    assert.deepEqual(counts, {
      runs: 3,
      chunks: rowsOf("chunks"),
      chunk_loads: rowsOf("chunk_loads"),
      outcomes: rowsOf("outcomes"),
      cursors: 1,
      profiles: 1,
      target_hashes: rowsOf("target_hashes"),
      lookup_cache: 2,
      staged: stagedBefore,
    });
    db.close();
    assert.ok(counts.outcomes >= 300 && counts.staged >= 8, `a real history was moved: ${JSON.stringify(counts)}`);
    for (const [table, rows] of Object.entries(counts)) {
      assert.deepEqual(
        progress.filter((item) => item.table === table && item.done),
        [{ table, rows, done: true }],
        `progress reports the end of ${table}`,
      );
    }

    // --- on PostgreSQL: the same state, then the failed run resumed, then a run that finds nothing changed
    const store = new PostgresStore(url, { schema });
    await store.migrate();
    try {
      assert.deepEqual(await snapshot(store), before);
      down.erp = false;
      const engine = await Engine.open({ hub, baseDir: tmp.dir, store });
      const resumed = await engine.run("customers");
      assert.equal(resumed.run.id, failedRunId, "the failed run is continued from PostgreSQL");
      assert.equal(resumed.run.status, "succeeded");
      assert.equal(resumed.run.stats.resumes, 1);
      assert.equal(resumed.counts.extracted, 2, "nothing extracted again: the staged chunk was read");
      assert.deepEqual(resumed.counts.targets[erpTarget], { loaded: 2, unchanged: 0, quarantined: 0, failed: 0 });
      assert.equal(
        (erp.prepare("SELECT full_name FROM clients WHERE code = '250'").get() as { full_name: string }).full_name,
        "Renamed",
      );
      assert.deepEqual(await store.getCursor("customers"), ["2030-01-01T00:00:00.000Z", 251]);

      source.exec("UPDATE customers SET updated_at = '2031-01-01T00:00:00.000Z'");
      const again = await engine.run("customers");
      assert.equal(again.run.id, 4, "new run ids continue after the moved ones");
      assert.equal(again.run.status, "partial");
      assert.equal(again.counts.extracted, 300);
      assert.equal(again.counts.quarantined, 2);
      assert.deepEqual(again.counts.targets[erpTarget], { loaded: 0, unchanged: 298, quarantined: 0, failed: 0 });
      await engine.close();
    } finally {
      await store.close();
    }
  });

  it("refuses a target that already holds runs, and a source with a running run", async () => {
    using tmp = tempDir();
    const file = join(tmp.dir, "franca.db");
    const sqliteStore = await openStore(tmp.dir);
    const run = await sqliteStore.startRun({
      flow: "f",
      kind: "flow",
      trigger: "test",
      targets: [],
      owner: "elsewhere:1:a",
      now: 1_000,
    });
    const schema = newSchema();
    try {
      await assert.rejects(
        moveStore(file, url, { schema }),
        (error: unknown) =>
          error instanceof FrancaError &&
          error.code === ErrorCode.RunLocked &&
          /run 1 of flow 'f' is running/.test(error.message),
      );
      await sqliteStore.finishRun(run.id, "elsewhere:1:a", { status: "failed" }, 2_000);
      const first = await moveStore(file, url, { schema });
      assert.equal(first.runs, 1);
      await assert.rejects(
        moveStore(file, url, { schema }),
        /already holds 1 run: a store is moved into an empty one only/,
      );
      await assert.rejects(moveStore(join(tmp.dir, "missing.db"), url, { schema: newSchema() }), /no SQLite store at/);
    } finally {
      await sqliteStore.close();
    }
    const store = new PostgresStore(url, { schema });
    try {
      assert.equal((await store.listRuns()).length, 1, "the refused move changed nothing");
      assert.equal(
        (await store.startRun({ flow: "f", kind: "flow", trigger: "t", targets: [], owner: "o", now: 3 })).id,
        2,
      );
    } finally {
      await store.close();
    }
  });
});

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startSimApi } from "../../sim/api.ts";
import { http } from "../../src/connectors/http/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import type { FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { lookup } from "../../src/core/lookup.ts";
import { Engine } from "../../src/engine/engine.ts";
import { openStore as openHubStore } from "../../src/store/open.ts";
import type { Store } from "../../src/store/types.ts";
import {
  Customer,
  createClientsTarget,
  createCustomerSource,
  openStore,
  stamp,
  tempDir,
  toClient,
  toCustomer,
} from "../support/fixtures.ts";

const count = (db: { prepare(sql: string): { get(): unknown } }, sql: string) =>
  (db.prepare(sql).get() as { n: number }).n;

/**
 * The real store, watched: `replace` gives some of its methods in place of its own (with the real store to call);
 * `cancelAfterLoad` cancels the run (`cancel`) just after the load of that chunk is recorded, before the engine goes on.
 */
function watched(
  real: Store,
  cancel: AbortController,
  cancelAfterLoad: number,
  replace: Partial<Record<keyof Store, (...args: never[]) => unknown>> = {},
): Store {
  const saveLoad = async (...args: Parameters<Store["saveLoad"]>) => {
    await real.saveLoad(...args);
    if (args[1] === cancelAfterLoad) cancel.abort();
  };
  return new Proxy(real, {
    get(target, property) {
      const own = property === "saveLoad" ? saveLoad : replace[property as keyof Store];
      if (own !== undefined) return own;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * crm.customers → erp.clients over two SQLite files in `dir`, with a mapping that repairs the broken emails once
 * `fix.on` is set (the fix a replay is for); `name` reshapes a row's name; `archive`: a second target, archive.clients
 * in archive.db, after erp.
 */
function repairingHub(
  dir: string,
  fix: { on: boolean },
  settings: { chunkSize?: number; name?: (row: Record<string, unknown>) => string; archive?: boolean } = {},
) {
  const crm = sqlite("crm", { file: join(dir, "crm.db") });
  const erp = sqlite("erp", { file: join(dir, "erp.db") });
  const archive = sqlite("archive", { file: join(dir, "archive.db") });
  const { name, archive: archived, ...flowSettings } = settings;
  const erpTarget = bind(erp, Customer, { table: "clients", key: "code", fromCanonical: toClient });
  return defineHub({
    systems: archived === true ? [crm, erp, archive] : [crm, erp],
    entities: [Customer],
    flows: [
      flow("customers", {
        from: bind(crm, Customer, {
          table: "customers",
          key: "id",
          cursor: "updated_at",
          toCanonical: (row) => ({
            ...toCustomer(row),
            ...(name === undefined ? {} : { name: name(row) }),
            ...(fix.on && row.email === "not-an-email" ? { email: `repaired-${String(row.id)}@example.org` } : {}),
          }),
        }),
        to:
          archived === true
            ? [erpTarget, bind(archive, Customer, { table: "clients", key: "code", fromCanonical: toClient })]
            : erpTarget,
        ...flowSettings,
      }),
    ],
  });
}

describe("replay", () => {
  it("transforms again, with the fixed mapping, only the records quarantined before load", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 500, badEmails: [7, 250, 499] });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const fix = { on: false };
    const hub = repairingHub(tmp.dir, fix, { chunkSize: 100 });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const first = await engine.run("customers");
    assert.equal(first.run.status, "partial");
    fix.on = true;
    const replay = await engine.replay(first.run.id);
    assert.equal(replay.run.kind, "replay");
    assert.equal(replay.run.parentId, first.run.id);
    assert.equal(replay.run.status, "succeeded");
    assert.deepEqual(replay.plan, { retransform: 3, reload: { "erp.Customer": 0 } });
    assert.equal(replay.counts.extracted, 3);
    assert.equal(replay.counts.targets["erp.Customer"]?.loaded, 3);
    assert.equal(count(target, "SELECT count(*) AS n FROM clients"), 500);
    assert.equal(
      (target.prepare("SELECT mail FROM clients WHERE code = '250'").get() as { mail: string }).mail,
      "repaired-250@example.org",
    );
    assert.deepEqual(await store.getCursor("customers"), [stamp(500), 500], "a replay does not move the cursor");
    assert.equal(
      (await store.records(first.run.id, { status: "quarantined" })).length,
      3,
      "the first run's ledger stays as it was",
    );
    const again = await engine.replay(first.run.id);
    assert.equal(again.counts.targets["erp.Customer"]?.unchanged, 3, "replaying twice sends nothing twice");
  });

  it("loads again, to that target only and without a new lookup, the records a target refused", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
    const warehouse = createClientsTarget(join(tmp.dir, "erp.db"));
    warehouse.exec("CREATE TABLE writes (code TEXT)");
    warehouse.exec("CREATE TRIGGER audit AFTER INSERT ON clients BEGIN INSERT INTO writes VALUES (new.code); END");
    const refused = new Set(["10", "150", "299"]);
    const billing = await startSimApi({
      collections: { customers: { key: "id", records: [] } },
      batch: { reject: { when: (record) => refused.has(String(record.id)), error: "credit check pending" } },
    });
    const segments = await startSimApi({
      collections: { segments: { key: "id", records: [{ id: "all", name: "retail" }] } },
    });
    const store = await openStore(tmp.dir);
    const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
    const erp = sqlite("erp", { file: join(tmp.dir, "erp.db") });
    const api = http("billing", { baseUrl: billing.url });
    const segmentApi = http("segments", { baseUrl: segments.url });
    const segment = lookup("segment", {
      system: segmentApi,
      get: (id: string, { client, signal }) => client.get<{ name: string }>(`/segments/${id}`, { signal }),
    });
    const hub = defineHub({
      systems: [crm, erp, api, segmentApi],
      entities: [Customer],
      lookups: [segment],
      flows: [
        flow("customers", {
          from: bind(crm, Customer, {
            table: "customers",
            key: "id",
            cursor: "updated_at",
            toCanonical: async (row, ctx) => {
              const { name } = await ctx.lookup(segment, "all");
              return { ...toCustomer(row), name: `${String(row.name)} (${name})` };
            },
          }),
          to: [
            bind(api, Customer, { path: "/customers", mode: "batch", batchPath: "/customers/batch", batchSize: 50 }),
            bind(erp, Customer, { table: "clients", key: "code", fromCanonical: toClient }),
          ],
          chunkSize: 100,
        }),
      ],
    });
    const engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    try {
      const first = await engine.run("customers");
      assert.equal(first.run.status, "partial");
      assert.deepEqual(first.counts.targets["billing.Customer"], {
        loaded: 297,
        unchanged: 0,
        quarantined: 3,
        failed: 0,
      });
      assert.equal(first.counts.targets["erp.Customer"]?.loaded, 300);
      const quarantined = await store.records(first.run.id, { status: "quarantined" });
      assert.match(quarantined[0]?.message ?? "", /credit check pending/);

      refused.clear(); // the billing side fixed its check
      const lookupsBefore = segments.stats.requests.get;
      const writesBefore = count(warehouse, "SELECT count(*) AS n FROM writes");
      const replay = await engine.replay(first.run.id, { statuses: ["quarantined"] });
      assert.equal(replay.run.status, "succeeded");
      assert.deepEqual(replay.plan, { retransform: 0, reload: { "billing.Customer": 3, "erp.Customer": 0 } });
      assert.deepEqual(replay.counts.targets["billing.Customer"], {
        loaded: 3,
        unchanged: 0,
        quarantined: 0,
        failed: 0,
      });
      assert.deepEqual(replay.counts.targets["erp.Customer"], { loaded: 0, unchanged: 0, quarantined: 0, failed: 0 });
      assert.deepEqual(
        billing
          .records("customers")
          .map((record) => String(record.id))
          .sort((a, b) => Number(a) - Number(b))
          .filter((id) => ["10", "150", "299"].includes(id)),
        ["10", "150", "299"],
      );
      assert.equal(billing.records("customers").length, 300);
      assert.equal(billing.duplicates(), 0);
      assert.equal(segments.stats.requests.get, lookupsBefore, "no lookup was made again");
      assert.equal(
        count(warehouse, "SELECT count(*) AS n FROM writes"),
        writesBefore,
        "the other target was not written",
      );
    } finally {
      await engine.close();
      await store.close();
      await billing.close();
      await segments.close();
    }
  });

  it("maps a binary column from the staged rows as the first run saw it", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 20, badEmails: [7] });
    source.exec("ALTER TABLE customers ADD COLUMN badge BLOB");
    source.exec("UPDATE customers SET badge = X'00FF10'");
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const fix = { on: false };
    // node:sqlite gives a BLOB as a Uint8Array
    const hub = repairingHub(tmp.dir, fix, {
      name: (row) => `${String(row.name)} ${Buffer.from(row.badge as Uint8Array).toString("hex")}`,
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const first = await engine.run("customers");
    assert.equal(first.counts.quarantined, 1);
    fix.on = true;
    // the replay maps record 7 from its staged source row, not from the source
    const replay = await engine.replay(first.run.id);
    assert.equal(replay.counts.targets["erp.Customer"]?.loaded, 1);
    const names = target.prepare("SELECT code, full_name FROM clients WHERE code IN ('6', '7') ORDER BY code").all();
    assert.deepEqual(
      names.map((row) => row.full_name),
      ["Customer 6 00ff10", "Customer 7 00ff10"],
    );
  });

  it("keeps, as the run goes, only the staged chunks a resume or a replay could read", async () => {
    for (const threaded of [false, true]) {
      using tmp = tempDir();
      createCustomerSource(join(tmp.dir, "crm.db"), { rows: 480, badEmails: [205] });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      // the second target (loaded after the first, which takes every record) refuses record 460 until the trigger goes
      const archive = createClientsTarget(join(tmp.dir, "archive.db"));
      archive.exec(`CREATE TRIGGER refuse BEFORE INSERT ON clients WHEN NEW.code = '460'
        BEGIN SELECT RAISE(ABORT, 'record 460 refused'); END`);
      // the franca command's store (its staging written from the engine's thread), and the store on this thread
      await using store = threaded ? await openHubStore("franca.db", tmp.dir) : await openStore(tmp.dir);
      const fix = { on: false };
      const hub = repairingHub(tmp.dir, fix, { chunkSize: 10, archive: true });
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
      const first = await engine.run("customers");
      assert.equal(first.run.status, "partial");
      // 48 chunks, in segment files of 16: the first segment was released whole during the run (a run that is not a
      // success keeps its staging); the second holds chunk 20, whose record 205 was quarantined by the transform, the
      // third chunk 45, whose record 460 the second target refused
      const id = first.run.id;
      assert.deepEqual(readdirSync(join(tmp.dir, "franca.db.staging")).sort(), [
        `${id}.canonical.1`,
        `${id}.canonical.2`,
        `${id}.extracted.1`,
        `${id}.extracted.2`,
      ]);
      fix.on = true;
      archive.exec("DROP TRIGGER refuse");
      const replay = await engine.replay(id);
      assert.equal(replay.run.status, "succeeded");
      assert.deepEqual(replay.plan, { retransform: 1, reload: { "erp.Customer": 0, "archive.Customer": 1 } });
      assert.equal(count(target, "SELECT count(*) AS n FROM clients"), 480);
      assert.equal(count(archive, "SELECT count(*) AS n FROM clients"), 480);
      assert.equal(count(target, "SELECT count(*) AS n FROM clients WHERE mail = 'repaired-205@example.org'"), 1);
    }
  });

  it("releases nothing once the run is stopping; the run then resumes to its end", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 480 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    const store = await openStore(tmp.dir);
    const cancel = new AbortController();
    const released: { seq: number; afterCancel: boolean }[] = [];
    // cancelled just after chunk 15's load is recorded (the last chunk of the first segment file), before the engine
    // would release it
    const releaseStaged = async (runId: number, seq: number) => {
      released.push({ seq, afterCancel: cancel.signal.aborted });
      await store.releaseStaged(runId, seq);
    };
    try {
      const hub = repairingHub(tmp.dir, { on: false }, { chunkSize: 10 });
      await using engine = await Engine.open({
        hub,
        baseDir: tmp.dir,
        store: watched(store, cancel, 15, { releaseStaged }),
      });
      const first = await engine.run("customers", { signal: cancel.signal });
      assert.equal(first.run.status, "cancelled");
      assert.ok(
        released.some((release) => release.seq < 15),
        "chunks loaded before the cancel were released",
      );
      // (a later chunk may have been loaded and released before chunk 15, loads running side by side)
      assert.deepEqual(
        released.filter((release) => release.afterCancel || release.seq === 15),
        [],
        "no release once the run is stopping",
      );
      // the first segment keeps chunk 15, which a resume may read
      const staged = readdirSync(join(tmp.dir, "franca.db.staging"));
      assert.ok(staged.includes(`${first.run.id}.canonical.0`), staged.join(", "));
      const resumed = await engine.resume(first.run.id);
      assert.equal(resumed.run.status, "succeeded");
      assert.equal(count(target, "SELECT count(*) AS n FROM clients"), 480);
    } finally {
      await store.close();
    }
  });

  it("a resumed run whose chunk another process transformed or loaded, and released, after it planned skips that chunk", async () => {
    // the resume planned chunk 3's transform (then its load), or only its load
    for (const planned of ["extracted", "canonical"] as const) {
      using tmp = tempDir();
      createCustomerSource(join(tmp.dir, "crm.db"), { rows: 480 });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      const store = await openStore(tmp.dir);
      const cancel = new AbortController();
      let stale = false;
      let readBack: string | undefined = "not read";
      // The resume plans from a view in which chunk 3 was not transformed, or not loaded, yet: as if another process
      // (the run's earlier owner) did that, and released it, after this one read the chunks' states.
      const chunkStates = async (runId: number) => {
        const states = await store.chunkStates(runId);
        if (!stale) return states;
        return states.map((chunk) =>
          chunk.seq !== 3 ? chunk : { ...chunk, loaded: {}, transformed: planned === "canonical" },
        );
      };
      const readStaged = async (runId: number, seq: number, stage: "extracted" | "canonical") => {
        const staged = await store.readStaged(runId, seq, stage);
        if (seq === 3 && stage === planned) {
          stale = false;
          readBack = staged;
        }
        return staged;
      };
      try {
        const hub = repairingHub(tmp.dir, { on: false }, { chunkSize: 10 });
        // the first run is cancelled once chunk 20's load is recorded: chunks 0 to 15 were released, their segment
        // removed
        await using engine = await Engine.open({
          hub,
          baseDir: tmp.dir,
          store: watched(store, cancel, 20, { chunkStates, readStaged }),
        });
        const first = await engine.run("customers", { signal: cancel.signal });
        assert.equal(first.run.status, "cancelled");
        stale = true;
        const resumed = await engine.resume(first.run.id);
        assert.equal(readBack, undefined, `chunk 3's ${planned} records were asked for, and were gone`);
        assert.equal(resumed.run.status, "succeeded", JSON.stringify(resumed.run.error));
        assert.equal(resumed.counts.targets["erp.Customer"]?.loaded, 480);
        assert.equal(count(target, "SELECT count(*) AS n FROM clients"), 480);
      } finally {
        await store.close();
      }
    }
  });

  it("replays only the keys asked for", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 200, badEmails: [3, 4, 5] });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const fix = { on: false };
    await using engine = await Engine.open({ hub: repairingHub(tmp.dir, fix), baseDir: tmp.dir, store });
    const first = await engine.run("customers");
    fix.on = true;
    const replay = await engine.replay(first.run.id, { keys: ["4"] });
    assert.equal(replay.plan.retransform, 1);
    assert.equal(replay.counts.targets["erp.Customer"]?.loaded, 1);
    assert.deepEqual(
      target
        .prepare("SELECT code FROM clients WHERE code IN ('3', '4', '5')")
        .all()
        .map((row) => row.code),
      ["4"],
    );
  });
  it("never puts a record's older version over the one a later run loaded since (recorded unchanged)", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 20, badEmails: [5, 6] });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const fix = { on: false };
    await using engine = await Engine.open({ hub: repairingHub(tmp.dir, fix), baseDir: tmp.dir, store });
    const first = await engine.run("customers");
    assert.equal(first.run.status, "partial");
    // customer 5 is put right at the source, and a later run loads it as it is now
    source
      .prepare("UPDATE customers SET name = 'NEW', email = 'new5@example.org', updated_at = ? WHERE id = 5")
      .run(stamp(100));
    const second = await engine.run("customers");
    assert.equal(second.counts.targets["erp.Customer"]?.loaded, 1);
    // the mapping is fixed, and run 1 replayed: its version of customer 5 (the old row, repaired) is older
    fix.on = true;
    const replay = await engine.replay(first.run.id);
    assert.equal(replay.plan.retransform, 2);
    assert.equal(replay.counts.targets["erp.Customer"]?.loaded, 1, "customer 6 only");
    assert.equal(replay.counts.targets["erp.Customer"]?.unchanged, 1, "customer 5 kept as the later run loaded it");
    const row = (code: string) =>
      target.prepare("SELECT full_name, mail FROM clients WHERE code = ?").get(code) as {
        full_name: string;
        mail: string;
      };
    assert.deepEqual({ ...row("5") }, { full_name: "NEW", mail: "new5@example.org" });
    assert.deepEqual({ ...row("6") }, { full_name: "Customer 6", mail: "repaired-6@example.org" });
    assert.deepEqual(
      (await store.records(replay.run.id, { key: "5" })).map((outcome) => outcome.status),
      ["unchanged"],
      "the replay's ledger says what became of customer 5",
    );
    // customer 5 goes bad again, later than run 2: that run's replay is later than run 2's load, and loads it
    source.prepare("UPDATE customers SET email = 'not-an-email', updated_at = ? WHERE id = 5").run(stamp(101));
    fix.on = false;
    const third = await engine.run("customers");
    assert.equal((await store.records(third.run.id, { status: "quarantined" })).length, 1);
    fix.on = true;
    const replayThird = await engine.replay(third.run.id);
    assert.equal(replayThird.counts.targets["erp.Customer"]?.loaded, 1, "run 3's version is later than run 2's");
    assert.deepEqual({ ...row("5") }, { full_name: "NEW", mail: "repaired-5@example.org" });
  });

  it("records no run when there is nothing to replay, and names a key asked for that did not fail", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 20, badEmails: [3] });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const fix = { on: false };
    await using engine = await Engine.open({ hub: repairingHub(tmp.dir, fix), baseDir: tmp.dir, store });
    const first = await engine.run("customers");
    const second = await engine.run("customers");
    assert.equal(second.run.status, "succeeded");
    await assert.rejects(engine.replay(second.run.id), (error: FrancaError) => {
      assert.equal(error.code, "NOTHING_TO_REPLAY");
      assert.match(error.message, new RegExp(`run ${second.run.id} has nothing to replay`));
      return true;
    });
    await assert.rejects(engine.replay(first.run.id, { keys: ["3", "9"] }), (error: FrancaError) => {
      assert.equal(error.code, "USAGE");
      assert.match(error.message, /no quarantined or failed record with key '9'/);
      return true;
    });
    await assert.rejects(engine.replay(first.run.id, { statuses: ["failed"] }), /nothing to replay: no failed records/);
    assert.deepEqual(
      (await store.listRuns()).map((run) => run.id).sort(),
      [first.run.id, second.run.id],
      "no replay run was recorded",
    );
  });
  it("is not stopped by a source it does not read: a renamed cursor column stops a run, not a replay", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 20, badEmails: [3] });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const fix = { on: false };
    await using engine = await Engine.open({ hub: repairingHub(tmp.dir, fix), baseDir: tmp.dir, store });
    const first = await engine.run("customers");
    source.exec("ALTER TABLE customers RENAME COLUMN updated_at TO changed_at");
    await assert.rejects(engine.run("customers"), (error: FrancaError) => {
      assert.equal(error.code, "CONFIG_INVALID");
      assert.match(error.message, /flows\.customers\.from\.cursor: column 'updated_at' is not in table customers/);
      return true;
    });
    fix.on = true;
    const replay = await engine.replay(first.run.id);
    assert.equal(replay.run.status, "succeeded");
    assert.equal(replay.counts.targets["erp.Customer"]?.loaded, 1);
  });
});

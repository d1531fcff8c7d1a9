import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import {
  Customer,
  type CustomersHubOverrides,
  createClientsTarget,
  createCustomerSource,
  customersHub,
  failedAtFirstLoad,
  openStore,
  stamp,
  tempDir,
  toClient,
  toCustomer,
} from "../support/fixtures.ts";

describe("engine runs", () => {
  it("reads incrementally: a second run finds nothing new, an edit moves only the edited rows", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1000 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    const first = await engine.run("customers");
    assert.equal(first.run.status, "succeeded");
    assert.equal(first.counts.extracted, 1000);
    assert.equal(first.counts.chunks, 11, "50 (slow start), 9 × 100, 50");
    assert.equal(first.counts.targets["erp.Customer"]?.loaded, 1000);
    assert.deepEqual(first.run.cursorTo, [stamp(1000), 1000]);

    const second = await engine.run("customers");
    assert.equal(second.run.status, "succeeded");
    assert.equal(second.counts.extracted, 0);

    source.exec(
      "UPDATE customers SET name = 'Renamed', updated_at = '2030-01-01T00:00:00.000Z' WHERE id IN (10, 500, 999)",
    );
    const third = await engine.run("customers");
    assert.equal(third.counts.extracted, 3);
    assert.equal(third.counts.targets["erp.Customer"]?.loaded, 3);
    const renamed = target.prepare("SELECT code FROM clients WHERE full_name = 'Renamed' ORDER BY code").all();
    assert.deepEqual(
      renamed.map((row) => row.code),
      ["10", "500", "999"],
    );
    assert.equal((target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n, 1000);
  });

  it("reads a source without a cursor whole every run, so an edit to any row is seen", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
    const erp = sqlite("erp", { file: join(tmp.dir, "erp.db") });
    const hub = defineHub({
      systems: [crm, erp],
      entities: [Customer],
      flows: [
        flow("customers", {
          from: bind(crm, Customer, { table: "customers", key: "id", toCanonical: toCustomer }),
          to: bind(erp, Customer, { table: "clients", key: "code", fromCanonical: toClient }),
          chunkSize: 100,
        }),
      ],
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    await engine.run("customers");
    source.exec("UPDATE customers SET name = 'Edited' WHERE id = 5"); // an old row, no cursor column involved
    const second = await engine.run("customers");
    assert.equal(second.counts.extracted, 300);
    assert.deepEqual(second.counts.targets["erp.Customer"], { loaded: 1, unchanged: 299, quarantined: 0, failed: 0 });
    assert.equal(
      (target.prepare("SELECT full_name FROM clients WHERE code = '5'").get() as { full_name: string }).full_name,
      "Edited",
    );
    assert.equal(await store.getCursor("customers"), undefined);
  });

  it("gives a target mapping the record's envelope, so the target can keep its lineage", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 150 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    target.exec("ALTER TABLE clients ADD COLUMN lineage TEXT");
    await using store = await openStore(tmp.dir);
    const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
    const erp = sqlite("erp", { file: join(tmp.dir, "erp.db") });
    const hub = defineHub({
      systems: [crm, erp],
      entities: [Customer],
      flows: [
        flow("customers", {
          from: bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: toCustomer }),
          to: bind(erp, Customer, {
            table: "clients",
            key: "code",
            fromCanonical: (customer, _ctx, envelope) => ({
              ...toClient(customer),
              lineage: `${envelope.source.system}/${envelope.source.id}@${String(envelope.source.cursor)} run ${envelope.lineage.run} chunk ${envelope.lineage.chunk}`,
            }),
          }),
          chunkSize: 100,
        }),
      ],
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const summary = await engine.run("customers");
    const row = target.prepare("SELECT lineage FROM clients WHERE code = '120'").get() as { lineage: string };
    assert.equal(row.lineage, `crm/120@${stamp(120)} run ${summary.run.id} chunk 1`);
  });

  it("skips records whose content did not change, and counts them unchanged", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    await engine.run("customers");
    // touched (cursor moves) but the canonical content is the same: nothing is sent
    source.exec("UPDATE customers SET updated_at = '2031-01-01T00:00:00.000Z' WHERE id <= 50");
    const touched = await engine.run("customers");
    assert.equal(touched.counts.extracted, 50);
    assert.deepEqual(touched.counts.targets["erp.Customer"], { loaded: 0, unchanged: 50, quarantined: 0, failed: 0 });
    const ledger = await store.records(touched.run.id, { key: "7" });
    assert.equal(ledger[0]?.status, "unchanged");
  });

  it("sends again, once, records whose content did not change when the target's mapping changed", async () => {
    using tmp = tempDir();
    const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const touch = (stamp: string) => source.exec(`UPDATE customers SET updated_at = '${stamp}' WHERE id <= 50`);
    const runWith = async (overrides: CustomersHubOverrides) => {
      // a new engine and hub each time, as a new process would load the configuration
      await using engine = await Engine.open({ hub: customersHub(tmp.dir, overrides), baseDir: tmp.dir, store });
      return (await engine.run("customers")).counts.targets["erp.Customer"];
    };
    const shouting = (customer: ReturnType<typeof toCustomer>) => ({ ...toClient(customer), full_name: "CHANGED" });
    assert.equal((await runWith({}))?.loaded, 300);
    touch("2031-01-01T00:00:00.000Z");
    // the same mapping, loaded again from the configuration: unchanged
    assert.deepEqual(await runWith({}), { loaded: 0, unchanged: 50, quarantined: 0, failed: 0 });
    touch("2032-01-01T00:00:00.000Z");
    // fromCanonical changed: the same canonical content is sent again, and the target gets the new mapping's rows
    assert.deepEqual(await runWith({ fromCanonical: shouting }), {
      loaded: 50,
      unchanged: 0,
      quarantined: 0,
      failed: 0,
    });
    const changed = target.prepare("SELECT count(*) AS n FROM clients WHERE full_name = 'CHANGED'").get();
    assert.equal((changed as { n: number }).n, 50);
    touch("2033-01-01T00:00:00.000Z");
    // once sent through the new mapping, unchanged again
    assert.deepEqual(await runWith({ fromCanonical: shouting }), {
      loaded: 0,
      unchanged: 50,
      quarantined: 0,
      failed: 0,
    });
  });

  it("resends every record on request: reads an incremental source whole and refills a target emptied by hand", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    const clients = () => (target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n;
    await engine.run("customers");
    target.exec("DELETE FROM clients");
    const normal = await engine.run("customers");
    assert.equal(normal.counts.extracted, 0, "the cursor is past every row");
    assert.equal(clients(), 0);

    const resent = await engine.run("customers", { resend: true });
    assert.equal(resent.run.status, "succeeded");
    assert.equal(resent.run.stats.resend, true);
    assert.equal(resent.counts.extracted, 300);
    assert.deepEqual(resent.counts.targets["erp.Customer"], { loaded: 300, unchanged: 0, quarantined: 0, failed: 0 });
    assert.equal(clients(), 300);

    const after = await engine.run("customers");
    assert.equal(after.counts.extracted, 0, "the resend moved the cursor to the end again");
  });

  it("replays a resend as a resend: a record it could not load is sent though an older run loaded it", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 30 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    // the target refuses record 13 while refusing is on
    target.exec("CREATE TABLE refusing (on_ INTEGER NOT NULL); INSERT INTO refusing VALUES (0)");
    target.exec(`CREATE TRIGGER refuse BEFORE INSERT ON clients WHEN NEW.code = '13' AND (SELECT on_ FROM refusing) = 1
      BEGIN SELECT RAISE(ABORT, 'record 13 refused'); END`);
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    const has13 = () => target.prepare("SELECT count(*) AS n FROM clients WHERE code = '13'").get() as { n: number };
    await engine.run("customers");
    target.exec("DELETE FROM clients; UPDATE refusing SET on_ = 1");
    const resent = await engine.run("customers", { resend: true });
    assert.equal(resent.counts.targets["erp.Customer"]?.quarantined, 1);
    assert.equal(has13().n, 0);
    target.exec("UPDATE refusing SET on_ = 0");
    const replay = await engine.replay(resent.run.id);
    assert.equal(replay.run.stats.resend, true);
    assert.deepEqual(replay.counts.targets["erp.Customer"], { loaded: 1, unchanged: 0, quarantined: 0, failed: 0 });
    assert.equal(has13().n, 1);
  });

  it("quarantines invalid records with field path and reason, loads the rest, and ends partial", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 500, badEmails: [3, 250, 499] });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    const summary = await engine.run("customers");
    assert.equal(summary.run.status, "partial");
    assert.equal(summary.exitCode, 3);
    assert.equal(summary.counts.quarantined, 3);
    assert.equal(summary.counts.targets["erp.Customer"]?.loaded, 497);
    const quarantined = await store.records(summary.run.id, { status: "quarantined" });
    assert.deepEqual(
      quarantined.map((record) => [record.key, record.code, record.path, record.target]),
      [
        ["3", ErrorCode.ValidationFailed, "/email", null],
        ["250", ErrorCode.ValidationFailed, "/email", null],
        ["499", ErrorCode.ValidationFailed, "/email", null],
      ],
    );
    assert.match(quarantined[0]?.message ?? "", /email/);
    assert.equal((target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n, 497);
    // the cursor moved past the quarantined records: they wait for a replay, not for the next run
    assert.deepEqual(summary.run.cursorTo, [stamp(500), 500]);
  });

  it("stops at the record that crosses the failure policy, not at the end of the chunk", async () => {
    using tmp = tempDir();
    // chunk 0 is clean; chunk 1 (ids 101-200) has ten bad records
    const bad = [105, 110, 115, 120, 125, 130, 135, 140, 145, 150];
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1000, badEmails: bad });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({
      hub: customersHub(tmp.dir, { failure: { maxFailed: 3 } }),
      baseDir: tmp.dir,
      store,
    });
    const summary = await engine.run("customers");
    assert.equal(summary.run.status, "failed");
    assert.equal(summary.exitCode, 1);
    assert.equal(summary.run.error?.code, ErrorCode.FailureThreshold);
    // the summary counts the problems of the chunk that was stopped, as the ledger holds them
    assert.equal(summary.counts.quarantined, 4);
    // the fourth bad record stopped it: four in the ledger, not ten
    const quarantined = await store.records(summary.run.id, { status: "quarantined" });
    assert.deepEqual(
      quarantined.map((record) => record.key),
      ["105", "110", "115", "120"],
    );
    // nothing of the chunk that crossed the threshold, nor after it, was loaded
    const loaded = (
      target.prepare("SELECT count(*) AS n FROM clients WHERE CAST(code AS INTEGER) > 100").get() as { n: number }
    ).n;
    assert.equal(loaded, 0);
  });

  it("a run stopped by its failure budget and continued with the mapping fixed keeps none of its earlier problems", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300, badEmails: [105, 110, 115, 120, 125] });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const budget = { failure: { maxFailed: 3 } };
    {
      await using engine = await Engine.open({ hub: customersHub(tmp.dir, budget), baseDir: tmp.dir, store });
      const stopped = await engine.run("customers");
      assert.equal(stopped.run.error?.code, ErrorCode.FailureThreshold);
      assert.equal((await store.records(stopped.run.id, { status: "quarantined" })).length, 4);
    }
    // the mapping fixed: the chunk the budget stopped is transformed again, and its records all pass now
    const fixed = (row: Record<string, unknown>) => ({ ...toCustomer(row), email: `c${String(row.id)}@example.org` });
    await using engine = await Engine.open({
      hub: customersHub(tmp.dir, { ...budget, toCanonical: fixed }),
      baseDir: tmp.dir,
      store,
    });
    const resumed = await engine.resume(1);
    assert.equal(resumed.run.status, "succeeded");
    assert.equal(resumed.counts.quarantined, 0);
    assert.equal(resumed.counts.targets["erp.Customer"]?.loaded, 300);
    // the ledger agrees: no record is both quarantined and loaded, and a replay finds nothing to do
    assert.deepEqual(await store.records(1, { status: "quarantined" }), []);
    await assert.rejects(engine.replay(1), { code: ErrorCode.NothingToReplay });
  });

  it("stops on a failure ratio once enough records were seen", async () => {
    using tmp = tempDir();
    const bad = Array.from({ length: 100 }, (_, i) => i * 5 + 1); // 20 % of the first 500
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1000, badEmails: bad });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({
      hub: customersHub(tmp.dir, { failure: { maxFailedRatio: 0.1, minRecordsForRatio: 50 } }),
      baseDir: tmp.dir,
      store,
    });
    const summary = await engine.run("customers");
    assert.equal(summary.run.error?.code, ErrorCode.FailureThreshold);
    const quarantined = await store.records(summary.run.id, { status: "quarantined" });
    // 20 % from the first record on: crossed as soon as 50 records were seen (11 bad of 51)
    assert.equal(quarantined.length, 11);
  });

  it("never advances the cursor past a record that failed to load, and a later run loads it without re-extracting", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 500 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    let targetDown = true;
    const hub = customersHub(tmp.dir, {
      fromCanonical: (customer) => {
        if (targetDown && customer.id === "250") {
          throw new FrancaError(ErrorCode.SystemUnavailable, "erp is restarting", { errorClass: "transient" });
        }
        return toClient(customer);
      },
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const failed = await engine.run("customers");
    assert.equal(failed.run.status, "failed");
    assert.equal(failed.counts.targets["erp.Customer"]?.failed, 1);
    // chunks 0 and 1 (ids 1-150: 50, then 100) are final; chunk 2 (151-250) holds the failed record: the cursor
    // stops before it
    assert.deepEqual(await store.getCursor("customers"), [stamp(150), 150]);
    const failedRecord = await store.records(failed.run.id, { key: "250" });
    assert.equal(failedRecord[0]?.status, "failed");
    assert.equal(failedRecord[0]?.errorClass, "transient");

    targetDown = false;
    const resumed = await engine.run("customers");
    assert.equal(resumed.run.id, failed.run.id, "the unfinished run is continued, not restarted");
    assert.equal(resumed.run.status, "succeeded");
    assert.equal(resumed.counts.extracted, 500, "nothing was extracted twice");
    assert.equal(resumed.counts.targets["erp.Customer"]?.loaded, 500);
    assert.equal(resumed.counts.targets["erp.Customer"]?.failed, 0);
    assert.deepEqual(await store.getCursor("customers"), [stamp(500), 500]);
    assert.equal((target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n, 500);
  });

  it("records each system's calls of the run itself, not of the engine's earlier runs", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    const callsOf = (run: { stats: Record<string, unknown> }, system: string) =>
      (run.stats.systems as Record<string, { calls: number }>)[system]?.calls;
    const first = await engine.run("customers");
    assert.ok((callsOf(first.run, "erp") ?? 0) >= 3, "a write per chunk");
    const second = await engine.run("customers");
    assert.equal(second.counts.extracted, 0);
    assert.equal(callsOf(second.run, "erp"), 0, "nothing new: nothing written");
    assert.equal(callsOf((await store.getRun(second.run.id)) ?? { stats: {} }, "erp"), 0);
  });

  it("a continued run's budget counts its earlier failed records only if they fail again, each problem once", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 500 });
    await using store = await openStore(tmp.dir);
    let targetDown = true;
    const hub = customersHub(tmp.dir, {
      failure: { maxFailed: 10 },
      fromCanonical: (customer) => {
        const id = Number(customer.id);
        // 8 records of chunk 2 (ids 151-250) are refused for good, whether the target is down or not
        if (id >= 160 && id < 168)
          throw new FrancaError(ErrorCode.TargetRejected, `erp refuses ${id}`, { errorClass: "permanent" });
        // down: every other record from chunk 2 on fails at the target, which stops the run
        if (targetDown && id > 150)
          throw new FrancaError(ErrorCode.SystemUnavailable, "erp is restarting", { errorClass: "transient" });
        return toClient(customer);
      },
    });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const failed = await engine.run("customers");
    assert.equal(failed.run.status, "failed");
    assert.ok((failed.counts.targets["erp.Customer"]?.failed ?? 0) >= 90, JSON.stringify(failed.counts));
    targetDown = false;
    // The continued run loads chunk 2 again, whose 8 refusals are its only problems: 8 of the 10 allowed. Counted as
    // spent, the earlier failures (90 or more) would stop it at its first problem; the chunk's earlier refusals, counted
    // once as spent and once more when refused again, would stop it at 16.
    const resumed = await engine.run("customers");
    assert.equal(resumed.run.id, failed.run.id);
    assert.equal(resumed.run.status, "partial", resumed.run.error?.message);
    assert.equal(resumed.counts.targets["erp.Customer"]?.loaded, 492);
    assert.equal(resumed.counts.targets["erp.Customer"]?.quarantined, 8);
    assert.equal(resumed.counts.targets["erp.Customer"]?.failed, 0);
  });

  it("a target that refuses every write fails the run, advances nothing and loses nothing", async () => {
    using tmp = tempDir();
    await using store = await openStore(tmp.dir);
    // the target's table goes as the first load is mapped: the run fails with its chunks staged, not loaded
    const stopped = await failedAtFirstLoad(tmp.dir, store);
    const { target, failed } = stopped;
    await using engine = stopped.engine;
    assert.equal(failed.run.error?.code, ErrorCode.SystemError);
    assert.equal(await store.getCursor("customers"), undefined);
    const resumed = await engine.run("customers");
    assert.equal(resumed.run.status, "succeeded");
    assert.equal((target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n, 300);
  });

  it("a row SQLite refuses for a reason of its own (not a missing table) is quarantined alone", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 30 });
    const target = new DatabaseSync(join(tmp.dir, "erp.db"));
    // a generated column that reads the mail as JSON: SQLite refuses a row whose mail is not JSON (SQLITE_ERROR,
    // "malformed JSON"), the same error code as a missing table's
    target.exec(`CREATE TABLE clients (code TEXT PRIMARY KEY, full_name TEXT NOT NULL, mail TEXT, balance TEXT,
      mail_kind TEXT GENERATED ALWAYS AS (json_type(mail)) STORED)`);
    await using store = await openStore(tmp.dir);
    const hub = customersHub(tmp.dir, {
      fromCanonical: (customer) => ({ ...toClient(customer), mail: customer.id === "7" ? "not json" : '"ok"' }),
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const summary = await engine.run("customers");
    assert.equal(summary.run.status, "partial");
    assert.equal(summary.counts.targets["erp.Customer"]?.loaded, 29);
    const refused = await store.records(summary.run.id, { status: "quarantined" });
    assert.deepEqual(
      refused.map((record) => [record.key, record.code]),
      [["7", ErrorCode.TargetRejected]],
    );
  });

  it("a run stops before anything is written when a target's table is not there, naming the setting", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 30 });
    createClientsTarget(join(tmp.dir, "erp.db")).exec("ALTER TABLE clients RENAME TO clients_old");
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    await assert.rejects(engine.run("customers"), (error: FrancaError) => {
      assert.equal(error.code, ErrorCode.ConfigUnreachable);
      assert.equal(error.setting, "flows.customers.to[0].table");
      assert.match(error.message, /no such table: clients/);
      return true;
    });
    assert.deepEqual(await store.listRuns({ flow: "customers" }), [], "no run recorded");
  });

  it("a cancelled run keeps what is durable and resumes to exactly the same result", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 2000 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const controller = new AbortController();
    const hub = customersHub(tmp.dir, {
      // Ctrl-C while the load of chunk 7 is being prepared
      fromCanonical: (customer) => {
        if (customer.id === "750") controller.abort();
        return toClient(customer);
      },
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const cancelled = await engine.run("customers", { signal: controller.signal });
    assert.equal(cancelled.run.status, "cancelled");
    assert.equal(cancelled.run.error?.code, ErrorCode.RunCancelled);
    const beforeResume = (target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n;
    assert.ok(beforeResume < 2000, `the cancel stopped the load early (${beforeResume} loaded)`);
    const resumed = await engine.resume(cancelled.run.id);
    assert.equal(resumed.run.status, "succeeded");
    assert.equal(resumed.counts.extracted, 2000);
    assert.equal(resumed.counts.targets["erp.Customer"]?.loaded, 2000);
    assert.equal((target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n, 2000);
    assert.equal(resumed.run.stats.resumes, 1);
    // the run's system figures are both executions' (this engine made no other call to either system)
    const systems = resumed.run.stats.systems as Record<string, { calls: number }>;
    const firstCalls = (cancelled.run.stats.systems as Record<string, { calls: number }>).erp?.calls ?? 0;
    assert.ok(firstCalls > 0);
    assert.equal(systems.erp?.calls, engine.policyOf("erp").stats.calls);
    assert.equal(systems.crm?.calls, engine.policyOf("crm").stats.calls);
  });

  it("marks a run whose process is gone as failed and resumable, never leaving it running", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 10 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    await using engine = await Engine.open({ hub: customersHub(tmp.dir), baseDir: tmp.dir, store });
    const now = Date.now();
    // a process on another machine that stopped sending heartbeats a minute ago, and one still alive
    const stale = await store.startRun({
      flow: "customers",
      kind: "flow",
      trigger: "test",
      targets: ["erp.Customer"],
      owner: "elsewhere:1:a",
      now: now - 60_000,
    });
    const reaped = await engine.reapAbandoned();
    assert.deepEqual(reaped, [stale.id]);
    const after = await store.getRun(stale.id);
    assert.equal(after?.status, "failed");
    assert.equal(after?.error?.code, ErrorCode.RunAbandoned);
    const live = await store.startRun({
      flow: "customers",
      kind: "flow",
      trigger: "test",
      targets: ["erp.Customer"],
      owner: "elsewhere:2:b",
      now,
    });
    assert.deepEqual(await engine.reapAbandoned(), []);
    await assert.rejects(
      engine.run("customers"),
      (error: unknown) => error instanceof FrancaError && error.code === ErrorCode.RunLocked,
    );
    assert.equal((await store.getRun(live.id))?.status, "running");
  });

  it("maps as many chunks at once as transformConcurrency says", async () => {
    // Every mapping call waits until `expected` calls are in flight (10 s at most: fewer then show), then 200 ms more,
    // in which calls of any chunk mapped beyond those show too: the most in flight is those of every chunk the run
    // maps at once.
    const inFlightAtOnce = async (transformConcurrency: number, expected: number) => {
      using tmp = tempDir();
      createCustomerSource(join(tmp.dir, "crm.db"), { rows: 200 });
      createClientsTarget(join(tmp.dir, "erp.db"));
      let inFlight = 0;
      let most = 0;
      let quiet: NodeJS.Timeout | undefined;
      let fallback: NodeJS.Timeout | undefined;
      const plateau = Promise.withResolvers<void>();
      const hub = customersHub(tmp.dir, {
        chunkSize: 20,
        transformConcurrency,
        toCanonical: async (row) => {
          most = Math.max(most, ++inFlight);
          fallback ??= setTimeout(() => plateau.resolve(), 10_000);
          if (inFlight >= expected) quiet ??= setTimeout(() => plateau.resolve(), 200);
          await plateau.promise;
          inFlight--;
          return toCustomer(row);
        },
      });
      try {
        await using store = await openStore(tmp.dir);
        await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
        const summary = await engine.run("customers");
        assert.equal(summary.counts.targets["erp.Customer"]?.loaded, 200);
      } finally {
        clearTimeout(fallback);
        clearTimeout(quiet);
      }
      return most;
    };
    assert.equal(await inFlightAtOnce(1, 20), 20, "one chunk of 20 at a time");
    assert.equal(await inFlightAtOnce(3, 60), 60, "three chunks of 20 at once");
  });
});

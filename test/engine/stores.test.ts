/**
 * The engine on both stores: the same configurations, run through the public engine API (`Engine.open / run /
 * resume / replay / close`) against the embedded SQLite store and the PostgreSQL store, must give the same results.
 * `engineSuite` holds the scenarios, each asserting exact figures; it runs once per store. The last test runs one
 * scenario against both stores side by side and compares their ledgers record by record.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { type SimApi, startSimApi } from "../../sim/api.ts";
import { file } from "../../src/connectors/file/index.ts";
import { type HttpClient, http } from "../../src/connectors/http/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind, type MapContext, type Row } from "../../src/core/binding.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { lookup } from "../../src/core/lookup.ts";
import type { RecordOutcome } from "../../src/core/record.ts";
import { Engine } from "../../src/engine/engine.ts";
import type { RunSummary } from "../../src/engine/run.ts";
import type { PostgresStore } from "../../src/store/postgres/store.ts";
import type { Store } from "../../src/store/types.ts";
import {
  Customer,
  type CustomerRecord,
  createClientsTarget,
  createCustomerSource,
  customersHub,
  hubWith,
  stamp,
  tempDir,
  toClient,
  toCustomer,
} from "../support/fixtures.ts";
import { postgresStores, type StoreFactory, sqliteStores } from "../support/store-factories.ts";

type Hub = ReturnType<typeof defineHub>;
/** Opens a fresh store; `distributed`: the engine runs on the distributed executor, its jobs worked in this process. */
type OpenStore = (() => Promise<Store>) & { distributed?: boolean };

const erpTarget = "erp.Customer";
const dropTarget = "drop.Customer";

/**
 * Every outcome of a run, in one canonical order (chunk, then key, target and status in byte order): what two stores
 * must agree on.
 */
async function ledgerOf(store: Store, runId: number): Promise<RecordOutcome[]> {
  const records = await store.records(runId, { limit: 100_000 });
  const order = (record: RecordOutcome) => [record.chunk, record.key, record.target ?? "", record.status] as const;
  return records.sort((a, b) => {
    const left = order(a);
    const right = order(b);
    for (let i = 0; i < left.length; i++) {
      if (left[i] !== right[i]) return (left[i] as string | number) < (right[i] as string | number) ? -1 : 1;
    }
    return 0;
  });
}

/** The target table, ordered by numeric code. */
function clientsOf(db: DatabaseSync): Record<string, unknown>[] {
  return db
    .prepare("SELECT code, full_name, mail, balance FROM clients ORDER BY CAST(code AS INTEGER)")
    .all()
    .map((row) => ({ ...row }));
}

const countOf = (db: DatabaseSync, sql: string): number => (db.prepare(sql).get() as { n: number }).n;

/** What the target must hold after loading these source rows (as they are now). */
function expectedClients(source: DatabaseSync, rename?: (row: Row) => string): Record<string, unknown>[] {
  return source
    .prepare("SELECT * FROM customers ORDER BY id")
    .all()
    .map((row) => {
      const customer = toCustomer(row);
      return toClient(rename === undefined ? customer : { ...customer, name: rename(row) });
    });
}

/** Runs `body` with an engine on a fresh store of the suite's kind; always closes both. */
async function withEngine<T>(
  openStore: OpenStore,
  hub: Hub,
  baseDir: string,
  body: (engine: Engine, store: Store) => Promise<T>,
): Promise<T> {
  const store = await openStore();
  let engine: Engine | undefined;
  try {
    engine =
      openStore.distributed === true
        ? await Engine.open({
            // the same hub, its state in `store` (the distributed executor needs the store's URL)
            hub: hubWith(hub, { store: (store as PostgresStore).location }),
            baseDir,
            store,
            executor: "distributed",
          })
        : await Engine.open({ hub, baseDir, store });
    return await body(engine, store);
  } finally {
    await engine?.close();
    await store.close();
  }
}

// --- fan-out with lookups: crm.customers → erp.clients (SQLite) and drop/customers.csv, a tier looked up per record

const tierLabels = ["bronze", "silver", "gold", "platinum", "diamond"];
const tierOf = (id: number) => `T${id % 5}`;
const labelOf = (id: number) => tierLabels[id % 5] as string;

function startTierApi(): Promise<SimApi> {
  return startSimApi({
    collections: { tiers: { key: "id", records: tierLabels.map((label, i) => ({ id: `T${i}`, label })) } },
  });
}

/** Switches the fan-out scenario's faults and fixes on and off between runs. */
interface FanOutState {
  /** The source mapping repairs invalid emails (the fix replayed after a quarantine). */
  repairEmails: boolean;
  /** Keys the ERP refuses for good (quarantined at that target). */
  erpRefuses: Set<string>;
  /** Keys the CSV target cannot take right now (transient: failed, retried by the next run). */
  dropDown: Set<string>;
}

const noFaults = (): FanOutState => ({ repairEmails: false, erpRefuses: new Set(), dropDown: new Set() });

/** The drop target: exports/customers.csv, the customers as they are, after `check` (which may throw). */
function csvDrop(drop: ReturnType<typeof file>, check: (customer: CustomerRecord) => void) {
  return bind(drop, Customer, {
    path: "customers.csv",
    format: "csv",
    csv: { columns: ["id", "name", "email", "balance"] },
    fromCanonical: (customer) => {
      check(customer);
      return customer;
    },
  });
}

function fanOutHub(dir: string, api: SimApi, options: { ttlMs?: number; state?: FanOutState } = {}): Hub {
  const state = options.state ?? noFaults();
  const crm = sqlite("crm", { file: join(dir, "crm.db") });
  const erp = sqlite("erp", { file: join(dir, "erp.db") });
  const drop = file("drop", { dir: "exports", create: true });
  const tiers = http("tiers", { baseUrl: api.url });
  const tier = lookup("tier", {
    system: tiers,
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
    get: async (id: string, { client, signal }) =>
      (await (client as HttpClient).get<{ label: string }>(`/tiers/${id}`, { signal })).label,
  });
  return defineHub({
    systems: [crm, erp, drop, tiers],
    entities: [Customer],
    lookups: [tier],
    flows: [
      flow("customers", {
        from: bind(crm, Customer, {
          table: "customers",
          key: "id",
          cursor: "updated_at",
          toCanonical: async (row: Row, ctx: MapContext) => {
            const label = await ctx.lookup(tier, tierOf(Number(row.id)));
            const customer = { ...toCustomer(row), name: `${String(row.name)} (${label})` };
            return state.repairEmails && row.email === "not-an-email"
              ? { ...customer, email: `repaired-${String(row.id)}@example.org` }
              : customer;
          },
        }),
        to: [
          bind(erp, Customer, {
            table: "clients",
            key: "code",
            fromCanonical: (customer) => {
              if (state.erpRefuses.has(customer.id)) {
                throw new FrancaError(ErrorCode.TargetRejected, `erp refuses client ${customer.id}`, { path: "/code" });
              }
              return toClient(customer);
            },
          }),
          csvDrop(drop, (customer) => {
            if (state.dropDown.has(customer.id)) {
              throw new FrancaError(ErrorCode.SystemUnavailable, "the drop share is offline", {
                errorClass: "transient",
              });
            }
          }),
        ],
        chunkSize: 100,
      }),
    ],
  });
}

/** The CSV the drop target must hold for these ids, in this order, named with their tier. */
function expectedCsv(source: DatabaseSync, ids: readonly number[]): string {
  const lines = ["id,name,email,balance"];
  const get = source.prepare("SELECT * FROM customers WHERE id = ?");
  for (const id of ids) {
    const row = get.get(id) as Row;
    lines.push(`${id},${String(row.name)} (${labelOf(id)}),${String(row.email)},${String(row.balance)}`);
  }
  return `${lines.join("\n")}\n`;
}

const csvOf = (dir: string) => readFileSync(join(dir, "exports", "customers.csv"), "utf8");
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const tierStats = (summary: RunSummary) => (summary.run.stats.lookups as Record<string, Record<string, number>>).tier;

/** Touches ids 1..50 (cursor moves, content does not) and renames 100, 200 and 300. */
function touchAndRename(source: DatabaseSync): void {
  source.exec("UPDATE customers SET updated_at = '2031-01-01T00:00:00.000Z' WHERE id <= 50");
  source.exec(
    "UPDATE customers SET name = 'Renamed ' || id, updated_at = '2031-01-02T00:00:00.000Z' WHERE id IN (100, 200, 300)",
  );
}

/**
 * Record 120 in chunk 1, failing while the target restarts, and again as the rows `later` (250 in chunk 2, 280 in
 * chunk 3, which the target refuses for good); the run, failed, is continued until it ends. `failing`: the versions
 * (their names) that fail, execution by execution, before one in which none does. `final`: the name the table ends
 * with for 120; `last`: 120's outcome there in the ledger, the same after every execution.
 */
async function continuedVersions(
  openStore: OpenStore,
  later: readonly number[],
  final: string,
  last: { status: string; chunk: number },
  failing: readonly (readonly string[])[] = [["Customer 120"]],
): Promise<void> {
  using tmp = tempDir();
  const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
  const target = createClientsTarget(join(tmp.dir, "erp.db"));
  let down: readonly string[] = [];
  const refused = later.includes(280);
  const toRecord = (row: Row) => ({ ...toCustomer(row), ...(later.includes(row.id as number) ? { id: "120" } : {}) });
  const fails = (customer: CustomerRecord): void => {
    if (down.includes(customer.name)) {
      throw new FrancaError(ErrorCode.SystemUnavailable, "restarting", { errorClass: "transient" });
    }
  };
  const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
  const erp = sqlite("erp", { file: join(tmp.dir, "erp.db"), limits: { retry: { maxAttempts: 2 } } });
  const drop = file("drop", { dir: "exports", create: true });
  const hub = defineHub({
    systems: [crm, erp, drop],
    entities: [Customer],
    flows: [
      flow("customers", {
        from: bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: toRecord }),
        to: [
          bind(erp, Customer, {
            table: "clients",
            key: "code",
            fromCanonical: (customer) => {
              fails(customer);
              if (refused && customer.name === "Customer 280") throw new Error("erp refuses this version");
              return toClient(customer);
            },
          }),
          csvDrop(drop, fails),
        ],
        chunkSize: 100,
      }),
    ],
  });
  const client120 = () => target.prepare("SELECT full_name FROM clients WHERE code = '120'").get()?.full_name;
  await withEngine(openStore, hub, tmp.dir, async (engine, store) => {
    const outcomeOf120 = async (runId: number) =>
      (await store.records(runId, { key: "120", target: erpTarget })).map(({ status, chunk }) => ({ status, chunk }));
    let runId: number | undefined;
    for (const [execution, names] of failing.entries()) {
      down = names;
      const failed = await engine.run("customers");
      assert.equal(failed.run.id, runId ?? failed.run.id, "the unfinished run is continued");
      runId = failed.run.id;
      assert.equal(failed.run.status, "failed");
      if (execution === 0) {
        const loaded250 = later.includes(250) && !names.includes("Customer 250");
        assert.equal(client120(), loaded250 ? "Customer 250" : undefined);
        assert.deepEqual(failed.run.cursorTo, [stamp(50), 50]);
      }
      assert.deepEqual(await outcomeOf120(failed.run.id), [last]);
    }

    down = [];
    const continued = await engine.run("customers");
    assert.equal(continued.run.id, runId);
    assert.equal(continued.run.status, refused ? "partial" : "succeeded");
    assert.equal(client120(), final);
    assert.deepEqual(await outcomeOf120(continued.run.id), [last], "an earlier chunk's outcome does not replace it");
    // every record counted once: chunk 1's version with the unchanged when a later one was loaded
    const superseded = later.includes(250) ? 1 : 0;
    assert.deepEqual(continued.counts.targets[erpTarget], {
      loaded: 300 - superseded - (refused ? 1 : 0),
      unchanged: superseded,
      quarantined: refused ? 1 : 0,
      failed: 0,
    });
    // every row as the hub maps it, the later of two with the same key winning, but for a version refused
    const latest = new Map(
      source
        .prepare("SELECT * FROM customers WHERE id <> 280 OR ? = 0 ORDER BY id")
        .all(refused ? 1 : 0)
        .map((row) => {
          const customer = toRecord(row);
          return [customer.id, toClient(customer)] as const;
        }),
    );
    assert.deepEqual(
      clientsOf(target),
      [...latest.values()].sort((a, b) => Number(a.code) - Number(b.code)),
    );
    const lines = source
      .prepare("SELECT * FROM customers ORDER BY id")
      .all()
      .map((row) => {
        const { id, name, email, balance } = toRecord(row);
        return `${id},${name},${email},${balance}`;
      });
    assert.equal(csvOf(tmp.dir), `${["id,name,email,balance", ...lines].join("\n")}\n`);
  });
}

// ---------------------------------------------------------------------------------------------------------------

function engineSuite(name: string, openStore: OpenStore): void {
  describe(`engine on the ${name}`, () => {
    it("runs incrementally: every row, then nothing new, then exactly the 3 edited rows, with the same cursors", async () => {
      using tmp = tempDir();
      const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1000 });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      await withEngine(openStore, customersHub(tmp.dir), tmp.dir, async (engine, store) => {
        const first = await engine.run("customers");
        assert.equal(first.run.status, "succeeded");
        assert.equal(first.exitCode, 0);
        assert.deepEqual(first.counts, {
          chunks: 11,
          extracted: 1000,
          canonical: 1000,
          quarantined: 0,
          failed: 0,
          targets: { [erpTarget]: { loaded: 1000, unchanged: 0, quarantined: 0, failed: 0 } },
        });
        assert.equal(first.run.cursorFrom, undefined);
        assert.deepEqual(first.run.cursorTo, [stamp(1000), 1000]);
        assert.deepEqual(await store.getCursor("customers"), [stamp(1000), 1000]);

        const second = await engine.run("customers");
        assert.notEqual(second.run.id, first.run.id);
        assert.equal(second.run.status, "succeeded");
        assert.deepEqual(second.counts, {
          chunks: 0,
          extracted: 0,
          canonical: 0,
          quarantined: 0,
          failed: 0,
          targets: { [erpTarget]: { loaded: 0, unchanged: 0, quarantined: 0, failed: 0 } },
        });
        assert.deepEqual(second.run.cursorFrom, [stamp(1000), 1000]);
        assert.deepEqual(await store.getCursor("customers"), [stamp(1000), 1000]);
        assert.deepEqual(await ledgerOf(store, second.run.id), []);

        source.exec(
          "UPDATE customers SET name = 'Renamed', updated_at = '2030-01-01T00:00:00.000Z' WHERE id IN (10, 500, 999)",
        );
        const third = await engine.run("customers");
        assert.equal(third.run.status, "succeeded");
        assert.deepEqual(third.counts, {
          chunks: 1,
          extracted: 3,
          canonical: 3,
          quarantined: 0,
          failed: 0,
          targets: { [erpTarget]: { loaded: 3, unchanged: 0, quarantined: 0, failed: 0 } },
        });
        assert.deepEqual(third.run.cursorFrom, [stamp(1000), 1000]);
        assert.deepEqual(third.run.cursorTo, ["2030-01-01T00:00:00.000Z", 999]);
        assert.deepEqual(await store.getCursor("customers"), ["2030-01-01T00:00:00.000Z", 999]);
        assert.deepEqual(
          (await ledgerOf(store, third.run.id)).map((record) => [record.key, record.target, record.status]),
          [
            ["10", erpTarget, "loaded"],
            ["500", erpTarget, "loaded"],
            ["999", erpTarget, "loaded"],
          ],
        );
        assert.deepEqual(
          clientsOf(target),
          expectedClients(source, (row) => String(row.name)),
        );
        assert.deepEqual(
          (await store.listRuns({ flow: "customers" })).map((run) => [run.id, run.status]),
          [third, second, first].map((summary) => [summary.run.id, "succeeded"]),
        );
      });
    });

    it("quarantines with field paths and ends partial (exit 3); a replay after the fix loads exactly those records", async () => {
      using tmp = tempDir();
      const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 500, badEmails: [3, 250, 499] });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      let fixed = false;
      const hub = customersHub(tmp.dir, {
        toCanonical: (row) => ({
          ...toCustomer(row),
          ...(fixed && row.email === "not-an-email" ? { email: `repaired-${String(row.id)}@example.org` } : {}),
        }),
      });
      await withEngine(openStore, hub, tmp.dir, async (engine, store) => {
        const first = await engine.run("customers");
        assert.equal(first.run.status, "partial");
        assert.equal(first.exitCode, 3);
        assert.deepEqual(first.counts, {
          chunks: 6,
          extracted: 500,
          canonical: 497,
          quarantined: 3,
          failed: 0,
          targets: { [erpTarget]: { loaded: 497, unchanged: 0, quarantined: 0, failed: 0 } },
        });
        const quarantined = await store.records(first.run.id, { status: "quarantined" });
        assert.deepEqual(
          quarantined.map((record) => [
            record.key,
            record.target,
            record.chunk,
            record.code,
            record.path,
            record.sourceId,
          ]),
          [
            ["3", null, 0, ErrorCode.ValidationFailed, "/email", "3"],
            ["250", null, 2, ErrorCode.ValidationFailed, "/email", "250"],
            ["499", null, 5, ErrorCode.ValidationFailed, "/email", "499"],
          ],
        );
        assert.ok(
          quarantined.every((record) => record.errorClass === "permanent" && /email/.test(record.message ?? "")),
        );
        assert.deepEqual(first.run.cursorTo, [stamp(500), 500]);
        assert.equal(countOf(target, "SELECT count(*) AS n FROM clients"), 497);

        fixed = true;
        const replay = await engine.replay(first.run.id);
        assert.equal(replay.run.kind, "replay");
        assert.equal(replay.run.parentId, first.run.id);
        assert.equal(replay.run.status, "succeeded");
        assert.equal(replay.exitCode, 0);
        assert.deepEqual(replay.plan, { retransform: 3, reload: { [erpTarget]: 0 } });
        assert.equal(replay.counts.extracted, 3);
        assert.equal(replay.counts.canonical, 3);
        assert.equal(replay.counts.quarantined, 0);
        assert.deepEqual(replay.counts.targets, {
          [erpTarget]: { loaded: 3, unchanged: 0, quarantined: 0, failed: 0 },
        });
        assert.deepEqual(
          (await ledgerOf(store, replay.run.id)).map((record) => [record.key, record.target, record.status]),
          // one chunk, keys in byte order
          [
            ["250", erpTarget, "loaded"],
            ["3", erpTarget, "loaded"],
            ["499", erpTarget, "loaded"],
          ],
        );
        assert.equal(replay.run.cursorTo, undefined, "a replay moves no cursor");
        assert.deepEqual(await store.getCursor("customers"), [stamp(500), 500]);
        assert.equal(
          (await store.records(first.run.id, { status: "quarantined" })).length,
          3,
          "the parent keeps its ledger",
        );
        assert.deepEqual(
          clientsOf(target),
          expectedClients(source).map((client) =>
            client.mail === "not-an-email"
              ? { ...client, mail: `repaired-${String(client.code)}@example.org` }
              : client,
          ),
        );
      });
    });

    it("stops at the record that crosses maxFailed: the same four keys in the ledger, nothing loaded", async () => {
      using tmp = tempDir();
      // ten bad records, all in the first chunk (ids 1-50): the fourth crosses maxFailed 3
      const bad = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50];
      createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1000, badEmails: bad });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      const hub = customersHub(tmp.dir, { failure: { maxFailed: 3 } });
      await withEngine(openStore, hub, tmp.dir, async (engine, store) => {
        const summary = await engine.run("customers");
        assert.equal(summary.run.status, "failed");
        assert.equal(summary.exitCode, 1);
        assert.equal(summary.run.error?.code, ErrorCode.FailureThreshold);
        // distributed, records of other chunks may be loaded beside chunk 0 (below): its problems are the ones asked
        const ledger = (await ledgerOf(store, summary.run.id)).filter(
          (record) => openStore.distributed !== true || record.status !== "loaded",
        );
        assert.deepEqual(
          ledger.map((record) => [record.key, record.target, record.status, record.chunk, record.code, record.path]),
          // keys in byte order (the ledger's order within a chunk)
          ["10", "15", "20", "5"].map((key) => [key, null, "quarantined", 0, ErrorCode.ValidationFailed, "/email"]),
        );
        // how far extraction ran ahead before the stop is a race (chunks, extracted): not asserted
        assert.equal(summary.counts.quarantined, 4, "its problems so far are counted");
        assert.equal(await store.getCursor("customers"), undefined, "no chunk is final: the cursor does not move");
        if (openStore.distributed === true) {
          // the workers transform and load the other chunks, which have no problem, beside chunk 0: they may be
          // loaded before the run stops; the crossing chunk never is
          assert.equal(countOf(target, "SELECT count(*) AS n FROM clients WHERE CAST(code AS INTEGER) <= 50"), 0);
          return;
        }
        assert.equal(summary.counts.canonical, 0, "the crossing chunk was never staged");
        assert.deepEqual(summary.counts.targets[erpTarget], { loaded: 0, unchanged: 0, quarantined: 0, failed: 0 });
        assert.equal(countOf(target, "SELECT count(*) AS n FROM clients"), 0);
      });
    });

    it("a record the target fails transiently stops the cursor before its chunk; run again continues the same run", async () => {
      using tmp = tempDir();
      const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 500 });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      let targetDown = true;
      const hub = customersHub(tmp.dir, {
        fromCanonical: (customer) => {
          if (targetDown && customer.id === "250") {
            throw new FrancaError(ErrorCode.SystemUnavailable, "erp is restarting", { errorClass: "transient" });
          }
          return toClient(customer);
        },
      });
      await withEngine(openStore, hub, tmp.dir, async (engine, store) => {
        const failed = await engine.run("customers");
        assert.equal(failed.run.status, "failed");
        assert.equal(failed.exitCode, 1);
        assert.deepEqual(failed.counts, {
          chunks: 6,
          extracted: 500,
          canonical: 500,
          quarantined: 0,
          failed: 0,
          targets: { [erpTarget]: { loaded: 499, unchanged: 0, quarantined: 0, failed: 1 } },
        });
        // chunks 0 (ids 1-50) and 1 (51-150) are final; chunk 2 (151-250) holds the failed record
        assert.deepEqual(failed.run.cursorTo, [stamp(150), 150]);
        assert.deepEqual(await store.getCursor("customers"), [stamp(150), 150]);
        assert.deepEqual(await store.records(failed.run.id, { status: "failed" }), [
          {
            key: "250",
            target: erpTarget,
            status: "failed",
            chunk: 2,
            attempts: 1,
            code: ErrorCode.SystemUnavailable,
            errorClass: "transient",
            message: "erp is restarting",
            sourceId: "250",
          },
        ]);
        assert.equal((await store.latestUnfinished("customers"))?.id, failed.run.id);
        assert.equal(countOf(target, "SELECT count(*) AS n FROM clients"), 499);

        targetDown = false;
        const continued = await engine.run("customers");
        assert.equal(continued.run.id, failed.run.id, "the unfinished run is continued, not restarted");
        assert.equal(continued.run.status, "succeeded");
        assert.equal(continued.exitCode, 0);
        assert.deepEqual(continued.counts, {
          chunks: 6,
          extracted: 500,
          canonical: 500,
          quarantined: 0,
          failed: 0,
          targets: { [erpTarget]: { loaded: 500, unchanged: 0, quarantined: 0, failed: 0 } },
        });
        assert.equal(continued.run.stats.resumes, 1);
        const ledger = await ledgerOf(store, continued.run.id);
        assert.equal(ledger.length, 500);
        assert.equal(new Set(ledger.map((record) => record.key)).size, 500, "one outcome per record: nothing twice");
        assert.ok(ledger.every((record) => record.status === "loaded" && record.target === erpTarget));
        assert.deepEqual(await store.getCursor("customers"), [stamp(500), 500]);
        assert.equal(await store.latestUnfinished("customers"), undefined);
        assert.equal((await store.listRuns({ flow: "customers" })).length, 1);
        assert.deepEqual(clientsOf(target), expectedClients(source));
      });
    });

    // Record 120 comes in chunk 1 (ids 51-150), whose version fails while the target restarts, and again as rows 250
    // (chunk 2: ids 151-250) and 280 (chunk 3: ids 251-300), whose version the target refuses for good; then the run
    // is continued. The table keeps the version an uninterrupted run leaves: the last loaded. A CSV file, its parts
    // joined in chunk order, holds every version, as an uninterrupted run's.
    const versionCases = [
      { also: "", later: [250], final: "Customer 250", last: { status: "loaded", chunk: 2 } },
      {
        also: ", also when a chunk after that one has a version the target refuses",
        later: [250, 280],
        final: "Customer 250",
        last: { status: "quarantined", chunk: 3 },
      },
    ];
    for (const { also, later, final, last } of versionCases) {
      it(`a continued run does not load a key's older version over the newer one a later chunk loaded${also}`, () =>
        continuedVersions(openStore, later, final, last));
    }
    it("a continued run loads a key's version that only a later version the target refused followed", () =>
      continuedVersions(openStore, [280], "Customer 120", { status: "quarantined", chunk: 3 }));
    it("a key's version loaded by a continued run between two that failed or were refused is not loaded over later", () =>
      continuedVersions(openStore, [250, 280], "Customer 250", { status: "quarantined", chunk: 3 }, [
        ["Customer 120", "Customer 250"],
        ["Customer 120"],
      ]));

    it("a run cancelled from inside a mapping resumes to exactly the target content of an uninterrupted run", async () => {
      using tmp = tempDir();
      const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 2000 });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      const controller = new AbortController();
      const hub = customersHub(tmp.dir, {
        fromCanonical: (customer) => {
          if (customer.id === "750") controller.abort(); // Ctrl-C while chunk 7 (ids 651-750) is being loaded
          return toClient(customer);
        },
      });
      await withEngine(openStore, hub, tmp.dir, async (engine, store) => {
        const cancelled = await engine.run("customers", { signal: controller.signal });
        assert.equal(cancelled.run.status, "cancelled");
        assert.equal(cancelled.exitCode, 1);
        assert.equal(cancelled.run.error?.code, ErrorCode.RunCancelled);
        const loadedBefore = countOf(target, "SELECT count(*) AS n FROM clients");
        assert.ok(loadedBefore < 2000, `the cancel stopped the load early (${loadedBefore} loaded)`);
        // in-process, the load in flight is aborted; a worker's job finds the run ended at its next step, and may
        // commit the chunk it was writing first (the resume then finds it loaded)
        if (openStore.distributed !== true)
          assert.equal(
            countOf(target, "SELECT count(*) AS n FROM clients WHERE code = '750'"),
            0,
            "the chunk being loaded when the run was cancelled is not there",
          );

        const resumed = await engine.resume(cancelled.run.id);
        assert.equal(resumed.run.id, cancelled.run.id);
        assert.equal(resumed.run.status, "succeeded");
        assert.equal(resumed.run.stats.resumes, 1);
        assert.deepEqual(resumed.counts, {
          chunks: 21,
          extracted: 2000,
          canonical: 2000,
          quarantined: 0,
          failed: 0,
          targets: { [erpTarget]: { loaded: 2000, unchanged: 0, quarantined: 0, failed: 0 } },
        });
        assert.deepEqual(await store.getCursor("customers"), [stamp(2000), 2000]);
        assert.deepEqual(clientsOf(target), expectedClients(source));
      });
    });

    it("fans out to a table and a CSV file with lookups: the same counts, CSV content and lookup requests", async () => {
      using tmp = tempDir();
      const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
      const target = createClientsTarget(join(tmp.dir, "erp.db"));
      await using api = await startTierApi();
      await withEngine(openStore, fanOutHub(tmp.dir, api), tmp.dir, async (engine) => {
        const first = await engine.run("customers");
        assert.equal(first.run.status, "succeeded");
        assert.deepEqual(first.counts, {
          chunks: 4,
          extracted: 300,
          canonical: 300,
          quarantined: 0,
          failed: 0,
          targets: {
            [erpTarget]: { loaded: 300, unchanged: 0, quarantined: 0, failed: 0 },
            [dropTarget]: { loaded: 300, unchanged: 0, quarantined: 0, failed: 0 },
          },
        });
        assert.equal(csvOf(tmp.dir), expectedCsv(source, range(1, 300)));
        assert.deepEqual(
          clientsOf(target),
          expectedClients(source, (row) => `${String(row.name)} (${labelOf(Number(row.id))})`),
        );
        assert.equal(api.stats.requests.get, 5, "one request per tier");
        assert.deepEqual(
          [tierStats(first)?.calls, tierStats(first)?.requests, tierStats(first)?.cacheHits],
          [300, 5, 0],
        );

        touchAndRename(source);
        const second = await engine.run("customers");
        assert.equal(second.run.status, "succeeded");
        assert.deepEqual(second.counts, {
          chunks: 2,
          extracted: 53,
          canonical: 53,
          quarantined: 0,
          failed: 0,
          targets: {
            [erpTarget]: { loaded: 3, unchanged: 50, quarantined: 0, failed: 0 },
            [dropTarget]: { loaded: 3, unchanged: 50, quarantined: 0, failed: 0 },
          },
        });
        // the file holds what this run wrote: the three renamed customers
        assert.equal(csvOf(tmp.dir), expectedCsv(source, [100, 200, 300]));
        assert.deepEqual(
          clientsOf(target),
          expectedClients(source, (row) => `${String(row.name)} (${labelOf(Number(row.id))})`),
        );
        assert.equal(api.stats.requests.get, 10, "no cross-run cache: the 5 tiers were asked again");
        assert.deepEqual([tierStats(second)?.calls, tierStats(second)?.requests], [53, 5]);
        assert.deepEqual(second.run.cursorTo, ["2031-01-02T00:00:00.000Z", 300]);
      });
    });

    it("keeps lookup values across runs in the store for their TTL: the second run asks the API nothing", async () => {
      using tmp = tempDir();
      const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
      createClientsTarget(join(tmp.dir, "erp.db"));
      await using api = await startTierApi();
      const ttlMs = 3_600_000;
      await withEngine(openStore, fanOutHub(tmp.dir, api, { ttlMs }), tmp.dir, async (engine, store) => {
        const first = await engine.run("customers");
        assert.equal(first.run.status, "succeeded");
        assert.equal(api.stats.requests.get, 5);
        const keys = tierLabels.map((_, i) => `T${i}`);
        assert.deepEqual(
          await store.cacheGet("tier", [...keys, "T9"], Date.now()),
          new Map(keys.map((key, i) => [key, tierLabels[i]])),
          "the store holds the five values",
        );
        assert.equal(
          (await store.cacheGet("tier", keys, Date.now() + 2 * ttlMs)).size,
          0,
          "and judges them expired after the TTL",
        );

        touchAndRename(source);
        const second = await engine.run("customers");
        assert.equal(second.run.status, "succeeded");
        assert.equal(api.stats.requests.get, 5, "the second run made no request");
        assert.deepEqual(
          [tierStats(second)?.calls, tierStats(second)?.requests, tierStats(second)?.cacheHits],
          [53, 0, 5],
        );
        assert.deepEqual(second.counts.targets[erpTarget], { loaded: 3, unchanged: 50, quarantined: 0, failed: 0 });
        assert.equal(csvOf(tmp.dir), expectedCsv(source, [100, 200, 300]));
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------

/** What one step of the comparison scenario left: everything but run ids and timestamps. */
interface Step {
  step: string;
  kind: string;
  status: string;
  exitCode: number;
  errorCode: string | undefined;
  /** The step whose run is this run's parent (replay), or whose run this one continues. */
  sameRunAs: string | undefined;
  parentStep: string | undefined;
  cursorFrom: unknown;
  cursorTo: unknown;
  counts: RunSummary["counts"];
  plan: unknown;
  ledger: RecordOutcome[];
  cursor: unknown;
  clients: Record<string, unknown>[];
  csv: string;
  lookupRequests: number;
}

/**
 * Fan-out with every kind of outcome: quarantined at transform (3 bad emails), refused by one target (42),
 * failed transiently at the other (200); the same run continued once the CSV share is back; a replay after the fixes;
 * then an incremental run with two edits.
 */
async function comparisonScenario(openStore: OpenStore): Promise<Step[]> {
  using tmp = tempDir();
  const source = createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300, badEmails: [3, 150, 299] });
  const target = createClientsTarget(join(tmp.dir, "erp.db"));
  await using api = await startTierApi();
  const state: FanOutState = { repairEmails: false, erpRefuses: new Set(["42"]), dropDown: new Set(["200"]) };
  return await withEngine(openStore, fanOutHub(tmp.dir, api, { state }), tmp.dir, async (engine, store) => {
    const steps: Step[] = [];
    const ids = new Map<number, string>();
    const record = async (step: string, summary: RunSummary & { plan?: unknown }) => {
      const run = summary.run;
      steps.push({
        step,
        kind: run.kind,
        status: run.status,
        exitCode: summary.exitCode,
        errorCode: run.error?.code,
        sameRunAs: ids.get(run.id),
        parentStep: run.parentId === undefined ? undefined : ids.get(run.parentId),
        cursorFrom: run.cursorFrom,
        cursorTo: run.cursorTo,
        counts: summary.counts,
        plan: summary.plan,
        ledger: await ledgerOf(store, run.id),
        cursor: await store.getCursor("customers"),
        clients: clientsOf(target),
        csv: (() => {
          try {
            return csvOf(tmp.dir);
          } catch {
            return "(no file)";
          }
        })(),
        lookupRequests: api.stats.requests.get,
      });
      if (!ids.has(run.id)) ids.set(run.id, step);
    };
    const first = await engine.run("customers");
    await record("run", first);
    state.dropDown.clear();
    await record("run again", await engine.run("customers"));
    state.repairEmails = true;
    state.erpRefuses.clear();
    await record("replay", await engine.replay(first.run.id));
    source.exec(
      "UPDATE customers SET name = 'Edited ' || id, updated_at = '2032-01-01T00:00:00.000Z' WHERE id IN (10, 20)",
    );
    await record("incremental", await engine.run("customers"));
    return steps;
  });
}

// ---------------------------------------------------------------------------------------------------------------

const factories: StoreFactory[] = [sqliteStores(), postgresStores()];
const distributedStores = postgresStores();
after(async () => {
  for (const factory of [...factories, distributedStores]) await factory.dispose();
});

for (const factory of factories) engineSuite(`${factory.name} store`, () => factory.open());
engineSuite(
  "PostgreSQL store, distributed executor",
  Object.assign(() => distributedStores.open(), { distributed: true }),
);

/** Step by step, then record by record, so that a difference names where it is. */
function assertSameSteps(left: readonly Step[], right: readonly Step[], what: string): void {
  assert.equal(right.length, left.length);
  for (let i = 0; i < left.length; i++) {
    const { ledger: leftLedger, ...leftRest } = left[i] as Step;
    const { ledger: rightLedger, ...rightRest } = right[i] as Step;
    assert.deepEqual(rightRest, leftRest, `step '${leftRest.step}': ${what}`);
    assert.equal(rightLedger.length, leftLedger.length, `step '${leftRest.step}': ledger sizes`);
    for (let j = 0; j < leftLedger.length; j++) {
      assert.deepEqual(rightLedger[j], leftLedger[j], `step '${leftRest.step}': ledger record ${j}`);
    }
  }
}

describe("engine on both stores", () => {
  it("leaves the same ledger, record by record, in SQLite and PostgreSQL, in process and distributed, for the same scenario", async () => {
    const [sqliteFactory, postgresFactory] = factories as [StoreFactory, StoreFactory];
    const onSqlite = await comparisonScenario(() => sqliteFactory.open());
    const onPostgres = await comparisonScenario(() => postgresFactory.open());
    const distributed = await comparisonScenario(Object.assign(() => distributedStores.open(), { distributed: true }));

    // the scenario did what it is meant to (so that two equally wrong stores cannot agree on nothing)
    assert.deepEqual(
      onSqlite.map((step) => [step.step, step.kind, step.status, step.sameRunAs, step.parentStep]),
      [
        ["run", "flow", "failed", undefined, undefined],
        ["run again", "flow", "partial", "run", undefined],
        ["replay", "replay", "succeeded", undefined, "run"],
        ["incremental", "flow", "succeeded", undefined, undefined],
      ],
    );
    const problems = (step: Step) =>
      step.ledger
        .filter((outcome) => outcome.status === "quarantined" || outcome.status === "failed")
        .map((outcome) => [outcome.key, outcome.target, outcome.status, outcome.code]);
    assert.deepEqual(problems(onSqlite[0] as Step), [
      ["3", null, "quarantined", ErrorCode.ValidationFailed],
      ["42", erpTarget, "quarantined", ErrorCode.TargetRejected],
      ["150", null, "quarantined", ErrorCode.ValidationFailed],
      ["200", dropTarget, "failed", ErrorCode.SystemUnavailable],
      ["299", null, "quarantined", ErrorCode.ValidationFailed],
    ]);

    assertSameSteps(onSqlite, onPostgres, "PostgreSQL differs from SQLite");
    assertSameSteps(onSqlite, distributed, "the distributed executor differs from the in-process one");
  });
});

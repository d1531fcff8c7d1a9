/** Shared test fixtures: temp directories, a SQLite source of customers, and the Customer entity. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import Type from "typebox";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { type FlowSpec, flow } from "../../src/core/flow.ts";
import { defineHub, type Hub, type HubSpec } from "../../src/core/hub.ts";
import { Money } from "../../src/core/types.ts";
import { Engine } from "../../src/engine/engine.ts";
import type { RunSummary } from "../../src/engine/run.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import type { RunRecord, Store } from "../../src/store/types.ts";

export function tempDir(prefix = "franca-test-"): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

export const Customer = entity("Customer", {
  version: 1,
  key: "id",
  schema: Type.Object(
    {
      id: Type.String(),
      name: Type.String({ minLength: 1 }),
      email: Type.String({ format: "email" }),
      balance: Money(),
    },
    { additionalProperties: false },
  ),
  fields: { email: { pii: true } },
});

export interface SourceOptions {
  rows: number;
  /** Ids whose email is invalid (quarantined by validation). */
  badEmails?: readonly number[];
}

/** A SQLite file with `customers(id, name, email, balance, updated_at)`, one row per id 1..rows. */
export function createCustomerSource(file: string, options: SourceOptions): DatabaseSync {
  const db = new DatabaseSync(file);
  db.exec(
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, balance TEXT, updated_at TEXT NOT NULL)",
  );
  const insert = db.prepare("INSERT INTO customers VALUES (?, ?, ?, ?, ?)");
  const bad = new Set(options.badEmails ?? []);
  db.exec("BEGIN");
  for (let id = 1; id <= options.rows; id++) {
    insert.run(
      id,
      `Customer ${id}`,
      bad.has(id) ? "not-an-email" : `c${id}@example.org`,
      (id * 1.25).toFixed(2),
      stamp(id),
    );
  }
  db.exec("COMMIT");
  return db;
}

/** The updated_at of row `id` at creation: one second apart, in order. */
export function stamp(id: number): string {
  return new Date(Date.UTC(2025, 0, 1) + id * 1000).toISOString();
}

export function createClientsTarget(file: string): DatabaseSync {
  const db = new DatabaseSync(file);
  db.exec("CREATE TABLE clients (code TEXT PRIMARY KEY, full_name TEXT NOT NULL, mail TEXT, balance TEXT)");
  return db;
}

export async function openStore(dir: string): Promise<SqliteStore> {
  const store = new SqliteStore(join(dir, "franca.db"));
  await store.migrate();
  return store;
}

export const toCustomer = (row: Record<string, unknown>) => ({
  id: String(row.id),
  name: String(row.name),
  email: String(row.email),
  balance: String(row.balance),
});

export const toClient = (customer: { id: string; name: string; email: string; balance: string }) => ({
  code: customer.id,
  full_name: customer.name,
  mail: customer.email,
  balance: customer.balance,
});

export type CustomerRecord = ReturnType<typeof toCustomer>;

/** What a test changes of `customersHub`'s flow: its settings, and either mapping. */
export type CustomersHubOverrides = Partial<Omit<FlowSpec<typeof Customer>, "from" | "to">> & {
  toCanonical?: (row: Record<string, unknown>) => CustomerRecord | Promise<CustomerRecord>;
  fromCanonical?: (customer: CustomerRecord) => Record<string, unknown>;
};

/**
 * A hub with one flow, `customers`: crm.customers (cursor updated_at) → erp.clients, over two SQLite files in `dir`
 * (createCustomerSource, createClientsTarget), in chunks of 100 unless overridden; erp retries a failed write once.
 */
export function customersHub(dir: string, overrides: CustomersHubOverrides = {}): Hub {
  const crm = sqlite("crm", { file: join(dir, "crm.db") });
  const erp = sqlite("erp", { file: join(dir, "erp.db"), limits: { retry: { maxAttempts: 2, initialDelayMs: 5 } } });
  const { toCanonical = toCustomer, fromCanonical = toClient, ...flowSettings } = overrides;
  const source = bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical });
  const target = bind(erp, Customer, { table: "clients", key: "code", fromCanonical });
  return defineHub({
    systems: [crm, erp],
    entities: [Customer],
    flows: [flow("customers", { from: source, to: target, chunkSize: 100, ...flowSettings })],
  });
}

/**
 * A `fromCanonical` that renames `target`'s clients table away as the run's first load is mapped (after the run's
 * start checked the table is there): that load and every later one fail, the system's fault, not the records'.
 */
export function tableGoneAtFirstLoad(target: DatabaseSync): (customer: CustomerRecord) => Record<string, unknown> {
  let gone = false;
  return (customer) => {
    if (!gone) target.exec("ALTER TABLE clients RENAME TO clients_old");
    gone = true;
    return toClient(customer);
  };
}

/**
 * The customers flow (300 rows) run once on an engine of its own, its target's table gone as the first load was
 * mapped (tableGoneAtFirstLoad): the run failed with its chunks staged and none loaded. The table is back when this
 * returns; the engine is the caller's to close (`await using`).
 */
export async function failedAtFirstLoad(
  dir: string,
  store: Store,
): Promise<{ engine: Engine; target: DatabaseSync; failed: RunSummary }> {
  createCustomerSource(join(dir, "crm.db"), { rows: 300 });
  const target = createClientsTarget(join(dir, "erp.db"));
  const hub = customersHub(dir, { fromCanonical: tableGoneAtFirstLoad(target) });
  const engine = await Engine.open({ hub, baseDir: dir, store });
  const failed = await engine.run("customers");
  assert.equal(failed.run.status, "failed");
  target.exec("ALTER TABLE clients_old RENAME TO clients");
  return { engine, target, failed };
}

/** A flow's one run after a run killed `kills` times: continued after each crash (not restarted), and succeeded. */
export async function continuedRun(store: Store, flow: string, kills: number): Promise<RunRecord> {
  const runs = await store.listRuns({ flow });
  assert.equal(runs.length, 1, "each crash was continued, not restarted");
  const run = runs[0] as RunRecord;
  assert.equal(run.status, "succeeded");
  assert.equal(run.stats.resumes, kills);
  return run;
}

/** The hub `base` defined again with `extra` settings (a name, a store): the same systems, entities, lookups and flows. */
export function hubWith(base: Hub, extra: Partial<HubSpec>): Hub {
  return defineHub({
    ...extra,
    systems: [...base.systems.values()],
    entities: [...base.entities.values()],
    lookups: [...base.lookups.values()],
    flows: [...base.flows.values()],
  });
}

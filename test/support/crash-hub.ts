/**
 * The hub of the crash test, shared by the test and its child process: crm.customers (SQLite) → erp.clients
 * (SQLite), with loads slowed to ~60 ms a chunk so the test can kill the child at chosen points of a run.
 */

import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Customer, toClient, toCustomer } from "./fixtures.ts";

export function crashHub(dir: string) {
  const crm = sqlite("crm", { file: join(dir, "crm.db") });
  const erp = sqlite("erp", { file: join(dir, "erp.db") });
  const source = bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: toCustomer });
  const target = bind(erp, Customer, {
    table: "clients",
    key: "code",
    fromCanonical: async (customer) => {
      await sleep(60);
      return toClient(customer);
    },
  });
  return defineHub({
    systems: [crm, erp],
    entities: [Customer],
    flows: [flow("customers", { from: source, to: target, chunkSize: 250, loadConcurrency: 1 })],
    heartbeatMs: 200,
    staleAfterMs: 2000,
  });
}

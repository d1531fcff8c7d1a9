import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startSimApi } from "../../sim/api.ts";
import { http } from "../../src/connectors/http/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { Customer, createClientsTarget, openStore, tempDir, toClient } from "../support/fixtures.ts";

describe("chunk planning", () => {
  it("cuts a source's pages into chunks of whole pages, slow start first, every record once", async () => {
    using tmp = tempDir();
    const records = Array.from({ length: 250 }, (_, i) => ({
      id: String(i + 1),
      name: `C${i + 1}`,
      email: `c${i + 1}@example.org`,
      balance: "1.00",
    }));
    await using api = await startSimApi({ collections: { customers: { key: "id", pagination: "page", records } } });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    await using store = await openStore(tmp.dir);
    const crm = http("crm", { baseUrl: api.url });
    const erp = sqlite("erp", { file: join(tmp.dir, "erp.db") });
    const hub = defineHub({
      systems: [crm, erp],
      entities: [Customer],
      flows: [
        flow("customers", {
          from: bind(crm, Customer, { path: "/customers", pagination: { style: "page", pageSize: 30 } }),
          to: bind(erp, Customer, { table: "clients", key: "code", fromCanonical: toClient }),
          chunkSize: 100,
        }),
      ],
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const summary = await engine.run("customers");
    // pages of 30; chunks of at least 50 records, then 100 (slow start, up to chunkSize): 2 pages (60), then 4
    // pages (120), then the last 70 records
    const chunks = await store.chunkStates(summary.run.id);
    assert.deepEqual(
      chunks.map((chunk) => chunk.records),
      [60, 120, 70],
    );
    assert.equal(summary.counts.targets["erp.Customer"]?.loaded, 250);
    assert.equal((target.prepare("SELECT count(DISTINCT code) AS n FROM clients").get() as { n: number }).n, 250);
  });
});

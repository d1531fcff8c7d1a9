import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startSimApi } from "../../sim/api.ts";
import { http } from "../../src/connectors/http/index.ts";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { Customer, createCustomerSource, openStore, tempDir, toCustomer } from "../support/fixtures.ts";
import { captureLogs } from "../support/logs.ts";

describe("secrets", () => {
  it("never appear in logs, errors or the ledger when a system refuses or cannot be reached", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 20 });
    await using api = await startSimApi({
      collections: { customers: { key: "id", records: [] } },
      defaults: { auth: { bearer: "the-right-token" } },
    });
    await using store = await openStore(tmp.dir);
    const { logger, text } = captureLogs();
    const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
    const wrongToken = "s3cret-token-4f9a2c";
    const dbPassword = "p4ssw0rd-77b1e0";
    const api_ = http("api", {
      baseUrl: api.url,
      auth: { type: "bearer", token: wrongToken },
      limits: { retry: { maxAttempts: 2, initialDelayMs: 5 } },
    });
    const pg = postgres("pg", {
      url: `postgres://franca:${dbPassword}@127.0.0.1:1/nowhere`,
      limits: { retry: { maxAttempts: 2, initialDelayMs: 5 } },
    });
    const source = bind(crm, Customer, {
      table: "customers",
      key: "id",
      cursor: "updated_at",
      toCanonical: toCustomer,
    });
    const hub = defineHub({
      systems: [crm, api_, pg],
      entities: [Customer],
      flows: [
        flow("to-api", {
          from: source,
          to: bind(api_, Customer, { path: "/customers", mode: "batch", batchPath: "/customers/batch" }),
        }),
        flow("to-pg", { from: source, to: bind(pg, Customer, { table: "customers" }) }),
      ],
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store, logger });
    const refused = await engine.run("to-api");
    const unreachable = await engine.run("to-pg");
    assert.equal(refused.run.status, "failed");
    assert.match(refused.run.error?.message ?? "", /authentication refused/);
    assert.equal(unreachable.run.status, "failed");
    const ledger = JSON.stringify([
      refused.run,
      unreachable.run,
      await store.records(refused.run.id, { limit: 100 }),
      await store.records(unreachable.run.id, { limit: 100 }),
    ]);
    for (const secret of [wrongToken, dbPassword]) {
      assert.ok(!text().includes(secret), `logs hold ${secret}`);
      assert.ok(!ledger.includes(secret), `the ledger holds ${secret}`);
    }
    // the failures were logged (so the assertions above looked at the messages that could have leaked)
    assert.match(text(), /authentication refused/);
    assert.match(text(), /ECONNREFUSED|connect/);
  });
});

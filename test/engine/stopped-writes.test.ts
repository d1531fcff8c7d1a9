/**
 * A write cut by the run's stop is not a failure of its system: when one target fails and the run stops, the other
 * target's writes in flight are recorded interrupted (WRITE_INTERRUPTED, transient), those it had answered loaded;
 * and a run that waits for a system says so on its record.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startSimApi } from "../../sim/api.ts";
import { http } from "../../src/connectors/http/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { Customer, createCustomerSource, openStore, tempDir, toCustomer } from "../support/fixtures.ts";

describe("a run stopped by one target's failure", () => {
  it("records the other target's writes in flight as interrupted, not as its failure, and those answered as loaded", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 300 });
    const customers = { customers: { key: "id", records: [] } };
    await using good = await startSimApi({ collections: customers });
    await using bad = await startSimApi({ collections: customers });
    // the healthy API answers its first 2 batches (100 records), then holds every batch until let go: those are in
    // flight when the other target fails
    const letGo = good.hold("batch", 2);
    // the other answers 503 to every batch, and its system gives up at the first (no retry): the run stops; it
    // holds them too, until warehouse has answered its first batches and holds the next
    bad.configure({ batch: { force: { status: 503 } } });
    const badGoes = bad.hold("batch");
    await using store = await openStore(tmp.dir);
    const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
    const warehouse = http("warehouse", { baseUrl: good.url });
    const billing = http("billing", { baseUrl: bad.url, limits: { retry: { maxAttempts: 1 } } });
    const target = (system: typeof warehouse) =>
      bind(system, Customer, { path: "/customers", mode: "batch", batchPath: "/customers/batch", batchSize: 50 });
    const hub = defineHub({
      systems: [crm, warehouse, billing],
      entities: [Customer],
      flows: [
        flow("customers", {
          from: bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: toCustomer }),
          to: [target(warehouse), target(billing)],
          chunkSize: 100,
        }),
      ],
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    // billing fails once warehouse's held batches are in flight
    const failing = engine.run("customers");
    while (good.stats.requests.batch < 3) await sleep(5);
    await sleep(100); // the answers of the batches let through are back
    badGoes();
    const failed = await failing;
    assert.equal(failed.run.status, "failed");
    assert.equal(failed.run.error?.code, ErrorCode.SystemUnavailable);
    assert.match(failed.run.error?.message ?? "", /billing/);
    // warehouse: the records it answered for are loaded; those in flight interrupted, none failed as its own
    const problems = await store.records(failed.run.id, { target: "warehouse.Customer", status: "failed" });
    assert.ok(problems.length > 0, "writes were in flight");
    for (const record of problems) {
      assert.equal(record.code, ErrorCode.WriteInterrupted);
      assert.equal(record.errorClass, "transient");
      assert.match(record.message ?? "", /not written: the run stopped \(SYSTEM_UNAVAILABLE at billing\)/);
    }
    const loaded = await store.records(failed.run.id, { target: "warehouse.Customer", status: "loaded" });
    assert.equal(loaded.length, 100);

    letGo();
    bad.configure({ batch: { force: [] } });
    await sleep(10);
    const resumed = await engine.resume(failed.run.id);
    assert.equal(resumed.run.status, "succeeded");
    assert.equal(resumed.counts.targets["warehouse.Customer"]?.loaded, 300);
    assert.equal(resumed.counts.targets["billing.Customer"]?.loaded, 300);
    assert.equal(good.records("customers").length, 300);
    assert.equal(bad.records("customers").length, 300);
    // the 100 records warehouse answered for are not sent again: 200 records in batches of 50
    // each record created once: none created again by the resume
    // the records answered before the stop were recorded loaded: the resume counts them loaded without sending them
    const sentAgain = (await store.records(resumed.run.id, { target: "warehouse.Customer", status: "loaded" })).length;
    assert.equal(sentAgain, 300);
  });
});

describe("a run waiting for a system", () => {
  it("says so on its record while it waits (runs show from elsewhere), and not once it has ended", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 100 });
    await using api = await startSimApi({ collections: { customers: { key: "id", records: [] } } });
    // down at first: the breaker opens at the first failure and probes every 300 ms
    api.configure({ batch: { force: { status: 503 } } });
    await using store = await openStore(tmp.dir);
    const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
    const warehouse = http("warehouse", {
      baseUrl: api.url,
      limits: {
        breaker: { consecutiveFailures: 1, halfOpenAfterMs: 300 },
        retry: { maxAttempts: 2, initialDelayMs: 5 },
      },
    });
    const hub = defineHub({
      systems: [crm, warehouse],
      entities: [Customer],
      heartbeatMs: 50,
      flows: [
        flow("customers", {
          from: bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: toCustomer }),
          to: bind(warehouse, Customer, { path: "/customers", mode: "batch", batchPath: "/customers/batch" }),
        }),
      ],
    });
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
    const running = engine.run("customers");
    let waiting: { reason?: string; until?: number } | undefined;
    for (let i = 0; i < 200 && waiting === undefined; i++) {
      await sleep(20);
      const [run] = await store.listRuns({ flow: "customers", limit: 1 });
      waiting = (run?.stats.pausedNow as Record<string, { reason: string; until: number }> | undefined)?.warehouse;
    }
    assert.equal(waiting?.reason, "breaker", "the record said the run waits for warehouse's breaker");
    api.configure({ batch: { force: [] } });
    const done = await running;
    assert.equal(done.run.status, "succeeded");
    assert.equal(done.run.stats.pausedNow, undefined, "an ended run waits for nothing");
    assert.ok(((done.run.stats.systems as Record<string, { pausedMs: number }>).warehouse?.pausedMs ?? 0) > 0);
  });
});

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Hub, HubSpec } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import {
  type CustomersHubOverrides,
  createClientsTarget,
  createCustomerSource,
  customersHub,
  hubWith,
  openStore,
  tempDir,
  toClient,
} from "../support/fixtures.ts";
import { captureLogs } from "../support/logs.ts";
import { dropStoreSchemas, pgUrl } from "../support/pg-schema.ts";

/**
 * The lines a run of `customersHub`'s flow (with `overrides`) logs, on a hub defined again with `extra` (a name, a
 * store); on the in-process executor, or on the distributed one (a PostgreSQL store), whose jobs this process works
 * while no worker is alive.
 */
async function runLogs(
  extra: Partial<HubSpec>,
  executor: "local" | "distributed",
  overrides: CustomersHubOverrides = {},
): Promise<Record<string, unknown>[]> {
  using tmp = tempDir();
  createCustomerSource(join(tmp.dir, "crm.db"), { rows: 250 });
  createClientsTarget(join(tmp.dir, "erp.db"));
  const base: Hub = customersHub(tmp.dir, overrides);
  const hub = hubWith(base, extra);
  const { logger, text } = captureLogs();
  {
    await using store = executor === "local" ? await openStore(tmp.dir) : undefined;
    await using engine = await Engine.open({
      hub,
      baseDir: tmp.dir,
      logger,
      executor,
      ...(store === undefined ? {} : { store }),
    });
    const summary = await engine.run("customers");
    assert.equal(summary.run.status, "succeeded");
  }
  return text()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Every line names `hub`; there are lines, and, from the distributed executor, its workers' job lines among them. */
function assertHubOnEveryLine(lines: readonly Record<string, unknown>[], hub: string, jobs: boolean): void {
  assert.ok(lines.length >= 2, `a run logs its start and end (got ${lines.length} lines)`);
  for (const line of lines) assert.equal(line.hub, hub, JSON.stringify(line));
  if (jobs) assert.ok(lines.some((line) => line.msg === "job done"));
}

/** Runs `work` with the URL of a PostgreSQL store in a schema of its own, dropped after (its queue's too). */
async function withPgStore(work: (store: string) => Promise<void>): Promise<void> {
  const schema = `franca_logs_${randomBytes(5).toString("hex")}`;
  try {
    await work(`${pgUrl}?schema=${schema}`);
  } finally {
    await dropStoreSchemas(schema);
  }
}

describe("the engine's logs", () => {
  it("name the hub on every line, as defineHub's `name` gives it, else 'franca'", async () => {
    assertHubOnEveryLine(await runLogs({ name: "billing hub" }, "local"), "billing hub", false);
    assertHubOnEveryLine(await runLogs({}, "local"), "franca", false);
  });

  it("name the hub on every line of the distributed executor too, its jobs' included", async () => {
    await withPgStore(async (store) => {
      const lines = await runLogs({ name: "billing hub", store }, "distributed");
      assertHubOnEveryLine(lines, "billing hub", true);
    });
  });

  it("warn when a run is past its flow's deadlineMs, in-process and on the distributed executor's workers", async () => {
    // each load waits, so that the run lasts past its 1 ms deadline while a worker's heartbeat (100 ms) looks at it
    const slow: CustomersHubOverrides = {
      deadlineMs: 1,
      fromCanonical: (async (customer: Parameters<typeof toClient>[0]) => {
        await sleep(150);
        return toClient(customer);
      }) as never,
    };
    const pastDeadline = (lines: readonly Record<string, unknown>[]) =>
      lines.filter((line) => line.msg === "run is past its deadline" && line.deadlineMs === 1 && line.level === "warn");
    assert.equal(pastDeadline(await runLogs({}, "local", slow)).length, 1);
    assert.equal(pastDeadline(await runLogs({}, "local", { deadlineMs: 60_000 })).length, 0);
    await withPgStore(async (store) => {
      const lines = await runLogs({ store, heartbeatMs: 100 }, "distributed", slow);
      // once per worker (this process's), with the run's own fields
      const warned = pastDeadline(lines);
      assert.equal(warned.length, 1, JSON.stringify(lines));
      assert.equal(warned[0]?.flow, "customers");
    });
  });
});

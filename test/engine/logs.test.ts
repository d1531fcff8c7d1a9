import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { defineHub, type Hub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { createClientsTarget, createCustomerSource, customersHub, openStore, tempDir } from "../support/fixtures.ts";
import { captureLogs } from "../support/logs.ts";

/** The lines a run of `customersHub`'s flow logs, on a hub defined again with `name` (none: the default). */
async function runLogs(name: string | undefined): Promise<Record<string, unknown>[]> {
  using tmp = tempDir();
  createCustomerSource(join(tmp.dir, "crm.db"), { rows: 250 });
  createClientsTarget(join(tmp.dir, "erp.db"));
  const base: Hub = customersHub(tmp.dir);
  const hub = defineHub({
    ...(name === undefined ? {} : { name }),
    systems: [...base.systems.values()],
    entities: [...base.entities.values()],
    flows: [...base.flows.values()],
  });
  const { logger, text } = captureLogs();
  await using store = await openStore(tmp.dir);
  {
    await using engine = await Engine.open({ hub, baseDir: tmp.dir, store, logger });
    const summary = await engine.run("customers");
    assert.equal(summary.run.status, "succeeded");
  }
  return text()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("the engine's logs", () => {
  it("name the hub on every line, as defineHub's `name` gives it, else 'franca'", async () => {
    for (const [name, expected] of [
      ["billing-hub", "billing-hub"],
      [undefined, "franca"],
    ] as const) {
      const lines = await runLogs(name);
      assert.ok(lines.length >= 2, `a run logs its start and end (got ${lines.length} lines)`);
      for (const line of lines) assert.equal(line.hub, expected, JSON.stringify(line));
    }
  });
});

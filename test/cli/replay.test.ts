/** `franca replay` of a run with nothing to replay records no run and exits 0; a key that did not fail exits 2. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { franca, writeCustomersConfig } from "../support/cli.ts";
import { createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";

describe("franca replay", () => {
  it("with nothing to replay says so, records no run and exits 0; a key that did not fail exits 2", () => {
    using tmp = tempDir();
    writeCustomersConfig(tmp.dir);
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 10, badEmails: [4] });
    createClientsTarget(join(tmp.dir, "erp.db"));
    assert.equal(franca(tmp.dir, "run", "customers").code, 3);
    assert.equal(franca(tmp.dir, "run", "customers").code, 0);

    const nothing = franca(tmp.dir, "replay", "2");
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.match(nothing.stdout, /run 2 has nothing to replay: no quarantined or failed records/);
    const json = franca(tmp.dir, "replay", "2", "--json");
    assert.equal(json.code, 0);
    assert.equal((JSON.parse(json.stdout) as { replayed: boolean }).replayed, false);

    const wrongKey = franca(tmp.dir, "replay", "1", "--key", "9");
    assert.equal(wrongKey.code, 2);
    assert.match(wrongKey.stderr, /USAGE: run 1 has no quarantined or failed record with key '9'/);

    const runs = JSON.parse(franca(tmp.dir, "runs", "--json").stdout) as { id: number }[];
    const ids = runs.map((run) => run.id).sort();
    assert.deepEqual(ids, [1, 2], "no replay run was recorded");

    // the mapping not fixed: the header says what the replay is to do, the summary what came of it (refused again)
    const again = franca(tmp.dir, "replay", "1");
    assert.equal(again.code, 3, again.stderr);
    assert.match(again.stdout, /^replaying run 1: 1 to transform again\n/);
    assert.match(again.stdout, /canonical 0 · quarantined 1/);
    // run 1 tells who replayed its problems, and how that went
    assert.match(franca(tmp.dir, "runs", "show", "1").stdout, /\n {2}replayed by run 3 \(partial\)$/m);
    const shown = JSON.parse(franca(tmp.dir, "runs", "show", "1", "--json").stdout) as { replays: unknown };
    assert.deepEqual(shown.replays, [{ id: 3, status: "partial" }]);
    assert.match(franca(tmp.dir, "runs").stdout, /\n\s*1\s+customers\s+partial .* 1 \(replayed: 3\)\n/);
  });
});

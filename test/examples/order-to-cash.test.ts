import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const demo = fileURLToPath(new URL("../../examples/order-to-cash/demo.ts", import.meta.url));

describe("npm run demo", () => {
  it("runs the order-to-cash integration and its claims hold", () => {
    const result = spawnSync(process.execPath, [demo], { encoding: "utf8", timeout: 120_000 });
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.doesNotMatch(result.stdout, /✗/);
    assert.match(result.stdout, /✓ billing got no duplicate/);
    assert.match(result.stdout, /✓ run 3 moved exactly the five edited orders to both targets/);
    assert.match(
      result.stdout,
      /INV-2000\s+\(transform\)\s+quarantined\s+1\s+VALIDATION_FAILED\s+\/lines\/0\/quantity/,
    );
  });
});

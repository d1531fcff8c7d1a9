import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { semiSpaceFlag, startWithSemiSpace } from "../../src/engine/threads/semi-space.ts";

/**
 * A thread that churns through short-lived objects, then reports the size V8 gave its young generation (MB). One
 * sample in ten or so reads more for a moment (4.25 to 7.75 MB where the limit is 4; CI once failed on 5): the least of
 * five samples is the size.
 */
const churn = `
const { parentPort } = require("node:worker_threads");
const v8 = require("node:v8");
let kept = [];
const churn = (n) => { for (let i = 0; i < n; i++) { kept.push({ i, text: "row " + i }); if (kept.length > 20000) kept = []; } };
const youngGeneration = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space").space_size / 1048576;
churn(2e6);
let least = youngGeneration();
for (let sample = 0; sample < 4; sample++) { churn(2e5); least = Math.min(least, youngGeneration()); }
parentPort.postMessage(least);
`;

function youngGeneration(worker: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
}

describe("semi-spaces per thread", () => {
  it("reads the process's --max-semi-space-size from its arguments, then NODE_OPTIONS", () => {
    assert.equal(semiSpaceFlag(["--max-semi-space-size=2"], ""), 2);
    assert.equal(semiSpaceFlag(["--max-semi-space-size", "16"], ""), 16);
    assert.equal(semiSpaceFlag([], "--inspect --max-semi-space-size=4"), 4);
    assert.equal(semiSpaceFlag(["--max-semi-space-size=2"], "--max-semi-space-size=4"), 4, "NODE_OPTIONS come last");
    assert.equal(semiSpaceFlag(["--heap-growing-percent=100"], ""), undefined);
  });

  it("starts threads with the semi-spaces asked for, and leaves later threads to their own limits", async () => {
    // this process has no --max-semi-space-size: a Worker's resourceLimits size its young generation
    assert.equal(semiSpaceFlag(), undefined);
    const [raised] = startWithSemiSpace(8, () => [new Worker(churn, { eval: true })]);
    assert.equal(await youngGeneration(raised as Worker), 16, "two semi-spaces of 8 MB");
    await raised?.terminate();
    // the flag is put back once the thread runs: a later thread's resourceLimits (2 MB semi-spaces) apply again
    const later = new Worker(churn, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 6 } });
    assert.equal(await youngGeneration(later), 4, "two semi-spaces of 2 MB");
    await later.terminate();
  });
});

/**
 * The in-process rate gate: at most `requests` starts in any window of `perMs` (plus the 2 % slack), a burst allowed
 * up to the limit, and no start pushed back by one that came late.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { localRateGate, rateSlack } from "../../src/engine/gates.ts";

const signal = new AbortController().signal;

describe("local rate gate", () => {
  it("never lets more than `requests` start in any window, and lets that many start at once", async () => {
    const gate = localRateGate(5, 200);
    const starts: number[] = [];
    for (let i = 0; i < 16; i++) {
      await gate.take(signal);
      starts.push(performance.now());
    }
    for (let k = 0; k + 5 < starts.length; k++) {
      const span = (starts[k + 5] as number) - (starts[k] as number);
      // the gate's own starts are a window apart; these are read just after each take resolves (2 ms for that hop)
      assert.ok(span >= 200 * rateSlack - 2, `starts ${k} and ${k + 5} are ${span.toFixed(1)} ms apart`);
    }
    // the first five form a burst: even spacing would have put the fifth 4 × 40 ms after the first
    assert.ok((starts[4] as number) - (starts[0] as number) < 40, "a burst up to the limit is allowed");
  });

  it("a caller that starts late does not push the next ones back", async () => {
    const gate = localRateGate(4, 400);
    await gate.take(signal);
    const first = performance.now();
    // the event loop is blocked for 150 ms: the second start is late
    const until = performance.now() + 150;
    while (performance.now() < until) {}
    await gate.take(signal);
    await gate.take(signal);
    await gate.take(signal);
    const fourth = performance.now();
    // even spacing (one per 102 ms after each actual start) would put the fourth start 150 + 2 × 102 ms after the first
    assert.ok(fourth - first < 150 + 102, `the fourth started ${(fourth - first).toFixed(0)} ms after the first`);
    await gate.take(signal);
    assert.ok(performance.now() - first >= 400 * rateSlack - 1, "the fifth waits until the first is a window old");
  });
});

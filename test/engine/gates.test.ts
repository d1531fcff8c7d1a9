/**
 * The in-process gates. The rate gate: at most `requests` starts in any window of `perMs` (plus the 2 % slack), a
 * burst allowed up to the limit, and no start pushed back by one that came late. The concurrency gate: never more
 * than its limit in flight, waiting calls served earliest chunk first, a caller that gives up leaving no trace.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forChunk } from "../../src/engine/chunk-order.ts";
import { localConcurrencyGate, localRateGate, rateSlack } from "../../src/engine/gates.ts";
import { whenAborted } from "../../src/engine/when-aborted.ts";

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
    // the gate stamps the first start between these two readings: the lower bound below counts from the earlier one
    // (a machine busy with other work may leave milliseconds between the stamp and the later one)
    const beforeFirst = performance.now();
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
    assert.ok(performance.now() - beforeFirst >= 400 * rateSlack, "the fifth waits until the first is a window old");
  });
});

/** A promise and the function that resolves it. */
function latch(): { promise: Promise<void>; open(): void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe("local concurrency gate", () => {
  it("serves waiting calls earliest chunk first, first come first served within a chunk", async () => {
    const gate = localConcurrencyGate(1);
    const hold = latch();
    const first = gate.run(() => hold.promise, signal);
    const served: string[] = [];
    const call = (name: string, chunk?: number) => {
      const work = () => gate.run(async () => void served.push(name), signal);
      return chunk === undefined ? work() : forChunk(chunk, work);
    };
    const waiting = [
      call("chunk 5", 5),
      call("chunk 2 a", 2),
      call("chunk 9", 9),
      call("chunk 2 b", 2),
      call("source"),
    ];
    assert.equal(gate.inFlight, 1);
    hold.open();
    await Promise.all([first, ...waiting]);
    // work outside any chunk (the extraction) first, then by chunk; arrival order only breaks ties
    assert.deepEqual(served, ["source", "chunk 2 a", "chunk 2 b", "chunk 5", "chunk 9"]);
    assert.equal(gate.inFlight, 0);
  });

  it("never has more than its limit in flight, and a call that gives up while waiting frees its place", async () => {
    const gate = localConcurrencyGate(2);
    let inFlight = 0;
    let most = 0;
    const work = async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
    };
    const giveUp = new AbortController();
    const calls = Array.from({ length: 20 }, (_, i) => gate.run(work, i === 7 ? giveUp.signal : signal));
    giveUp.abort(new Error("given up"));
    const results = await Promise.allSettled(calls);
    assert.equal(most, 2);
    assert.deepEqual(
      results.flatMap((result, i) => (result.status === "rejected" ? [i] : [])),
      [7],
      "only the call that gave up failed",
    );
    assert.equal((results[7] as PromiseRejectedResult).reason.message, "given up");
    assert.equal(gate.inFlight, 0);
  });

  it("serves thousands of callers of one chunk in order, skipping those that gave up", async () => {
    const gate = localConcurrencyGate(1);
    const hold = latch();
    const first = gate.run(() => hold.promise, signal);
    const served: number[] = [];
    const giveUp = new AbortController();
    const calls = Array.from({ length: 3000 }, (_, i) =>
      forChunk(1, () => gate.run(async () => void served.push(i), i % 3 === 0 ? giveUp.signal : signal)),
    );
    giveUp.abort(new Error("given up"));
    hold.open();
    const results = await Promise.allSettled([first, ...calls]);
    assert.equal(results.filter((result) => result.status === "rejected").length, 1000);
    // past the first 1,024 served the gate drops them from its queue: the order must not change there
    assert.deepEqual(
      served,
      Array.from({ length: 3000 }, (_, i) => i).filter((i) => i % 3 !== 0),
    );
    assert.equal(gate.inFlight, 0);
  });

  it("refuses a call whose signal has already aborted, without taking a slot", async () => {
    const gate = localConcurrencyGate(1);
    const aborted = AbortSignal.abort(new Error("too late"));
    await assert.rejects(
      gate.run(async () => "ran", aborted),
      /too late/,
    );
    assert.equal(await gate.run(async () => "ran", signal), "ran");
  });
});

describe("whenAborted", () => {
  it("calls every callback still registered when the signal aborts, once", () => {
    const controller = new AbortController();
    const called: number[] = [];
    const forgets = Array.from({ length: 1000 }, (_, i) => whenAborted(controller.signal, () => called.push(i)));
    for (let i = 0; i < 1000; i += 2) forgets[i]?.();
    controller.abort();
    controller.abort();
    assert.equal(called.length, 500);
    assert.ok(called.every((i) => i % 2 === 1));
    // on a signal that has already aborted, at once
    let now = false;
    whenAborted(controller.signal, () => {
      now = true;
    });
    assert.ok(now);
  });
});

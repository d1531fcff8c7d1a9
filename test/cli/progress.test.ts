import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProgressView } from "../../src/cli/progress.ts";

describe("progress bars", () => {
  it("draw one bar per stage and target, redrawn in place", () => {
    let out = "";
    const stream = { write: (text: string) => (out += text) } as unknown as NodeJS.WriteStream;
    const view = new ProgressView(stream);
    const progress = {
      runId: 7,
      flow: "invoices",
      startedAt: Date.now() - 1000,
      chunks: 4,
      extracted: 4000,
      transformed: 2000,
      threaded: 0,
      quarantined: 3,
      failed: 0,
      extractDone: false,
      targets: { billing: { loaded: 1000, unchanged: 0, quarantined: 2, failed: 0 } },
      paused: {
        billing: { until: Date.now() + 3000, reason: "breaker" as const },
        tax: { until: Date.now() + 2000, reason: "rate-limited" as const },
      },
    };
    view.update(progress, true);
    assert.match(out, /run 7 · invoices/);
    assert.match(out, /extract .* 4,000 in 4 chunks/);
    assert.match(out, /transform\s+█{12}░{12} 2,000 \(3 quarantined\)/);
    assert.match(out, /load billing .* 1,000 loaded, 2 quarantined/);
    assert.match(out, /⏸ billing: circuit open after repeated failures, next probe in 3 s/);
    assert.match(out, /⏸ tax: rate limited \(429\), calls held back for 2 s/);
    out = "";
    view.update({ ...progress, transformed: 4000, extractDone: true, paused: {} }, true);
    assert.ok(out.startsWith("\x1b[6F"), "the second frame moves up over the first");
    assert.ok(out.endsWith("\x1b[2K\n"), "and clears the line the pause no longer needs");
    assert.match(out, /transform\s+█{24} 4,000/);
    out = "";
    view.update({ ...progress, paused: { tax: { until: Date.now() - 1, reason: "rate-limited" } } }, true);
    assert.doesNotMatch(out, /⏸/, "a 429 hold that has passed is not shown");
  });
});

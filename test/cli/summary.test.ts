/** How a run reads: a resumed run's time is its executions' work, not the wait between a failure and its resume. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeRun, workedMs } from "../../src/cli/summary.ts";
import type { RunCounts, RunRecord } from "../../src/store/types.ts";

const counts: RunCounts = { chunks: 1, extracted: 10, canonical: 10, quarantined: 0, failed: 0, targets: {} };

function run(stats: Record<string, unknown>, endedAfterMs: number | undefined): RunRecord {
  const startedAt = Date.parse("2026-12-07T01:00:00Z");
  return {
    id: 5,
    flow: "customers",
    kind: "flow",
    trigger: "cli",
    status: endedAfterMs === undefined ? "running" : "succeeded",
    targets: [],
    startedAt,
    ...(endedAfterMs === undefined ? {} : { endedAt: startedAt + endedAfterMs }),
    extractDone: true,
    stats,
  };
}

describe("a run's time", () => {
  it("of a resumed run is its executions' work, with the span from its start to its end beside it", () => {
    // failed after 2 s, resumed 10 minutes later, done in 4 s more
    const resumed = run({ resumes: 1, durationMs: 6_000 }, 604_000);
    assert.equal(workedMs(resumed), 6_000);
    assert.match(
      describeRun(resumed, counts),
      /started 2026-12-07 01:00:00Z by cli, took 6\.0 s over 2 executions \(10 min 4 s from its start to its end\), resumed 1×/,
    );
  });

  it("of a run that ran once is its work; of a run still going, the time since its start", () => {
    assert.match(describeRun(run({ durationMs: 1_500 }, 1_520), counts), /by cli, took 1\.5 s\n/);
    const going = run({}, undefined);
    assert.ok(workedMs(going) >= Date.now() - going.startedAt - 5);
    assert.match(describeRun(going, counts), /by cli, running for /);
  });
});

describe("a run's lookups", () => {
  it("show the keys the cross-run cache answered beside the run's own hit rate", () => {
    const lookups = {
      taxRate: { calls: 40, hits: 30, misses: 10, cacheHits: 10, requests: 0, batches: 0, errors: 0, hitRate: 0.75 },
    };
    const text = describeRun(run({ durationMs: 10, lookups }, 10), counts);
    assert.match(
      text,
      /lookup\s+calls\s+hit rate\s+from cache\s+requests\s+batches\s+errors\n\s+taxRate\s+40\s+75\.0%\s+10\s+0\s+0\s+0/,
    );
  });
});

describe("a running run that waits for a system", () => {
  it("names the system, why and until when", () => {
    const until = Date.parse("2026-12-07T01:02:03Z");
    const text = describeRun(run({ pausedNow: { erp: { reason: "breaker", until } } }, undefined), counts);
    assert.match(text, /\n {2}waiting for erp: circuit open, next probe 2026-12-07 01:02:03Z/);
    // once it has ended, it waits for nothing
    const ended = describeRun(run({ durationMs: 5, pausedNow: { erp: { reason: "breaker", until } } }, 5), counts);
    assert.doesNotMatch(ended, /waiting for/);
  });
});

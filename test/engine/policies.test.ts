import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type SimApi, type SimBehavior, startSimApi } from "../../sim/api.ts";
import { describeRun } from "../../src/cli/summary.ts";
import { http } from "../../src/connectors/http/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import type { Limits } from "../../src/core/system.ts";
import { Engine } from "../../src/engine/engine.ts";
import { type PolicyStats, SystemPolicy } from "../../src/engine/policy.ts";
import { Customer, createCustomerSource, openStore, tempDir, toCustomer } from "../support/fixtures.ts";

/**
 * A SQLite source of `rows` customers → the simulated API's batch endpoint (`batchSize` records a request), with
 * the API's behaviour and the system's limits as given. Returns the run's summary and the API, for its measurements.
 */
async function runAgainst(
  rows: number,
  behavior: SimBehavior,
  limits: Limits,
  options: { batchSize?: number; loadConcurrency?: number; during?: (api: SimApi) => void } = {},
) {
  using tmp = tempDir();
  createCustomerSource(join(tmp.dir, "crm.db"), { rows });
  await using api = await startSimApi({
    seed: 11,
    collections: { customers: { key: "id", records: [] } },
    ...behavior,
  });
  await using store = await openStore(tmp.dir);
  const crm = sqlite("crm", { file: join(tmp.dir, "crm.db") });
  const target = http("api", { baseUrl: api.url, limits });
  const hub = defineHub({
    systems: [crm, target],
    entities: [Customer],
    flows: [
      flow("customers", {
        from: bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: toCustomer }),
        to: bind(target, Customer, {
          path: "/customers",
          mode: "batch",
          batchPath: "/customers/batch",
          batchSize: options.batchSize ?? 10,
        }),
        chunkSize: 100,
        loadConcurrency: options.loadConcurrency ?? 4,
      }),
    ],
  });
  await using engine = await Engine.open({ hub, baseDir: tmp.dir, store });
  options.during?.(api);
  const summary = await engine.run("customers");
  const policy = (summary.run.stats.systems as Record<string, PolicyStats>).api as PolicyStats;
  return { summary, api, policy, records: api.records("customers").length, duplicates: api.duplicates() };
}

describe("per-system policies", () => {
  it("never let more calls be in flight than the system's concurrency cap, and use it", async () => {
    const { summary, api, records } = await runAgainst(
      600,
      { batch: { latencyMs: 30, concurrency: { max: 3 } } },
      { concurrency: 3 },
      { loadConcurrency: 8 },
    );
    assert.equal(summary.run.status, "succeeded");
    assert.equal(records, 600);
    assert.equal(api.stats.maxInFlightByRoute.batch, 3, "the server saw 3 at once, never more");
    assert.equal(api.stats.overConcurrency, 0);
  });

  it("keep an HTTP system that declares no limits to 64 calls in flight from a process", async () => {
    const { summary, api, records } = await runAgainst(
      1000,
      { batch: { latencyMs: 30 } },
      {},
      { batchSize: 1, loadConcurrency: 8 },
    );
    assert.equal(summary.run.status, "succeeded");
    assert.equal(records, 1000);
    assert.equal(api.stats.maxInFlightByRoute.batch, 64, "the server saw 64 at once, never more");
  });

  it("keep to the rate limit: a server limiting at the same rate never answers 429", async () => {
    // the server's windows are 800 ms, not 1,000: the gate starts the 21st request a second after the first, and the
    // server counts them in different windows as long as the first reached it less than 200 ms late (a busy machine
    // running tests in parallel); without the gate all 40 would come in its first window
    const { summary, api, records } = await runAgainst(
      400,
      { batch: { rateLimit: { requests: 20, windowMs: 800 } } },
      { rateLimit: { requests: 20, perMs: 1000 } },
    );
    assert.equal(summary.run.status, "succeeded");
    assert.equal(records, 400);
    assert.equal(api.stats.requests.batch, 40);
    assert.equal(api.stats.rateLimited, 0);
  });

  it("wait as long as Retry-After says before trying again", async () => {
    let refused = 0;
    const { summary, api, records } = await runAgainst(
      100,
      {
        batch: {
          force: {
            status: 429,
            headers: { "Retry-After": "1" },
            when: () => refused++ < 1,
          },
        },
      },
      { retry: { initialDelayMs: 10 } },
    );
    assert.equal(summary.run.status, "succeeded");
    assert.equal(records, 100);
    const log = api.log().filter((entry) => entry.route === "batch");
    const tooMany = log.find((entry) => entry.status === 429);
    assert.ok(tooMany !== undefined);
    const retried = log.find(
      (entry) =>
        entry.at > tooMany.at &&
        entry.url === tooMany.url &&
        entry.headers["idempotency-key"] === tooMany.headers["idempotency-key"],
    );
    assert.ok(retried !== undefined, "the refused batch was sent again with the same idempotency key");
    assert.ok(retried.at - tooMany.at >= 950, `it waited ${retried.at - tooMany.at} ms after the 429 asked for 1 s`);
  });

  it("hold back every call after a 429 until its Retry-After, without spending the records' attempts", async () => {
    // the system declares no rate limit, but the server takes 5 requests a second; 2 calls in flight, 2 attempts
    const { summary, api, policy, records, duplicates } = await runAgainst(
      150,
      { batch: { latencyMs: 20, rateLimit: { requests: 5, windowMs: 1000 } } },
      { concurrency: 2, retry: { maxAttempts: 2, initialDelayMs: 10 } },
    );
    assert.equal(summary.run.status, "succeeded", "429s cost time, not records");
    assert.equal(records, 150);
    assert.equal(duplicates, 0);
    assert.equal(summary.counts.targets["api.Customer"]?.failed, 0);
    assert.ok(policy.rateLimited >= 2, `${policy.rateLimited} 429s`);
    assert.ok(policy.pausedMs >= 1500, `held back ${policy.pausedMs} ms`);
    assert.match(
      describeRun(summary.run, summary.counts),
      new RegExp(`api: .*${policy.rateLimited} × 429, paused \\d`),
      "the run's summary shows the 429s and the time paused",
    );
    // after each 429, only the call already in flight (2 in flight at most: 1 besides the refused one) reached the
    // server before the second it asked for was over, however late it arrived
    const log = api.log().filter((entry) => entry.route === "batch");
    for (const refused of log.filter((entry) => entry.status === 429)) {
      const early = log.filter((entry) => entry.at > refused.at && entry.at < refused.at + 900);
      assert.ok(early.length <= 1, `${early.length} requests came within the second after a 429`);
    }
    assert.ok(api.stats.rateLimited <= 2 * Math.ceil(15 / 5), `${api.stats.rateLimited} 429s at the server`);
  });

  it("without Retry-After, hold back for the backoff, doubling with each 429 in a row", async () => {
    let refused = 0;
    const { summary, api, records } = await runAgainst(
      20,
      { batch: { force: { status: 429, when: () => refused++ < 3 } } },
      { concurrency: 1, retry: { maxAttempts: 1, initialDelayMs: 100 } },
    );
    assert.equal(summary.run.status, "succeeded", "a single attempt allowed, yet three 429s cost no record");
    assert.equal(records, 20);
    const at = api
      .log()
      .filter((entry) => entry.route === "batch")
      .map((entry) => entry.at);
    assert.equal(at.length, 5, "three refused, then both batches");
    const gaps = at.slice(1, 4).map((time, i) => time - (at[i] as number));
    assert.ok((gaps[0] as number) >= 95 && (gaps[1] as number) >= 195 && (gaps[2] as number) >= 395, `gaps ${gaps}`);
  });

  it("count the 429s of calls in flight together as one: the hold does not grow with the burst", async () => {
    let refused = 0;
    const { summary, policy, records } = await runAgainst(
      30,
      { batch: { latencyMs: 20, force: { status: 429, when: () => refused++ < 3 } } },
      { concurrency: 3, retry: { initialDelayMs: 100 } },
      {
        // the API holds the batches until all three are in flight: they are refused together, whatever the timing
        during: (sim) => {
          const release = sim.hold("batch");
          void (async () => {
            for (let i = 0; i < 2000 && sim.stats.inFlight < 3; i++) await sleep(5);
            release();
          })();
        },
      },
    );
    assert.equal(summary.run.status, "succeeded");
    assert.equal(records, 30);
    assert.equal(policy.rateLimited, 3);
    // one hold of 100 ms; counted as three 429s in a row it would have grown to 100 → 200 → 400 ms
    assert.ok(policy.pausedMs >= 100 && policy.pausedMs < 200, `held ${policy.pausedMs} ms`);
  });

  it("open the breaker on a system that keeps failing, pause instead of failing records, and recover", async () => {
    const { summary, api, policy, records } = await runAgainst(
      300,
      { batch: { force: { status: 503 } } },
      { breaker: { consecutiveFailures: 3, halfOpenAfterMs: 200 }, retry: { maxAttempts: 3, initialDelayMs: 5 } },
      {
        loadConcurrency: 1,
        during: (sim) => setTimeout(() => sim.configure({ batch: { force: undefined } }), 1200).unref(),
      },
    );
    assert.equal(summary.run.status, "succeeded", "the outage cost time, not records");
    assert.equal(records, 300);
    assert.equal(summary.counts.targets["api.Customer"]?.failed, 0);
    assert.ok(policy.breakerOpens >= 1);
    assert.ok(policy.pausedMs > 0);
    // the first chunk's 10 batches went out at once; after that, one probe per half-open period, not a retry storm
    // (without the breaker: 30 batches × 3 attempts)
    assert.ok(api.stats.forced <= 10 + 1200 / 200 + 2, `${api.stats.forced} calls reached the failing system`);
  });

  it("deliver every record exactly once through 429s, 5xx, lost responses and timeouts", async () => {
    const { summary, api, records, duplicates } = await runAgainst(
      2000,
      {
        batch: {
          latencyMs: 5,
          jitterMs: 120,
          // 10 %: about 80 batches are first seen by the server, and "500s happened" must not hang on a few of them
          faultRate: 0.1,
          faultAfterStoreRate: 0.08,
          rateLimit: { requests: 20, windowMs: 1000 },
        },
      },
      {
        rateLimit: { requests: 100, perMs: 1000 },
        timeoutMs: 100,
        retry: { maxAttempts: 10, initialDelayMs: 20, maxTotalDelayMs: 30_000 },
      },
      { batchSize: 25 },
    );
    assert.equal(summary.run.status, "succeeded");
    assert.equal(records, 2000);
    assert.equal(duplicates, 0);
    assert.equal(summary.counts.targets["api.Customer"]?.loaded, 2000);
    // the trouble really happened
    assert.ok(api.stats.rateLimited > 0, "429s");
    assert.ok(api.stats.faults > 0, "500s");
    assert.ok(api.stats.faultsAfterStore > 0, "lost responses");
    assert.ok(api.stats.clientAborts > 0, "timeouts");
  });

  it("count a pause once however many calls wait it out: the wall time the system was paused, not the sum", async () => {
    const halfOpenAfterMs = 150;
    const policy = new SystemPolicy("finance", {
      breaker: { consecutiveFailures: 1, halfOpenAfterMs },
      retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
    });
    let down = true;
    const call = async () => {
      if (down) throw new FrancaError(ErrorCode.SystemUnavailable, "finance: down", { errorClass: "transient" });
      return "ok";
    };
    const signal = new AbortController().signal;
    const started = Date.now();
    const first = policy.execute(call, signal); // fails, opens the breaker and waits for it
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(policy.breakerState, "open");
    // forty more calls find the breaker open and wait with the first: one pause, not forty-one
    const others = Array.from({ length: 40 }, () => policy.execute(call, signal));
    setTimeout(() => {
      down = false;
    }, halfOpenAfterMs / 2);
    const results = await Promise.all([first, ...others]);
    const elapsed = Date.now() - started;
    assert.deepEqual(new Set(results.map((result) => result.value)), new Set(["ok"]));
    // summed per waiting call it was about 41 × 150 ms
    assert.ok(policy.stats.pausedMs <= elapsed, `paused ${policy.stats.pausedMs} ms in ${elapsed} ms`);
    assert.ok(policy.stats.pausedMs >= halfOpenAfterMs * 0.8, `paused ${policy.stats.pausedMs} ms`);
  });

  it("count the hold of calls refused together by 429s once, as the time they waited", async () => {
    const policy = new SystemPolicy("finance", { retry: { initialDelayMs: 1 } });
    const calls = 10;
    const allIn = Promise.withResolvers<void>();
    let arrived = 0;
    let refusing = true;
    const call = async () => {
      if (!refusing) return "ok";
      if (++arrived === calls) allIn.resolve();
      await allIn.promise;
      refusing = false;
      throw new FrancaError(ErrorCode.SystemRateLimited, "finance: 429", {
        errorClass: "transient",
        retryAfterMs: 150,
      });
    };
    const signal = new AbortController().signal;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: calls }, () => policy.execute(call, signal)));
    const elapsed = Date.now() - started;
    assert.equal(results.length, calls);
    assert.equal(policy.stats.rateLimited, calls);
    assert.ok(policy.stats.pausedMs <= elapsed, `paused ${policy.stats.pausedMs} ms in ${elapsed} ms`);
    assert.ok(policy.stats.pausedMs >= 120, `paused ${policy.stats.pausedMs} ms for a 150 ms Retry-After`);
  });
});

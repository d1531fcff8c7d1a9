import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { acquire, probeHealth } from "../../src/connectors/pooled.ts";

describe("a pooled connection", () => {
  it("is handed over when it comes before the signal aborts", async () => {
    const released: string[] = [];
    const got = await acquire(
      async () => "conn-1",
      (late) => released.push(late),
      new AbortController().signal,
    );
    assert.equal(got, "conn-1");
    assert.deepEqual(released, []);
  });

  it("is not waited for once the signal aborts, and goes back to the pool when it comes later", async () => {
    const released: string[] = [];
    const arrives = Promise.withResolvers<string>();
    const control = new AbortController();
    const waiting = acquire(
      () => arrives.promise,
      (late) => released.push(late),
      control.signal,
    );
    control.abort(new Error("run cancelled"));
    await assert.rejects(waiting, /run cancelled/);
    arrives.resolve("conn-2");
    await arrives.promise;
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(released, ["conn-2"]);
  });

  it("is not asked for when the signal has aborted already", async () => {
    let asked = false;
    const control = new AbortController();
    control.abort(new Error("stopped"));
    await assert.rejects(
      acquire(
        async () => {
          asked = true;
          return "conn";
        },
        () => {},
        control.signal,
      ),
      /stopped/,
    );
    assert.equal(asked, false);
  });
});

describe("a health probe", () => {
  it("is healthy when the probe returns, with its latency", async () => {
    const health = await probeHealth(() => new Promise((resolve) => setTimeout(resolve, 20)));
    assert.equal(health.ok, true);
    assert.ok(health.latencyMs >= 15, `latency ${health.latencyMs} ms`);
    assert.equal(health.message, undefined);
  });

  it("is unhealthy when the probe throws, with the message made of the error", async () => {
    const thrown = await probeHealth(() => {
      throw new Error("connection refused");
    });
    assert.deepEqual([thrown.ok, thrown.message], [false, "connection refused"]);
    const described = await probeHealth(
      () => Promise.reject(new Error("ECONNREFUSED")),
      (error) => `db: ${(error as Error).message}`,
    );
    assert.deepEqual([described.ok, described.message], [false, "db: ECONNREFUSED"]);
  });
});

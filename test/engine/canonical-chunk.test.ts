/**
 * The bytes a chunk from a transform thread holds are freed as soon as the run is done with them, not at the
 * collector's next full collection: a target's prepared rows once its load wrote them, the staged text once every
 * load let go of the chunk. Freed means detached (byteLength 0); bytes that are not a buffer of their own are never
 * touched.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CanonicalChunk, type PreparedTarget } from "../../src/engine/canonical-chunk.ts";
import { freeBytes } from "../../src/engine/free-bytes.ts";
import { InFlight } from "../../src/engine/in-flight.ts";
import { encodeCanonical } from "../../src/engine/staging.ts";

const records = [
  { key: "a", hash: "h1", sourceId: "a", payload: { id: "a", n: 1 }, json: '{"id":"a","n":1}' },
  { key: "b", hash: "h2", sourceId: "b", payload: { id: "b", n: 2 }, json: '{"id":"b","n":2}' },
];

function prepared(): PreparedTarget {
  return {
    data: { bytes: new Uint8Array(64).fill(7), rows: 2 },
    rowOf: Int32Array.from([0, 1]),
    failures: [],
    async: false,
  };
}

function transferredChunk(): { chunk: CanonicalChunk; staged: Uint8Array; bytes: Record<string, Uint8Array> } {
  const staged = encodeCanonical(records);
  const targets = new Map([
    ["crm", prepared()],
    ["warehouse", prepared()],
  ]);
  const bytes = Object.fromEntries(
    [...targets].map(([name, target]) => [name, (target.data as { bytes: Uint8Array }).bytes]),
  );
  return { chunk: CanonicalChunk.transferred(["a", "b"], ["h1", "h2"], null, staged, targets), staged, bytes };
}

describe("freeBytes", () => {
  it("frees a byte array that is its whole buffer, and nothing else", () => {
    const whole = new Uint8Array(1024).fill(1);
    freeBytes(whole);
    assert.equal(whole.byteLength, 0);
    assert.equal(whole.buffer.byteLength, 0);

    const shared = new Uint8Array(1024).fill(1);
    const part = shared.subarray(0, 512);
    freeBytes(part);
    assert.equal(part.byteLength, 512, "a view of part of a buffer is left alone");
    assert.equal(shared[1000], 1);

    const pooled = Buffer.from("small"); // from Buffer's shared pool
    freeBytes(pooled);
    assert.equal(pooled.toString(), "small");

    freeBytes("text");
    freeBytes(undefined);
    // an object's byte arrays, one level deep (a driver's prepared rows), by the same rule
    const rows = { bytes: new Uint8Array(8), ends: new Uint32Array(2), part: shared.subarray(0, 8), n: 2 };
    freeBytes(rows);
    assert.equal(rows.bytes.byteLength, 0);
    assert.equal(rows.ends.byteLength, 0);
    assert.equal(rows.part.byteLength, 8);
  });
});

describe("CanonicalChunk: freeing a thread's bytes", () => {
  it("frees a target's prepared rows when asked, and then has none for that target", () => {
    const { chunk, bytes } = transferredChunk();
    chunk.freePrepared("crm");
    assert.equal(bytes.crm?.byteLength, 0);
    assert.equal(chunk.prepared("crm"), undefined, "a later load maps the records itself");
    assert.equal(bytes.warehouse?.byteLength, 64, "the other target's rows are kept");
    assert.notEqual(chunk.prepared("warehouse"), undefined);
    chunk.freePrepared("crm"); // twice: nothing more to do
  });

  it("frees the staged text when the last load lets go, not before", () => {
    const { chunk, staged, bytes } = transferredChunk();
    chunk.hold(2);
    chunk.letGo();
    assert.ok(staged.byteLength > 0, "one load still holds the chunk");
    assert.equal(chunk.record(1).payload.n, 2);
    const other = transferredChunk();
    other.chunk.hold(2);
    other.chunk.letGo();
    other.chunk.letGo();
    assert.equal(other.staged.byteLength, 0);
    assert.equal(other.bytes.crm?.byteLength, 64, "prepared rows are the loads' to free (load.ts)");
    assert.throws(() => other.chunk.record(0), { code: "INTERNAL" });
    // a chunk whose records were decoded before needs no staged text any more
    chunk.letGo();
    assert.equal(chunk.record(0).key, "a");
    assert.equal(bytes.crm?.byteLength, 64);
  });

  it("a chunk nobody held is not freed by a stray letGo", () => {
    const { chunk, staged } = transferredChunk();
    chunk.letGo();
    assert.ok(staged.byteLength > 0);
    assert.equal(chunk.record(0).key, "a");
  });
});

describe("InFlight", () => {
  it("runs the idle callback at once when no call runs, else when the last settles, saying whether one failed", async () => {
    const idle = new InFlight();
    const seen: boolean[] = [];
    idle.whenIdle((failed) => seen.push(failed));
    assert.deepEqual(seen, [false]);

    const calls = new InFlight();
    const first = Promise.withResolvers<string>();
    const second = Promise.withResolvers<string>();
    const tracked = calls.track(first.promise);
    calls.track(second.promise).catch(() => undefined);
    calls.whenIdle((failed) => seen.push(failed));
    first.resolve("ok");
    assert.equal(await tracked, "ok", "the call is returned as it is");
    assert.deepEqual(seen, [false], "one call still runs");
    second.reject(new Error("gave up"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, [false, true]);

    const ok = new InFlight();
    const done = Promise.withResolvers<void>();
    ok.track(done.promise);
    ok.whenIdle((failed) => seen.push(failed));
    done.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, [false, true, false]);
  });
});

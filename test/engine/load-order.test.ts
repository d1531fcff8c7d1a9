import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blockingLoad, keyDigestSet, keyDigests } from "../../src/engine/distributed/load-order.ts";

describe("load order's key digests", () => {
  it("are 32-bit FNV-1a hashes per key, little-endian, the same on every worker", () => {
    const bytes = Buffer.from(keyDigests(["a", "", "foobar"]));
    assert.equal(bytes.length, 12);
    // FNV-1a's published values for "a", "" and "foobar"
    assert.equal(bytes.readUInt32LE(0), 0xe40c292c);
    assert.equal(bytes.readUInt32LE(4), 0x811c9dc5);
    assert.equal(bytes.readUInt32LE(8), 0xbf9cf968);
    assert.equal(keyDigestSet(["a", "a", "b"]).size, 2);
  });

  it("block a load for the first earlier chunk that may share a key, or whose keys are not known yet", () => {
    const mine = keyDigestSet(["10", "11", "12"]);
    const apart = { seq: 0, digests: keyDigests(["1", "2", "3"]) };
    const sharing = { seq: 1, digests: keyDigests(["9", "12"]) };
    const unknown = { seq: 2, digests: null };
    assert.equal(blockingLoad(mine, [apart]), undefined);
    assert.equal(blockingLoad(mine, []), undefined);
    assert.equal(blockingLoad(mine, [apart, sharing, unknown]), sharing);
    assert.equal(blockingLoad(mine, [apart, unknown, sharing]), unknown);
    // a chunk with no keys to load waits for nothing
    assert.equal(blockingLoad(keyDigestSet([]), [sharing, unknown]), undefined);
  });
});

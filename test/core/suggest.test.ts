import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { closestSetting, didYouMean } from "../../src/core/suggest.ts";

const hub = ["name", "systems", "entities", "flows", "lookups", "store", "cache", "heartbeatMs", "staleAfterMs"];
const lookup = ["system", "get", "getMany", "maxBatch", "ttlMs", "shared", "cacheKey", "description"];

describe("closestSetting", () => {
  it("finds the setting a slip of the fingers meant: case, a prefix, two swapped letters, one edit in three", () => {
    assert.equal(closestSetting("heartbeatMS", hub), "heartbeatMs");
    assert.equal(closestSetting("ttl", lookup), "ttlMs");
    assert.equal(closestSetting("nmae", hub), "name");
    assert.equal(closestSetting("tabel", ["table", "query", "key", "cursor"]), "table");
    assert.equal(closestSetting("descripton", lookup), "description");
    assert.equal(closestSetting("sytems", hub), "systems");
    assert.equal(closestSetting("maxbatch", lookup), "maxBatch");
  });

  it("suggests nothing that is not that close", () => {
    assert.equal(closestSetting("maxErrors", ["maxFailed", "maxFailedRatio", "minRecordsForRatio"]), undefined);
    assert.equal(closestSetting("url", ["ssl", "host"]), undefined); // two edits in three letters
    assert.equal(closestSetting("t", lookup), undefined); // too short to be a prefix of anything
    assert.equal(closestSetting("retries", ["concurrency", "rateLimit", "timeoutMs", "retry", "breaker"]), undefined);
    assert.equal(closestSetting("anything", []), undefined);
    assert.equal(closestSetting("limit", ["limit", "style"]), undefined); // known in another branch: not a suggestion
  });

  it("words it for a message, or says nothing", () => {
    assert.equal(didYouMean("ttl", lookup), " (did you mean 'ttlMs'?)");
    assert.equal(didYouMean("zzz", lookup), "");
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { closestSetting, didYouMean, shown } from "../../src/core/suggest.ts";

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

  it("finds the binding settings a connector's checks do not suggest, and the store scheme meant", () => {
    const mapping = ["name", "key", "cursor", "toCanonical", "fromCanonical", "description"];
    assert.equal(closestSetting("fromCannonical", mapping), "fromCanonical");
    assert.equal(closestSetting("cursr", mapping), "cursor");
    assert.equal(closestSetting("postgress", ["postgres", "postgresql", "sqlite"]), "postgres");
    assert.equal(closestSetting("file", ["postgres", "postgresql", "sqlite"]), undefined);
  });
});

describe("shown", () => {
  it("shows a value as JSON, so that a string is told from a number", () => {
    assert.equal(shown("500"), '"500"');
    assert.equal(shown(500), "500");
    assert.equal(shown(true), "true");
    assert.equal(shown(null), "null");
    assert.equal(shown([1, "2"]), '[1,"2"]');
    assert.equal(shown({ every: "1h" }), '{"every":"1h"}');
  });

  it("shows what JSON cannot hold as JavaScript writes it, and cuts a long value", () => {
    assert.equal(shown(Number.NaN), "NaN");
    assert.equal(shown(Number.POSITIVE_INFINITY), "Infinity");
    assert.equal(shown(undefined), "undefined");
    assert.equal(shown(12n), "12n");
    assert.equal(
      shown(() => 1),
      "a function",
    );
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    assert.equal(shown(cycle), "[object Object]");
    const long = shown("x".repeat(200));
    assert.equal(long.length, 80);
    assert.ok(long.endsWith("..."));
  });
});

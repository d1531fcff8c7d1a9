/** Numbers a double cannot hold (JSON.rawJSON) cross threads and caches that cannot take them as they are. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseJsonExact } from "../../src/core/canonical-json.ts";
import { tagRawJson, untagRawJson } from "../../src/core/raw-json-tags.ts";
import { storeLookupCache } from "../../src/store/lookup-cache.ts";
import { ThreadedSqliteStore } from "../../src/store/sqlite/threaded.ts";
import { tempDir } from "../support/fixtures.ts";

const text = '{"id":7,"big":12345678901234567890,"list":[1,-98765432109876543210,{"d":1.0000000000000000001}],"s":"x"}';

describe("raw JSON values", () => {
  it("go through structured clone tagged, and come back raw, digit for digit", () => {
    const value = parseJsonExact(text);
    assert.throws(() => structuredClone(value), { name: "DataCloneError" });
    const received = untagRawJson(structuredClone(tagRawJson(value)));
    assert.equal(JSON.stringify(received), text);
    // a value without one goes as it is, not copied
    const plain = { a: [1, 2], b: { c: "d" } };
    assert.equal(tagRawJson(plain), plain);
  });

  it("keep their digits in the store's lookup cache, across the SQLite store's thread", async () => {
    using tmp = tempDir();
    await using store = new ThreadedSqliteStore(join(tmp.dir, "franca.db"));
    await store.migrate();
    const cache = storeLookupCache(store);
    await cache.set("account", [{ key: "7", value: parseJsonExact(text) }], 60_000);
    const found = await cache.get("account", ["7"]);
    assert.equal(JSON.stringify(found.get("7")), text);
  });
});

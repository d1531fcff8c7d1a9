import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keyBefore, strictlyAscending } from "../../src/core/key-order.ts";

describe("key order", () => {
  it("puts decimal integer keys in numeric order: shorter first, then by code units", () => {
    assert.equal(keyBefore("9", "10"), true);
    assert.equal(keyBefore("10", "9"), false);
    assert.equal(keyBefore("10", "11"), true);
    assert.equal(keyBefore("ab", "ab"), false, "a key is not before itself");
    assert.deepEqual(
      ["100", "9", "b", "10", "a"].sort((x, y) => (keyBefore(x, y) ? -1 : keyBefore(y, x) ? 1 : 0)),
      ["9", "a", "b", "10", "100"],
    );
  });

  it("tells keys that ascend strictly, through `at` and leaving out what `skip` says", () => {
    assert.equal(strictlyAscending(["1", "2", "10"], 3), true);
    assert.equal(strictlyAscending(["1", "2", "2"], 3), false, "two equal keys are not strictly ascending");
    assert.equal(strictlyAscending(["2", "1"], 2), false);
    assert.equal(strictlyAscending(["2", "1", "2"], 2, [1, 0]), true, "keys in `at`'s order, `count` of them");
    assert.equal(
      strictlyAscending(["1", "1", "2"], 3, undefined, (index) => index === 1),
      true,
    );
    assert.equal(
      strictlyAscending(["3", "1", "2"], 3, [0, 1, 2], (index) => index === 0),
      true,
    );
    assert.equal(strictlyAscending([], 0), true);
  });
});

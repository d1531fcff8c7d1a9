import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { keyOf, normalizeKeyInput } from "../../src/core/key.ts";

describe("record keys", () => {
  it("uses the value of a single-field key", () => {
    assert.equal(keyOf(["id"])({ id: 42 }), "42");
    assert.equal(keyOf(["id"])({ id: "A-1" }), "A-1");
  });

  it("encodes a composite key as a JSON array, so it cannot collide with a single one", () => {
    assert.equal(keyOf(["region", "number"])({ region: "EU", number: 7 }), '["EU",7]');
  });

  it("refuses a missing or empty key field with its path", () => {
    for (const value of [{}, { id: "" }, { id: null }, { id: { a: 1 } }]) {
      assert.throws(
        () => keyOf(["id"])(value),
        (error: unknown) => error instanceof FrancaError && error.code === ErrorCode.KeyMissing && error.path === "/id",
      );
    }
  });

  it("normalizes keys typed on the command line", () => {
    assert.equal(normalizeKeyInput(' ["EU", 7] '), '["EU",7]');
    assert.equal(normalizeKeyInput("1001"), "1001");
  });
});

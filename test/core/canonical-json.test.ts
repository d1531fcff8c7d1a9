import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Type from "typebox";
import { compileCanonicalJson, stableStringify } from "../../src/core/canonical-json.ts";
import { contentHash } from "../../src/core/hash.ts";

const Invoice = Type.Object(
  {
    number: Type.String(),
    total: Type.String(),
    customer: Type.Object({ id: Type.String(), name: Type.String() }, { additionalProperties: false }),
    lines: Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer(), note: Type.Optional(Type.String()) })),
    tags: Type.Optional(Type.Array(Type.String())),
    meta: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);

describe("canonical JSON", () => {
  it("sorts keys at every depth and leaves out undefined fields", () => {
    assert.equal(
      stableStringify({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }),
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it("gives the same text and hash whatever the key order", () => {
    const one = { number: "INV-1", total: "10.00", customer: { id: "C1", name: "Ann" }, lines: [{ sku: "A", qty: 1 }] };
    const two = { lines: [{ qty: 1, sku: "A" }], customer: { name: "Ann", id: "C1" }, total: "10.00", number: "INV-1" };
    const serialize = compileCanonicalJson(Invoice);
    assert.equal(serialize(one), serialize(two));
    assert.equal(contentHash(serialize(one)), contentHash(serialize(two)));
    assert.notEqual(contentHash(serialize(one)), contentHash(serialize({ ...one, total: "10.01" })));
  });

  it("compiled output equals the generic stable output, including open parts of the schema", () => {
    const serialize = compileCanonicalJson(Invoice);
    const values = [
      { number: "1", total: "0", customer: { id: "x", name: "y" }, lines: [] },
      {
        number: "2",
        total: "1.5",
        customer: { name: "é", id: "😀" },
        lines: [{ sku: "s", qty: 2, note: "n" }],
        tags: ["b", "a"],
      },
      {
        number: "3",
        total: "2",
        customer: { id: "x", name: "y" },
        lines: [{ qty: 1, sku: "z", extra: true }],
        meta: { z: 1, a: [1, 2] },
      },
      { number: "4", total: "2", customer: { id: "x", name: "y" }, lines: [{ qty: 1, sku: "z", note: undefined }] },
    ];
    for (const value of values) assert.equal(serialize(value), stableStringify(value));
  });

  it("keeps an own __proto__ key as data, compiled and generic", () => {
    const schema = {
      type: "object",
      properties: { b: { type: "number" }, ["__proto__"]: { type: "string" } },
      additionalProperties: false,
    };
    const value = JSON.parse('{"b":1,"__proto__":"x","a":{"__proto__":{"y":2}}}');
    assert.equal(stableStringify(value), '{"__proto__":"x","a":{"__proto__":{"y":2}},"b":1}');
    const { a: _, ...closed } = value;
    assert.equal(compileCanonicalJson(schema)(closed), '{"__proto__":"x","b":1}');
  });
});

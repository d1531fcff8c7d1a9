import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Type from "typebox";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { loadHash, targetMappingDigest } from "../../src/core/target-mapping.ts";

const Thing = entity("Thing", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.String(), name: Type.String() }),
});
const warehouse = postgres("warehouse", { url: "postgres://127.0.0.1/test" });

describe("target mapping digest", () => {
  it("is the same for the same definition, and changes with fromCanonical, the settings or the key", () => {
    const define = (spec: { table?: string; key?: string; upper?: boolean; identity?: boolean } = {}) =>
      bind(warehouse, Thing, {
        table: spec.table ?? "things",
        key: spec.key ?? "id",
        ...(spec.identity === true
          ? {}
          : {
              fromCanonical: spec.upper
                ? (thing: { id: string; name: string }) => ({ id: thing.id, name: thing.name.toUpperCase() })
                : (thing: { id: string; name: string }) => ({ id: thing.id, name: thing.name }),
            }),
      });
    const base = targetMappingDigest(define());
    assert.match(base, /^[A-Za-z0-9_-]{11}$/);
    assert.equal(targetMappingDigest(define()), base, "a binding defined again the same way");
    const others = [
      define({ upper: true }),
      define({ table: "things_v2" }),
      define({ key: "name" }),
      define({ identity: true }),
    ].map(targetMappingDigest);
    assert.equal(new Set([base, ...others]).size, 5, "each change gives another digest");
  });

  it("sees a function among the settings by its source text", () => {
    const withBody = (body: (row: Record<string, unknown>) => unknown) =>
      bind(warehouse, Thing, { table: "things", key: "id", shape: { body } } as never);
    assert.notEqual(
      targetMappingDigest(withBody((row) => ({ data: row }))),
      targetMappingDigest(withBody((row) => ({ item: row }))),
    );
    assert.equal(
      targetMappingDigest(withBody((row) => ({ data: row }))),
      targetMappingDigest(withBody((row) => ({ data: row }))),
    );
  });

  it("takes any settings: a cycle, an instance of a class (by its class), dates, patterns and big integers", () => {
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = cyclic;
    const withSettings = (extra: Record<string, unknown>) =>
      bind(warehouse, Thing, { table: "things", key: "id", ...extra } as never);
    const digestOf = (extra: Record<string, unknown>) => targetMappingDigest(withSettings(extra));
    assert.match(digestOf({ cyclic, agent: new URL("http://127.0.0.1/"), big: 10n }), /^[A-Za-z0-9_-]{11}$/);
    // an instance's state is not the mapping; a date's or a pattern's value is
    assert.equal(
      digestOf({ agent: new URL("http://127.0.0.1/a") }),
      digestOf({ agent: new URL("http://127.0.0.1/b") }),
    );
    assert.notEqual(digestOf({ since: new Date(0) }), digestOf({ since: new Date(1) }));
    assert.notEqual(digestOf({ match: /a/ }), digestOf({ match: /b/ }));
    assert.notEqual(digestOf({ big: 1n }), digestOf({ big: 2n }));
  });

  it("leaves out the settings the driver names as tuning, and sees a shared object as its equal copies", () => {
    const define = (extra: Record<string, unknown>) =>
      targetMappingDigest(bind(warehouse, Thing, { table: "things", key: "id", ...extra } as never));
    // PostgreSQL's `copy` chooses the bulk path, not what the table holds
    assert.equal(define({ copy: false }), define({}));
    assert.notEqual(define({ table: "other" }), define({}));
    const shared = { a: 1 };
    assert.equal(define({ one: shared, two: shared }), define({ one: { a: 1 }, two: { a: 1 } }));
  });

  it("files a content hash with the digest", () => {
    assert.equal(loadHash("abc", "xyz"), "abc.xyz");
    assert.notEqual(loadHash("abc", "xyz"), loadHash("abc", "xyw"));
  });
});

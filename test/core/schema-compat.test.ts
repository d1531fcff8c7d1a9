import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Type, { type TObjectOptions, type TProperties, type TSchema } from "typebox";
import { entity } from "../../src/core/entity.ts";
import { checkCompatibility } from "../../src/core/schema-compat.ts";
import { entityJsonSchema } from "../../src/core/schema-export.ts";
import { Decimal, Money, Timestamp } from "../../src/core/types.ts";

/** A Student entity (key `id`) with these fields, as `franca schema` exports it. */
function exported(properties: TProperties, version = 1, options: TObjectOptions = {}): Record<string, unknown> {
  const schema = Type.Object({ id: Type.String(), ...properties }, options);
  return entityJsonSchema(entity("Student", { version, key: "id", schema }));
}

/** The changes from one set of fields to another, as [path, change, breaking]. */
function changes(
  before: TProperties,
  after: TProperties,
  options: { before?: TObjectOptions; after?: TObjectOptions } = {},
): [string, string, boolean][] {
  const result = checkCompatibility(exported(before, 1, options.before), exported(after, 1, options.after));
  assert.equal(
    result.compatible,
    result.changes.every((change) => !change.breaking),
  );
  return result.changes.map((change) => [change.path, change.change, change.breaking]);
}

const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

describe("schema compatibility: keywords it does not judge", () => {
  it("breaks on any change to one (not, contains), and on a record whose keys take another pattern", () => {
    assert.deepEqual(changes({ code: Type.String() }, { code: Type.String({ not: { const: "x" } }) }), [
      ["/code", "not changed (not judged)", true],
    ]);
    assert.deepEqual(
      changes(
        { marks: Type.Record(Type.String(), Type.Integer()) },
        {
          marks: Type.Record(Type.String({ pattern: "^[a-z]+$" }), Type.Integer()),
        },
      ),
      [["/marks", "record keys ^.*$ no longer taken", true]],
    );
    // unchanged, such a keyword is no change
    assert.deepEqual(
      changes({ code: Type.String({ not: { const: "x" } }) }, { code: Type.String({ not: { const: "x" } }) }),
      [],
    );
  });
});

describe("schema compatibility: breaking changes", () => {
  it("the walkthrough: version kept at 2, five fields narrowed, is breaking and needs a higher version", () => {
    const before = exported(
      {
        email: nullable(Type.String()),
        country: Type.String(),
        balance: Decimal({ scale: 4 }),
        credits: Type.Optional(nullable(Type.Number())),
        studentNo: Type.String(),
      },
      2,
    );
    const after = (version: number) =>
      exported(
        {
          email: Type.String(),
          country: Type.Union([Type.Literal("DE"), Type.Literal("FR")]),
          balance: Money(),
          credits: Type.Optional(nullable(Type.Integer())),
          studentNo: Type.String({ maxLength: 5 }),
        },
        version,
      );
    const kept = checkCompatibility(before, after(2));
    assert.equal(kept.compatible, false);
    assert.equal(kept.versionTooLow, true);
    assert.deepEqual(kept.changes, [
      { path: "/email", change: "type string|null → string (null removed)", breaking: true },
      { path: "/country", change: 'type string → "DE"|"FR"', breaking: true },
      { path: "/balance", change: "decimal scale 4 → 2", breaking: true },
      { path: "/credits", change: "type number|null → integer|null (number removed)", breaking: true },
      { path: "/studentNo", change: "maxLength 5 added", breaking: true },
    ]);
    const raised = checkCompatibility(before, after(3));
    assert.equal(raised.compatible, false);
    assert.equal(raised.versionTooLow, false);
  });

  it("null removed from a nullable field", () => {
    assert.deepEqual(changes({ email: nullable(Type.String()) }, { email: Type.String() }), [
      ["/email", "type string|null → string (null removed)", true],
    ]);
  });

  it("a literal or enum value removed, also from a nullable enum", () => {
    const literals = (...values: string[]) => Type.Union(values.map((value) => Type.Literal(value)));
    assert.deepEqual(changes({ country: literals("DE", "FR", "IT") }, { country: literals("DE", "FR") }), [
      ["/country", 'type "DE"|"FR"|"IT" → "DE"|"FR" ("IT" removed)', true],
    ]);
    assert.deepEqual(changes({ level: nullable(Type.Enum(["bsc", "msc"])) }, { level: nullable(Type.Enum(["bsc"])) }), [
      ["/level", 'type "bsc"|"msc"|null → "bsc"|null ("msc" removed)', true],
    ]);
    assert.deepEqual(changes({ level: Type.Enum(["bsc", "msc"]) }, { level: Type.Enum(["bsc"]) }), [
      ["/level", 'type "bsc"|"msc" → "bsc" ("msc" removed)', true],
    ]);
  });

  it("a type removed from a union", () => {
    assert.deepEqual(changes({ ref: Type.Union([Type.String(), Type.Integer()]) }, { ref: Type.String() }), [
      ["/ref", "type string|integer → string (integer removed)", true],
    ]);
  });

  it("a string restricted to literals or to an enum", () => {
    assert.deepEqual(
      changes({ country: Type.String() }, { country: Type.Union([Type.Literal("DE"), Type.Literal("FR")]) }),
      [["/country", 'type string → "DE"|"FR"', true]],
    );
    assert.deepEqual(changes({ country: Type.String() }, { country: Type.Enum(["DE", "FR"]) }), [
      ["/country", 'type string → "DE"|"FR"', true],
    ]);
  });

  it("number → integer, also inside a nullable union", () => {
    assert.deepEqual(changes({ credits: nullable(Type.Number()) }, { credits: nullable(Type.Integer()) }), [
      ["/credits", "type number|null → integer|null (number removed)", true],
    ]);
    assert.deepEqual(changes({ credits: Type.Number() }, { credits: Type.Integer() }), [
      ["/credits", "type number → integer", true],
    ]);
  });

  it("a type changed inside a nullable union", () => {
    assert.deepEqual(changes({ room: nullable(Type.String()) }, { room: nullable(Type.Number()) }), [
      ["/room", "type string|null → number|null (string removed)", true],
    ]);
  });

  it("string lengths added or tightened", () => {
    assert.deepEqual(changes({ studentNo: Type.String() }, { studentNo: Type.String({ maxLength: 5 }) }), [
      ["/studentNo", "maxLength 5 added", true],
    ]);
    assert.deepEqual(
      changes({ studentNo: Type.String({ minLength: 2 }) }, { studentNo: Type.String({ minLength: 3 }) }),
      [["/studentNo", "minLength tightened 2 → 3", true]],
    );
    assert.deepEqual(
      changes({ name: nullable(Type.String({ maxLength: 80 })) }, { name: nullable(Type.String({ maxLength: 40 })) }),
      [["/name", "maxLength tightened 80 → 40", true]],
    );
  });

  it("numeric ranges added or tightened", () => {
    assert.deepEqual(
      changes(
        { age: Type.Integer({ minimum: 0 }), score: Type.Number({ maximum: 100 }) },
        { age: Type.Integer({ minimum: 16 }), score: Type.Number({ maximum: 10 }) },
      ),
      [
        ["/age", "minimum tightened 0 → 16", true],
        ["/score", "maximum tightened 100 → 10", true],
      ],
    );
    assert.deepEqual(
      changes({ ratio: Type.Number() }, { ratio: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }) }),
      [
        ["/ratio", "exclusiveMinimum 0 added", true],
        ["/ratio", "exclusiveMaximum 1 added", true],
      ],
    );
  });

  it("multipleOf added, or changed to a step that does not divide the old one", () => {
    assert.deepEqual(changes({ hours: Type.Number() }, { hours: Type.Number({ multipleOf: 0.5 }) }), [
      ["/hours", "multipleOf 0.5 added", true],
    ]);
    assert.deepEqual(
      changes({ hours: Type.Number({ multipleOf: 0.5 }) }, { hours: Type.Number({ multipleOf: 0.2 }) }),
      [["/hours", "multipleOf 0.5 → 0.2", true]],
    );
  });

  it("a pattern changed, also inside a nullable union", () => {
    assert.deepEqual(
      changes(
        { code: nullable(Type.String({ pattern: "^[A-Z]+$" })) },
        { code: nullable(Type.String({ pattern: "^[A-Z]{3}$" })) },
      ),
      [["/code", "pattern ^[A-Z]+$ → ^[A-Z]{3}$", true]],
    );
    assert.deepEqual(changes({ code: Type.String() }, { code: Type.String({ pattern: "^[A-Z]+$" }) }), [
      ["/code", "pattern ^[A-Z]+$ added", true],
    ]);
  });

  it("a format added or changed", () => {
    assert.deepEqual(changes({ email: Type.String() }, { email: Type.String({ format: "email" }) }), [
      ["/email", "format email added", true],
    ]);
    assert.deepEqual(changes({ enrolled: Type.String({ format: "date" }) }, { enrolled: Timestamp() }), [
      ["/enrolled", "format date → date-time", true],
    ]);
  });

  it("array sizes added or tightened, unique items required", () => {
    assert.deepEqual(
      changes(
        { courses: Type.Array(Type.String()) },
        { courses: Type.Array(Type.String(), { minItems: 1, maxItems: 8, uniqueItems: true }) },
      ),
      [
        ["/courses", "minItems 1 added", true],
        ["/courses", "maxItems 8 added", true],
        ["/courses", "uniqueItems added", true],
      ],
    );
  });

  it("a decimal's scale narrowed, also when nullable", () => {
    assert.deepEqual(changes({ fee: Decimal({ scale: 4 }) }, { fee: Money() }), [
      ["/fee", "decimal scale 4 → 2", true],
    ]);
    assert.deepEqual(changes({ fee: nullable(Decimal()) }, { fee: nullable(Decimal({ scale: 0 })) }), [
      ["/fee", "decimal scale any → 0", true],
    ]);
  });

  it("a required field added, a field removed, a field made required, inside a nullable object", () => {
    const address = (properties: TProperties) => nullable(Type.Object(properties));
    assert.deepEqual(
      changes(
        { address: address({ street: Type.String(), city: Type.String(), zip: Type.Optional(Type.String()) }) },
        { address: address({ street: Type.String(), zip: Type.String(), country: Type.String() }) },
      ),
      [
        ["/address/city", "field removed", true],
        ["/address/zip", "became required", true],
        ["/address/country", "required field added", true],
      ],
    );
  });

  it("nested objects and array items are compared all the way down", () => {
    const line = (qty: number, sku: TSchema) =>
      Type.Object({ sku, qty: Type.Integer({ minimum: qty }), tags: Type.Array(nullable(Type.String())) });
    assert.deepEqual(
      changes(
        {
          lines: Type.Array(line(0, Type.String())),
          tutor: Type.Object({ office: Type.Object({ room: Type.String() }) }),
        },
        {
          lines: Type.Array(line(1, Type.String({ minLength: 1 }))),
          tutor: Type.Object({ office: Type.Object({ room: Type.Integer() }) }),
        },
      ),
      [
        ["/lines/items/sku", "minLength 1 added", true],
        ["/lines/items/qty", "minimum tightened 0 → 1", true],
        ["/tutor/office/room", "type string → integer", true],
      ],
    );
    assert.deepEqual(changes({ tags: Type.Array(nullable(Type.String())) }, { tags: Type.Array(Type.String()) }), [
      ["/tags/items", "type string|null → string (null removed)", true],
    ]);
  });

  it("additional properties forbidden", () => {
    assert.deepEqual(changes({}, {}, { after: { additionalProperties: false } }), [
      ["", "additional properties no longer allowed", true],
    ]);
    assert.deepEqual(
      changes(
        { extra: Type.Object({ a: Type.String() }) },
        { extra: Type.Object({ a: Type.String() }, { additionalProperties: false }) },
      ),
      [["/extra", "additional properties no longer allowed", true]],
    );
  });

  it("a record's values and a tuple's items narrowed", () => {
    assert.deepEqual(
      changes(
        { marks: Type.Record(Type.String(), Type.Number()), slot: Type.Tuple([Type.String(), Type.Number()]) },
        { marks: Type.Record(Type.String(), Type.Integer()), slot: Type.Tuple([Type.String(), Type.Integer()]) },
      ),
      [
        ["/marks/^.*$", "type number → integer", true],
        ["/slot/items/1", "type number → integer", true],
      ],
    );
  });
});

describe("schema compatibility: widenings are compatible", () => {
  it("constraints loosened or removed, union members and values added, optional fields added", () => {
    assert.deepEqual(
      changes(
        {
          email: Type.String({ format: "email", maxLength: 40 }),
          age: Type.Integer({ minimum: 16, maximum: 99 }),
          hours: Type.Number({ multipleOf: 0.5 }),
          code: Type.String({ pattern: "^[A-Z]{3}$" }),
          courses: Type.Array(Type.String(), { minItems: 1, uniqueItems: true }),
          level: Type.Enum(["bsc"]),
          room: Type.String(),
          credits: Type.Integer(),
          country: Type.Union([Type.Literal("DE"), Type.Literal("FR")]),
          fee: Money(),
          phone: Type.String(),
        },
        {
          email: Type.String({ maxLength: 80 }),
          age: Type.Integer({ minimum: 0 }),
          hours: Type.Number({ multipleOf: 0.1 }),
          code: Type.String(),
          courses: Type.Array(Type.String()),
          level: Type.Enum(["bsc", "msc"]),
          room: nullable(Type.String()),
          credits: Type.Number(),
          country: Type.String(),
          fee: Decimal({ scale: 4 }),
          phone: Type.Optional(Type.String()),
          nickname: Type.Optional(Type.String()),
        },
        { before: { additionalProperties: false } },
      ),
      [
        ["/email", "maxLength loosened 40 → 80", false],
        ["/email", "format email removed", false],
        ["/age", "minimum loosened 16 → 0", false],
        ["/age", "maximum 99 removed", false],
        ["/hours", "multipleOf 0.5 → 0.1", false],
        ["/code", "pattern ^[A-Z]{3}$ removed", false],
        ["/courses", "minItems 1 removed", false],
        ["/courses", "uniqueItems removed", false],
        ["/level", 'type widened "bsc" → "bsc"|"msc"', false],
        ["/room", "type widened string → string|null", false],
        ["/credits", "type widened integer → number", false],
        ["/country", 'type widened "DE"|"FR" → string', false],
        ["/fee", "decimal scale widened 2 → 4", false],
        ["/phone", "became optional", false],
        ["/nickname", "optional field added", false],
        ["", "additional properties allowed", false],
      ],
    );
  });

  it("an unchanged schema has no changes", () => {
    const fields = {
      email: nullable(Type.String({ format: "email", maxLength: 80 })),
      country: Type.Union([Type.Literal("DE"), Type.Literal("FR")]),
      fee: Money(),
      credits: Type.Optional(nullable(Type.Integer({ minimum: 0 }))),
      lines: Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer() }), { minItems: 1 }),
    };
    const result = checkCompatibility(exported(fields, 2), exported(fields, 2));
    assert.deepEqual(result, { compatible: true, changes: [], versionTooLow: false });
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Driver } from "../../src/connectors/types.ts";
import { FrancaError } from "../../src/core/errors.ts";
import { decodeSourceRows, encodeSourceRows, joinEncoded, rowCount, rowsOf } from "../../src/engine/source-rows.ts";
import { stagedText } from "../../src/store/staging-files.ts";

/** A driver whose source text is one JSON row per line, its encoding the field to upper-case. */
const driver = {
  decode: (encoding: string, lines: string | Uint8Array, limit?: number) =>
    (typeof lines === "string" ? lines : Buffer.from(lines).toString("utf8"))
      .split("\n")
      .filter((line) => line !== "")
      .slice(0, limit)
      .map((line) => {
        const row = JSON.parse(line) as Record<string, unknown>;
        return { ...row, [encoding]: String(row[encoding]).toUpperCase() };
      }),
} as unknown as Driver;

describe("a chunk's source rows", () => {
  it("stage decoded rows as JSON, and read them back", () => {
    const rows = [
      { id: 1, name: "a\u0001b" },
      { id: 2, name: null },
    ];
    const staged = encodeSourceRows({ rows });
    assert.equal(staged, JSON.stringify(rows));
    assert.deepEqual(decodeSourceRows(staged), { rows });
  });

  it("stage binary columns, big integers, dates and non-finite floats so that they read back as the connector gave them", () => {
    const rows = [
      {
        id: 1n,
        photo: Buffer.from([0, 1, 2, 255]),
        thumb: new Uint8Array([9, 8, 7]),
        at: new Date("2024-06-30T12:00:00.123Z"),
        never: new Date(Number.NaN),
        doc: { tags: ["a", "b"], nested: { n: 1 } },
        // pg's bytea[]: binary values inside an array
        scans: [Buffer.from([1]), null, Buffer.from([2, 3])],
        none: null,
      },
      { id: 2n, photo: null, thumb: new Uint8Array(0), at: null, never: null, doc: null, scans: null, none: null },
    ];
    const staged = encodeSourceRows({ rows }) as string;
    const back = decodeSourceRows(staged) as { rows: typeof rows };
    // deepStrictEqual compares prototypes too: a Buffer stays a Buffer, a Uint8Array a Uint8Array
    assert.deepStrictEqual(back.rows, rows);
    assert.ok(Buffer.isBuffer(back.rows[0]?.photo));
    assert.ok(!Buffer.isBuffer(back.rows[0]?.thumb));
    // an own "__proto__" (JSON.parse makes them) holding a tagged value stays data, on the way in and back
    const odd = JSON.parse('{"id": 4, "doc": {"__proto__": {"n": 1}}}') as { doc: Record<string, { n: unknown }> };
    (Object.getOwnPropertyDescriptor(odd.doc, "__proto__")?.value as { n: unknown }).n = Buffer.from([6]);
    const oddBack = decodeSourceRows(encodeSourceRows({ rows: [odd] }) as string) as { rows: (typeof odd)[] };
    const doc = oddBack.rows[0]?.doc as Record<string, { n: unknown }>;
    assert.equal(Object.getPrototypeOf(doc), Object.prototype);
    assert.ok(Object.hasOwn(doc, "__proto__"));
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(doc, "__proto__")?.value, { n: Buffer.from([6]) });
    // floats JSON would change: NaN and the infinities (null in JSON), -0 (0); the plain numbers around them stay
    const floats = [{ id: 5, values: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0, 1.5] }];
    const floatsBack = decodeSourceRows(encodeSourceRows({ rows: floats }) as string) as { rows: typeof floats };
    assert.deepStrictEqual(floatsBack.rows, floats);
    assert.ok(Object.is(floatsBack.rows[0]?.values[3], -0));
    assert.ok(Object.is(floatsBack.rows[0]?.values[4], 0));
    // a value nested alone is found too
    const nested = [{ id: 3, doc: { at: [new Date(0)] } }];
    assert.deepStrictEqual(decodeSourceRows(encodeSourceRows({ rows: nested }) as string), { rows: nested });
    // rows without such values are staged as plain JSON, as before, and read back as plain JSON: data that looks
    // like a tag stays data
    const plain = [{ id: 1, doc: { type: "Buffer", data: [1] }, odd: { "\u0000date": "2024-01-01" } }];
    assert.equal(encodeSourceRows({ rows: plain }), JSON.stringify(plain));
    assert.deepStrictEqual(decodeSourceRows(JSON.stringify(plain)), { rows: plain });
  });

  it("stage the source's own text as it is, with its encoding and count, and decode it with the driver", () => {
    const text = '{"id":1,"name":"x"}\n{"id":2,"name":"line\\nnext"}\n';
    const staged = encodeSourceRows({ encoding: "name", text, count: 2 }) as string;
    assert.ok(staged.endsWith(text));
    const back = decodeSourceRows(staged);
    assert.deepEqual(back, { encoding: "name", text, count: 2 });
    assert.equal(rowCount(back), 2);
    assert.deepEqual(rowsOf(back, driver, "src"), [
      { id: 1, name: "X" },
      { id: 2, name: "LINE\nNEXT" },
    ]);
    assert.deepEqual(rowsOf(back, driver, "src", 1), [{ id: 1, name: "X" }]);
  });

  it("stage the source's bytes as they are, and read them back as text", () => {
    const text = '{"id":1,"name":"é😀"}\n';
    const bytes = Buffer.from(text);
    const staged = encodeSourceRows({ encoding: "name", text: bytes, count: 1 });
    // a header, then the source's bytes themselves (not copied)
    assert.ok(Array.isArray(staged) && staged[1] === bytes);
    // the store gives staged values back as text
    const back = decodeSourceRows(stagedText(staged));
    assert.deepEqual(back, { encoding: "name", text, count: 1 });
    assert.deepEqual(rowsOf(back, driver, "src"), [{ id: 1, name: "É😀" }]);
  });

  it("join consecutive batches of one read, and refuse batches of different encodings", () => {
    const joined = joinEncoded([
      { encoding: "name", text: '{"id":1,"name":"a"}\n', count: 1 },
      { encoding: "name", text: '{"id":2,"name":"b"}\n{"id":3,"name":"c"}\n', count: 2 },
    ]);
    assert.equal(rowCount(joined), 3);
    assert.deepEqual(
      rowsOf(joined, driver, "src").map((row) => row.name),
      ["A", "B", "C"],
    );
    const bytes = joinEncoded([
      { encoding: "name", text: Buffer.from('{"id":1,"name":"a"}\n'), count: 1 },
      { encoding: "name", text: Buffer.from('{"id":2,"name":"b"}\n'), count: 1 },
    ]) as { text: Uint8Array };
    assert.equal(Buffer.from(bytes.text).toString(), '{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n');
    assert.throws(
      () =>
        joinEncoded([
          { encoding: "a", text: "", count: 0 },
          { encoding: "b", text: "", count: 0 },
        ]),
      FrancaError,
    );
  });

  it("refuse to decode source text without the driver's decode", () => {
    assert.throws(() => rowsOf({ encoding: "e", text: "x\n", count: 1 }, {} as Driver, "src"), /cannot decode/);
  });
});

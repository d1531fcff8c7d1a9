/**
 * The MariaDB/MySQL connector's encoded read: `readEncoded` + `decode` (+ `cut`), the rows made where their chunk is
 * transformed. It must give exactly what the plain `read` gives: the same batches, positions and rows, for every type.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { mysqlDriver } from "../../src/connectors/mysql/index.ts";
import { decodeRows, encodeRows, kindOf, rowsEncoding } from "../../src/connectors/mysql/rows-text.ts";
import type { Connection, EncodedBatch } from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { decodedBatches, readAll, readAllEncoded, rowsOf } from "../support/connection-calls.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";

const files = mysqlTestDatabase("franca_myenc");
let connection: Connection;
before(() => {
  connection = files.connection;
});

const decode = mysqlDriver.decode as NonNullable<typeof mysqlDriver.decode>;
const cut = mysqlDriver.cut as NonNullable<typeof mysqlDriver.cut>;

/** The rows of encoded batches, each decoded a piece of `piece` rows at a time (cut), as a transform thread does. */
function decodedInPieces(batch: EncodedBatch, piece: number): Row[] {
  const rows: Row[] = [];
  let rest = batch.text;
  while (rest.length > 0) {
    const [first, after] = cut(batch.encoding, rest, piece);
    rows.push(...decode(batch.encoding, first));
    rest = after;
  }
  return rows;
}

describe("mysql connector: encoded reads", () => {
  // (in the suite's hook: the file's top-level hooks start together, before the database exists)
  before(async () => {
    const db = files.db;
    await db.query(
      `CREATE TABLE typed (id int PRIMARY KEY, flag tinyint(1), n bigint, u bigint unsigned, d decimal(65,30),
        f double, g float, at datetime(6), ts timestamp(6) NULL, day date, t time(6), y year, doc json, bits bit(10),
        bin varbinary(16), blb blob, label varchar(200), body mediumtext, fixed char(3), e enum('a','b'),
        st set('x','y'), pt point, lat varchar(20) CHARACTER SET latin1, changed datetime(6) NOT NULL,
        KEY by_changed (changed, id))`,
    );
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await db.query(
      `INSERT INTO typed VALUES (1, 1, -9223372036854775808, 18446744073709551615,
        '-12345678901234567890123456789012345.123456789012345678901234567891', -0e0, 3.40282e38,
        '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.5', '2024-02-29', '-838:59:59.000001', 2024,
        ?, b'1010101010', X'00FF0A0D095C22', ?, ?, ?, 'ab ', 'b', 'x,y', POINT(1.5, -0e0), 'café',
        '2024-01-01 00:00:00.000003')`,
      [
        '{"a": [1, "two", null, {"c": true}], "big": 12345678901234567890, "s": "ü🎉", "nl": "a\\nb\\t\\\\"}',
        all,
        'ünïcødé 日本語 👩‍👩‍👧 🎉 tab\there "q" back\\slash nl\nend \u2028 \u0001',
        `${"é🎉x".repeat(20_000)}end`,
      ],
    );
    await db.query("INSERT INTO typed (id, changed) VALUES (2, '2024-01-01 00:00:00.000001')");
    await db.query(
      `INSERT INTO typed (id, f, g, doc, bin, blb, label, body, fixed, changed)
        VALUES (3, 1e308, -1.5, '"just a string"', X'', X'', '', '', '', '2024-01-01 00:00:00.000002'),
               (4, 0.1, 0.1, '123', X'00', NULL, NULL, ' ', 'z', '2024-01-01 00:00:00.000002'),
               (5, -2.5e-300, 1e-38, 'null', NULL, X'FF', 'x', NULL, NULL, '2024-01-01 00:00:00.000004')`,
    );
  });

  const requests = [
    { name: "by key", request: { options: { table: "typed" }, key: ["id"], batchSize: 2 } },
    {
      name: "by cursor (DATETIME ties), from a position",
      request: {
        options: { table: "typed" },
        key: ["id"],
        cursor: "changed",
        batchSize: 2,
        from: ["2024-01-01 00:00:00.000001", 2],
      },
    },
    {
      name: "of a source query",
      request: { options: { query: "SELECT id, doc, bin, f, pt, label FROM typed WHERE id <> 4" }, key: ["id"] },
    },
  ];

  for (const { name, request } of requests) {
    it(`gives read's batches, positions and rows exactly, ${name}`, async () => {
      const plain = await readAll(connection, request);
      const encoded = await readAllEncoded(connection, request);
      assert.ok(plain.length > 0);
      assert.deepEqual(
        encoded.map((batch) => [batch.count, batch.position]),
        plain.map((batch) => [batch.rows.length, batch.position]),
      );
      assert.equal(new Set(encoded.map((batch) => batch.encoding)).size, 1, "one encoding for the whole read");
      // decoded whole, in pieces of one row (cut), and the first rows only (a limit)
      assert.deepEqual(decodedBatches(encoded, decode), plain);
      assert.deepEqual(
        encoded.flatMap((batch) => decodedInPieces(batch, 1)),
        rowsOf(plain),
      );
      const first = encoded[0] as EncodedBatch;
      assert.deepEqual(decode(first.encoding, first.text, 1), plain[0]?.rows.slice(0, 1));
    });
  }

  it("keeps the values JSON would change: bytes, a point's -0, huge and tiny doubles, JSON scalars and null", async () => {
    const [batch] = await readAllEncoded(connection, { options: { table: "typed" }, key: ["id"] });
    const [one, two, three, four, five] = decode((batch as EncodedBatch).encoding, (batch as EncodedBatch).text);
    // POINT(1.5, -0e0) keeps the sign in its WKB (the DOUBLE column does not): mysql2 reads y as -0, and so does decode
    assert.deepEqual(one?.pt, { x: 1.5, y: -0 });
    const point = one?.pt as { y: number } | undefined;
    assert.ok(Object.is(point?.y, -0));
    assert.equal(one?.g, 3.40282e38);
    assert.deepEqual(one?.blb, Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
    assert.deepEqual(one?.bits, Buffer.from([0b10, 0b10101010]));
    assert.equal(one?.n, "-9223372036854775808");
    assert.equal(one?.u, "18446744073709551615");
    assert.equal(one?.label, 'ünïcødé 日本語 👩‍👩‍👧 🎉 tab\there "q" back\\slash nl\nend \u2028 \u0001');
    assert.deepEqual(
      Object.values(two as Row).filter((value) => value !== null),
      [2, "2024-01-01 00:00:00.000001"],
    );
    assert.equal(three?.f, 1e308);
    assert.equal(three?.doc, "just a string");
    assert.deepEqual(three?.bin, Buffer.alloc(0));
    assert.equal(three?.label, "");
    assert.equal(four?.doc, 123);
    assert.equal(four?.label, null);
    assert.equal(five?.doc, null, "JSON null reads as null");
    assert.equal(five?.f, -2.5e-300);
  });

  it("ends the read, transient, when the columns change between pages: the engine reads again from its last chunk", async () => {
    await files.db.query("CREATE TABLE altered (id int PRIMARY KEY, label text)");
    await files.db.query("INSERT INTO altered VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')");
    const signal = new AbortController().signal;
    const read = (connection.readEncoded as NonNullable<Connection["readEncoded"]>)({
      options: { table: "altered" },
      key: ["id"],
      batchSize: 2,
      signal,
      call: (fn) => fn(signal),
    });
    const batches = (read as AsyncIterable<EncodedBatch>)[Symbol.asyncIterator]();
    const first = await batches.next();
    assert.equal(first.done, false);
    await files.db.query("ALTER TABLE altered ADD COLUMN extra int");
    await assert.rejects(batches.next(), (error: unknown) => {
      assert.ok(error instanceof FrancaError);
      assert.equal(error.code, ErrorCode.SystemUnavailable);
      assert.equal(error.transient, true);
      return true;
    });
    // read again from the first batch's position: the new columns, one encoding throughout
    const again = await readAllEncoded(connection, {
      options: { table: "altered" },
      key: ["id"],
      batchSize: 2,
      from: (first.value as EncodedBatch).position,
    });
    assert.deepEqual(
      again.flatMap((batch) => decode(batch.encoding, batch.text)),
      [
        { id: 3, label: "c", extra: null },
        { id: 4, label: "d", extra: null },
      ],
    );
  });

  it("writes one line of UTF-8 per row, which the driver cuts at any row and decodes from text or bytes", async () => {
    const [batch] = await readAllEncoded(connection, { options: { table: "typed" }, key: ["id"] });
    const { encoding, text, count } = batch as EncodedBatch;
    assert.ok(text instanceof Uint8Array, "bytes, which the engine stages and hands to a thread as they are");
    const asText = Buffer.from(text).toString("utf8");
    assert.equal(asText.split("\n").length - 1, count);
    assert.deepEqual(decode(encoding, asText), decode(encoding, text));
    const [head, rest] = cut(encoding, asText, 2);
    assert.deepEqual([...decode(encoding, head), ...decode(encoding, rest)], decode(encoding, text));
    assert.throws(() => cut(encoding, asText.slice(0, -1), count), /MariaDB\/MySQL rows ended in the middle of a row/);
  });

  it("kinds follow mysql2's parsers: JSON text, bytes of the binary character set, floating point, the rest as is", () => {
    assert.equal(kindOf({ name: "doc", columnType: 252, characterSet: 45, extendedFormat: "json" }), "j");
    assert.equal(kindOf({ name: "doc", columnType: 245, characterSet: 63 }), "j");
    assert.equal(kindOf({ name: "bin", columnType: 253, characterSet: 63 }), "b");
    assert.equal(kindOf({ name: "bits", columnType: 16, characterSet: 63 }), "b");
    assert.equal(kindOf({ name: "n", columnType: 8, characterSet: 63 }), "v", "BIGINT is a string, not bytes");
    assert.equal(kindOf({ name: "at", columnType: 12, characterSet: 63 }), "v");
    assert.equal(kindOf({ name: "f", columnType: 5, characterSet: 63 }), "n");
    assert.equal(kindOf({ name: "pt", columnType: 255, characterSet: 63 }), "n");
    assert.equal(kindOf({ name: "label", columnType: 253, characterSet: 45 }), "v");
    // a round trip of values that need care, without a server
    const fields = [
      { name: "f", columnType: 5 },
      { name: "b", columnType: 252, characterSet: 63 },
      { name: "j", columnType: 245 },
      { name: "v", columnType: 253, characterSet: 45 },
    ];
    const rows = [
      [Number.NaN, Buffer.from([1, 2]), '{"k": [1]}', "a\nb"],
      [Number.NEGATIVE_INFINITY, Buffer.alloc(0), "not json", ""],
      [-0, Buffer.from("ü"), '"text"', "-0"],
      [null, null, null, null],
    ];
    const decoded = decodeRows(rowsEncoding(fields), encodeRows(rows, fields.map(kindOf)));
    assert.deepEqual(decoded, [
      { f: Number.NaN, b: Buffer.from([1, 2]), j: { k: [1] }, v: "a\nb" },
      { f: Number.NEGATIVE_INFINITY, b: Buffer.alloc(0), j: "not json", v: "" },
      { f: -0, b: Buffer.from("ü"), j: "text", v: "-0" },
      { f: null, b: null, j: null, v: null },
    ]);
    assert.ok(Object.is(decoded[2]?.f, -0), "-0 stays -0 (JSON would make it 0)");
    assert.throws(() => decodeRows('{"format":"other"}', "[]\n"), /not an encoding of MariaDB\/MySQL rows/);
  });

  it("reads a line's strings as they are, escaped ones and numbers as JSON, and refuses a line that is no array", () => {
    const fields = [
      { name: "id", columnType: 8 },
      { name: "n", columnType: 3 },
      { name: "text", columnType: 253, characterSet: 45 },
      { name: "pt", columnType: 255, characterSet: 63 },
    ];
    const encoding = rowsEncoding(fields);
    const texts = ["", "null", "\\", 'a\\"', '"', '\\"\\', "\u2028\u0000", "tab\tend", '",[]{}:', "café 😀 \u2028"];
    const rows: unknown[][] = texts.map((text, i) => [
      String(900000000000000000n + BigInt(i)),
      i % 2 === 0 ? -1.5e-7 * (i + 1) : 2 ** 53 - i,
      text,
      null,
    ]);
    rows.push(["1", 0, null, { x: 1, y: -0 }], ["2", null, "after a nested value", [[1, 2]]]);
    const copy = structuredClone(rows);
    const decoded = decodeRows(encoding, encodeRows(rows, fields.map(kindOf)));
    assert.deepEqual(
      decoded,
      copy.map(([id, n, text, pt]) => ({ id, n, text, pt })),
    );
    assert.ok(
      Object.is((decoded[10]?.pt as { y?: number } | undefined)?.y, -0),
      "a nested value's -0 (the whole line parsed)",
    );
    // four values each, so that the count of values would not catch them; the unterminated string is followed by a
    // line whose quotes it must not take
    const malformed = ['["1",2,"x",null', '"1",2,"x",null]', '["1",2,"x,null]', '["1" 2,"x",null]', '["1",2,"x",nul]'];
    for (const line of malformed)
      assert.throws(() => decodeRows(encoding, `${line}\n["2",3,"y",null]\n`), /not the JSON array|JSON/, line);
    assert.throws(() => decodeRows(encoding, '["1",2,"x"]\n'), /a MariaDB\/MySQL row has 3 values, expected 4/);

    // V8's JSON.parse interns string values of up to 9 characters; a row's own short values must not pile up there
    setFlagsFromString("--allow-natives-syntax");
    const interned = new Function("text", "return %IsInternalizedString(text)") as (text: string) => boolean;
    assert.ok(interned((JSON.parse('["12345"]') as string[])[0] as string), "JSON.parse interns a short string");
    const [row] = decodeRows(encoding, encodeRows([["12345", 1, "1234.56", null]], fields.map(kindOf)));
    assert.deepEqual([interned(row?.id as string), interned(row?.text as string)], [false, false]);
  });
});

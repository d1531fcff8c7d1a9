import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import pg from "pg";
import {
  CopyLines,
  CopyRowDecoder,
  copyFields,
  encodeField,
  signedZeros,
  unescapeCopy,
} from "../../src/connectors/postgres/copy-text.ts";
import type { PostgresClient } from "../../src/connectors/postgres/index.ts";
import { textParser } from "../../src/connectors/postgres/parsers.ts";
import type { Connection, ItemResult, ReadRequest, WriteRequest } from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { readAll, rowsOf } from "../support/connection-calls.ts";
import { never, pgTestSchema, stagingTables, until } from "../support/pg-schema.ts";
import { tricky, trickyColumns, trickyRead } from "../support/pg-tricky.ts";

const files = pgTestSchema("franca_pgcopy");
const { url, schema, suffix, open, clientOf, backends } = files;
let connection: Connection;
let db: PostgresClient;
before(() => {
  connection = files.connection;
  db = files.db;
});

function reader(from: Connection): NonNullable<Connection["read"]> {
  return (from.read as NonNullable<Connection["read"]>).bind(from);
}

/** The two reads of a COPY binding, their batches as counts and positions: rows (`read`), the server's text (`readEncoded`). */
const copyReads: {
  name: string;
  batches(from: Connection, request: ReadRequest): AsyncIterable<{ count: number; position: unknown }>;
}[] = [
  {
    name: "read",
    async *batches(from, request) {
      for await (const batch of reader(from)(request)) yield { count: batch.rows.length, position: batch.position };
    },
  },
  {
    name: "readEncoded",
    async *batches(from, request) {
      const read = from.readEncoded?.(request);
      assert.ok(read !== undefined, "a COPY binding reads encoded");
      for await (const batch of read) yield { count: batch.count, position: batch.position };
    },
  },
];

function write(
  to: Connection,
  options: Record<string, unknown>,
  key: string[],
  rows: readonly Row[],
  signal = never,
): Promise<ItemResult[]> {
  const request: WriteRequest = {
    options,
    key,
    target: "test.target",
    run: 1,
    chunk: 0,
    items: rows.map((row, index) => ({ key: String(index), row, idempotencyKey: `idem-${index}`, hash: `h-${index}` })),
    signal,
  };
  return (to.write as NonNullable<Connection["write"]>)(request);
}

const allOk = (rows: readonly unknown[]) => rows.map(() => ({ ok: true }));

describe("COPY text format", () => {
  const plain = { json: false, array: false };

  it("encodes fields as a parameter's text, with COPY's escapes", () => {
    assert.equal(encodeField(null, plain), "\\N");
    assert.equal(encodeField(undefined, plain), "\\N");
    assert.equal(encodeField("", plain), "");
    assert.equal(encodeField("\\N", plain), "\\\\N", "the text \\N is not NULL");
    assert.equal(encodeField("a\tb\nc\rd\\e", plain), "a\\tb\\nc\\rd\\\\e");
    assert.equal(encodeField("\\.", plain), "\\\\.", "never the end-of-data marker");
    assert.equal(encodeField("ünï 🎉 \u0001", plain), "ünï 🎉 \u0001");
    assert.equal(encodeField(42, plain), "42");
    assert.equal(encodeField(-1.5e-7, plain), "-1.5e-7");
    assert.equal(encodeField(Number.NaN, plain), "NaN");
    assert.equal(encodeField(2n ** 70n, plain), "1180591620717411303424");
    assert.equal(encodeField(true, plain), "true");
    assert.equal(encodeField(false, plain), "false");
    assert.equal(encodeField(new Date("2024-01-02T03:04:05.678Z"), plain), "2024-01-02T03:04:05.678Z");
    assert.equal(encodeField(Uint8Array.from([0, 1, 254, 255]), plain), "\\\\x0001feff");
    assert.equal(encodeField({ a: "t\tn\n\\" }, { json: true, array: false }), '{"a":"t\\\\tn\\\\n\\\\\\\\"}');
    assert.equal(encodeField(["x", "y"], { json: true, array: false }), '["x","y"]');
    assert.equal(encodeField({ toJSON: () => undefined }, { json: true, array: false }), "\\N");
    // Array literals as pg makes them for a parameter: every element quoted, NULL bare, backslashes escaped, then
    // COPY's escapes on top.
    assert.equal(
      encodeField(["a,b", '"q"', null, "back\\slash", "", [1, 2]], { json: false, array: true }),
      '{"a,b","\\\\"q\\\\"",NULL,"back\\\\\\\\slash","",{"1","2"}}',
    );
    assert.equal(encodeField(["x"], plain), '["x"]', "an array outside an array column is JSON, as a parameter");
    assert.throws(() => encodeField({ n: 1n }, { json: true, array: false }), /BigInt/);
    assert.throws(() => encodeField(new Date(Number.NaN), plain), RangeError);
  });

  it("decodes every backslash sequence", () => {
    assert.equal(unescapeCopy("plain"), "plain");
    assert.equal(unescapeCopy("a\\\\b\\tc\\nd\\re\\bf\\fg\\vh"), "a\\b\tc\nd\re\bf\fg\vh");
    assert.equal(unescapeCopy("\\101\\x42\\x4a\\7"), "ABJ\u0007");
    assert.equal(unescapeCopy("\\q\\\\N"), "q\\N");
  });

  it("parses the JSON columns of the rows decoded at once in one go, as each alone would parse", () => {
    const fields = copyFields([
      { name: "id", type: 23 },
      { name: "a", type: 3802 },
      { name: "b", type: 114 },
    ]);
    assert.deepEqual(
      fields.map((field) => field.json === true),
      [false, true, true],
    );
    const decoder = new CopyRowDecoder(fields);
    const lines = [
      '1\t{"x": [1, {"y": null}], "__proto__": 1}\t"text"',
      "2\t\\N\tnull",
      '3\t"tab\\\\t"\t\\N',
      "4\t[]\t-1.5e3",
    ];
    const rows = decoder.rows(`${lines.join("\n")}\n`);
    assert.deepEqual(rows, [
      { id: 1, a: JSON.parse('{"x": [1, {"y": null}], "__proto__": 1}'), b: "text" },
      { id: 2, a: null, b: null },
      { id: 3, a: "tab\t", b: null }, // COPY's \\ is JSON's backslash, JSON's \t a tab
      { id: 4, a: [], b: -1500 },
    ]);
    assert.equal(Object.hasOwn(rows[0]?.a as object, "__proto__"), true, "an own __proto__, as JSON.parse makes");
    // The limit, and a row at a time, give the same values.
    assert.deepEqual(decoder.rows(`${lines.join("\n")}\n`, 2), rows.slice(0, 2));
    for (const [i, line] of lines.entries()) assert.deepEqual(decoder.rows(`${line}\n`), [rows[i]]);
    // Texts that are not one JSON value each (never the server's json or jsonb) are parsed alone, and fail as alone:
    // "1,2" joined with the others would have made one more element.
    assert.throws(() => decoder.rows('5\t1,2\t"z"\n'), SyntaxError);
    assert.throws(() => decoder.rows("5\t[1\t2]\n"), SyntaxError);
    // A JSON column whose name a later column takes: the row holds the later column's value.
    // json and jsonb parse with JSON.parse, whatever other code made of pg's global parsers, in both read paths
    const global = pg.types.getTypeParser(3802);
    pg.types.setTypeParser(3802, () => "changed elsewhere");
    try {
      assert.deepEqual(textParser(3802)('{"a": 1}'), { a: 1 });
      assert.deepEqual(new CopyRowDecoder(copyFields([{ name: "a", type: 3802 }])).rows('{"a": 1}\n'), [
        { a: { a: 1 } },
      ]);
    } finally {
      pg.types.setTypeParser(3802, global);
    }
    const shadowed = new CopyRowDecoder(
      copyFields([
        { name: "doc", type: 3802 },
        { name: "doc", type: 25 },
      ]),
    );
    assert.deepEqual(shadowed.rows('{"a": 1}\tlast\n'), [{ doc: "last" }]);
  });

  it("parses rows from chunks cut anywhere, even inside a UTF-8 character", () => {
    const decoder = new CopyRowDecoder([
      { name: "id", parse: textParser(23) },
      { name: "t", parse: textParser(25) },
      { name: "doc", parse: textParser(3802) },
      { name: "t", parse: textParser(25) }, // a later column of the same name wins, as in pg's rows
    ]);
    const data = Buffer.from(
      '1\tünï 🎉\t{"a": "x\\\\ty"}\tlast\n2\t\\N\t\\N\t\\\\N\n3\t\t[1, 2]\ttab\\there\n4\tx\\ny\t{}\t\n',
    );
    const expected = [
      { id: 1, t: "last", doc: { a: "x\ty" } }, // COPY's \\ is JSON's backslash, JSON's \t a tab
      { id: 2, t: "\\N", doc: null },
      { id: 3, t: "tab\there", doc: [1, 2] },
      { id: 4, t: "", doc: {} },
    ];
    for (let cut = 0; cut <= data.length; cut++) {
      for (const step of [1, 7]) {
        // Lines taken two at a time as the chunks come, as a read's batches of two would be.
        const lines = new CopyLines();
        const batches: { text: string; count: number; last: string }[] = [];
        const take = () => {
          const { parts, count, last } = lines.take();
          return { text: Buffer.concat(parts).toString("utf8"), count, last };
        };
        const chunks = [data.subarray(0, cut)];
        for (let at = cut; at < data.length; at += step) chunks.push(data.subarray(at, at + step));
        for (const chunk of chunks) {
          lines.push(chunk);
          while (lines.collect(2)) batches.push(take());
        }
        lines.end();
        assert.equal(lines.empty, true);
        const text = data.toString();
        const split = text.split("\n");
        assert.deepEqual(
          batches,
          [0, 2].map((from) => ({
            text: `${split.slice(from, from + 2).join("\n")}\n`,
            count: 2,
            last: split[from + 1],
          })),
          `cut at ${cut}, then every ${step} bytes`,
        );
        assert.deepEqual(decoder.rows(batches.map((batch) => batch.text).join("")), expected);
      }
    }
    assert.deepEqual(decoder.rows(data.toString(), 3), expected.slice(0, 3), "the first rows only");
    assert.deepEqual(decoder.pick("5\tx\t\\N\tlast", ["t", "id", "nothing"]), { t: "last", id: 5 });
    const truncated = new CopyLines();
    truncated.push(data.subarray(0, data.length - 1));
    assert.throws(() => truncated.end(), /middle of a row/);
    // the data ended, with more whole lines than the batch taken: the rest is for the next batches, not an error
    const ahead = new CopyLines();
    ahead.push(data.subarray(0, 20));
    ahead.push(data.subarray(20));
    assert.equal(ahead.collect(1), true);
    ahead.end();
    assert.equal(ahead.take().count, 1);
    assert.equal(ahead.collect(3), true);
    assert.equal(ahead.take().count, 3);
    assert.equal(ahead.empty, true);
    assert.throws(() => decoder.rows("1\tonly two\n"), /2 fields, expected 4/);
    assert.throws(() => decoder.rows("1\ta\tb\tc"), /middle of a row/);
  });
});

describe("postgres COPY: write then read", () => {
  const table = `${schema}.tricky`;

  before(async () => {
    for (const name of ["tricky", "tricky_insert"]) await db.query(`CREATE TABLE ${schema}.${name} (${trickyColumns})`);
  });

  it("round-trips tricky values exactly through COPY write then COPY read, as INSERT then keyset read do", async () => {
    assert.deepEqual(await write(connection, { table }, ["id"], tricky), allOk(tricky));
    assert.deepEqual(await write(connection, { table: `${table}_insert`, copy: false }, ["id"], tricky), allOk(tricky));
    const copyRead = rowsOf(await readAll(connection, { options: { table }, key: ["id"], batchSize: 4 }));
    const keysetRead = rowsOf(
      await readAll(connection, { options: { table: `${table}_insert`, copy: false }, key: ["id"], batchSize: 4 }),
    );
    // Every row and field as expected (not only the same each way, which a fault both paths share would pass), through
    // either path both ways.
    assert.deepEqual(copyRead, trickyRead);
    assert.deepEqual(keysetRead, trickyRead);
    assert.deepEqual(rowsOf(await readAll(connection, { options: { table, copy: false }, key: ["id"] })), trickyRead);
    assert.deepEqual(
      rowsOf(await readAll(connection, { options: { table: `${table}_insert` }, key: ["id"] })),
      trickyRead,
    );
    // The json column keeps its text as written (whitespace and all): compare the server's own text.
    for (const written of [table, `${table}_insert`]) {
      assert.deepEqual(await db.query(`SELECT id, j::text AS j FROM ${written} WHERE j IS NOT NULL ORDER BY id`), [
        { id: 11, j: '{ "kept" :\n\t"as written" }' },
        { id: 12, j: '{"x":[1,2]}' },
      ]);
    }
    // What was read writes back unchanged through COPY: the read shapes are the write shapes.
    assert.deepEqual(await write(connection, { table }, ["id"], copyRead), allOk(copyRead));
    assert.deepEqual(rowsOf(await readAll(connection, { options: { table }, key: ["id"] })), trickyRead);
  });

  it("keeps a float8 -0: both reads give -0, and both writes land it, alone and in arrays", async () => {
    const zeros = `${schema}.zeros`;
    await db.query(`CREATE TABLE ${zeros} (id int PRIMARY KEY, f float8, fa float8[], faa float8[][])`);
    // PostgreSQL keeps the sign of a float8 zero; both reads give it back (Object.is tells -0 from 0).
    await db.query(`INSERT INTO ${zeros} VALUES (1, '-0'), (2, '0')`);
    for (const copy of [true, false]) {
      const read = rowsOf(await readAll(connection, { options: { table: zeros, copy }, key: ["id"] }));
      assert.deepEqual(
        read.map((row) => [row.id, Object.is(row.f, -0), Object.is(row.f, 0)]),
        [
          [1, true, false],
          [2, false, true],
        ],
        copy ? "COPY read" : "keyset read",
      );
    }
    // Written through COPY (into the table, and through the staging table for a key already there) and INSERT.
    const arrays = {
      fa: [-0, 0.5, 0, null],
      faa: [
        [-0, 1],
        [2, -0],
      ],
    };
    assert.deepEqual(await write(connection, { table: zeros }, ["id"], [{ id: 3, f: -0, ...arrays }]), allOk([3]));
    assert.deepEqual(await write(connection, { table: zeros }, ["id"], [{ id: 2, f: -0, ...arrays }]), allOk([2]));
    assert.deepEqual(
      await write(connection, { table: zeros, copy: false }, ["id"], [{ id: 4, f: -0, ...arrays }]),
      allOk([4]),
    );
    const written = { fa: "{-0,0.5,0,NULL}", faa: "{{-0,1},{2,-0}}" };
    assert.deepEqual(
      await db.query(`SELECT id, f::text AS f, fa::text AS fa, faa::text AS faa FROM ${zeros} ORDER BY id`),
      [
        { id: 1, f: "-0", fa: null, faa: null },
        { id: 2, f: "-0", ...written },
        { id: 3, f: "-0", ...written },
        { id: 4, f: "-0", ...written },
      ],
    );
    // the caller's arrays are not changed, and an array without -0 (NaN included) goes as it is, not copied
    assert.ok(Object.is(arrays.fa[0], -0) && Object.is(arrays.faa[1]?.[1], -0));
    const none = [Number.NaN, 0, [1, Number.NaN], "-0"];
    assert.equal(signedZeros(none), none);
  });
});

describe("postgres COPY: write", () => {
  const snapshot = (table: string) => db.query(`SELECT *, xmin::text::int8 > 0 AS present FROM ${table} ORDER BY 1`);

  it("upserts: the same rows twice leave the table as after the first time, through one reused staging table", async () => {
    // One connection, so that the staging table seen is the one the writes use.
    const single = open({ url, poolSize: 1 }, "single");
    const table = `${schema}.clients`;
    await db.query(
      `CREATE TABLE ${table} (code text PRIMARY KEY, name text, balance numeric(12,2), seen int DEFAULT 7)`,
    );
    const clients = Array.from({ length: 500 }, (_, i) => ({ code: `c${i}`, name: `Client\t${i}`, balance: `${i}.5` }));
    assert.deepEqual(await write(single, { table }, ["code"], clients), allOk(clients));
    const once = await snapshot(table);
    assert.equal(once.length, 500);
    assert.deepEqual(once[2], { code: "c10", name: "Client\t10", balance: "10.50", seen: 7, present: true });
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(await write(single, { table }, ["code"], clients), allOk(clients));
      assert.deepEqual(await snapshot(table), once);
    }
    // An update changes its row only; a row of other columns gets a staging table of its own.
    assert.deepEqual(await write(single, { table }, ["code"], [{ code: "c3", name: "Renamed" }]), [{ ok: true }]);
    const updated = await snapshot(table);
    assert.deepEqual(
      updated.find((row) => row.code === "c3"),
      { code: "c3", name: "Renamed", balance: "3.50", seen: 7, present: true },
    );
    assert.deepEqual(
      updated.filter((row) => row.code !== "c3"),
      once.filter((row) => row.code !== "c3"),
    );
    assert.equal(await stagingTables(clientOf(single)), 2);
  });

  it("lets the later row win when one call holds the same key several times", async () => {
    /** A table whose every row written the server records, to show that earlier duplicates are not written at all. */
    const audited = async (table: string, columns: string): Promise<() => Promise<unknown[]>> => {
      await db.query(`CREATE TABLE ${table} (${columns})`);
      await db.query(`CREATE TABLE ${table}_writes (v text)`);
      await db.query(
        `CREATE FUNCTION ${table}_audit() RETURNS trigger LANGUAGE plpgsql AS
           'BEGIN INSERT INTO ${table}_writes VALUES (NEW.v); RETURN NEW; END'`,
      );
      await db.query(
        `CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_audit()`,
      );
      return async () => (await db.query(`SELECT v FROM ${table}_writes ORDER BY v`)).map((row) => row.v);
    };
    const table = `${schema}.pairs`;
    const writes = await audited(table, "a text, b int, v text, PRIMARY KEY (a, b)");
    const rows = [
      { a: "x", b: 1, v: "first" },
      { a: "x", b: 2, v: "other" },
      { a: "x", b: 1, v: "second" },
      { a: "y", b: 1, v: "y" },
      { a: "x", b: 1, v: "third" },
    ];
    assert.deepEqual(await write(connection, { table }, ["a", "b"], rows), allOk(rows));
    assert.deepEqual(await db.query(`SELECT * FROM ${table} ORDER BY a, b`), [
      { a: "x", b: 1, v: "third" },
      { a: "x", b: 2, v: "other" },
      { a: "y", b: 1, v: "y" },
    ]);
    assert.deepEqual(await writes(), ["other", "third", "y"]);
    // Keys in ascending order (as a keyset read gives them) but for one repeated: the check for repeated keys skips
    // its set of keys only when they ascend strictly, so the earlier of the two is still not written.
    const ordered = `${schema}.ordered`;
    const orderedWrites = await audited(ordered, "id int PRIMARY KEY, v text");
    const ascending = [
      { id: 9, v: "a" },
      { id: 10, v: "b" },
      { id: 10, v: "c" },
      { id: 11, v: "d" },
    ];
    assert.deepEqual(await write(connection, { table: ordered }, ["id"], ascending), allOk(ascending));
    assert.deepEqual(await db.query(`SELECT * FROM ${ordered} ORDER BY id`), [
      { id: 9, v: "a" },
      { id: 10, v: "c" },
      { id: 11, v: "d" },
    ]);
    assert.deepEqual(await orderedWrites(), ["a", "c", "d"]);
    // Keys equal for the server but not as text (1 and "1" are one text; "01" is another): the upsert cannot take
    // both in one statement, and the row-by-row path still lets the later one win.
    const numbers = `${schema}.numbers`;
    await db.query(`CREATE TABLE ${numbers} (id int PRIMARY KEY, v text)`);
    const mixed = [
      { id: 1, v: "one" },
      { id: "01", v: "later" },
    ];
    assert.deepEqual(await write(connection, { table: numbers }, ["id"], mixed), allOk(mixed));
    assert.deepEqual(await db.query(`SELECT * FROM ${numbers}`), [{ id: 1, v: "later" }]);
    // NULL keys never conflict (a nullable unique column takes both rows): they are not duplicates, as with INSERT.
    for (const copy of [true, false]) {
      const nullable = `${schema}.nullable_${copy}`;
      await db.query(`CREATE TABLE ${nullable} (code text UNIQUE, v text)`);
      const rows = [
        { code: null, v: "a" },
        { code: null, v: "b" },
        { code: "x", v: "c" },
      ];
      assert.deepEqual(await write(connection, { table: nullable, copy }, ["code"], rows), allOk(rows));
      assert.deepEqual(
        (await db.query(`SELECT v FROM ${nullable} ORDER BY v`)).map((row) => row.v),
        ["a", "b", "c"],
        `copy: ${copy}`,
      );
    }
  });

  it("isolates bad rows, whether COPY or the upsert refuses them, and writes on with the same connection", async () => {
    const single = open({ url, poolSize: 1 }, "isolate");
    const table = `${schema}.checked`;
    await db.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, qty int CONSTRAINT qty_not_negative CHECK (qty >= 0), code varchar(3))`,
    );
    const cases = [
      // refused by COPY into the staging table (bad value, too long): the server names the column
      { bad: { qty: "many" }, message: /invalid input syntax for type integer/, path: "/qty" },
      { bad: { qty: 1, code: "too long" }, message: /too long/, path: "/code" },
      // refused by the INSERT … SELECT (a constraint of the target)
      { bad: { qty: -5 }, message: /qty_not_negative/, path: undefined },
    ];
    for (const [round, { bad, message, path }] of cases.entries()) {
      const base = round * 1000;
      const rows: Row[] = Array.from({ length: 300 }, (_, i) => ({ id: base + i, qty: i, code: "ok" }));
      rows[150] = { id: base + 150, code: "ok", ...bad };
      const results = await write(single, { table }, ["id"], rows);
      for (const [i, result] of results.entries()) {
        if (i !== 150) {
          assert.deepEqual(result, { ok: true });
          continue;
        }
        assert.equal(result.ok, false);
        if (result.ok) continue;
        assert.equal(result.error.code, ErrorCode.TargetRejected);
        assert.equal(result.error.errorClass, "permanent");
        assert.match(result.error.message, message);
        assert.equal(result.error.path, path);
      }
      const [landed] = await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE id >= $1 AND id < $2`, [
        base,
        base + 1000,
      ]);
      assert.equal(landed?.n, 299);
    }
    // The connection went on: a clean batch through COPY again.
    const clean = Array.from({ length: 10 }, (_, i) => ({ id: 9000 + i, qty: i, code: "end" }));
    assert.deepEqual(await write(single, { table }, ["id"], clean), allOk(clean));
  });

  it("makes a staging table anew when its target's column changed type", async () => {
    const single = open({ url, poolSize: 1 }, "altered");
    const table = `${schema}.altered`;
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, qty text)`);
    // id 1 is new the first time (straight into the table), there the second (the upsert: a staging table).
    assert.deepEqual(await write(single, { table }, ["id"], [{ id: 1, qty: "5" }]), [{ ok: true }]);
    assert.deepEqual(await write(single, { table }, ["id"], [{ id: 1, qty: "5" }]), [{ ok: true }]);
    assert.equal(await stagingTables(clientOf(single)), 1);
    // The staging table still has qty text: the INSERT … SELECT fails (text into int), the connector remakes it.
    await clientOf(single).query(`ALTER TABLE ${table} ALTER COLUMN qty TYPE int USING qty::int`);
    const two = [
      { id: 1, qty: 5 },
      { id: 2, qty: 7 },
    ];
    assert.deepEqual(await write(single, { table }, ["id"], two), allOk(two));
    // And the other way: a staging int column would refuse text the target now takes.
    await clientOf(single).query(`ALTER TABLE ${table} ALTER COLUMN qty TYPE text`);
    const three = [
      { id: 1, qty: "5" },
      { id: 3, qty: "three" },
    ];
    assert.deepEqual(await write(single, { table }, ["id"], three), allOk(three));
    assert.deepEqual(await db.query(`SELECT * FROM ${table} ORDER BY id`), [
      { id: 1, qty: "5" },
      { id: 2, qty: "7" },
      { id: 3, qty: "three" },
    ]);
  });

  it("writes through INSERT, with no staging table, for a role that may not create temporary tables", async () => {
    const role = `franca_notemp_${suffix}`;
    const database = `franca_notemp_${suffix}`;
    await db.query(`CREATE ROLE ${role} LOGIN`);
    await db.query(`CREATE DATABASE ${database} OWNER ${role}`);
    try {
      await db.query(`REVOKE TEMPORARY ON DATABASE ${database} FROM PUBLIC, ${role}`);
      const restricted = open({ url: `postgres://${role}@127.0.0.1:5432/${database}`, poolSize: 1 }, "notemp");
      const client = clientOf(restricted);
      await client.query("CREATE TABLE items (id int PRIMARY KEY, name text)");
      const rows = [
        { id: 1, name: "one" },
        { id: 2, name: "two" },
      ];
      assert.deepEqual(await write(restricted, { table: "items" }, ["id"], rows), allOk(rows));
      assert.deepEqual(await write(restricted, { table: "items" }, ["id"], rows), allOk(rows));
      assert.deepEqual(await client.query("SELECT * FROM items ORDER BY id"), rows);
      await restricted.close();
    } finally {
      await db.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await db.query(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it("an aborted write stops its COPY on the server and lands nothing", async () => {
    const app = `franca-write-abort-${suffix}`;
    const target = open({ url, applicationName: app, poolSize: 1 }, "write-abort");
    const table = `${schema}.slow`;
    // A domain whose check sleeps: the COPY into the staging table takes a while, row after row.
    await db.query(`CREATE FUNCTION ${schema}.slow_ok(value text) RETURNS boolean LANGUAGE sql AS
      'SELECT true FROM pg_sleep(0.01)'`);
    await db.query(`CREATE DOMAIN ${schema}.slow_text AS text CHECK (${schema}.slow_ok(VALUE))`);
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v ${schema}.slow_text)`);
    const rows = Array.from({ length: 3000 }, (_, id) => ({ id, v: `v${id}` }));
    const controller = new AbortController();
    const writing = write(target, { table }, ["id"], rows, controller.signal);
    await until(async () => (await backends(app)).some((backend) => backend.query.startsWith("COPY ")));
    controller.abort(new Error("stop"));
    await assert.rejects(writing);
    await until(async () => (await backends(app)).every((backend) => backend.state !== "active"));
    assert.deepEqual(await db.query(`SELECT count(*)::int AS n FROM ${table}`), [{ n: 0 }]);
  });

  it("copies new keys straight into the table, upserts once keys exist, and a re-run leaves the table unchanged", async () => {
    const single = open({ url, poolSize: 1 }, "direct");
    const table = `${schema}.direct`;
    await db.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, name text, doc jsonb, n int DEFAULT 7)`);
    const first = Array.from({ length: 400 }, (_, i) => ({ id: i, name: `n\t${i}`, doc: { i, tags: ["a\\b"] } }));
    assert.deepEqual(await write(single, { table }, ["id"], first), allOk(first));
    // Straight in: no staging table was made on the connection.
    assert.equal(await stagingTables(clientOf(single)), 0);
    const once = await snapshot(table);
    assert.equal(once.length, 400);
    assert.deepEqual(once[5], { id: "5", name: "n\t5", doc: { i: 5, tags: ["a\\b"] }, n: 7, present: true });
    // The same rows again: every key exists, the upsert (through a staging table) leaves the table as it was.
    assert.deepEqual(await write(single, { table }, ["id"], first), allOk(first));
    assert.equal(await stagingTables(clientOf(single)), 1);
    assert.deepEqual(await snapshot(table), once);
    // One existing key among new ones: the whole batch is upserted, the existing row updated.
    const mixed = [
      { id: 1000, name: "new" },
      { id: 3, name: "changed" },
      { id: 1001, name: "new too" },
    ];
    assert.deepEqual(await write(single, { table }, ["id"], mixed), allOk(mixed));
    const after = await snapshot(table);
    assert.equal(after.length, 402);
    assert.deepEqual(
      after.find((row) => row.id === "3"),
      { id: "3", name: "changed", doc: { i: 3, tags: ["a\\b"] }, n: 7, present: true },
    );
  });

  it("copies new keys in one statement, its own transaction; once keys were found, probes and copies in one", async () => {
    const app = `franca-direct-statements-${suffix}`;
    const single = open({ url, poolSize: 1, applicationName: app }, "statements");
    const table = `${schema}.direct_statements`;
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    /** The statements the connection's client sends while `work` runs (pg's Client.query sees every one). */
    const sent = async (work: () => Promise<unknown>): Promise<string[]> => {
      const texts: string[] = [];
      const query = pg.Client.prototype.query;
      pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
        const text = typeof config === "string" ? config : (config as { text?: unknown } | undefined)?.text;
        const ours = (this as unknown as { connectionParameters: { application_name?: string } }).connectionParameters;
        if (ours.application_name === app && typeof text === "string") texts.push(text.split(" ")[0] as string);
        return (query as (...args: unknown[]) => unknown).call(this, config, ...rest);
      } as typeof query;
      try {
        await work();
      } finally {
        pg.Client.prototype.query = query;
      }
      return texts;
    };
    const rows = (from: number) => Array.from({ length: 3 }, (_, i) => ({ id: from + i, v: `v${from + i}` }));
    await write(single, { table }, ["id"], rows(0)); // describes the table first
    assert.deepEqual(await sent(() => write(single, { table }, ["id"], rows(10))), ["COPY"]);
    // a key already there: the COPY fails on it (the server rolls it back: no ROLLBACK), and the batch is upserted
    // through a staging table
    const found = await sent(() => write(single, { table }, ["id"], [...rows(20), { id: 0, v: "again" }]));
    assert.deepEqual(found, ["COPY", "CREATE", "BEGIN", "COPY", "INSERT", "COMMIT"]);
    // the next batches of the table are probed first, in the transaction of their COPY
    assert.deepEqual(await sent(() => write(single, { table }, ["id"], rows(30))), [
      "BEGIN",
      "SELECT",
      "COPY",
      "COMMIT",
    ]);
    assert.deepEqual(await db.query(`SELECT count(*)::int AS n FROM ${table}`), [{ n: 12 }]);
    assert.deepEqual(await db.query(`SELECT v FROM ${table} WHERE id = 0`), [{ v: "again" }]);
  });

  it("never copies straight into a table with triggers, row-level security, rules or no unique index on the key", async () => {
    const single = open({ url, poolSize: 1 }, "not-direct");
    const made = [
      // a trigger: COPY fires INSERT triggers only
      [
        `CREATE TABLE ${schema}.triggered (id int PRIMARY KEY, v text)`,
        `CREATE FUNCTION ${schema}.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW.v = NEW.v || ''!''; RETURN NEW; END'`,
        `CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON ${schema}.triggered FOR EACH ROW EXECUTE FUNCTION ${schema}.touch()`,
      ],
      // row-level security (COPY FROM refuses it)
      [
        `CREATE TABLE ${schema}.secured (id int PRIMARY KEY, v text)`,
        `ALTER TABLE ${schema}.secured ENABLE ROW LEVEL SECURITY`,
      ],
      // a rule (COPY ignores rules)
      [
        `CREATE TABLE ${schema}.ruled (id int PRIMARY KEY, v text)`,
        `CREATE TABLE ${schema}.ruled_log (id int)`,
        `CREATE RULE log AS ON INSERT TO ${schema}.ruled DO ALSO INSERT INTO ${schema}.ruled_log VALUES (NEW.id)`,
      ],
      // the unique index is on another column than the key
      [`CREATE TABLE ${schema}.other_key (id int, v text UNIQUE)`],
    ];
    for (const statements of made) for (const statement of statements) await db.query(statement);
    const rows = [
      { id: 1, v: "a" },
      { id: 2, v: "b" },
    ];
    for (const table of ["triggered", "secured"]) {
      assert.deepEqual(await write(single, { table: `${schema}.${table}` }, ["id"], rows), allOk(rows));
    }
    // Each went through the upsert (one staging table per target), with what only the upsert does.
    assert.equal(await stagingTables(clientOf(single)), 2);
    assert.deepEqual(await db.query(`SELECT * FROM ${schema}.triggered ORDER BY id`), [
      { id: 1, v: "a!" },
      { id: 2, v: "b!" },
    ]);
    // A rule, or no unique index on the key: the upsert's ON CONFLICT refuses the table, and nothing lands (a COPY
    // would have landed the rows, and duplicated them on the next run).
    await assert.rejects(write(single, { table: `${schema}.ruled` }, ["id"], rows), /rules/);
    await assert.rejects(write(single, { table: `${schema}.other_key` }, ["id"], rows), /ON CONFLICT/);
    for (const table of ["ruled", "ruled_log", "other_key"])
      assert.deepEqual(await db.query(`SELECT count(*)::int AS n FROM ${schema}.${table}`), [{ n: 0 }]);
  });

  it("upserts the batch when a key is committed by someone else between its check and its COPY", async () => {
    const app = `franca-direct-race-${suffix}`;
    const single = open({ url, poolSize: 1, applicationName: app }, "race");
    const table = `${schema}.raced`;
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    // Another session inserts id 2 and holds its transaction open: the COPY (no check goes first on a table whose
    // keys were never found there) waits on it.
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      await other.query("BEGIN");
      await other.query(`INSERT INTO ${table} VALUES (2, 'theirs')`);
      const rows = Array.from({ length: 5 }, (_, id) => ({ id, v: `ours ${id}` }));
      const writing = write(single, { table }, ["id"], rows);
      await until(async () =>
        (await backends(app)).some((backend) => backend.query.startsWith("COPY ") && backend.wait !== null),
      );
      await other.query("COMMIT");
      // The COPY failed on the key (rolled back), the batch went through the upsert: ours wins, nothing twice.
      assert.deepEqual(await writing, allOk(rows));
      assert.deepEqual(await db.query(`SELECT * FROM ${table} ORDER BY id`), rows);
    } finally {
      await other.end();
    }
  });

  it("with copy: false, writes with INSERTs and makes no staging table", async () => {
    const single = open({ url, poolSize: 1 }, "insert");
    const table = `${schema}.inserted`;
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const rows = [
      { id: 1, v: "a" },
      { id: 1, v: "b" },
    ];
    assert.deepEqual(await write(single, { table, copy: false }, ["id"], rows), allOk(rows));
    assert.deepEqual(await db.query(`SELECT * FROM ${table}`), [{ id: 1, v: "b" }]);
    assert.equal(await stagingTables(clientOf(single)), 0);
  });
});

describe("postgres COPY: read", () => {
  // Keys that would break a position inlined without quoting: quotes, backslashes, a statement, unicode.
  const codes = ["a'b", "a\\'b", "'); DROP TABLE x; --", "é", "\\N", "$$", "a\tb", "E'x'", "🎉", "z"];
  const events = codes.flatMap((code, i) =>
    [0, 1, 2].map((tie) => ({ code, seq: tie, micro: Math.floor((i * 3 + tie) / 4) })),
  );
  const table = `${schema}.keyed`;
  const request = (batchSize: number) => ({
    options: { table },
    key: ["code", "seq"],
    cursor: "at",
    batchSize,
  });

  before(async () => {
    await db.query(`CREATE TABLE ${table} (code text, seq int, at timestamptz NOT NULL, PRIMARY KEY (code, seq))`);
    for (const event of events) {
      await db.query(
        `INSERT INTO ${table} VALUES ($1, $2, '2024-03-01 10:00:00+00'::timestamptz + $3 * interval '1 microsecond')`,
        [event.code, event.seq, event.micro],
      );
    }
    await db.query(
      `CREATE TABLE ${schema}.big AS SELECT i AS id, repeat(md5(i::text), 6) AS payload FROM generate_series(1, 200000) AS i`,
    );
    await db.query(`ALTER TABLE ${schema}.big ADD PRIMARY KEY (id)`);
  });

  it("reads in batches, and from the position of any batch reads exactly the rest", async () => {
    for (const batchSize of [1, 4, 7, 1000]) {
      const batches = await readAll(connection, request(batchSize));
      const all = rowsOf(batches);
      assert.equal(all.length, events.length);
      // The same rows and positions as the keyset reads.
      const keyset = await readAll(connection, { ...request(batchSize), options: { table, copy: false } });
      assert.deepEqual(batches, keyset);
      for (let k = 0; k < batches.length; k++) {
        const from = JSON.parse(JSON.stringify(batches[k]?.position));
        const rest = rowsOf(await readAll(connection, { ...request(batchSize), from }));
        assert.deepEqual(rest, all.slice((k + 1) * batchSize), `batch size ${batchSize}, from batch ${k}`);
      }
    }
    assert.deepEqual(await db.query(`SELECT count(*)::int AS n FROM ${table}`), [{ n: events.length }]);
  });

  // `read` and `readEncoded` share one COPY stream machinery (read-copy.ts): each behaves the same way.
  for (const { name, batches } of copyReads) {
    it(`${name}: reads a whole source as one statement, one call a batch, following a batch size that changes`, async () => {
      const app = `franca-one-${name}-${suffix}`;
      const source = open({ url, applicationName: app }, "one");
      let calls = 0;
      let size = 100;
      const read = batches(source, {
        options: { table: `${schema}.big` },
        key: ["id"],
        get batchSize() {
          return size;
        },
        signal: never,
        call: (fn) => {
          calls++;
          return fn(never);
        },
      });
      const statements = new Set<string>();
      let samples = 0;
      let rows = 0;
      let count = 0;
      for await (const batch of read) {
        assert.equal(batch.count, Math.min(size, 200_000 - rows));
        rows += batch.count;
        count++;
        assert.deepEqual(batch.position, [rows]);
        if (count % 10 === 1) {
          const [running] = await db.query<{ statement: string }>(
            `SELECT pid::text || query_start::text AS statement FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'COPY%'`,
            [app],
          );
          assert.ok(running !== undefined, "the read's connection is open while it reads");
          statements.add(running.statement);
          samples++;
        }
        size = size === 100 ? 5000 : 100;
      }
      assert.equal(rows, 200_000);
      assert.equal(calls, count);
      assert.ok(samples >= 5);
      assert.equal(statements.size, 1, "one COPY statement served every batch");
      await until(async () => (await backends(app)).length === 0);
    });

    it(`${name}: holds the server back while the batch is not taken, and stops its statement when the read is aborted`, async () => {
      const app = `franca-abort-${name}-${suffix}`;
      const source = open({ url, applicationName: app }, "abort");
      const controller = new AbortController();
      const read = batches(source, {
        options: { table: `${schema}.big` },
        key: ["id"],
        batchSize: 1000,
        signal: controller.signal,
        call: (fn) => fn(never),
      })[Symbol.asyncIterator]();
      const first = await read.next();
      assert.equal(first.done, false);
      assert.equal(first.value?.count, 1000);
      // Back-pressure: the server has more rows than the socket holds and waits, writing, until they are taken.
      let seen: { state: string; wait: string | null } | undefined;
      await until(async () => {
        [seen] = await backends(app);
        return seen === undefined || seen.state !== "active" || seen.wait === "ClientWrite";
      });
      assert.deepEqual(seen && { state: seen.state, wait: seen.wait }, { state: "active", wait: "ClientWrite" });
      controller.abort(new Error("stop"));
      assert.deepEqual(await read.next(), { done: true, value: undefined });
      await until(async () => (await backends(app)).length === 0);
    });

    it(`${name}: a batch whose call is aborted fails with the server's cancel, and the statement ends`, async () => {
      const app = `franca-cancel-${name}-${suffix}`;
      const source = open({ url, applicationName: app }, "cancel");
      let calls = 0;
      const read = batches(source, {
        options: { table: `${schema}.big` },
        key: ["id"],
        // the second batch asks for every row left, so it cannot be filled before the cancel reaches the server
        get batchSize() {
          return calls <= 1 ? 1000 : 1_000_000;
        },
        signal: never,
        call: (fn) => {
          calls++;
          if (calls === 1) return fn(never);
          const timeout = new AbortController();
          const running = fn(timeout.signal);
          timeout.abort(new Error("timed out"));
          return running;
        },
      })[Symbol.asyncIterator]();
      assert.equal((await read.next()).value?.count, 1000);
      await assert.rejects(read.next(), (error: unknown) => (error as { code?: string }).code === "57014");
      await until(async () => (await backends(app)).length === 0);
    });

    it(`${name}: closes its connection when the reader leaves early, and reads an empty source as no batch`, async () => {
      const app = `franca-leave-${name}-${suffix}`;
      const source = open({ url, applicationName: app }, "leave");
      const request = (table: string) => ({
        options: { table },
        key: ["id"],
        batchSize: 10,
        signal: never,
        call: <T>(fn: (signal: AbortSignal) => Promise<T>) => fn(never),
      });
      for await (const batch of batches(source, request(`${schema}.big`))) {
        assert.equal(batch.count, 10);
        break;
      }
      await until(async () => (await backends(app)).length === 0);
      await db.query(`CREATE TABLE IF NOT EXISTS ${schema}.empty (id int PRIMARY KEY)`);
      const all: unknown[] = [];
      for await (const batch of batches(source, request(`${schema}.empty`))) all.push(batch);
      assert.deepEqual(all, []);
      await until(async () => (await backends(app)).length === 0);
    });
  }

  it("a read whose connection the server ends fails as transient; read from its last position, it gives the rest", async () => {
    const app = `franca-killed-${suffix}`;
    const source = open({ url, applicationName: app }, "killed");
    const request = {
      options: { table: `${schema}.big` },
      key: ["id"],
      batchSize: 1000,
      signal: never,
      call: <T>(fn: (signal: AbortSignal) => Promise<T>) => fn(never),
    };
    const read = reader(source)(request)[Symbol.asyncIterator]();
    const first = await read.next();
    assert.deepEqual(first.value?.position, [1000]);
    await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [app]);
    // Rows already on their way may still come; then the read fails, as a transient error of the system.
    let failure: unknown;
    try {
      while (!(await read.next()).done);
    } catch (error) {
      failure = error;
    }
    assert.ok(failure instanceof FrancaError, `expected a FrancaError, got ${String(failure)}`);
    assert.equal(failure.errorClass, "transient");
    assert.equal(failure.code, ErrorCode.SystemUnavailable);
    const rest = rowsOf(await readAll(source, { ...request, from: first.value?.position }));
    assert.equal(rest.length, 199_000);
    assert.equal(rest[0]?.id, 1001);
    await until(async () => (await backends(app)).length === 0);
  });

  it("shapes rows like pg: a query's later column of the same name wins, in both read paths", async () => {
    const query = "SELECT 1 AS id, 'a' AS x, 'b' AS x, NULL::int AS n";
    const copy = rowsOf(await readAll(connection, { options: { query }, key: ["id"] }));
    assert.deepEqual(copy, [{ id: 1, x: "b", n: null }]);
    assert.deepEqual(rowsOf(await readAll(connection, { options: { query, copy: false }, key: ["id"] })), copy);
  });
});

/**
 * The PostgreSQL connector's encoded paths: `readEncoded` + `decode` (rows decoded where the chunk is transformed) and
 * `describeTarget` + `prepare` + `write` with prepared rows (rows encoded for COPY on a transform thread). Each must
 * give exactly what the plain `read` and `write` give.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { before, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { arrayElement, copyEncoding, decodeCopy, encodeField } from "../../src/connectors/postgres/copy-text.ts";
import { type PostgresClient, postgresDriver } from "../../src/connectors/postgres/index.ts";
import type { CopyRows, TargetDescription } from "../../src/connectors/postgres/prepare.ts";
import { probedWrites } from "../../src/connectors/postgres/write.ts";
import type {
  Connection,
  EncodedBatch,
  ItemResult,
  ReadBatch,
  ReadRequest,
  WriteItem,
  WriteRequest,
} from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { decodedBatches, readAll, readAllEncoded, readRequest } from "../support/connection-calls.ts";
import { never, pgTestSchema, stagingTables } from "../support/pg-schema.ts";
import { long, tricky, trickyColumns } from "../support/pg-tricky.ts";

const files = pgTestSchema("franca_pgenc");
const { url, schema, open, clientOf } = files;
const decode = postgresDriver.decode as NonNullable<typeof postgresDriver.decode>;
const prepare = postgresDriver.prepare as NonNullable<typeof postgresDriver.prepare>;
let connection: Connection;
let db: PostgresClient;
before(() => {
  connection = files.connection;
  db = files.db;
});

/** Encoded batches decoded one by one, as the engine would: the batches `read` yields. */
const decoded = (batches: readonly EncodedBatch[]): ReadBatch[] => decodedBatches(batches, decode);

/** Write items whose row reads are counted (a prepared write must not read them on its fast paths). */
function itemsOf(rows: readonly Row[], reads: { count: number }): WriteItem[] {
  return rows.map((row, index) => ({
    key: String(index),
    get row() {
      reads.count++;
      return row;
    },
    idempotencyKey: `idem-${index}`,
    hash: `h-${index}`,
  }));
}

interface Written {
  results: ItemResult[];
  /** How many times the write read an item's row. */
  rowReads: number;
}

/**
 * Writes `chunk[select[i]]` for each i: prepared (the whole chunk encoded by `prepare`, structured-cloned as it
 * would cross a thread) when `target` is given, else plain.
 */
async function writeRows(
  to: Connection,
  table: string,
  key: string[],
  chunk: readonly Row[],
  options: { select?: readonly number[]; target?: unknown; prepared?: unknown; copy?: boolean } = {},
): Promise<Written> {
  const select = options.select ?? chunk.map((_, i) => i);
  const reads = { count: 0 };
  const bindingOptions = { table, ...(options.copy === undefined ? {} : { copy: options.copy }) };
  const data =
    options.prepared ??
    (options.target === undefined
      ? undefined
      : structuredClone(prepare(chunk, { options: bindingOptions, key, target: options.target })));
  const request: WriteRequest = {
    options: bindingOptions,
    key,
    target: "test.target",
    run: 1,
    chunk: 0,
    items: itemsOf(
      select.map((i) => chunk[i] as Row),
      reads,
    ),
    ...(data === undefined ? {} : { prepared: { data, rows: select } }),
    signal: never,
  };
  const results = await (to.write as NonNullable<Connection["write"]>)(request);
  return { results, rowReads: reads.count };
}

const describeTarget = (to: Connection, table: string): Promise<unknown> =>
  (to.describeTarget as NonNullable<Connection["describeTarget"]>)({ table }, never);

const allOk = (rows: readonly unknown[]) => rows.map(() => ({ ok: true }));
const contents = (table: string) => db.query(`SELECT * FROM ${table} ORDER BY 1, 2`);

describe("postgres: encoded reads", () => {
  const table = `${schema}.tricky`;

  before(async () => {
    await db.query(`CREATE TABLE ${table} (${trickyColumns})`);
    const written = await writeRows(connection, table, ["id"], tricky);
    assert.deepEqual(written.results, allOk(tricky));
  });

  it("decodes to read's rows, batch for batch, with the same positions, for tricky values", async () => {
    const all = (await readAll(connection, { options: { table }, key: ["id"] })).flatMap((batch) => batch.rows);
    assert.equal(all.length, tricky.length);
    // The values round-tripped, so the comparisons below compare something.
    assert.equal(all[9]?.t, long);
    assert.equal(all[0]?.t, null);
    assert.equal(all[1]?.t, "");
    assert.deepEqual(all[8]?.raw, Buffer.from([0, 1, 92, 9, 10, 13, 255]));
    for (const batchSize of [1, 2, 4, 1000]) {
      const plain = await readAll(connection, { options: { table }, key: ["id"], batchSize });
      const encoded = await readAllEncoded(connection, { options: { table }, key: ["id"], batchSize });
      // Rows deep-equal with the same property order: compare the key lists too (deepEqual ignores order).
      assert.deepEqual(decoded(encoded), plain, `batch size ${batchSize}`);
      for (const [b, batch] of decoded(encoded).entries())
        for (const [r, row] of batch.rows.entries())
          assert.deepEqual(Object.keys(row), Object.keys(plain[b]?.rows[r] as Row), "property order");
      assert.equal(new Set(encoded.map((batch) => batch.encoding)).size, 1, "one encoding per read");
      assert.ok(!encoded[0]?.encoding.includes("\n"), "no newline in the encoding");
      // Batch texts concatenate into the text of all their rows.
      const text = encoded.map((batch) => batch.text).join("");
      assert.deepEqual(decode(encoded[0]?.encoding as string, text), all);
      // `limit`: the first rows only.
      assert.deepEqual(decode(encoded[0]?.encoding as string, text, 3), all.slice(0, 3));
      assert.deepEqual(decode(encoded[0]?.encoding as string, text, 0), []);
    }
  });

  it("cuts batches as read does when the batch size changes between batches, and resumes from any position", async () => {
    // Read once per batch: a getter that gives the next size at each reading.
    const request = (sizes: number[]): ReadRequest => {
      let batch = 0;
      return {
        options: { table },
        key: ["id"],
        get batchSize() {
          return sizes[batch++ % sizes.length] as number;
        },
        signal: never,
        call: (fn) => fn(never),
      };
    };
    const plain = await readAll(connection, request([1, 5, 2]));
    const encoded = await readAllEncoded(connection, request([1, 5, 2]));
    assert.deepEqual(
      encoded.map((batch) => batch.count),
      [1, 5, 2, 1, 5, 1],
    );
    assert.deepEqual(decoded(encoded), plain);
    const all = plain.flatMap((batch) => batch.rows);
    let seen = 0;
    for (const batch of encoded) {
      seen += batch.count;
      const from = JSON.parse(JSON.stringify(batch.position));
      const rest = await readAllEncoded(connection, { options: { table }, key: ["id"], batchSize: 4, from });
      assert.deepEqual(
        decoded(rest).flatMap((next) => next.rows),
        all.slice(seen),
        `from ${JSON.stringify(from)}`,
      );
    }
  });

  it("positions on a cursor and a composite key, and a query whose columns repeat a name, match read's", async () => {
    const events = `${schema}.events`;
    await db.query(`CREATE TABLE ${events} (code text, seq int, at timestamptz NOT NULL, note text,
      PRIMARY KEY (code, seq))`);
    await db.query(
      `INSERT INTO ${events} SELECT (ARRAY['a''b', 'é', '\\N', 'tab	x', '🎉'])[1 + i % 5], i / 5,
         '2024-03-01 10:00:00+00'::timestamptz + (i / 3) * interval '1 microsecond', repeat('n', i)
       FROM generate_series(0, 39) AS i`,
    );
    for (const batchSize of [1, 3, 7]) {
      const request = { options: { table: events }, key: ["code", "seq"], cursor: "at", batchSize };
      const encoded = await readAllEncoded(connection, request);
      assert.deepEqual(decoded(encoded), await readAll(connection, request));
      // The same positions as the keyset reads, which take their position from the whole row.
      const keyset = await readAll(connection, { ...request, options: { table: events, copy: false } });
      assert.deepEqual(
        encoded.map((batch) => batch.position),
        keyset.map((batch) => batch.position),
      );
    }
    const query = "SELECT 1 AS id, 'a' AS x, 'b' AS x, NULL::int AS n";
    const encoded = await readAllEncoded(connection, { options: { query }, key: ["id"] });
    assert.deepEqual(decoded(encoded), [{ rows: [{ id: 1, x: "b", n: null }], position: [1] }]);
  });

  it("reads an empty source as no batch, and has no encoded read with copy: false", async () => {
    await db.query(`CREATE TABLE ${schema}.empty (id int PRIMARY KEY)`);
    assert.deepEqual(await readAllEncoded(connection, { options: { table: `${schema}.empty` }, key: ["id"] }), []);
    const keyset = (connection.readEncoded as NonNullable<Connection["readEncoded"]>)(
      readRequest({ options: { table, copy: false }, key: ["id"] }),
    );
    assert.equal(keyset, undefined);
  });

  it("decodes columns of one name as the later one, and a column named __proto__ as a property", () => {
    const encoding = copyEncoding([
      { name: "a", type: 25 },
      { name: "__proto__", type: 25 },
      { name: "b", type: 23 },
      { name: "a", type: 25 },
    ]);
    const [row] = decodeCopy(encoding, "first\tproto\t7\tlater\n");
    assert.deepEqual(Object.entries(row as Row), [
      ["a", "later"],
      ["__proto__", "proto"],
      ["b", 7],
    ]);
    assert.equal(Object.getPrototypeOf(row), Object.prototype);
  });

  it("cuts COPY lines after a number of rows, as bytes or text, each piece decoding to its own rows", () => {
    const cut = postgresDriver.cut as NonNullable<typeof postgresDriver.cut>;
    const encoding = copyEncoding([
      { name: "id", type: 23 },
      { name: "name", type: 25 },
    ]);
    // a field's newline is escaped: only a line's end is a newline byte
    const text = "1\tone\\nline\n2\t\\N\n3\t\\N\n4\tfour \u{1F600}\n";
    for (const lines of [text, Buffer.from(text)]) {
      const [head, rest] = cut(encoding, lines, 3);
      assert.equal(typeof head, typeof lines);
      assert.deepEqual(
        decode(encoding, head).map((row) => row.id),
        [1, 2, 3],
      );
      assert.deepEqual(decode(encoding, rest), [{ id: 4, name: "four \u{1F600}" }]);
      assert.equal(decode(encoding, head)[0]?.name, "one\nline");
      // no more rows than asked for: all of them, and nothing after
      const [all, none] = cut(encoding, lines, 10);
      assert.equal(Buffer.from(all).toString(), text);
      assert.equal(none.length, 0);
    }
    assert.throws(() => cut(encoding, "1\tone\n2\ttwo", 2), /ended in the middle of a row/);
  });

  it("leaves out a row whose order column is NULL as read does, and refuses an encoding it did not make", async () => {
    // a row with no position: no read returns it (sql.ts, orderNotNull)
    const query = "SELECT NULL::int AS id UNION ALL SELECT 7";
    const read = (await readAll(connection, { options: { query }, key: ["id"] })).flatMap((batch) => batch.rows);
    assert.deepEqual(
      read.map((row) => row.id),
      [7],
    );
    const encoded = await readAllEncoded(connection, { options: { query }, key: ["id"] });
    assert.deepEqual(
      encoded.map((batch) => batch.count),
      [1],
    );
    assert.throws(() => decode('{"format":"something else"}', "1\n"), /not an encoding of PostgreSQL COPY text/);
    assert.throws(() => decode("not json", "1\n"), /not an encoding of PostgreSQL COPY text/);
  });
});

describe("postgres: prepared writes", () => {
  /** Two tables of the same columns: one written with prepared rows, one plain; they must end the same. */
  async function twins(name: string, columns: string): Promise<[string, string]> {
    const pair: [string, string] = [`${schema}.${name}_prepared`, `${schema}.${name}_plain`];
    for (const table of pair) await db.query(`CREATE TABLE ${table} (${columns})`);
    return pair;
  }

  it("lands what a plain write lands, straight into the table and through the upsert, reading no row", async () => {
    const single = open({ url, poolSize: 1 }, "prepared");
    const [prepared, plain] = await twins("tricky", trickyColumns);
    const target = await describeTarget(single, prepared);
    // New keys: the direct COPY (no staging table made).
    const first = await writeRows(single, prepared, ["id"], tricky, { target });
    assert.deepEqual(first, { results: allOk(tricky), rowReads: 0 });
    assert.equal(await stagingTables(clientOf(single)), 0);
    assert.deepEqual((await writeRows(single, plain, ["id"], tricky)).results, allOk(tricky));
    assert.deepEqual(await contents(prepared), await contents(plain));
    // Existing keys, changed values: the upsert through a staging table.
    const changed = tricky.map((row, i) => ({ ...row, t: `changed ${i} \t\\ 🎉`, f: i % 2 === 0 ? null : i / 3 }));
    const second = await writeRows(single, prepared, ["id"], changed, { target });
    assert.deepEqual(second, { results: allOk(changed), rowReads: 0 });
    assert.equal(await stagingTables(clientOf(single)), 1);
    assert.deepEqual((await writeRows(single, plain, ["id"], changed)).results, allOk(changed));
    assert.deepEqual(await contents(prepared), await contents(plain));
    assert.equal((await contents(prepared)).length, tricky.length);
  });

  it("sends the items' rows when they are a subset of the prepared ones, reordered, some twice", async () => {
    const [prepared, plain] = await twins("pairs", "a text, b int, v text, n int DEFAULT 7, PRIMARY KEY (a, b)");
    const target = await describeTarget(connection, prepared);
    const chunk: Row[] = Array.from({ length: 12 }, (_, i) => ({
      a: ['x"y', "back\\slash", "é,🎉", null][i % 4] ?? "NULL",
      b: i % 3,
      v: `v${i}`,
    }));
    chunk[8] = { ...chunk[4], v: "v8" };
    // Items: rows 9, 2, 5, 2 again, 11, 0, then 4 and 8 (the same key: 8 wins).
    const select = [9, 2, 5, 2, 11, 0, 4, 8];
    for (const [round, rows] of [chunk, chunk.map((row) => ({ ...row, v: `${row.v} again` }))].entries()) {
      const written = await writeRows(connection, prepared, ["a", "b"], rows, { target, select });
      assert.deepEqual(written, { results: allOk(select), rowReads: 0 }, `round ${round}`);
      const expected = await writeRows(
        connection,
        plain,
        ["a", "b"],
        select.map((i) => rows[i] as Row),
      );
      assert.deepEqual(expected.results, allOk(select));
      assert.deepEqual(await contents(prepared), await contents(plain), `round ${round}`);
    }
    assert.equal((await contents(prepared)).length, 6);
    assert.equal((await contents(prepared)).find((row) => String(row.v).startsWith("v8"))?.b, 1);
  });

  it("refuses an unsendable row as a plain write does, and lands the others", async () => {
    const [prepared, plain] = await twins("refused", "id int PRIMARY KEY, doc jsonb, at timestamptz");
    const target = await describeTarget(connection, prepared);
    const rows: Row[] = [
      { id: 1, doc: { a: 1 }, at: null },
      { id: 2, doc: { big: 10n }, at: null }, // JSON has no BigInt
      { id: 3, doc: null, at: new Date(Number.NaN) }, // no such time
      { id: 4, doc: [1], at: new Date(0) },
    ];
    for (const select of [
      [0, 1, 2, 3],
      [3, 2, 1],
    ]) {
      const written = await writeRows(connection, prepared, ["id"], rows, { target, select });
      const expected = await writeRows(
        connection,
        plain,
        ["id"],
        select.map((i) => rows[i] as Row),
      );
      const outcomes = (results: ItemResult[], table: string) =>
        results.map((result) =>
          result.ok ? result : { code: result.error.code, message: result.error.message.replace(table, "T") },
        );
      assert.deepEqual(outcomes(written.results, prepared), outcomes(expected.results, plain));
      assert.equal(written.rowReads, 0);
      const refused = written.results.filter((result) => !result.ok);
      assert.equal(refused.length, 2);
      for (const result of refused) {
        assert.ok(!result.ok);
        assert.equal(result.error.code, ErrorCode.TargetRejected);
        assert.match(
          result.error.message,
          /refused the row: (Do not know how to serialize a BigInt|Invalid time value)/,
        );
      }
      assert.deepEqual(await contents(prepared), await contents(plain));
    }
    assert.deepEqual(
      (await contents(prepared)).map((row) => row.id),
      [1, 4],
    );
  });

  it("encodes the items' rows itself when the table was changed after it was described, and lands them right", async () => {
    // One connection: its staging table is made before the change, so the upsert meets the changed table.
    const single = open({ url, poolSize: 1 }, "changed");
    const [prepared, plain] = await twins("altered", "id int PRIMARY KEY, tags text, doc text");
    const before = [
      { id: 1, tags: "x", doc: "d1" },
      { id: 2, tags: "y", doc: "d2" },
    ];
    for (let round = 0; round < 2; round++) {
      assert.deepEqual((await writeRows(single, prepared, ["id"], before)).results, allOk(before));
    }
    assert.deepEqual((await writeRows(single, plain, ["id"], before)).results, allOk(before));
    assert.equal(await stagingTables(clientOf(single)), 1);
    const target = (await describeTarget(single, prepared)) as TargetDescription;
    assert.deepEqual(
      target.columns.map((column) => [column.name, column.kind]),
      [
        ["id", "t"],
        ["tags", "t"],
        ["doc", "t"],
      ],
    );
    const rows = [
      { id: 1, tags: ["a", "b\\c"], doc: { k: "v" } },
      { id: 3, tags: ['"q"', null], doc: [1, 2] },
    ];
    // Prepared for text columns: arrays as JSON text. The columns become text[] and jsonb.
    const data = structuredClone(prepare(rows, { options: { table: prepared }, key: ["id"], target }));
    for (const table of [prepared, plain]) {
      await db.query(`ALTER TABLE ${table} ALTER COLUMN tags TYPE text[] USING ARRAY[tags], ALTER COLUMN doc TYPE jsonb
        USING to_jsonb(doc)`);
    }
    // The connection still describes the table as before: the upsert fails on the staging table made before the
    // change, the table is described anew, the prepared rows (for text columns) are set aside.
    const written = await writeRows(single, prepared, ["id"], rows, { prepared: data });
    assert.deepEqual(written.results, allOk(rows));
    assert.ok(written.rowReads > 0, "the rows were encoded from the items");
    // Another connection (another process, say) describes the changed table at once.
    const other = open({ url }, "other");
    const again = await writeRows(other, prepared, ["id"], rows, { prepared: data });
    assert.deepEqual(again.results, allOk(rows));
    assert.ok(again.rowReads > 0);
    assert.deepEqual((await writeRows(other, plain, ["id"], rows)).results, allOk(rows));
    const landed = await contents(prepared);
    assert.deepEqual(landed, await contents(plain));
    assert.deepEqual(landed, [
      { id: 1, tags: ["a", "b\\c"], doc: { k: "v" } },
      { id: 2, tags: ["y"], doc: "d2" },
      { id: 3, tags: ['"q"', null], doc: [1, 2] },
    ]);
  });

  it("sets prepared rows aside when another connection describes the table differently, where they would land wrong", async () => {
    const [prepared, plain] = await twins("flattened", "id int PRIMARY KEY, tags text[]");
    const target = await describeTarget(connection, prepared);
    const rows = [
      { id: 1, tags: ["a", "b\\c"] },
      { id: 2, tags: [] },
    ];
    // Prepared for an array column: array literals. The column becomes text, where an array is sent as JSON: array
    // literals would land, as text, without an error.
    const data = structuredClone(prepare(rows, { options: { table: prepared }, key: ["id"], target }));
    for (const table of [prepared, plain]) await db.query(`ALTER TABLE ${table} ALTER COLUMN tags TYPE text`);
    const other = open({ url }, "flattened");
    const written = await writeRows(other, prepared, ["id"], rows, { prepared: data });
    assert.deepEqual(written.results, allOk(rows));
    assert.ok(written.rowReads > 0, "the rows were encoded from the items");
    assert.deepEqual((await writeRows(other, plain, ["id"], rows)).results, allOk(rows));
    assert.deepEqual(await contents(prepared), await contents(plain));
    assert.deepEqual(await contents(prepared), [
      { id: 1, tags: '["a","b\\\\c"]' },
      { id: 2, tags: "[]" },
    ]);
  });

  it("copies first while the table shows no keys of the batches, and probes first once one was found", async () => {
    // A serial column the rows do not carry: every row the server tries to insert takes a number, even one rolled
    // back. A direct COPY that fails on a key already there takes numbers the upsert then takes again.
    const single = open({ url, poolSize: 1 }, "probe");
    const table = `${schema}.probed`;
    await db.query(`CREATE TABLE ${table} (code text, k int8, v text, n serial, PRIMARY KEY (code, k))`);
    const target = await describeTarget(single, table);
    const codes = ['q"uote', "back\\slash", "a,b", "{}", "NULL", "é🎉", "tab\tx", " sp ", "", "\\N"];
    const first = codes.map((code, i) => ({ code, k: 9007199254740993n + BigInt(i), v: "first" }));
    assert.deepEqual((await writeRows(single, table, ["code", "k"], first, { target })).results, allOk(first));
    assert.equal(await stagingTables(clientOf(single)), 0, "new keys: straight into the table");
    const numbers = async () => Number((await db.query(`SELECT last_value::int AS n FROM ${table}_n_seq`))[0]?.n);
    assert.equal(await numbers(), codes.length);
    for (const [i, existing] of first.entries()) {
      // New keys first, the existing one last: a COPY inserts the new ones before it fails on it.
      const rows = [
        { code: `new ${i}`, k: 1n, v: "second" },
        { code: `new ${i}`, k: 2n, v: "second" },
        { ...existing, v: "second" },
      ];
      const before = await numbers();
      const written = await writeRows(single, table, ["code", "k"], rows, { target });
      assert.deepEqual(written, { results: allOk(rows), rowReads: 0 });
      // the first time the COPY went first (3 numbers) and failed on the existing key, then the upsert (3 more);
      // from then on the probe finds the key, tricky ones too, and only the upsert runs
      const expected = i === 0 ? 2 * rows.length : rows.length;
      assert.equal((await numbers()) - before, expected, `numbers taken for ${existing.code}`);
    }
    const landed = await db.query(`SELECT code, k, v FROM ${table} WHERE v = 'first'`);
    assert.deepEqual(landed, [], "every existing row was updated");
    // after probedWrites probes that found nothing, the COPY goes first again
    for (let i = 0; i < probedWrites; i++)
      await writeRows(single, table, ["code", "k"], [{ code: `fresh ${i}`, k: 1n, v: "x" }], { target });
    const before = await numbers();
    await writeRows(single, table, ["code", "k"], [{ code: "fresh 0", k: 1n, v: "again" }], { target });
    assert.equal((await numbers()) - before, 2, "copied first (1 number), then upserted (1 more)");
  });

  /** A table `t` (id int4, doc jsonb, a text, b text) as describeTarget describes it. */
  const docTable: TargetDescription = {
    table: "t",
    columns: [
      { name: "id", type: "int4", kind: "t" },
      { name: "doc", type: "jsonb", kind: "j" },
      { name: "a", type: "text", kind: "t" },
      { name: "b", type: "text", kind: "t" },
    ],
  };

  it("prepares the columns each row lacks, a refused row's too (its write must not clobber them with NULL)", () => {
    const target = docTable;
    const rows: Row[] = [
      { id: 1, doc: { n: 1n } }, // refused at doc (JSON of a BigInt), and lacks a and b
      { id: 2, doc: {}, a: "x" }, // lacks b
      { id: 3, doc: null, a: undefined, b: "y" }, // an own undefined is no gap
    ];
    const data = prepare(rows, { options: { table: "t" }, key: ["id"], target }) as CopyRows;
    assert.deepEqual(
      data.refused.map(([index]) => index),
      [0],
    );
    assert.deepEqual(data.gaps, [
      [0, [2, 3]],
      [1, [3]],
    ]);
  });

  it("joins rows prepared in pieces into what preparing them at once gives, and not pieces of other columns", () => {
    const request = { options: { table: "t" }, key: ["id", "a"], target: docTable };
    const rows: Row[] = [
      { id: 1, doc: { n: "é\\" }, a: "x" },
      { id: 2, doc: [], a: undefined }, // an own undefined: no gap
      { id: 3, doc: null, a: "z\t" },
      { id: 4, doc: { n: 4n }, a: "y" }, // refused
      { id: 5, doc: {} }, // lacks a
      { id: 6, doc: 6, a: "v" },
    ];
    const whole = prepare(rows, request) as CopyRows;
    const pieces = [rows.slice(0, 2), rows.slice(2, 3), rows.slice(3)].map((piece) => prepare(piece, request));
    const joined = postgresDriver.join?.(pieces) as CopyRows;
    assert.deepEqual(joined, whole);
    assert.deepEqual(
      joined.refused.map(([index]) => index),
      [3],
    );
    assert.deepEqual(joined.gaps, [[4, [2]]]);
    assert.equal(joined.bytes.byteLength, joined.bytes.buffer.byteLength); // a buffer of its own: transferable
    assert.equal(postgresDriver.join?.([pieces[0]]), pieces[0]);
    // a piece whose rows lack a column the others have, or have them in another order, was prepared for other
    // columns: no join
    const lacking = prepare([{ id: 7, a: "u" }], request);
    assert.equal(postgresDriver.join?.([...pieces, lacking]), undefined);
    assert.equal(postgresDriver.join?.([...pieces, prepare([{ id: 8, a: "t", doc: 8 }], request)]), undefined);
    assert.equal(postgresDriver.join?.([pieces[0], prepare(rows.slice(2), { ...request, key: ["id"] })]), undefined);
  });

  it("writes the columns of the items' rows: prepared rows with more columns are set aside", async () => {
    const [prepared, plain] = await twins("gaps", "id int PRIMARY KEY, a text, b text DEFAULT 'default'");
    const target = await describeTarget(connection, prepared);
    const chunk: Row[] = [
      { id: 1, a: "one" },
      { id: 2, a: "two", b: "bee" },
      { id: 3, a: "three" },
    ];
    // Rows 1 and 3 have no b: written alone, b is not written (its default); with row 2, b is NULL for them.
    for (const select of [[0, 2], [2, 1, 0], [1]]) {
      const written = await writeRows(connection, prepared, ["id"], chunk, { target, select });
      assert.deepEqual(written.results, allOk(select));
      assert.equal(written.rowReads > 0, select.length === 2, `rows read for ${JSON.stringify(select)}`);
      await writeRows(
        connection,
        plain,
        ["id"],
        select.map((i) => chunk[i] as Row),
      );
      assert.deepEqual(await contents(prepared), await contents(plain), JSON.stringify(select));
    }
    assert.deepEqual(await contents(prepared), [
      { id: 1, a: "one", b: null },
      { id: 2, a: "two", b: "bee" },
      { id: 3, a: "three", b: null },
    ]);
  });

  it("sets aside rows prepared for another table or key, or with indexes out of range, and uses rows with copy: false", async () => {
    const [prepared, plain] = await twins("other", "id int PRIMARY KEY, v text");
    const target = await describeTarget(connection, prepared);
    const rows = [
      { id: 1, v: "a" },
      { id: 2, v: "b" },
    ];
    const data = prepare(rows, { options: { table: prepared }, key: ["id"], target }) as CopyRows;
    const elsewhere = prepare(rows, { options: { table: plain }, key: ["id"], target });
    const otherKey = prepare(rows, { options: { table: prepared }, key: ["v"], target });
    for (const [what, wrong, select] of [
      ["another table", elsewhere, [0, 1]],
      ["another key", otherKey, [0, 1]],
      ["an index out of range", data, [0, 2]],
      ["not prepared rows", { hello: "world" }, [0, 1]],
    ] as const) {
      const written = await writeRows(connection, prepared, ["id"], [...rows, { id: 3, v: "c" }], {
        prepared: wrong,
        select,
      });
      assert.deepEqual(written.results, allOk(select), what);
      assert.ok(written.rowReads > 0, what);
    }
    const inserted = await writeRows(connection, plain, ["id"], rows, { prepared: data, copy: false });
    assert.deepEqual(inserted.results, allOk(rows));
    assert.ok(inserted.rowReads > 0);
    assert.deepEqual(await contents(prepared), [...rows, { id: 3, v: "c" }]);
  });

  it("upserts a table keyed by an array column (the probe would unnest its elements)", async () => {
    const table = `${schema}.array_key`;
    await db.query(`CREATE TABLE ${table} (path text[] PRIMARY KEY, v int)`);
    const target = await describeTarget(connection, table);
    const rows = [
      { path: ["a", "b"], v: 1 },
      { path: ["a", "c"], v: 2 },
    ];
    for (const v of [1, 2]) {
      const changed = rows.map((row) => ({ ...row, v: row.v * v }));
      assert.deepEqual((await writeRows(connection, table, ["path"], changed, { target })).results, allOk(rows));
      assert.deepEqual((await writeRows(connection, table, ["path"], changed)).results, allOk(rows));
    }
    assert.deepEqual(await db.query(`SELECT * FROM ${table} ORDER BY path`), [
      { path: ["a", "b"], v: 2 },
      { path: ["a", "c"], v: 4 },
    ]);
  });

  it("makes the probe's key list from key fields: what pg makes of an array of the values, as the server reads it", async () => {
    const pgUtils = createRequire(import.meta.url)("pg/lib/utils.js") as { prepareValue(value: unknown): unknown };
    const plain = { json: false, array: false };
    const cases: [string, unknown[]][] = [
      [
        "text",
        ["", "plain", 'q"uote', "back\\slash", "a,b", "{}", "NULL", "null", " sp ", "tab\tnl\ncr\r", "🎉é", null],
      ],
      ["int8", [0, -1, 9007199254740993n, "9223372036854775807", null]],
      ["numeric", ["12345678901234567890.0123456789", 1.5, "NaN", "-0.0000000001"]],
      ["timestamptz", [new Date("2024-01-02T03:04:05.678Z"), "2024-06-30 23:59:59.999999+05:30", "infinity"]],
      ["bytea", [Buffer.from([0, 1, 92, 34, 255]), Uint8Array.from([44, 123])]],
      ["uuid", ["0b3f1c9e-2c1a-4d7e-9f3b-6a1e2d3c4b5a"]],
      ["boolean", [true, false]],
      ["jsonb", [{ a: 'x"\\y' }]],
    ];
    for (const [type, values] of cases) {
      const kind = { json: type === "jsonb", array: false };
      const fields = values.map((value) => encodeField(value, type === "jsonb" ? kind : plain));
      const literal = `{${fields.map(arrayElement).join(",")}}`;
      const parameter = values.map((value) =>
        value instanceof Date ? value.toISOString() : type === "jsonb" ? JSON.stringify(value) : value,
      );
      // pg writes bytes unquoted (\\x…), the same value as the quoted element.
      if (type !== "bytea") assert.equal(literal, pgUtils.prepareValue(parameter), type);
      const [same] = await db.query<{ same: boolean; n: number }>(
        `SELECT $1::${type}[] IS NOT DISTINCT FROM $2::${type}[] AS same, cardinality($1::${type}[]) AS n`,
        [literal, parameter],
      );
      assert.deepEqual(same, { same: true, n: values.length }, type);
    }
  });

  it("prepares and decodes on a worker thread as on the main thread, and its prepared rows write", async () => {
    const [prepared, plain] = await twins("threaded", trickyColumns);
    const target = await describeTarget(connection, prepared);
    const source = `${schema}.threaded_source`;
    await db.query(`CREATE TABLE ${source} (${trickyColumns})`);
    assert.deepEqual((await writeRows(connection, source, ["id"], tricky)).results, allOk(tricky));
    const encoded = await readAllEncoded(connection, { options: { table: source }, key: ["id"], batchSize: 4 });
    const driver = new URL("../../src/connectors/postgres/index.ts", import.meta.url).href;
    const worker = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       import(workerData.driver).then(({ postgresDriver }) => {
         const rows = workerData.batches.flatMap((batch) => postgresDriver.decode(batch.encoding, batch.text));
         const data = postgresDriver.prepare(rows, workerData.request);
         parentPort.postMessage({ rows, data });
       });`,
      {
        eval: true,
        workerData: { driver, batches: encoded, request: { options: { table: prepared }, key: ["id"], target } },
      },
    );
    const [message] = (await new Promise((resolve, reject) => {
      worker.once("message", (value) => resolve([value]));
      worker.once("error", reject);
    })) as [{ rows: Row[]; data: unknown }];
    await worker.terminate();
    const rows = decoded(encoded).flatMap((batch) => batch.rows);
    // Buffers arrive as plain Uint8Arrays: compare their bytes.
    const bytes = (list: Row[]) =>
      list.map((row) => ({ ...row, raw: row.raw === null ? null : [...(row.raw as Uint8Array)] }));
    assert.deepEqual(bytes(message.rows), bytes(rows));
    const reads = { count: 0 };
    const results = await (connection.write as NonNullable<Connection["write"]>)({
      options: { table: prepared },
      key: ["id"],
      target: "test.target",
      run: 1,
      chunk: 0,
      items: itemsOf(rows, reads),
      prepared: { data: message.data, rows: rows.map((_, i) => i) },
      signal: never,
    });
    assert.deepEqual(results, allOk(rows));
    assert.equal(reads.count, 0);
    assert.deepEqual((await writeRows(connection, plain, ["id"], rows)).results, allOk(rows));
    assert.deepEqual(await contents(prepared), await contents(plain));
  });
});

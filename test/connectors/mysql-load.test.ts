import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { before, describe, it } from "node:test";
import { serialize } from "node:v8";
import type { EncodedRows, TableInfo } from "../../src/connectors/mysql/encode.ts";
import { type MysqlClient, type mysql, mysqlDriver } from "../../src/connectors/mysql/index.ts";
import type { Connection, ItemResult, WriteItem } from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { allOk, writeRequest } from "../support/connection-calls.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";

const files = mysqlTestDatabase("franca_myload");
const { database, url, open, clientOf, rawConnection } = files;
const never = new AbortController().signal;

let connection: Connection;
let db: MysqlClient;
before(() => {
  connection = files.connection;
  db = files.db;
});

interface Written {
  results: ItemResult[];
  /** How many times an item's row was read. */
  read: number;
}

/** Items whose rows count their reads. */
function itemsOf(rows: readonly Row[], key: readonly string[], indices: readonly number[], counter: { read: number }) {
  return indices.map(
    (index): WriteItem => ({
      key: JSON.stringify(key.map((column) => (rows[index] as Row)[column])),
      get row(): Row {
        counter.read++;
        return rows[index] as Row;
      },
      idempotencyKey: `idem-${index}`,
      hash: `hash-${index}`,
    }),
  );
}

async function write(
  to: Connection,
  table: string,
  key: string[],
  rows: Row[],
  options: Record<string, unknown> = {},
): Promise<Written> {
  const counter = { read: 0 };
  const items = itemsOf(
    rows,
    key,
    rows.map((_, i) => i),
    counter,
  );
  const request = writeRequest(table, key, items, options);
  const results = await (to.write as NonNullable<Connection["write"]>)(request);
  return { results, read: counter.read };
}

/** describeTarget, then prepare: what the engine's transform threads get and make (each crossing a thread). */
async function prepare(
  to: Connection,
  table: string,
  key: string[],
  rows: Row[],
  options: Record<string, unknown> = {},
): Promise<unknown> {
  const target = await (to.describeTarget as NonNullable<Connection["describeTarget"]>)({ table, ...options }, never);
  const prepareRows = mysqlDriver.prepare as NonNullable<typeof mysqlDriver.prepare>;
  return structuredClone(prepareRows(rows, { options: { table, ...options }, key, target: structuredClone(target) }));
}

async function writePrepared(
  to: Connection,
  table: string,
  key: string[],
  rows: Row[],
  data: unknown,
  indices: readonly number[] = rows.map((_, i) => i),
  options: Record<string, unknown> = {},
): Promise<Written> {
  const counter = { read: 0 };
  const results = await (to.write as NonNullable<Connection["write"]>)({
    ...writeRequest(table, key, itemsOf(rows, key, indices, counter), options),
    prepared: { data, rows: indices },
  });
  return { results, read: counter.read };
}

/** A connector with one pooled session, and that session's statement counters. */
function counted(settings: Partial<Parameters<typeof mysql>[1]> = {}): {
  writer: Connection;
  counters: () => Promise<Record<string, number>>;
} {
  const writer = open({ url, poolSize: 1, ...settings }, "counted");
  const session = clientOf(writer);
  return {
    writer,
    async counters() {
      const rows = await session.query(
        "SHOW SESSION STATUS WHERE Variable_name IN ('Com_load', 'Com_insert', 'Com_rollback', 'Com_commit', 'Com_select')",
      );
      return Object.fromEntries(rows.map((row) => [String(row.Variable_name).slice(4), Number(row.Value)]));
    },
  };
}

/** What changed between two readings of the counters. */
function delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((name) => [name, (after[name] ?? 0) - (before[name] ?? 0)]));
}

/** Every column of a table, exactly: HEX of each value (NULL as null), by id. */
async function exactly(table: string): Promise<Row[]> {
  const columns = await db.query<{ name: string }>(
    "SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    [database, table],
  );
  const list = columns.map(({ name }) => `HEX(\`${name}\`) AS \`${name}\``).join(", ");
  return db.query(`SELECT ${list} FROM \`${table}\` ORDER BY id`);
}

describe("mysql connector: LOAD DATA for new keys", () => {
  const tricky = `(id int PRIMARY KEY, label varchar(100), big longtext, amount decimal(30,10), at datetime(6), day date,
    doc json, n bigint, flag tinyint(1), ratio double, kind enum('a','b','c'), note text, t time(6), yr year)
    CHARACTER SET utf8mb4`;
  const big = `${"é🎉x\\'\"\t\n\r".repeat(150_000)}end\\`;
  const trickyRows: Row[] = [
    {
      id: 1,
      label: null,
      big: "",
      amount: "12345678901234567890.0123456789",
      n: "9223372036854775807",
      flag: true,
      ratio: 0.1,
      kind: "a",
    },
    { id: 2, label: "", big, amount: "-0.0000000001", n: "-9007199254740993", flag: false, ratio: -1.5 },
    {
      id: 3,
      label: "ünïcødé 日本語 👩‍👩‍👧 🎉 \\ ' \" \n\t\r\0 \u001a x",
      at: "2024-06-30 23:59:59.999999+05:30",
      n: 42,
      note: "\\N",
      kind: "c",
    },
    {
      id: 4,
      at: "1999-12-31T18:00:00.000001-08:00",
      doc: { a: { b: [1, "two", null, { c: true }] }, e: [], s: "tab\there \\N back\\slash 'q' \"dq\" 🎉\u0000" },
      note: "NULL",
    },
    {
      id: 5,
      at: new Date("2024-01-01T00:00:00.123Z"),
      day: new Date("2024-02-29T00:00:00Z"),
      doc: "a JSON string",
      note: "\\",
      label: "ends with a backslash \\",
    },
    {
      id: 6,
      at: "2024-03-01 10:00:00.5",
      day: "2024-03-01",
      doc: [1, [2, [3]], { "key with space": "ü" }],
      n: -42n,
      ratio: 12345.678,
      t: "10:11:12.5",
      yr: "2024",
    },
    { id: 7, at: "2024-03-01T10:00:00Z", doc: { n: 1.5, s: "text", t: false }, amount: 7, label: 42, note: true },
    { id: 8, at: "2024-03-01T10:00:00+00", amount: "7.00", doc: 12.5, label: "\r\n", note: "\t", big: "\0" },
    { id: 9 },
    { id: 10, doc: null, label: "  spaces  ", note: "tab\tin\tthe\tmiddle\nand lines\n" },
  ];

  it("lands tricky values through LOAD DATA exactly as through INSERT", async () => {
    await db.query(`CREATE TABLE tricky_load ${tricky}`);
    await db.query(`CREATE TABLE tricky_insert ${tricky}`);
    const { writer, counters } = counted();
    try {
      const before = await counters();
      assert.deepEqual((await write(writer, "tricky_load", ["id"], trickyRows)).results, allOk(trickyRows.length));
      const loaded = delta(before, await counters());
      assert.equal(loaded.load, 1, JSON.stringify(loaded));
      assert.equal(loaded.insert, 0, JSON.stringify(loaded));
      const middle = await counters();
      const inserted = await write(writer, "tricky_insert", ["id"], trickyRows, { load: false });
      assert.deepEqual(inserted.results, allOk(trickyRows.length));
      const byInsert = delta(middle, await counters());
      assert.equal(byInsert.load, 0, JSON.stringify(byInsert));
      assert.ok((byInsert.insert ?? 0) >= 1, JSON.stringify(byInsert));
    } finally {
      await writer.close();
    }
    // Byte for byte, every column.
    const viaLoad = await exactly("tricky_load");
    assert.equal(viaLoad.length, trickyRows.length);
    assert.deepEqual(viaLoad, await exactly("tricky_insert"));
    // And as read: instants with an offset as UTC wall time, JSON as written, empty strings apart from NULL.
    const read = await db.query("SELECT * FROM tricky_load ORDER BY id");
    assert.deepEqual(await db.query("SELECT * FROM tricky_insert ORDER BY id"), read);
    assert.equal(read[0]?.label, null);
    assert.equal(read[0]?.big, "");
    assert.equal(read[1]?.label, "");
    assert.equal(read[1]?.big, big);
    assert.equal(read[2]?.label, trickyRows[2]?.label);
    assert.equal(read[2]?.at, "2024-06-30 18:29:59.999999");
    assert.equal(read[2]?.note, "\\N");
    assert.equal(read[3]?.at, "2000-01-01 02:00:00.000001");
    assert.deepEqual(read[3]?.doc, trickyRows[3]?.doc);
    assert.equal(read[3]?.note, "NULL");
    assert.equal(read[4]?.doc, "a JSON string");
    assert.equal(read[6]?.label, "42");
    assert.equal(read[6]?.note, "1");
    assert.equal(read[7]?.big, "\0");
    assert.deepEqual(read[8], { ...read[8], label: null, big: null, doc: null, note: null });
  });

  it("sends values LOAD DATA would land differently through INSERT, landing them as it does", async () => {
    const definition = "(id int PRIMARY KEY, label varchar(40), kind enum('a','b','c'), bin varbinary(8))";
    await db.query(`CREATE TABLE odd_load ${definition}`);
    await db.query(`CREATE TABLE odd_insert ${definition}`);
    const cases: Row[][] = [
      [{ id: 1, label: 1e21 }], // the INSERT's double prints as 1e21, the text would stay 1e+21
      [{ id: 2, label: 1e-7 }], // 0.0000001
      [{ id: 3, kind: 2 }], // an ENUM's index: 'b'
      [{ id: 4, bin: Buffer.from([0, 255, 10, 92]) }],
    ];
    const { writer, counters } = counted();
    try {
      for (const rows of cases) {
        const before = await counters();
        assert.deepEqual((await write(writer, "odd_load", ["id"], rows)).results, allOk(1));
        assert.equal(delta(before, await counters()).load, 0, JSON.stringify(rows));
        assert.deepEqual((await write(writer, "odd_insert", ["id"], rows, { load: false })).results, allOk(1));
      }
    } finally {
      await writer.close();
    }
    assert.deepEqual(await exactly("odd_load"), await exactly("odd_insert"));
    const read = await db.query("SELECT * FROM odd_load ORDER BY id");
    assert.deepEqual(
      read.map((row) => row.label ?? row.kind ?? row.bin),
      ["1e21", "0.0000001", "b", Buffer.from([0, 255, 10, 92])],
    );
  });

  it("upserts a batch with a key already there; loads one whose key range holds only others' keys", async () => {
    await db.query("CREATE TABLE mixed (id bigint PRIMARY KEY, v varchar(20))");
    await db.query("INSERT INTO mixed VALUES (3, 'old'), (150, 'other')");
    const { writer, counters } = counted();
    try {
      const rows = Array.from({ length: 10 }, (_, i) => ({ id: i + 1, v: `new ${i + 1}` }));
      let before = await counters();
      assert.deepEqual((await write(writer, "mixed", ["id"], rows)).results, allOk(10));
      let did = delta(before, await counters());
      assert.equal(did.load, 0, JSON.stringify(did));
      assert.equal(did.insert, 1, JSON.stringify(did));
      assert.deepEqual(
        await db.query("SELECT * FROM mixed WHERE id <= 10 ORDER BY id"),
        rows.map((row) => ({ ...row, id: String(row.id) })),
      );

      // 101…149 and 151…160: 150 is in their range but not among them, so the keys themselves are checked.
      const around = [
        ...Array.from({ length: 49 }, (_, i) => 101 + i),
        ...Array.from({ length: 10 }, (_, i) => 151 + i),
      ];
      before = await counters();
      const results = await write(
        writer,
        "mixed",
        ["id"],
        around.map((id) => ({ id: String(id), v: "around" })),
      );
      assert.deepEqual(results.results, allOk(around.length));
      did = delta(before, await counters());
      assert.equal(did.load, 1, JSON.stringify(did));
      assert.equal(did.insert, 0, JSON.stringify(did));
      assert.deepEqual(await db.query("SELECT COUNT(*) AS n FROM mixed WHERE v = 'around'"), [{ n: "59" }]);
      assert.deepEqual(await db.query("SELECT v FROM mixed WHERE id = 150"), [{ v: "other" }]);
    } finally {
      await writer.close();
    }
  });

  it("checks string keys in statements of at most maxStatementBytes", async () => {
    await db.query("CREATE TABLE coded (code varchar(40) PRIMARY KEY, v int)");
    await db.query("INSERT INTO coded VALUES ('key-0400', -1)");
    const { writer, counters } = counted({ maxStatementBytes: 1024 });
    try {
      const fresh = Array.from({ length: 500 }, (_, i) => ({ code: `new-${String(i).padStart(4, "0")}`, v: i }));
      let before = await counters();
      assert.deepEqual((await write(writer, "coded", ["code"], fresh)).results, allOk(500));
      let did = delta(before, await counters());
      assert.equal(did.load, 1, JSON.stringify(did));
      // ~12 bytes a key, at most 1 kB a statement: 500 keys take at least 6 SELECTs
      assert.ok((did.select ?? 0) >= 6, JSON.stringify(did));

      const known = Array.from({ length: 500 }, (_, i) => ({ code: `key-${String(i).padStart(4, "0")}`, v: i }));
      before = await counters();
      assert.deepEqual((await write(writer, "coded", ["code"], known)).results, allOk(500));
      did = delta(before, await counters());
      assert.equal(did.load, 0, JSON.stringify(did));
      assert.deepEqual(await db.query("SELECT COUNT(*) AS n, SUM(v) AS total FROM coded"), [
        { n: "1000", total: String(2 * ((499 * 500) / 2)) },
      ]);
    } finally {
      await writer.close();
    }
  });

  it("leaves the table unchanged when the same write runs twice (LOAD DATA, then the upsert)", async () => {
    await db.query(`CREATE TABLE twice ${tricky}`);
    const { writer, counters } = counted();
    try {
      const before = await counters();
      assert.deepEqual((await write(writer, "twice", ["id"], trickyRows)).results, allOk(trickyRows.length));
      const once = await exactly("twice");
      assert.deepEqual((await write(writer, "twice", ["id"], trickyRows)).results, allOk(trickyRows.length));
      assert.deepEqual(await exactly("twice"), once);
      const did = delta(before, await counters());
      assert.equal(did.load, 1, JSON.stringify(did));
      assert.ok((did.insert ?? 0) >= 1, JSON.stringify(did));
    } finally {
      await writer.close();
    }
  });

  it("rolls back a load the server warned about, then reports each bad row as the upsert does", async () => {
    await db.query("CREATE TABLE parent (id int PRIMARY KEY)");
    await db.query("INSERT INTO parent VALUES (1)");
    await db.query(
      `CREATE TABLE guarded (id int PRIMARY KEY, name varchar(20) NOT NULL, qty int, code varchar(3), at datetime(6),
        doc json, parent int, CONSTRAINT guarded_qty CHECK (qty >= 0), FOREIGN KEY (parent) REFERENCES parent (id))`,
    );
    const cases = [
      { bad: { name: null }, names: ["name", "cannot be null"], path: "/name" },
      { bad: { code: "too long" }, names: ["too long", "code"], path: "/code" },
      { bad: { qty: -5 }, names: ["guarded_qty"], path: undefined },
      { bad: { qty: "many" }, names: ["many", "qty"], path: "/qty" },
      { bad: { at: "2024-02-30 10:00:00" }, names: ["at"], path: "/at" },
      { bad: { doc: undefined, name: "x" }, names: [], path: undefined, good: true },
      { bad: { parent: 7 }, names: ["foreign key"], path: undefined },
    ];
    const { writer, counters } = counted();
    try {
      for (const [round, { bad, names, path, good }] of cases.entries()) {
        const base = round * 100;
        const rows: Row[] = Array.from({ length: 10 }, (_, i) => ({
          id: base + i,
          name: `row ${i}`,
          qty: i,
          parent: 1,
        }));
        rows[4] = { ...rows[4], ...bad };
        const before = await counters();
        const { results } = await write(writer, "guarded", ["id"], rows);
        const did = delta(before, await counters());
        assert.equal(did.load, 1, JSON.stringify(did));
        for (const [i, result] of results.entries()) {
          if (i !== 4 || good === true) {
            assert.deepEqual(result, { ok: true });
            continue;
          }
          assert.equal(did.rollback >= 2, true, JSON.stringify(did)); // the load, then the failed INSERT
          assert.equal(result.ok, false);
          if (result.ok) continue;
          assert.equal(result.error.code, ErrorCode.TargetRejected);
          for (const name of names) assert.ok(result.error.message.includes(name), result.error.message);
          assert.equal(result.error.path, path, result.error.message);
        }
        const landed = await db.query("SELECT id FROM guarded WHERE id >= ? AND id < ? ORDER BY id", [
          base,
          base + 100,
        ]);
        assert.deepEqual(
          landed.map((row) => row.id),
          (good === true ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] : [0, 1, 2, 3, 5, 6, 7, 8, 9]).map((i) => base + i),
          JSON.stringify(bad),
        );
        // Nothing LOAD DATA put in place of a refused value stayed (an empty name for NULL, 0 for 'many').
        assert.deepEqual(
          await db.query("SELECT COUNT(*) AS n FROM guarded WHERE name = '' OR qty < 0 OR qty IS NULL"),
          [{ n: "0" }],
        );
      }
    } finally {
      await writer.close();
    }
  });

  it("lets the later row win when a batch of new keys holds one twice", async () => {
    await db.query("CREATE TABLE doubled (id int PRIMARY KEY, v varchar(10))");
    const { results } = await write(
      connection,
      "doubled",
      ["id"],
      [
        { id: 1, v: "first" },
        { id: 2, v: "other" },
        { id: 1, v: "second" },
      ],
    );
    assert.deepEqual(results, allOk(3));
    assert.deepEqual(await db.query("SELECT * FROM doubled ORDER BY id"), [
      { id: 1, v: "second" },
      { id: 2, v: "other" },
    ]);
  });

  for (const outcome of ["COMMIT", "ROLLBACK"] as const) {
    it(`neither loses nor doubles a key another session inserts before the load (it ends: ${outcome})`, async () => {
      const table = `raced_${outcome.toLowerCase()}`;
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v varchar(20))`);
      const other = await rawConnection();
      const { writer, counters } = counted();
      try {
        // The other session's row is not committed: the connector's check cannot see it, and its load waits for it.
        await other.query("START TRANSACTION");
        await other.query(`INSERT INTO ${table} VALUES (5, 'theirs')`);
        const before = await counters();
        const rows = Array.from({ length: 10 }, (_, i) => ({ id: i + 1, v: "ours" }));
        const writing = write(writer, table, ["id"], rows);
        for (let wait = 0; ; wait++) {
          const waiting = await db.query(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'LOAD DATA%'",
            [database],
          );
          if (Number(waiting[0]?.n) > 0) break;
          if (wait > 500) assert.fail("the load never waited for the other session's row");
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await other.query(outcome);
        assert.deepEqual((await writing).results, allOk(10));
        const did = delta(before, await counters());
        assert.equal(did.load, 1, JSON.stringify(did));
        // Committed: LOAD DATA skipped the duplicate with a warning, and the upsert wrote the batch again.
        assert.equal(did.insert, outcome === "COMMIT" ? 1 : 0, JSON.stringify(did));
        assert.deepEqual(await db.query(`SELECT * FROM ${table} ORDER BY id`), rows);
      } finally {
        await other.end();
        await writer.close();
      }
    });
  }

  it("takes INSERT for a table LOAD DATA cannot roll back, or a generated column written", async () => {
    await db.query("CREATE TABLE plain_myisam (id int PRIMARY KEY, v varchar(10)) ENGINE=MyISAM");
    await db.query("CREATE TABLE generated (id int PRIMARY KEY, a int, b int AS (a * 2) VIRTUAL)");
    const { writer, counters } = counted();
    try {
      let before = await counters();
      assert.deepEqual((await write(writer, "plain_myisam", ["id"], [{ id: 1, v: "x" }])).results, allOk(1));
      assert.equal(delta(before, await counters()).load, 0);

      // A generated column not written: loaded. Written: the INSERT refuses it, where LOAD DATA would ignore it.
      before = await counters();
      assert.deepEqual((await write(writer, "generated", ["id"], [{ id: 1, a: 2 }])).results, allOk(1));
      assert.equal(delta(before, await counters()).load, 1);
      before = await counters();
      const refused = await write(writer, "generated", ["id"], [{ id: 2, a: 2, b: 5 }]).then(
        () => assert.fail("expected the write to fail"),
        (error: Error) => error,
      );
      assert.match(refused.message, /generated column/i);
      assert.equal(delta(before, await counters()).load, 0);
      assert.deepEqual(await db.query("SELECT * FROM generated"), [{ id: 1, a: 2, b: 4 }]);
    } finally {
      await writer.close();
    }
  });

  it("remembers a server or client that refuses LOCAL INFILE, and writes through INSERT", async () => {
    await db.query("CREATE TABLE no_infile (id int PRIMARY KEY, v varchar(10))");
    const { writer, counters } = counted();
    try {
      // This connector's sessions do not offer LOCAL INFILE (mysql2's LOCAL_FILES capability, 0x80), so the server
      // refuses LOAD DATA LOCAL (as it does when its local_infile is off, which this shared server's cannot be).
      const pool = clientOf(writer).pool as unknown as {
        pool: { config: { connectionConfig: { clientFlags: number } } };
      };
      pool.pool.config.connectionConfig.clientFlags &= ~0x80;
      let before = await counters();
      assert.deepEqual((await write(writer, "no_infile", ["id"], [{ id: 1, v: "a" }])).results, allOk(1));
      let did = delta(before, await counters());
      assert.deepEqual([did.load, did.insert], [1, 1], JSON.stringify(did));
      before = await counters();
      assert.deepEqual((await write(writer, "no_infile", ["id"], [{ id: 2, v: "b" }])).results, allOk(1));
      did = delta(before, await counters());
      assert.deepEqual([did.load, did.insert], [0, 1], JSON.stringify(did));
      assert.deepEqual(await db.query("SELECT * FROM no_infile ORDER BY id"), [
        { id: 1, v: "a" },
        { id: 2, v: "b" },
      ]);
    } finally {
      await writer.close();
    }
  });
});

describe("mysql connector: prepared rows", () => {
  const people = (from: number, count: number, note = "n"): Row[] =>
    Array.from({ length: count }, (_, i) => ({
      id: from + i,
      name: `Person ${from + i} 🎉\t\\`,
      at: `2024-06-30T23:59:${String(i % 60).padStart(2, "0")}.5+05:30`,
      doc: { i: from + i, note },
    }));

  it("prepares rows without loading mysql2, which its first connection loads (a transform thread's memory)", async () => {
    await db.query("CREATE TABLE unloaded (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    // a row already there: both the INSERT tuples (SQL string literals) and the LOAD DATA lines are made
    await db.query("INSERT INTO unloaded VALUES (100, 'x', NULL, NULL)");
    const target = await (connection.describeTarget as NonNullable<Connection["describeTarget"]>)(
      { table: "unloaded" },
      never,
    );
    const request = { options: { table: "unloaded" }, key: ["id"], target };
    const rows = people(1, 3, "it's \\ 'quoted'");
    const here = (mysqlDriver.prepare as NonNullable<typeof mysqlDriver.prepare>)(rows, request) as EncodedRows;
    // a fresh process, as a transform thread is a fresh isolate: the connector's module, then prepare, then a connection
    const connector = new URL("../../src/connectors/mysql/index.ts", import.meta.url).href;
    const script = `
      import { createRequire } from "node:module";
      import { deserialize } from "node:v8";
      const { mysql, mysqlDriver } = await import(${JSON.stringify(connector)});
      const cache = createRequire(process.cwd() + "/").cache;
      const loaded = () => Object.keys(cache).some((file) => file.includes("/node_modules/mysql2/"));
      const { rows, request, url } = deserialize(Buffer.from(process.argv[1], "base64"));
      const data = mysqlDriver.prepare(rows, request);
      const afterPrepare = loaded();
      const connection = mysqlDriver.open(mysql("db", { url }));
      await connection.describeTarget({ table: "unloaded" }, new AbortController().signal);
      const afterConnecting = loaded();
      await connection.close();
      process.stdout.write(JSON.stringify({ afterPrepare, afterConnecting, tuples: data.tuples, lines: Buffer.from(data.lines).toString() }));
    `;
    const argument = serialize({ rows, request, url }).toString("base64");
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script, argument], { encoding: "utf8" });
    assert.equal(child.status, 0, child.stderr);
    const there = JSON.parse(child.stdout) as {
      afterPrepare: boolean;
      afterConnecting: boolean;
      tuples: string;
      lines: string;
    };
    assert.equal(there.afterPrepare, false, "prepare loaded mysql2");
    assert.equal(there.afterConnecting, true, "a connection loads mysql2");
    // the same escaping as mysql2's own (its escape is sql-escaper's)
    assert.equal(there.tuples, here.tuples);
    assert.match(there.tuples, /"note":"it\\'s/);
    assert.equal(there.lines, Buffer.from(here.lines as Uint8Array).toString());
  });

  it("describes a table and prepares rows as values that cross threads", async () => {
    await db.query("CREATE TABLE described (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    const target = await (connection.describeTarget as NonNullable<Connection["describeTarget"]>)(
      { table: "described" },
      never,
    );
    assert.deepEqual(structuredClone(target), target);
    const info = target as TableInfo;
    assert.equal(info.empty, true);
    assert.equal(info.transactional, true);
    assert.deepEqual(info.columns.get("doc"), {
      json: true,
      dateTime: false,
      date: false,
      integer: false,
      load: "any",
    });
    assert.deepEqual(info.columns.get("at"), {
      json: false,
      dateTime: true,
      date: false,
      integer: false,
      load: "text",
    });
    const data = (mysqlDriver.prepare as NonNullable<typeof mysqlDriver.prepare>)(people(1, 3), {
      options: { table: "described" },
      key: ["id"],
      target,
    }) as EncodedRows;
    assert.deepEqual(structuredClone(data), data);
    // An empty table: every key is new, so only LOAD DATA's lines are made.
    assert.equal(data.tuples, undefined);
    assert.equal(
      Buffer.from(data.lines as Uint8Array)
        .toString()
        .split("\n")[0],
      '1\tPerson 1 🎉\\t\\\\\t2024-06-30 18:29:00.5\t{"i":1,"note":"n"}',
    );
    await db.query("INSERT INTO described VALUES (100, 'x', NULL, NULL)");
    const more = (await prepare(connection, "described", ["id"], people(1, 3))) as EncodedRows;
    assert.notEqual(more.tuples, undefined);
    assert.notEqual(more.lines, undefined);
  });

  it("joins rows prepared in pieces into what preparing them at once gives, for a new table and one with rows", async () => {
    await db.query("CREATE TABLE joined (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    const join = mysqlDriver.join as NonNullable<typeof mysqlDriver.join>;
    const rows: Row[] = people(1, 250);
    rows[120] = { ...rows[120], id: Number.NaN }; // refused: no server takes NaN
    delete rows[160]?.doc; // lacks a column
    const pieces = (all: Row[]) => [all.slice(0, 100), all.slice(100, 200), all.slice(200)];
    for (const filled of [false, true]) {
      if (filled) await db.query("INSERT INTO joined VALUES (1000, 'x', NULL, NULL)");
      const whole = (await prepare(connection, "joined", ["id"], rows)) as EncodedRows;
      // an empty table takes LOAD DATA's lines only; one with rows the tuples too
      assert.equal(whole.tuples === undefined, !filled);
      assert.notEqual(whole.lines, undefined);
      const parts = await Promise.all(pieces(rows).map((piece) => prepare(connection, "joined", ["id"], piece)));
      const joined = join(parts) as EncodedRows;
      assert.deepEqual(joined, whole, filled ? "a table with rows" : "an empty table");
      assert.deepEqual(
        joined.refused.map(([row]) => row),
        [120],
      );
      assert.deepEqual(joined.gaps, [[160, [3]]]);
      assert.equal((joined.lines as Uint8Array).byteLength, (joined.lines as Uint8Array).buffer.byteLength);
    }
    // pieces of other columns, or for another table, do not join
    const other = await prepare(connection, "joined", ["id"], [{ id: 7, doc: null, name: "n", at: null }]);
    const parts = await Promise.all(pieces(rows).map((piece) => prepare(connection, "joined", ["id"], piece)));
    assert.equal(join([...parts, other]), undefined);
    await db.query("CREATE TABLE joined2 (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    assert.equal(join([...parts, await prepare(connection, "joined2", ["id"], people(300, 2))]), undefined);
  });

  it("keeps the key range of rows joined from pieces when one piece has no key to range over", async () => {
    await db.query("CREATE TABLE ranged (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    const join = mysqlDriver.join as NonNullable<typeof mysqlDriver.join>;
    const rows: Row[] = people(1, 300);
    // the second piece's rows are all refused (no server takes NaN), the third's keys all NULL
    for (let i = 100; i < 200; i++) rows[i] = { ...rows[i], id: Number.NaN };
    for (let i = 200; i < 250; i++) rows[i] = { ...rows[i], id: null };
    const pieces = [rows.slice(0, 100), rows.slice(100, 200), rows.slice(200, 250), rows.slice(250)];
    const whole = (await prepare(connection, "ranged", ["id"], rows)) as EncodedRows;
    assert.deepEqual(whole.keyRange, ["1", "300"]);
    const parts = await Promise.all(pieces.map((piece) => prepare(connection, "ranged", ["id"], piece)));
    assert.equal((parts[1] as EncodedRows).keyRange, undefined);
    assert.equal((parts[2] as EncodedRows).keyRange, undefined);
    assert.deepEqual(join(parts), whole);
    // a piece with a key that is not an integer leaves the joined rows without a range, as all rows at once would
    // be: a row sent, or one refused after its key was read (a BigInt cannot be JSON)
    for (const odd of [{ id: "seven" }, { id: "seven", doc: 7n }]) {
      const mixed = [...people(1, 5), { ...people(6, 1)[0], ...odd }];
      const mixedWhole = (await prepare(connection, "ranged", ["id"], mixed)) as EncodedRows;
      assert.equal(mixedWhole.keyRange, undefined);
      assert.equal(mixedWhole.refused.length, "doc" in odd ? 1 : 0);
      const mixedParts = await Promise.all(
        [mixed.slice(0, 5), mixed.slice(5)].map((piece) => prepare(connection, "ranged", ["id"], piece)),
      );
      assert.deepEqual(join(mixedParts), mixedWhole);
    }
  });

  it("writes prepared rows without reading the items' rows, all of them or a subset", async () => {
    await db.query("CREATE TABLE prepared_people (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    await db.query("CREATE TABLE plain_people (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    const { writer, counters } = counted();
    try {
      const rows = people(1, 10);
      // Not every key new any more: both encodings are prepared.
      await db.query("INSERT INTO prepared_people VALUES (1000, 'someone', NULL, NULL)");
      const data = await prepare(writer, "prepared_people", ["id"], rows);
      let before = await counters();
      const subset = [7, 2, 5];
      const first = await writePrepared(writer, "prepared_people", ["id"], rows, data, subset);
      assert.deepEqual(first, { results: allOk(3), read: 0 });
      assert.equal(delta(before, await counters()).load, 1);
      // The other rows (and the three again, now upserted), from the same prepared data, through INSERT.
      before = await counters();
      const rest = await writePrepared(writer, "prepared_people", ["id"], rows, data);
      assert.deepEqual(rest, { results: allOk(10), read: 0 });
      const did = delta(before, await counters());
      assert.deepEqual([did.load, did.insert], [0, 1], JSON.stringify(did));
      await write(writer, "plain_people", ["id"], rows);
    } finally {
      await writer.close();
    }
    await db.query("DELETE FROM prepared_people WHERE id = 1000");
    assert.deepEqual(
      await db.query("SELECT * FROM prepared_people ORDER BY id"),
      await db.query("SELECT * FROM plain_people ORDER BY id"),
    );
  });

  it("reads the rows of prepared items only on a slow path: a batch prepared for LOAD DATA that must upsert", async () => {
    await db.query("CREATE TABLE late_key (id int PRIMARY KEY, name varchar(50), at datetime(6), doc json)");
    const rows = people(1, 5);
    const data = await prepare(connection, "late_key", ["id"], rows);
    assert.equal((data as EncodedRows).tuples, undefined);
    await db.query("INSERT INTO late_key VALUES (3, 'already', NULL, NULL)");
    const written = await writePrepared(connection, "late_key", ["id"], rows, data, [4, 2, 0]);
    assert.deepEqual(written.results, allOk(3));
    assert.equal(written.read, 3);
    assert.deepEqual(
      (await db.query("SELECT id, name FROM late_key ORDER BY id")).map((row) => [row.id, row.name]),
      [
        [1, rows[0]?.name],
        [3, rows[2]?.name],
        [5, rows[4]?.name],
      ],
    );
  });

  it("writes a subset whose rows lack a column of the chunk without it, as the rows would be written", async () => {
    await db.query("CREATE TABLE gapped (id int PRIMARY KEY, a varchar(10), b varchar(10) DEFAULT 'default')");
    const rows: Row[] = [
      { id: 1, a: "x", b: "y" },
      { id: 2, a: "x" },
      { id: 3, a: "x" },
    ];
    const data = await prepare(connection, "gapped", ["id"], rows);
    assert.deepEqual((data as EncodedRows).gaps, [
      [1, [2]],
      [2, [2]],
    ]);
    // Rows 2 and 3 alone have no b: written from their rows, b takes its default (not NULL).
    const lacking = await writePrepared(connection, "gapped", ["id"], rows, data, [1, 2]);
    assert.deepEqual(lacking.results, allOk(2));
    assert.ok(lacking.read > 0);
    // With row 1, b is a column of the batch: NULL where a row lacks it, as in the rows' own upsert.
    await db.query("DELETE FROM gapped");
    const whole = await writePrepared(connection, "gapped", ["id"], rows, data, [2, 0]);
    assert.deepEqual(whole, { results: allOk(2), read: 0 });
    await writePrepared(connection, "gapped", ["id"], rows, data, [1]);
    assert.deepEqual(await db.query("SELECT * FROM gapped ORDER BY id"), [
      { id: 1, a: "x", b: "y" },
      { id: 2, a: "x", b: "default" },
      { id: 3, a: "x", b: null },
    ]);
  });

  it("reports a row prepare could not encode, without reading the rows", async () => {
    await db.query("CREATE TABLE unsendable (id int PRIMARY KEY, qty double, doc json)");
    const rows: Row[] = [
      { id: 1, qty: 1.5, doc: { ok: true } },
      { id: 2, qty: Number.NaN, doc: null },
      { id: 3, qty: 2, doc: { big: 10n } },
      { id: 4, qty: 3, doc: [] },
    ];
    const data = await prepare(connection, "unsendable", ["id"], rows);
    const { results, read } = await writePrepared(connection, "unsendable", ["id"], rows, data);
    assert.equal(read, 0);
    assert.deepEqual([results[0], results[3]], allOk(2));
    for (const result of [results[1], results[2]]) {
      assert.equal(result?.ok, false);
      if (result?.ok !== false) continue;
      assert.equal(result.error.code, ErrorCode.TargetRejected);
      assert.match(result.error.message, /'unsendable' refused the row/);
    }
    assert.deepEqual(
      (await db.query("SELECT id FROM unsendable ORDER BY id")).map((row) => row.id),
      [1, 4],
    );
  });

  // A change LOAD DATA would warn about (a text with an offset into DATETIME, a text that is not JSON into JSON), and
  // one neither LOAD DATA nor the upsert would (JSON text into TEXT: the quotes of a JSON string would stay).
  for (const [name, definition, alter, existing] of [
    ["noisy", "(id int PRIMARY KEY, at varchar(40), doc text)", "MODIFY at datetime(6), MODIFY doc json", false],
    ["silent", "(id int PRIMARY KEY, at varchar(40), doc json)", "MODIFY doc text", false],
    // through INSERT only (load: false), its keys there already
    ["silent, upserted", "(id int PRIMARY KEY, at varchar(40), doc json)", "MODIFY doc text", true],
  ] as const) {
    it(`encodes the rows again for a table changed since it was described (${name})`, async () => {
      const table = name.replace(/\W+/g, "_");
      await db.query(`CREATE TABLE changing_${table} ${definition}`);
      await db.query(`CREATE TABLE changed_${table} ${definition}`);
      if (existing) {
        for (const prefix of ["changing", "changed"])
          await db.query(`INSERT INTO ${prefix}_${table} VALUES (1, NULL, '{"old": 1}'), (2, NULL, '[]')`);
      }
      const rows: Row[] = [
        { id: 1, at: "2024-06-30T23:59:59+05:30", doc: "plain" },
        { id: 2, at: "2024-01-01T00:00:00Z", doc: "more" },
      ];
      const { writer, counters } = counted();
      try {
        const options = existing ? { load: false } : {};
        const data = await prepare(writer, `changing_${table}`, ["id"], rows, options);
        await db.query(`ALTER TABLE changing_${table} ${alter}`);
        await db.query(`ALTER TABLE changed_${table} ${alter}`);
        const before = await counters();
        const written = await writePrepared(writer, `changing_${table}`, ["id"], rows, data, [0, 1], options);
        assert.deepEqual(written.results, allOk(2));
        assert.ok(written.read > 0, "the rows were encoded again");
        // Found changed before anything was loaded: one LOAD DATA, of the rows encoded anew (none: upserted).
        assert.equal(delta(before, await counters()).load, existing ? 0 : 1);
        // What a write of the rows themselves lands.
        assert.deepEqual((await write(writer, `changed_${table}`, ["id"], rows)).results, allOk(2));
        assert.deepEqual(await exactly(`changing_${table}`), await exactly(`changed_${table}`));
        // Unchanged since: the next prepared write sends its rows as they are.
        await db.query(`DELETE FROM changing_${table}`);
        const fresh = await prepare(writer, `changing_${table}`, ["id"], rows, options);
        assert.deepEqual(await writePrepared(writer, `changing_${table}`, ["id"], rows, fresh, [0, 1], options), {
          results: allOk(2),
          read: 0,
        });
        assert.deepEqual(await exactly(`changing_${table}`), await exactly(`changed_${table}`));
      } finally {
        await writer.close();
      }
      assert.deepEqual(
        await db.query(`SELECT id, at, doc FROM changing_${table} ORDER BY id`),
        name === "noisy"
          ? [
              { id: 1, at: "2024-06-30 18:29:59.000000", doc: "plain" },
              { id: 2, at: "2024-01-01 00:00:00.000000", doc: "more" },
            ]
          : [
              { id: 1, at: rows[0]?.at, doc: "plain" },
              { id: 2, at: rows[1]?.at, doc: "more" },
            ],
      );
    });
  }

  it("ignores prepared rows that do not fit the table, and reports the problem from the rows", async () => {
    await db.query("CREATE TABLE narrow (id int PRIMARY KEY, v int)");
    const rows: Row[] = [{ id: 1, v: 1, extra: "x" }];
    const data = await prepare(connection, "narrow", ["id"], rows);
    assert.match(String((data as EncodedRows).unusable), /no column 'extra'/);
    const error = await writePrepared(connection, "narrow", ["id"], rows, data).then(
      () => assert.fail("expected the write to fail"),
      (failure: Error) => failure,
    );
    assert.match(error.message, /table 'narrow' has no column 'extra'/);
    // Data from another driver, or none at all: the rows are written.
    const written = await writePrepared(connection, "narrow", ["id"], [{ id: 2, v: 2 }], { some: "thing" });
    assert.deepEqual(written.results, allOk(1));
    assert.equal(written.read, 1);
  });
});

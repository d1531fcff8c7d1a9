import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { describeRun } from "../../src/cli/summary.ts";
import { type MysqlClient, mysql, mysqlDriver } from "../../src/connectors/mysql/index.ts";
import { type PostgresClient, postgres, postgresDriver } from "../../src/connectors/postgres/index.ts";
import type { Connection, ReadBatch } from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { parseJsonExact } from "../../src/core/canonical-json.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import type { Hub } from "../../src/core/hub.ts";
import { bind, defineHub, Engine, entity, flow, Type } from "../../src/index.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { allOk, readAll, rejection, rowsOf, write } from "../support/connection-calls.ts";
import { readGrowing } from "../support/growing-read.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";
import { until } from "../support/poll.ts";

// JSON.rawJSON (Node 24), which the project's TypeScript lib does not declare
const rawJson = (text: string): unknown => (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(text);

const files = mysqlTestDatabase("franca_my");
const { database, url, suffix, open, clientOf, rawConnection } = files;
let connection: Connection;
let db: MysqlClient;
before(() => {
  connection = files.connection;
  db = files.db;
});
const pgUrl = "postgres://postgres@127.0.0.1:5432/test";
const pgSchema = `franca_mypg_${suffix}`;
// the round-trip hub is a module (transform threads import it); its settings travel in the environment
process.env.FRANCA_RT_PG_SCHEMA = pgSchema;
process.env.FRANCA_RT_MARIA_URL = url;
const roundTripModule = fileURLToPath(new URL("../support/roundtrip-hub.ts", import.meta.url));
const { default: hub } = (await import(roundTripModule)) as { default: Hub };
const env = { baseDir: tmpdir() };

describe("mysql connector: settings", () => {
  it("accepts a URL or discrete settings, not both, and refuses unknown settings", () => {
    assert.deepEqual(mysqlDriver.validateSystem({ url, poolSize: 4, ssl: false, connectTimeoutMs: 500 }), []);
    assert.deepEqual(mysqlDriver.validateSystem({ host: "db", port: 3306, user: "app", database: "shop" }), []);
    assert.deepEqual(
      mysqlDriver.validateSystem({ url, host: "db" }).map((issue) => issue.setting),
      ["host"],
    );
    assert.deepEqual(
      mysqlDriver.validateSystem({ url, poolsize: 3 }).map((issue) => issue.setting),
      ["poolsize"],
    );
    assert.deepEqual(
      mysqlDriver.validateSystem({}).map((issue) => issue.setting),
      ["url"],
    );
  });

  it("takes a table or a query (sources only), never both", () => {
    assert.deepEqual(mysqlDriver.validateBinding({ table: "shop.orders" }, "target"), []);
    assert.deepEqual(mysqlDriver.validateBinding({ query: "SELECT 1 AS id" }, "source"), []);
    assert.deepEqual(
      mysqlDriver.validateBinding({ query: "SELECT 1 AS id" }, "target").map((issue) => issue.setting),
      ["query"],
    );
    assert.deepEqual(
      mysqlDriver.validateBinding({ table: "t", query: "SELECT 1" }, "source").map((issue) => issue.setting),
      ["query"],
    );
    assert.deepEqual(
      mysqlDriver.validateBinding({ table: "t", schema: "x" }, "source").map((issue) => issue.setting),
      ["schema"],
    );
  });

  it("preflight checks the URL (or host and database) without the network", () => {
    const preflight = mysqlDriver.preflight as NonNullable<typeof mysqlDriver.preflight>;
    const issues = (settings: Parameters<typeof mysql>[1]) =>
      preflight(mysql("x", settings), env).map((issue) => issue.setting);
    assert.deepEqual(issues({ url }), []);
    assert.deepEqual(issues({ url: "mariadb://app:pw@db.internal/shop" }), []);
    assert.deepEqual(issues({ url: "not a url" }), ["url"]);
    assert.deepEqual(issues({ url: "postgres://127.0.0.1/test" }), ["url"]);
    assert.deepEqual(issues({ url: "mysql://127.0.0.1:3306" }), ["url"]);
    assert.deepEqual(issues({ url: `${url}?ssl=true` }), ["url"]);
    assert.deepEqual(issues({ host: "127.0.0.1" }), ["database"]);
  });

  it("refuses to connect with an unparseable URL rather than fall back to a default host", async () => {
    const bad = open({ url: "mysql://root@[not a host/test" }, "bad");
    try {
      const error = await rejection(clientOf(bad).query("SELECT 1"));
      assert.equal(error.errorClass, "permanent");
      assert.match(error.message, /url: is not a valid URL/);
      assert.equal((await bad.health(AbortSignal.timeout(10_000))).ok, false);
    } finally {
      await bad.close();
    }
  });

  it("runs every session in UTC and strict mode, whatever the server's defaults", async () => {
    const [server] = await db.query("SELECT @@GLOBAL.time_zone AS zone, @@GLOBAL.sql_mode AS mode");
    // This server's defaults differ from what the connector sets: the session values below are the connector's.
    assert.notEqual(server?.zone, "+00:00");
    assert.ok(!String(server?.mode).split(",").includes("STRICT_ALL_TABLES"), String(server?.mode));
    const [row] = await db.query(
      "SELECT @@SESSION.time_zone AS zone, @@SESSION.sql_mode AS mode, NOW(6) = UTC_TIMESTAMP(6) AS utc",
    );
    assert.equal(row?.zone, "+00:00");
    assert.equal(row?.utc, 1);
    assert.ok(String(row?.mode).split(",").includes("STRICT_ALL_TABLES"), String(row?.mode));
    assert.ok(!String(row?.mode).includes("NO_BACKSLASH_ESCAPES"));
  });
});

describe("mysql connector: read", () => {
  // 53 rows; the cursor ties in threes, consecutive cursor values differ by one microsecond, and the key order
  // within a tie differs from insertion order.
  const regions = ["us", "eu", "ap"];
  const source = Array.from({ length: 53 }, (_, i) => ({
    region: regions[i % 3] as string,
    seq: 100 - i,
    micro: Math.floor(i / 3) + 1,
  }));
  const expected = [...source]
    .sort((a, b) => a.micro - b.micro || a.region.localeCompare(b.region) || a.seq - b.seq)
    .map((row) => `${row.region}/${row.seq}`);
  const request = () => ({
    options: { table: `${database}.events` },
    key: ["region", "seq"],
    cursor: "happened_at",
    batchSize: 5,
  });

  before(async () => {
    await db.query(
      `CREATE TABLE events (region varchar(8), seq int, happened_at datetime(6) NOT NULL, note text,
        PRIMARY KEY (region, seq), KEY by_time (happened_at, region, seq))`,
    );
    for (const row of source) {
      await db.query("INSERT INTO events VALUES (?, ?, TIMESTAMP'2024-03-01 10:00:00' + INTERVAL ? MICROSECOND, ?)", [
        row.region,
        row.seq,
        row.micro,
        `note ${row.seq}`,
      ]);
    }
  });

  it("reads every row exactly once, in cursor then key order, in batches", async () => {
    const batches = await readAll(connection, request());
    assert.deepEqual(
      batches.map((batch) => batch.rows.length),
      [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 3],
    );
    const got = rowsOf(batches).map((row) => `${row.region}/${row.seq}`);
    assert.deepEqual(got, expected);
    assert.equal(new Set(got).size, source.length);
    // The cursor is the server's text with its microseconds, not a millisecond JS Date.
    assert.equal(batches[0]?.rows[0]?.happened_at, "2024-03-01 10:00:00.000001");
    assert.deepEqual(batches[0]?.position, ["2024-03-01 10:00:00.000002", "eu", 96]);
  });

  it("warns, once, when no index starts with the cursor: every batch would scan and sort the table", async () => {
    await db.query(
      `CREATE TABLE events_unindexed (region varchar(8), seq int, happened_at datetime(6) NOT NULL, note text,
        PRIMARY KEY (region, seq))`,
    );
    await db.query("INSERT INTO events_unindexed SELECT * FROM events");
    const warnings: string[] = [];
    const warn = (message: string) => warnings.push(message);
    const unindexed = await readAll(connection, { ...request(), options: { table: "events_unindexed" }, warn });
    assert.equal(rowsOf(unindexed).length, source.length, "the read goes on");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /'events_unindexed' is read by \(happened_at, region, seq\)/);
    assert.match(warnings[0] as string, /no index of the table starts with happened_at/);

    // an index led by the cursor (events: by_time), schema-qualified or not, a view (its table's indexes are not its
    // own) or a query as the source: nothing
    await db.query("CREATE VIEW events_view AS SELECT * FROM events_unindexed");
    await readAll(connection, { ...request(), options: { table: "events_view" }, warn });
    await readAll(connection, { ...request(), warn });
    await readAll(connection, { ...request(), options: { table: "events" }, warn });
    await readAll(connection, { ...request(), options: { query: "SELECT * FROM events_unindexed" }, warn });
    // a full read goes by the key (the primary key): nothing either
    const { cursor: _, ...full } = request();
    await readAll(connection, { ...full, options: { table: "events_unindexed" }, warn });
    assert.equal(warnings.length, 1);
  });

  it("reads every row when the batch size grows between batches, asking pages ahead once it stopped growing", async () => {
    // The engine's first chunks grow (slow start): a page is asked for at the size of the moment, once the last batch
    // was taken, and judged short against that size; pages are asked ahead only once the size stopped growing.
    const { sizes, rows } = await readGrowing(connection, request());
    assert.deepEqual(
      rows.map((row) => `${row.region}/${row.seq}`),
      expected,
    );
    assert.deepEqual(sizes, [2, 4, 8, 16, 16, 7]);
    const signal = new AbortController().signal;
    const read = connection.read as NonNullable<Connection["read"]>;

    // a size that does not grow: from the second batch on, the next page is already asked for when a batch is handed
    // on; a consumer that stops then leaves that page to settle, and its failure fails nothing
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      let calls = 0;
      const callsAtBatch: number[] = [];
      const failing = <T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> =>
        ++calls > 3 ? Promise.reject(new Error("the page asked ahead failed")) : fn(signal);
      for await (const batch of read({ ...request(), signal, call: failing })) {
        assert.equal(batch.rows.length, 5);
        callsAtBatch.push(calls);
        if (callsAtBatch.length === 3) break;
      }
      assert.deepEqual(callsAtBatch, [1, 3, 4]);
      await sleep(50);
      // a page asked ahead that gets its turn (the system's gate, say) only after the read ended is not run
      const parked: (() => Promise<unknown>)[] = [];
      let gateCalls = 0;
      const gated = <T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> => {
        if (++gateCalls <= 3) return fn(signal);
        return new Promise<T>((resolve, reject) =>
          parked.push(() => {
            const ran = fn(signal);
            ran.then(resolve, reject);
            return ran;
          }),
        );
      };
      for await (const _ of read({ ...request(), signal, call: gated })) if (gateCalls === 4) break;
      assert.equal(parked.length, 1);
      assert.deepEqual(
        await (parked[0] as () => Promise<unknown>)(),
        { rows: [], fields: [] },
        "the parked page ran no query",
      );
      const more = rowsOf(await readAll(connection, request()));
      assert.equal(more.length, source.length, "the connection is usable after the early stop");
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    assert.deepEqual(unhandled, []);
  });

  it("continues right after the position of any batch", async () => {
    const batches = await readAll(connection, request());
    for (let k = 0; k < batches.length; k++) {
      // The engine stores positions as JSON: resume from what it would read back.
      const from = JSON.parse(JSON.stringify(batches[k]?.position));
      const rest = rowsOf(await readAll(connection, { ...request(), from }));
      assert.deepEqual(
        rest.map((row) => `${row.region}/${row.seq}`),
        expected.slice((k + 1) * 5),
        `from the position of batch ${k}`,
      );
    }
  });

  it("compares BIGINT, DECIMAL and binary positions exactly, also when resuming", async () => {
    // Beyond 2^53, and decimals that differ in the 30th digit: compared as doubles, they would be equal.
    await db.query(
      "CREATE TABLE exact_keys (big bigint, amount decimal(40,20), tag varbinary(4), PRIMARY KEY (big, amount, tag))",
    );
    const rows = [
      ["9007199254740992", "1.00000000000000000001", "00"],
      ["9007199254740992", "1.00000000000000000002", "00"],
      ["9007199254740992", "1.00000000000000000002", "ff00"],
      ["9007199254740993", "0.00000000000000000000", "00"],
      ["9007199254740994", "-5.00000000000000000000", "01"],
      ["18446744073709551", "0.00000000000000000000", "00"],
    ];
    for (const [big, amount, tag] of rows)
      await db.query(`INSERT INTO exact_keys VALUES (${big}, ${amount}, X'${tag}')`);
    const request = { options: { table: "exact_keys" }, key: ["big", "amount", "tag"], batchSize: 1 };
    const batches = await readAll(connection, request);
    const seen = (list: readonly ReadBatch[]) =>
      rowsOf(list).map((row) => [row.big, row.amount, (row.tag as Buffer).toString("hex")]);
    assert.deepEqual(seen(batches), rows);
    assert.deepEqual(batches[2]?.position, ["9007199254740992", "1.00000000000000000002", "/wA="]);
    for (let k = 0; k < batches.length; k++) {
      const from = JSON.parse(JSON.stringify(batches[k]?.position));
      assert.deepEqual(seen(await readAll(connection, { ...request, from })), rows.slice(k + 1), `after batch ${k}`);
    }
  });

  it("reads a user query with a join as the source", async () => {
    await db.query("CREATE TABLE customers (id int PRIMARY KEY, name varchar(40) NOT NULL)");
    await db.query(
      "CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id), total decimal(12,2))",
    );
    await db.query("INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace')");
    await db.query(
      "INSERT INTO orders VALUES (10, 2, 10.50), (11, 1, 99999999.99), (12, 2, 0.10), (13, 1, 7), (14, 2, NULL)",
    );
    const batches = await readAll(connection, {
      options: {
        query: "SELECT o.id, o.total, c.name AS customer FROM orders o JOIN customers c ON c.id = o.customer_id",
      },
      key: ["id"],
      batchSize: 2,
    });
    assert.deepEqual(
      batches.map((batch) => batch.position),
      [[11], [13], [14]],
    );
    assert.deepEqual(rowsOf(batches), [
      { id: 10, total: "10.50", customer: "Grace" },
      { id: 11, total: "99999999.99", customer: "Ada" },
      { id: 12, total: "0.10", customer: "Grace" },
      { id: 13, total: "7.00", customer: "Ada" },
      { id: 14, total: null, customer: "Grace" },
    ]);
  });

  it("reads every type exactly: strings for BIGINT, DECIMAL and dates, parsed JSON, Buffers for bytes", async () => {
    await db.query(
      `CREATE TABLE typed (id int PRIMARY KEY, flag tinyint(1), n bigint, u bigint unsigned, d decimal(30,10),
        f double, at datetime(6), ts timestamp(6) NULL, day date, t time(6), y year, doc json, bits bit(4),
        bin varbinary(8), label varchar(40))`,
    );
    await db.query(
      `INSERT INTO typed VALUES (1, 1, 7, 18446744073709551615, -0.0000000001, 0.1, '2024-02-29 23:59:59.999999',
        '2024-02-29 23:59:59.5', '2024-02-29', '-838:59:59.000001', 2024,
        '{"a": [1, "two", null, {"c": true}], "big": 12345678901234567890, "s": "ü🎉"}', b'1010', X'00FF', 'x')`,
    );
    await db.query("INSERT INTO typed (id) VALUES (2)");
    const [first, second] = rowsOf(await readAll(connection, { options: { table: "typed" }, key: ["id"] }));
    assert.deepEqual(first, {
      id: 1,
      flag: 1,
      n: "7",
      u: "18446744073709551615",
      d: "-0.0000000001",
      f: 0.1,
      at: "2024-02-29 23:59:59.999999",
      // The session is in UTC: a TIMESTAMP reads as the UTC text it was written as.
      ts: "2024-02-29 23:59:59.500000",
      day: "2024-02-29",
      t: "-838:59:59.000001",
      y: 2024,
      // 12345678901234567890, which no double holds, as its text (a raw JSON value, as PostgreSQL's jsonb reads it),
      // not mysql2's string nor JSON.parse's other number.
      doc: { a: [1, "two", null, { c: true }], big: rawJson("12345678901234567890"), s: "ü🎉" },
      bits: Buffer.from([0b1010]),
      bin: Buffer.from([0, 255]),
      label: "x",
    });
    assert.deepEqual(
      Object.values(second as Row).filter((value) => value !== null),
      [2],
    );
  });

  it("kills the statement on the server when the call's signal aborts", async () => {
    const reader = open({ url, poolSize: 1 }, "cancel");
    const marker = `slept_${suffix}`;
    try {
      const controller = new AbortController();
      const read = (reader.read as NonNullable<Connection["read"]>)({
        options: { query: `SELECT 1 AS id, SLEEP(30) AS ${marker}` },
        key: ["id"],
        batchSize: 10,
        signal: new AbortController().signal,
        call: (fn) => fn(controller.signal),
      });
      const first = read[Symbol.asyncIterator]().next();
      let settled = false;
      first.then(
        () => {
          settled = true;
        },
        () => {
          settled = true;
        },
      );
      const running = async () =>
        (
          await db.query(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
            [`%${marker}%`],
          )
        )[0]?.n;
      // Wait until the server runs the statement, then abort.
      while (!settled && (await running()) !== "1") await new Promise((resolve) => setTimeout(resolve, 20));
      controller.abort(new Error("stop"));
      // Only a KILL QUERY on the server ends SLEEP(30) early with "query execution was interrupted".
      await assert.rejects(first, (error: unknown) => (error as { errno?: number }).errno === 1317);
      // The processlist may show the killed statement a moment longer; it is gone well before SLEEP(30) would end.
      await until(async () => (await running()) === "0", "the killed statement left the processlist", 10_000);
      assert.equal(await running(), "0");
    } finally {
      await reader.close();
    }
  });
});

/**
 * The statements this process's mysql2 connections send while `work` runs, each as its text went to the server:
 * mysql2 publishes every statement on its `mysql2:query` tracing channel as it sends it.
 */
async function statementsSent<T>(work: () => Promise<T>): Promise<{ result: T; sent: string[] }> {
  const sent: string[] = [];
  const onStart = (message: unknown) => {
    const sql = (message as { query?: unknown }).query;
    if (typeof sql === "string") sent.push(sql);
  };
  subscribe("tracing:mysql2:query:start", onStart);
  try {
    return { result: await work(), sent };
  } finally {
    unsubscribe("tracing:mysql2:query:start", onStart);
  }
}

const insertsInto = (table: string, sent: readonly string[]): string[] =>
  sent.filter((sql) => sql.startsWith(`INSERT INTO \`${table}\` `));

/**
 * Statements of at most `max` bytes of UTF-8 each, and filled: no more of them than their bytes need, plus one (a
 * statement ends when the next row does not fit). One row a statement, or a statement sized in characters, fails.
 */
function assertFilled(statements: readonly string[], max: number): void {
  const sizes = statements.map((sql) => Buffer.byteLength(sql));
  const total = sizes.reduce((sum, size) => sum + size, 0);
  assert.ok(
    sizes.every((size) => size <= max),
    `statements of ${sizes.join(", ")} bytes: at most ${max} each`,
  );
  assert.ok(
    statements.length <= Math.ceil(total / max) + 1,
    `${statements.length} statements for ${total} bytes: at most ${Math.ceil(total / max) + 1}`,
  );
}

describe("mysql connector: write", () => {
  before(async () => {
    await db.query("CREATE TABLE clients (code varchar(20) PRIMARY KEY, name varchar(100), balance decimal(12,2))");
  });

  const snapshot = () => db.query("SELECT * FROM clients ORDER BY code");
  const clients = Array.from({ length: 6 }, (_, i) => ({
    code: `c${i}`,
    name: `Client ${i}`,
    balance: `${i}00.5${i}`,
  }));

  it("upserts: the same items twice leave the table identical; an update changes only its row", async () => {
    assert.deepEqual(await write(connection, "clients", ["code"], clients), allOk(6));
    const once = await snapshot();
    assert.equal(once.length, 6);
    assert.deepEqual(once[2], { code: "c2", name: "Client 2", balance: "200.52" });

    assert.deepEqual(await write(connection, "clients", ["code"], clients), allOk(6));
    assert.deepEqual(await snapshot(), once);

    assert.deepEqual(
      await write(connection, "clients", ["code"], [{ code: "c3", name: "Renamed", balance: "1.00" }]),
      allOk(1),
    );
    assert.deepEqual(await snapshot(), [
      ...once.slice(0, 3),
      { code: "c3", name: "Renamed", balance: "1.00" },
      ...once.slice(4),
    ]);
  });

  it("lets the later row win when a batch holds the same key twice", async () => {
    const results = await write(
      connection,
      "clients",
      ["code"],
      [
        { code: "dup", name: "first", balance: "1.00" },
        { code: "dup", name: "second", balance: "2.00" },
      ],
    );
    assert.deepEqual(results, allOk(2));
    assert.deepEqual(await db.query("SELECT name FROM clients WHERE code = 'dup'"), [{ name: "second" }]);
  });

  it("upserts a table whose every column is a key column", async () => {
    await db.query("CREATE TABLE tags (a varchar(10), b varchar(10), PRIMARY KEY (a, b))");
    const tags = [
      { a: "x", b: "1" },
      { a: "x", b: "2" },
    ];
    assert.deepEqual(await write(connection, "tags", ["a", "b"], tags), allOk(2));
    assert.deepEqual(await write(connection, "tags", ["a", "b"], tags), allOk(2));
    assert.deepEqual(await db.query("SELECT * FROM tags ORDER BY a, b"), tags);
  });

  it("refuses a key without a PRIMARY or UNIQUE index on exactly its columns, naming what the table has", async () => {
    await db.query(
      "CREATE TABLE keyless (id int AUTO_INCREMENT PRIMARY KEY, email varchar(50), name varchar(50), KEY (email))",
    );
    const error = await rejection(write(connection, "keyless", ["email"], [{ email: "a@example.org", name: "A" }]));
    assert.equal(error.errorClass, "permanent");
    assert.equal(error.code, ErrorCode.SystemError);
    assert.match(error.message, /ON DUPLICATE KEY UPDATE needs a PRIMARY KEY or UNIQUE index/);
    assert.match(error.message, /\(email\)/);
    assert.match(error.message, /PRIMARY \(id\)/);
    assert.deepEqual(await db.query("SELECT * FROM keyless"), []);
    // Once the index exists, the same write goes through (the table is described again).
    await db.query("CREATE UNIQUE INDEX keyless_email ON keyless (email)");
    await db.query("INSERT INTO keyless VALUES (1, 'a@example.org', 'old')");
    assert.deepEqual(await write(connection, "keyless", ["EMAIL"], [{ Email: "a@example.org", name: "A" }]), allOk(1));
    assert.deepEqual(await db.query("SELECT * FROM keyless"), [{ id: 1, email: "a@example.org", name: "A" }]);
  });

  // The INSERT path (batches with existing keys take it; load: false makes every batch take it).
  it("splits a large batch into statements by bytes, all in one transaction", async () => {
    await db.query("CREATE TABLE sized (id int PRIMARY KEY, body text NOT NULL, note varchar(10))");
    const writer = open({ url, poolSize: 1 }, "sized");
    const session = clientOf(writer);
    // poolSize 1: the connector's statements and these counters share one session.
    const counters = async () => {
      const rows = await session.query("SHOW SESSION STATUS WHERE Variable_name IN ('Com_insert', 'Com_commit')");
      return Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)]));
    };
    const rows: Row[] = Array.from({ length: 2000 }, (_, id) => ({ id, body: `${id}:`.padEnd(2000, "é"), note: "ok" }));
    const bodyBytes = rows.reduce((sum, row) => sum + Buffer.byteLength(String(row.body)), 0);
    try {
      const before = await counters();
      const { result, sent } = await statementsSent(() => write(writer, "sized", ["id"], rows, { load: false }));
      const inserts = insertsInto("sized", sent);
      assert.deepEqual(result, allOk(2000));
      const done = await counters();
      // ~8 MB of SQL (bodies of 2,000 characters, ~4,000 bytes): INSERT statements of at most 1 MiB, as few as that
      // allows, each of them run by the server, and a single COMMIT.
      assert.equal(done.Com_insert - before.Com_insert, inserts.length, "the server ran the statements seen");
      assert.ok(inserts.length >= Math.ceil(bodyBytes / (1024 * 1024)), String(inserts.length));
      assertFilled(inserts, 1024 * 1024);
      assert.equal(done.Com_commit - before.Com_commit, 1);
      assert.deepEqual(await db.query("SELECT COUNT(*) AS n, SUM(LENGTH(body)) AS bytes FROM sized"), [
        { n: "2000", bytes: String(bodyBytes) },
      ]);

      // A failure in the last statement undoes the first ones: they were one transaction. The trigger's error is not
      // about the row's data, so the whole batch fails and nothing of it lands.
      await db.query("DELETE FROM sized");
      await db.query(
        "CREATE TRIGGER sized_refuse BEFORE INSERT ON sized FOR EACH ROW " +
          "IF NEW.id = 1999 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by trigger'; END IF",
      );
      const error = await rejection(write(writer, "sized", ["id"], rows, { load: false }));
      assert.equal(error.errorClass, "permanent");
      assert.match(error.message, /refused by trigger/);
      assert.deepEqual(await db.query("SELECT COUNT(*) AS n FROM sized"), [{ n: "0" }]);
      await db.query("DROP TRIGGER sized_refuse");

      // A row with bad data in the last statement: the others land, that one is refused.
      const bad = rows.map((row) => (row.id === 1999 ? { ...row, note: "far too long" } : row));
      const results = await write(writer, "sized", ["id"], bad, { load: false });
      assert.deepEqual(results.slice(0, 1999), allOk(1999));
      assert.equal(results[1999]?.ok, false);
      assert.deepEqual(await db.query("SELECT COUNT(*) AS n, MAX(id) AS top FROM sized"), [{ n: "1999", top: 1998 }]);
    } finally {
      await writer.close();
    }
  });

  it("keeps statements within maxStatementBytes", async () => {
    await db.query("CREATE TABLE small_statements (id int PRIMARY KEY, body varchar(100))");
    const writer = open({ url, poolSize: 1, maxStatementBytes: 4096 }, "small");
    try {
      const session = clientOf(writer);
      const inserts = async () =>
        Number((await session.query("SHOW SESSION STATUS LIKE 'Com_insert'"))[0]?.Value ?? Number.NaN);
      // 45 characters, 110 bytes of UTF-8 a body
      const rows: Row[] = Array.from({ length: 400 }, (_, id) => ({ id, body: `${"é".repeat(35)}${"🎉".repeat(10)}` }));
      const before = await inserts();
      const { result, sent } = await statementsSent(() =>
        write(writer, "small_statements", ["id"], rows, { load: false }),
      );
      assert.deepEqual(result, allOk(400));
      const statements = insertsInto("small_statements", sent);
      assert.equal((await inserts()) - before, statements.length, "the server ran the statements seen");
      // ~120 bytes a row, at most 4 kB a statement: 400 rows take at least 12 statements, filled.
      assert.ok(statements.length >= 12, String(statements.length));
      assertFilled(statements, 4096);
      assert.deepEqual(await db.query("SELECT COUNT(*) AS n FROM small_statements"), [{ n: "400" }]);
    } finally {
      await writer.close();
    }
  });

  it("isolates a row with bad data: the 9 others land, that one is TARGET_REJECTED naming its column", async () => {
    await db.query(
      `CREATE TABLE checked (id int PRIMARY KEY, name varchar(20) NOT NULL, qty int, code varchar(3),
        price decimal(4,2), doc json, at datetime(6), CONSTRAINT checked_qty_not_negative CHECK (qty >= 0))`,
    );
    const cases = [
      { bad: { name: null }, names: ["name", "cannot be null"], path: "/name" },
      { bad: { qty: -5 }, names: ["checked_qty_not_negative"], path: undefined },
      { bad: { qty: "many" }, names: ["many", "qty"], path: "/qty" },
      { bad: { code: "too long" }, names: ["too long", "code"], path: "/code" },
      { bad: { price: "12345.5" }, names: ["Out of range", "price"], path: "/price" },
      { bad: { at: "not a date" }, names: ["datetime", "at"], path: "/at" },
      { bad: { qty: Number.NaN }, names: ["NaN"], path: undefined },
    ];
    for (const [round, { bad, names, path }] of cases.entries()) {
      const base = round * 100;
      const rows: Row[] = Array.from({ length: 10 }, (_, i) => ({ id: base + i, name: `row ${i}`, qty: i }));
      rows[4] = { ...rows[4], ...bad };
      const results = await write(connection, "checked", ["id"], rows);
      assert.equal(results.length, 10);
      for (const [i, result] of results.entries()) {
        if (i !== 4) {
          assert.deepEqual(result, { ok: true });
          continue;
        }
        assert.equal(result.ok, false);
        if (result.ok) continue;
        assert.equal(result.error.code, ErrorCode.TargetRejected);
        assert.equal(result.error.errorClass, "permanent");
        for (const name of names) assert.ok(result.error.message.includes(name), result.error.message);
        assert.equal(result.error.path, path, result.error.message);
      }
      const landed = await db.query("SELECT id FROM checked WHERE id >= ? AND id < ? ORDER BY id", [base, base + 100]);
      assert.deepEqual(
        landed.map((row) => row.id),
        [0, 1, 2, 3, 5, 6, 7, 8, 9].map((i) => base + i),
      );
    }
  });

  it("round-trips tricky values exactly through write then read", async () => {
    await db.query(
      `CREATE TABLE tricky (id int PRIMARY KEY, label varchar(100), big longtext, amount decimal(30,10),
        at datetime(6), day date, doc json, n bigint, bin varbinary(16)) CHARACTER SET utf8mb4`,
    );
    const big = `${"é🎉x\\'\"".repeat(25_000)}end`;
    const rows: Row[] = [
      { id: 1, label: null, big: "", amount: "12345678901234567890.0123456789", n: "9223372036854775807" },
      { id: 2, label: "", big, amount: "-0.0000000001", n: "-9007199254740993" },
      { id: 3, label: "ünïcødé 日本語 👩‍👩‍👧 🎉 \\ ' \" \n\t\0", at: "2024-06-30 23:59:59.999999+05:30", n: 42 },
      { id: 4, at: "1999-12-31T18:00:00.000001-08:00", doc: { a: { b: [1, "two", null, { c: true }] }, e: [] } },
      { id: 5, at: new Date("2024-01-01T00:00:00.123Z"), day: new Date("2024-02-29T00:00:00Z"), doc: "a JSON string" },
      { id: 6, at: "2024-03-01 10:00:00.5", day: "2024-03-01", doc: [1, [2, [3]], { "key with space": "ü" }] },
      { id: 7, at: "2024-03-01T10:00:00Z", doc: { n: 1.5, s: "text", t: false }, bin: Buffer.from([0, 1, 254, 255]) },
    ];
    assert.deepEqual(await write(connection, "tricky", ["id"], rows), allOk(rows.length));
    const read = async () => rowsOf(await readAll(connection, { options: { table: "tricky" }, key: ["id"] }));
    const back = await read();
    const blank = { label: null, big: null, amount: null, at: null, day: null, doc: null, n: null, bin: null };
    assert.deepEqual(back, [
      { ...blank, id: 1, big: "", amount: "12345678901234567890.0123456789", n: "9223372036854775807" },
      { ...blank, id: 2, label: "", big, amount: "-0.0000000001", n: "-9007199254740993" },
      // Instants with an offset are stored as UTC wall time, microseconds kept.
      { ...blank, id: 3, label: "ünïcødé 日本語 👩‍👩‍👧 🎉 \\ ' \" \n\t\0", at: "2024-06-30 18:29:59.999999", n: "42" },
      { ...blank, id: 4, at: "2000-01-01 02:00:00.000001", doc: { a: { b: [1, "two", null, { c: true }] }, e: [] } },
      { ...blank, id: 5, at: "2024-01-01 00:00:00.123000", day: "2024-02-29", doc: "a JSON string" },
      {
        ...blank,
        id: 6,
        at: "2024-03-01 10:00:00.500000",
        day: "2024-03-01",
        doc: [1, [2, [3]], { "key with space": "ü" }],
      },
      {
        ...blank,
        id: 7,
        at: "2024-03-01 10:00:00.000000",
        doc: { n: 1.5, s: "text", t: false },
        bin: Buffer.from([0, 1, 254, 255]),
      },
    ]);
    // What was read writes back unchanged: the read shapes are the write shapes.
    assert.deepEqual(await write(connection, "tricky", ["id"], back), allOk(rows.length));
    assert.deepEqual(await read(), back);
  });

  it("refuses a column the table does not have, naming column and table", async () => {
    const error = await rejection(write(connection, "clients", ["code"], [{ code: "z", name: "Z", nickname: "zed" }]));
    assert.equal(error.errorClass, "permanent");
    assert.equal(error.code, ErrorCode.SystemError);
    assert.match(error.message, /nickname/);
    assert.match(error.message, /clients/);
    assert.deepEqual(await db.query("SELECT * FROM clients WHERE code = 'z'"), []);
  });
});

describe("mysql connector: errors", () => {
  it("a closed port is transient, for reads, writes and health, and the password never shows", async () => {
    const down = open({ url: "mysql://root:hunter2-secret@127.0.0.1:1/test", connectTimeoutMs: 5000 }, "down");
    try {
      const readError = await rejection(readAll(down, { options: { table: "clients" }, key: ["code"] }));
      assert.equal(readError.errorClass, "transient");
      assert.equal(readError.code, ErrorCode.SystemUnavailable);
      const writeError = await rejection(write(down, "clients", ["code"], [{ code: "x" }]));
      assert.equal(writeError.errorClass, "transient");
      const health = await down.health(AbortSignal.timeout(10_000));
      assert.equal(health.ok, false);
      for (const text of [readError.message, writeError.message, String(health.message)])
        assert.ok(!text.includes("hunter2"), text);
    } finally {
      await down.close();
    }
  });

  it("a wrong password is permanent, and not in the message", async () => {
    const denied = open({ host: "127.0.0.1", user: "root", password: "hunter2-secret", database }, "denied");
    try {
      const error = await rejection(clientOf(denied).query("SELECT 1"));
      assert.equal(error.errorClass, "permanent");
      assert.match(error.message, /Access denied/);
      assert.ok(!error.message.includes("hunter2"), error.message);
    } finally {
      await denied.close();
    }
  });

  it("a missing table is permanent and named", async () => {
    const readError = await rejection(readAll(connection, { options: { table: "missing_table" }, key: ["id"] }));
    assert.equal(readError.errorClass, "permanent");
    assert.equal(readError.code, ErrorCode.SystemError);
    assert.match(readError.message, /missing_table/);
    const writeError = await rejection(write(connection, "missing_table", ["id"], [{ id: 1 }]));
    assert.equal(writeError.errorClass, "permanent");
    assert.equal(writeError.code, ErrorCode.SystemError);
    assert.match(writeError.message, /missing_table/);
  });

  it("a lock wait timeout fails the whole write, transient, and nothing of it lands", async () => {
    await db.query("CREATE TABLE locked (id int PRIMARY KEY, v int)");
    await db.query("INSERT INTO locked VALUES (1, 0)");
    const holder = await rawConnection();
    const writer = open({ url, poolSize: 1 }, "waiting");
    try {
      await clientOf(writer).query("SET SESSION innodb_lock_wait_timeout = 1");
      await holder.query("START TRANSACTION");
      await holder.query("SELECT * FROM locked WHERE id = 1 FOR UPDATE");
      const error = await rejection(
        write(
          writer,
          "locked",
          ["id"],
          [
            { id: 2, v: 2 },
            { id: 1, v: 1 },
          ],
        ),
      );
      assert.equal(error.status, 1205);
      assert.equal(error.errorClass, "transient");
      assert.equal(error.code, ErrorCode.SystemUnavailable);
      await holder.query("ROLLBACK");
      assert.deepEqual(await db.query("SELECT * FROM locked ORDER BY id"), [{ id: 1, v: 0 }]);
    } finally {
      await holder.end();
      await writer.close();
    }
  });

  it("a deadlock is transient", async () => {
    await db.query("CREATE TABLE deadlocked (id int PRIMARY KEY, v int)");
    await db.query("INSERT INTO deadlocked VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)");
    const other = await rawConnection();
    const victim = open({ url, poolSize: 1 }, "victim");
    const session = clientOf(victim);
    try {
      // The other transaction changed more rows, so InnoDB picks the connector's as the victim.
      await other.query("START TRANSACTION");
      await other.query("UPDATE deadlocked SET v = 1 WHERE id >= 2");
      await session.query("START TRANSACTION");
      await session.query("SELECT * FROM deadlocked WHERE id = 1 FOR UPDATE");
      const waiting = rejection(session.query("SELECT * FROM deadlocked WHERE id = 2 FOR UPDATE"));
      const otherWaits = other.query("SELECT * FROM deadlocked WHERE id = 1 FOR UPDATE");
      const error = await waiting;
      assert.equal(error.status, 1213);
      assert.equal(error.errorClass, "transient");
      assert.equal(error.code, ErrorCode.SystemUnavailable);
      await otherWaits;
      await other.query("ROLLBACK");
      await session.query("ROLLBACK");
    } finally {
      await other.end();
      await victim.close();
    }
  });
});

describe("mysql connector: through the engine", () => {
  let pg: Connection;
  let pgDb: PostgresClient;

  before(async () => {
    pg = postgresDriver.open(postgres("pg-admin", { url: pgUrl }), env);
    pgDb = (pg.client as NonNullable<Connection["client"]>)() as PostgresClient;
    await pgDb.query(`CREATE SCHEMA ${pgSchema}`);
  });

  after(async () => {
    await pgDb.query(`DROP SCHEMA IF EXISTS ${pgSchema} CASCADE`);
    await pg.close();
  });

  /**
   * The round-trip hub's tables, new and empty: PostgreSQL's items and items_back, MariaDB's items (its `remark` a
   * column no flow writes, which an upsert must leave alone; `seen_at` the cursor of the way back).
   */
  async function roundTripTables(): Promise<void> {
    await pgDb.query(`DROP TABLE IF EXISTS ${pgSchema}.items, ${pgSchema}.items_back`);
    await db.query("DROP TABLE IF EXISTS items");
    await pgDb.query(
      `CREATE TABLE ${pgSchema}.items (id int PRIMARY KEY, label text, big text, amount numeric(30,10),
        at timestamptz, doc jsonb, f float8, n int8, raw bytea, flag boolean, day date)`,
    );
    await pgDb.query(`CREATE TABLE ${pgSchema}.items_back (LIKE ${pgSchema}.items INCLUDING ALL)`);
    await db.query(
      `CREATE TABLE items (id int PRIMARY KEY, label text, big longtext, amount decimal(30,10), at datetime(6),
        doc json, f double, n bigint, raw blob, flag boolean, day date, remark varchar(40) NOT NULL DEFAULT 'none',
        seen_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) CHARACTER SET utf8mb4`,
    );
  }

  /**
   * Runs `work` with an engine of the round-trip hub on a store of its own (a fresh store knows no earlier run, so
   * every record is new), with `threads` transform threads (waited for) or none.
   */
  async function withRoundTripEngine<T>(threads: number, work: (engine: Engine) => Promise<T>): Promise<T> {
    const dir = mkdtempSync(join(tmpdir(), "franca-mysql-"));
    const store = new SqliteStore(join(dir, "franca.db"));
    await store.migrate();
    const engine = await Engine.open({
      hub,
      baseDir: dir,
      store,
      ...(threads === 0 ? {} : { threads: { module: roundTripModule, count: threads } }),
    });
    try {
      if (threads > 0) assert.equal(await engine.threadsReady(), true);
      return await work(engine);
    } finally {
      await engine.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * PostgreSQL → MariaDB → PostgreSQL of tricky values through the engine, on the engine's own thread (threads 0)
   * or on transform threads, where the rows are decoded, mapped and encoded for their targets (COPY, LOAD DATA).
   * Then both legs again through a fresh store, which re-upserts every record (ON DUPLICATE KEY UPDATE, ON CONFLICT),
   * and the MariaDB leg incrementally after two rows changed there.
   */
  async function roundTrip(threads: number): Promise<void> {
    await roundTripTables();
    const columns = ["label", "big", "amount", "at", "doc", "f", "n", "raw", "flag", "day"];
    const big = `${"é🎉x".repeat(150_000)}end`; // 1 MB of UTF-8
    // doc and f as the text PostgreSQL parses (JSON text, float8 text: a JSON null, a number beyond 2^53, -0), a
    // column left out is NULL. Rows 6 to 10 hold what COPY's and LOAD DATA's text formats escape or mark (\N, \., \r,
    // a trailing backslash, control characters), what JSON and floats lose, bytes, BIGINT's ends and booleans.
    const source: Row[] = [
      {
        id: 1,
        big: "",
        amount: "12345678901234567890.0123456789",
        at: "2024-06-30 23:59:59.999999+05:30",
        doc: JSON.stringify({ a: { b: [1, "two", null, { c: true }] }, e: [] }),
      },
      {
        id: 2,
        label: "",
        big,
        amount: "-0.0000000001",
        at: "1999-12-31T18:00:00.000001-08:00",
        doc: JSON.stringify([1, [2, [3]], { "key with space": "ü" }]),
      },
      {
        id: 3,
        label: "ünïcødé 日本語 👩‍👩‍👧 🎉 \\ ' \"",
        big: "a\nb\tc",
        amount: "-99999999999999999999.9999999999",
        at: "2024-03-31 01:30:00+01",
        doc: JSON.stringify({ emoji: "🎉", n: 1.5, t: false, nested: { 日本: ["語", { deep: [] }] } }),
      },
      { id: 4, amount: "7" },
      {
        id: 5,
        label: "x",
        big: "y",
        amount: "0",
        at: "2024-01-01 00:00:00+00",
        doc: JSON.stringify({ s: 'quote " and backslash \\', list: [true, false, null, 0, -1.25e-7] }),
      },
      {
        id: 6,
        label: "\r",
        big: "\\N",
        amount: "1.5",
        at: "1969-12-31 23:59:59.999999+14:00",
        doc: JSON.stringify({ s: "tab\there\nnew line\r back\\slash \\N \\.", ctl: "\u0001\b\f\v" }),
        f: "0.1",
        n: "9223372036854775807",
        flag: true,
        day: "2024-02-29",
      },
      {
        id: 7,
        label: "\\.",
        big: "NULL",
        doc: '"a JSON string"',
        f: "-0",
        n: "-9223372036854775808",
        flag: false,
        day: "1970-01-01",
      },
      { id: 8, label: "NULL", big: "ends\\", doc: "null", n: "0" },
      // bytes and numbers in exponent notation: these rows go the INSERT way only (see write.ts)
      {
        id: 9,
        label: "ends\\",
        big: "\u0001\b\f\v",
        doc: '{"big": 9007199254740993, "n": 12345678901234567890}',
        f: "1e-300",
        raw: Buffer.from([0, 92, 9, 10, 13, 255]),
      },
      { id: 10, label: "\u0001\b\f\v", big: "\r\n\\.\n\\", f: "-1.5e300", raw: Buffer.alloc(0) },
    ];
    const params = columns.map((_, i) => `$${i + 2}`).join(", ");
    for (const row of source) {
      await pgDb.query(`INSERT INTO ${pgSchema}.items (id, ${columns.join(", ")}) VALUES ($1, ${params})`, [
        row.id,
        ...columns.map((column) => row[column] ?? null),
      ]);
    }
    const count = source.length;

    const withEngine = (work: (engine: Engine) => Promise<void>): Promise<void> => withRoundTripEngine(threads, work);
    /** items_back as PostgreSQL's text: the label, and every other column. */
    const pgBack = () =>
      pgDb.query(`SELECT id, label, (to_jsonb(b) - 'label')::text AS rest FROM ${pgSchema}.items_back b ORDER BY id`);

    await withEngine(async (engine) => {
      const { result: there, sent } = await statementsSent(() => engine.run("to-maria", { trigger: "test" }));
      assert.equal(there.run.status, "succeeded");
      // Chunks of 2 records: LOAD DATA takes the first four (new keys, values it stores as the INSERT would), so the
      // strings its text format escapes meet it; the last, with bytes and exponents, goes the INSERT way.
      assert.deepEqual(
        sent
          .map((sql) => /^(LOAD DATA|INSERT INTO)/.exec(sql)?.[0])
          .filter((kind) => kind !== undefined)
          .sort(),
        ["INSERT INTO", "LOAD DATA", "LOAD DATA", "LOAD DATA", "LOAD DATA"],
      );
      assert.equal(
        there.run.stats.threaded,
        threads === 0 ? undefined : count,
        "the records were mapped on the threads",
      );
      assert.equal(there.counts.targets["maria.items"]?.loaded, count);

      // In MariaDB: the same instants as UTC wall time, exact decimals, BIGINTs and bytes, JSON structures, NULL
      // apart from "" and "NULL", DOUBLEs as they were but -0 (a MariaDB DOUBLE column stores it as 0).
      const maria = await db.query(`SELECT id, ${columns.join(", ")} FROM items ORDER BY id`);
      const none = { label: null, amount: null, at: null, f: null, n: null, raw: null, flag: null, day: null };
      assert.deepEqual(
        maria.map(({ big: _, doc: __, ...row }) => row),
        [
          { ...none, id: 1, amount: "12345678901234567890.0123456789", at: "2024-06-30 18:29:59.999999" },
          { ...none, id: 2, label: "", amount: "-0.0000000001", at: "2000-01-01 02:00:00.000001" },
          {
            ...none,
            id: 3,
            label: "ünïcødé 日本語 👩‍👩‍👧 🎉 \\ ' \"",
            amount: "-99999999999999999999.9999999999",
            at: "2024-03-31 00:30:00.000000",
          },
          { ...none, id: 4, amount: "7.0000000000" },
          { ...none, id: 5, label: "x", amount: "0.0000000000", at: "2024-01-01 00:00:00.000000" },
          {
            ...none,
            id: 6,
            label: "\r",
            amount: "1.5000000000",
            at: "1969-12-31 09:59:59.999999",
            f: 0.1,
            n: "9223372036854775807",
            flag: 1,
            day: "2024-02-29",
          },
          { ...none, id: 7, label: "\\.", f: 0, n: "-9223372036854775808", flag: 0, day: "1970-01-01" },
          { ...none, id: 8, label: "NULL", n: "0" },
          { ...none, id: 9, label: "ends\\", f: 1e-300, raw: Buffer.from([0, 92, 9, 10, 13, 255]) },
          { ...none, id: 10, label: "\u0001\b\f\v", f: -1.5e300, raw: Buffer.alloc(0) },
        ],
      );
      assert.deepEqual(
        maria.map((row) => row.big),
        source.map((row) => row.big ?? null),
      );
      assert.deepEqual(
        maria.map((row) => row.doc),
        source.map((row) => (row.doc === undefined ? null : parseJsonExact(row.doc as string))),
      );
      // As text: a JSON string stays one; numbers no double holds keep their text; a JSON null is SQL NULL: the
      // PostgreSQL read parses jsonb, and its null is a row's null, SQL NULL to every writer (by design, it does not
      // round-trip).
      assert.deepEqual(
        await db.query("SELECT id, CONCAT(doc) AS text, doc IS NULL AS sql_null FROM items WHERE id IN (7, 8, 9)"),
        [
          { id: 7, text: '"a JSON string"', sql_null: 0 },
          { id: 8, text: null, sql_null: 1 },
          { id: 9, text: '{"n":12345678901234567890,"big":9007199254740993}', sql_null: 0 },
        ],
      );

      const back = await engine.run("to-pg", { trigger: "test" });
      assert.equal(back.run.status, "succeeded");
      // items has no index on its cursor: the run says so, in its stats and its summary
      assert.deepEqual(back.run.stats.warnings, [
        "'items' is read by (seen_at, id), but no index of the table starts with seen_at: every batch scans and " +
          "sorts the whole table (create one: CREATE INDEX … ON items (seen_at, id))",
      ]);
      assert.match(describeRun(back.run, back.counts), /\n {2}warning: 'items' is read by \(seen_at, id\)/);
      assert.equal(back.counts.targets["pg.items_back"]?.loaded, count);
      // Back in PostgreSQL: identical to the source, row for row (timestamptz compared as instants), but -0.
      const original = await pgDb.query(`SELECT * FROM ${pgSchema}.items ORDER BY id`);
      const returned = await pgDb.query(`SELECT * FROM ${pgSchema}.items_back ORDER BY id`);
      assert.equal(original[6]?.f, -0);
      assert.deepEqual(
        returned,
        original.map((row) => (row.id === 7 ? { ...row, f: 0 } : row)),
      );
      // Column by column, as values (IS DISTINCT FROM) and as PostgreSQL's text: 8's JSON null differs (see above),
      // and 7's -0 is 0, which float8 equals but prints apart.
      const differing = async (cast: string) =>
        (
          await pgDb.query(
            `SELECT id, array_remove(ARRAY[${columns
              .map((c) => `CASE WHEN a.${c}${cast} IS DISTINCT FROM b.${c}${cast} THEN '${c}' END`)
              .join(", ")}], NULL) AS differ
               FROM ${pgSchema}.items a FULL JOIN ${pgSchema}.items_back b USING (id) ORDER BY id`,
          )
        ).flatMap((row) => (row.differ as string[]).map((column) => `${row.id}.${column}`));
      assert.deepEqual(await differing(""), ["8.doc"]);
      assert.deepEqual(await differing("::text"), ["7.f", "8.doc"]);
      assert.deepEqual(
        await pgDb.query(
          `SELECT id, doc::text AS doc, f::text AS f FROM ${pgSchema}.items_back WHERE id IN (7, 8, 9) ORDER BY id`,
        ),
        [
          { id: 7, doc: '"a JSON string"', f: "0" },
          { id: 8, doc: null, f: null },
          { id: 9, doc: '{"n": 12345678901234567890, "big": 9007199254740993}', f: "1e-300" },
        ],
      );

      // The upsert run again: every record is unchanged, the target table is as it was.
      const snapshot = await db.query("SELECT * FROM items ORDER BY id");
      const again = await engine.run("to-maria", { trigger: "test" });
      assert.equal(again.run.status, "succeeded");
      assert.equal(again.counts.extracted, count);
      assert.equal(again.counts.targets["maria.items"]?.loaded, 0);
      assert.equal(again.counts.targets["maria.items"]?.unchanged, count);
      assert.deepEqual(await db.query("SELECT * FROM items ORDER BY id"), snapshot);
      // The incremental MariaDB source finds nothing new after its DATETIME(6) cursor.
      const backAgain = await engine.run("to-pg", { trigger: "test" });
      assert.equal(backAgain.run.status, "succeeded");
      assert.equal(backAgain.counts.extracted, 0);

      // Through a fresh store every record is written again, as an upsert of rows already there (INSERT … ON
      // DUPLICATE KEY UPDATE, ON CONFLICT): first every written column is blanked, so each must be written back
      // exactly. An upsert is not a REPLACE (delete, then insert): MariaDB's remark, which no flow writes, keeps its
      // value, and seen_at (its default on insert, the cursor) stays.
      const pgSnapshot = await pgBack();
      const blank = columns.map((column) => `${column} = NULL`).join(", ");
      await db.query(`UPDATE items SET ${blank}`);
      await db.query("UPDATE items SET remark = 'kept' WHERE id IN (3, 6)");
      await pgDb.query(`UPDATE ${pgSchema}.items_back SET ${blank}`);
      await withEngine(async (fresh) => {
        const rewritten = await fresh.run("to-maria", { trigger: "test" });
        assert.equal(rewritten.run.status, "succeeded");
        assert.equal(rewritten.counts.targets["maria.items"]?.loaded, count);
        assert.deepEqual(
          await db.query("SELECT * FROM items ORDER BY id"),
          snapshot.map((row) => (row.id === 3 || row.id === 6 ? { ...row, remark: "kept" } : row)),
        );
        const rewrittenBack = await fresh.run("to-pg", { trigger: "test" });
        assert.equal(rewrittenBack.run.status, "succeeded");
        assert.equal(rewrittenBack.counts.extracted, count);
        assert.equal(rewrittenBack.counts.targets["pg.items_back"]?.loaded, count);
        assert.deepEqual(await pgBack(), pgSnapshot);
      });

      // MariaDB's changes, incrementally: two rows changed there, their cursor moved past every other row's, are
      // the only ones the next run extracts, and PostgreSQL gets their new values.
      const [latest] = await db.query("SELECT MAX(seen_at) AS top FROM items");
      await db.query(
        "UPDATE items SET label = CONCAT(?, id), seen_at = ? + INTERVAL id MICROSECOND WHERE id IN (3, 8)",
        ["changed \\N\t", latest?.top],
      );
      const changed = await engine.run("to-pg", { trigger: "test" });
      assert.equal(changed.run.status, "succeeded");
      assert.equal(changed.counts.extracted, 2);
      assert.equal(changed.counts.targets["pg.items_back"]?.loaded, 2);
      assert.deepEqual(
        await pgBack(),
        pgSnapshot.map((row) => (row.id === 3 || row.id === 8 ? { ...row, label: `changed \\N\t${row.id}` } : row)),
      );
    });
  }

  it("round-trips tricky values PostgreSQL → MariaDB → PostgreSQL, exactly through re-runs, re-upserts and changes", () =>
    roundTrip(0));

  it("round-trips them alike when transform threads decode, map and encode the rows (COPY, LOAD DATA)", () =>
    roundTrip(1));

  it("moves 600 rows both ways in chunks of 250, streamed on a transform thread as on the engine's thread (LOAD DATA, INSERT)", async () => {
    await roundTripTables();
    // Chunks of 50, 100, 200, 250: the third (rows 151–350) is two pieces on a thread, whose LOAD DATA lines join;
    // the fourth's last piece holds bytes (rows 551–555), which go the INSERT way only, so its pieces are encoded
    // differently (lines, then tuples) and do not join: the load encodes that chunk's rows itself.
    await pgDb.query(
      `INSERT INTO ${pgSchema}.items
         SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'row ' || i || E' \\t\\\\ ünï 🎉' END, repeat('x', i % 50),
                round(i * 1.2345, 4), '2024-01-01 00:00:00+00'::timestamptz + i * interval '1.000001 second',
                jsonb_build_object('i', i, 's', 'q"' || i, 'l', jsonb_build_array(i, NULL)), i * 0.5, i * 1000000000000,
                CASE WHEN i BETWEEN 551 AND 555 THEN '\\x00ff5c'::bytea END, i % 2 = 0, date '2024-01-01' + i
           FROM generate_series(1, 600) AS i`,
    );
    const run = (flowName: string, threads: number) =>
      withRoundTripEngine(threads, async (engine) => {
        const summary = await engine.run(flowName, { trigger: "test" });
        assert.equal(summary.run.status, "succeeded", JSON.stringify(summary.run.error));
        return summary;
      });
    const inMaria = () =>
      db.query("SELECT id, label, big, amount, at, doc, f, n, raw, flag, day, remark FROM items ORDER BY id");
    const inPg = () => pgDb.query(`SELECT to_jsonb(b)::text AS row FROM ${pgSchema}.items_back b ORDER BY id`);

    /** The kinds of statements that wrote into items, in order. */
    const kinds = (sent: readonly string[]) =>
      sent.flatMap((sql) => /^(LOAD DATA|INSERT INTO `items`)/.exec(sql)?.[0] ?? []).map((kind) => kind.split(" ")[0]);
    const { result: threaded, sent } = await statementsSent(() => run("to-maria-wide", 1));
    assert.equal(threaded.run.stats.threaded, 600, "the records were mapped on the thread");
    assert.equal(threaded.counts.targets["maria.items"]?.loaded, 600);
    const onThreads = await inMaria();
    await db.query("DELETE FROM items");
    const { result: inline, sent: sentInline } = await statementsSent(() => run("to-maria-wide", 0));
    assert.equal(inline.counts.targets["maria.items"]?.loaded, 600);
    assert.deepEqual(onThreads, await inMaria());
    // the first three chunks through LOAD DATA (the third's lines joined from its pieces: lines the server could not
    // take would have gone the INSERT way after all), the fourth, with bytes, through INSERT; as on the engine's thread
    assert.deepEqual(kinds(sent), ["LOAD", "LOAD", "LOAD", "INSERT"]);
    assert.deepEqual(kinds(sentInline), kinds(sent));
    assert.equal(onThreads.length, 600);
    assert.deepEqual(onThreads[552]?.raw, Buffer.from([0, 255, 92]));
    assert.equal(onThreads[0]?.label, "row 1 \t\\ ünï 🎉");

    // and back, MariaDB's encoded rows decoded and mapped on the thread a piece at a time
    const back = await run("to-pg-wide", 1);
    assert.equal(back.run.stats.threaded, 600);
    const backOnThreads = await inPg();
    await pgDb.query(`DELETE FROM ${pgSchema}.items_back`);
    await run("to-pg-wide", 0);
    assert.deepEqual(backOnThreads, await inPg());
    assert.equal(backOnThreads.length, 600);
  });

  it("an upsert of the same records through a fresh engine leaves the target unchanged", async () => {
    // A new store knows nothing of earlier runs: every record is sent again, and the upsert changes nothing.
    await db.query("CREATE TABLE people (id int PRIMARY KEY, name varchar(50) NOT NULL, at datetime(6))");
    await pgDb.query(`CREATE TABLE ${pgSchema}.people (id int PRIMARY KEY, name text NOT NULL, at timestamptz)`);
    await pgDb.query(
      `INSERT INTO ${pgSchema}.people SELECT i, 'Person ' || i, '2024-05-01 08:00:00+02'::timestamptz + i * interval '1.000001 second'
         FROM generate_series(1, 25) AS i`,
    );
    const Person = entity("Person", {
      version: 1,
      key: "id",
      schema: Type.Object(
        { id: Type.String(), name: Type.String(), at: Type.String() },
        { additionalProperties: false },
      ),
    });
    const runOnce = async () => {
      const crm = postgres("crm", { url: pgUrl });
      const maria = mysql("maria", { url });
      const hub = defineHub({
        systems: [crm, maria],
        entities: [Person],
        flows: [
          flow("people", {
            from: bind(crm, Person, {
              table: `${pgSchema}.people`,
              key: "id",
              toCanonical: (row) => ({ id: String(row.id), name: String(row.name), at: String(row.at) }),
            }),
            to: bind(maria, Person, {
              name: "maria.people",
              table: "people",
              key: "id",
              fromCanonical: (person) => ({ id: Number(person.id), name: person.name, at: person.at }),
            }),
            chunkSize: 10,
          }),
        ],
      });
      const dir = mkdtempSync(join(tmpdir(), "franca-mysql-"));
      const store = new SqliteStore(join(dir, "franca.db"));
      await store.migrate();
      const engine = await Engine.open({ hub, baseDir: dir, store });
      try {
        return await engine.run("people", { trigger: "test" });
      } finally {
        await engine.close();
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    };
    const first = await runOnce();
    assert.equal(first.run.status, "succeeded");
    assert.equal(first.counts.targets["maria.people"]?.loaded, 25);
    const snapshot = await db.query("SELECT * FROM people ORDER BY id");
    assert.equal(snapshot.length, 25);
    assert.deepEqual(snapshot[0], { id: 1, name: "Person 1", at: "2024-05-01 06:00:01.000001" });
    const second = await runOnce();
    assert.equal(second.run.status, "succeeded");
    assert.equal(second.counts.targets["maria.people"]?.loaded, 25);
    assert.deepEqual(await db.query("SELECT * FROM people ORDER BY id"), snapshot);
  });
});

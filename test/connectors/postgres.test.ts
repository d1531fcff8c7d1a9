import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { type PostgresClient, postgres, postgresDriver } from "../../src/connectors/postgres/index.ts";
import type { Connection, ReadRequest } from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { bind, defineHub, Engine, entity, flow, Type } from "../../src/index.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { readAll, rejection, rowsOf, write } from "../support/connection-calls.ts";
import { readGrowing } from "../support/growing-read.ts";

const url = "postgres://postgres@127.0.0.1:5432/test";
const schema = `franca_pg_${randomBytes(5).toString("hex")}`;
const targetSchema = `${schema}_dst`;
const env = { baseDir: tmpdir() };

let connection: Connection;
let db: PostgresClient;

function open(settings: Parameters<typeof postgres>[1] = { url }, name = "db"): Connection {
  return postgresDriver.open(postgres(name, settings), env);
}

function clientOf(from: Connection): PostgresClient {
  return (from.client as NonNullable<Connection["client"]>)() as PostgresClient;
}

before(async () => {
  connection = open();
  db = clientOf(connection);
  await db.query(`CREATE SCHEMA ${schema}`);
  await db.query(`CREATE SCHEMA ${targetSchema}`);
  await db.query(`CREATE SCHEMA ${schema}_nocopy`);
});

after(async () => {
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.query(`DROP SCHEMA IF EXISTS ${targetSchema} CASCADE`);
  await db.query(`DROP SCHEMA IF EXISTS ${schema}_nocopy CASCADE`);
  await connection.close();
});

describe("postgres connector: settings", () => {
  it("accepts a URL or discrete settings, not both, and refuses unknown settings", () => {
    assert.deepEqual(postgresDriver.validateSystem({ url, poolSize: 4, ssl: false }), []);
    assert.deepEqual(postgresDriver.validateSystem({ host: "db", port: 5432, user: "app", database: "erp" }), []);
    const both = postgresDriver.validateSystem({ url, host: "db" });
    assert.deepEqual(
      both.map((issue) => issue.setting),
      ["host"],
    );
    assert.deepEqual(
      postgresDriver.validateSystem({ url, poolsize: 3 }).map((issue) => issue.setting),
      ["poolsize"],
    );
    assert.deepEqual(
      postgresDriver.validateSystem({}).map((issue) => issue.setting),
      ["url"],
    );
  });

  it("takes a table or a query (sources only), never both", () => {
    assert.deepEqual(postgresDriver.validateBinding({ table: "s.t" }, "target"), []);
    assert.deepEqual(postgresDriver.validateBinding({ query: "SELECT 1 AS id" }, "source"), []);
    assert.deepEqual(
      postgresDriver.validateBinding({ query: "SELECT 1 AS id" }, "target").map((issue) => issue.setting),
      ["query"],
    );
    assert.deepEqual(
      postgresDriver.validateBinding({ table: "t", query: "SELECT 1" }, "source").map((issue) => issue.setting),
      ["query"],
    );
    assert.deepEqual(
      postgresDriver.validateBinding({}, "source").map((issue) => issue.setting),
      ["table"],
    );
  });

  it("preflight checks the URL (or host and database) without the network", () => {
    const preflight = postgresDriver.preflight as NonNullable<typeof postgresDriver.preflight>;
    assert.deepEqual(preflight(postgres("ok", { url }), env), []);
    assert.deepEqual(
      preflight(postgres("bad", { url: "not a url" }), env).map((issue) => issue.setting),
      ["url"],
    );
    assert.deepEqual(
      preflight(postgres("http", { url: "http://127.0.0.1/test" }), env).map((issue) => issue.setting),
      ["url"],
    );
    assert.deepEqual(
      preflight(postgres("partial", { host: "127.0.0.1" }), env).map((issue) => issue.setting),
      ["database"],
    );
  });

  it("applies the session settings to every connection", async () => {
    const configured = open({ url, statementTimeoutMs: 1234, applicationName: "franca-test" }, "configured");
    try {
      const [row] = await clientOf(configured).query(
        "SELECT current_setting('statement_timeout') AS timeout, current_setting('application_name') AS app, " +
          "current_setting('TimeZone') AS zone",
      );
      assert.deepEqual(row, { timeout: "1234ms", app: "franca-test", zone: "UTC" });
    } finally {
      await configured.close();
    }
  });
});

// The read and write tests run for both ways of moving rows: COPY (the default) and `copy: false` (keyset pages,
// multi-row INSERTs), each in a schema of its own.
for (const copy of [true, false]) {
  const label = copy ? "COPY" : "copy: false";
  const s = copy ? schema : `${schema}_nocopy`;
  const put = (to: Connection, table: string, key: string[], rows: Row[]) => write(to, table, key, rows, { copy });
  const scan = (from: Connection, request: Pick<ReadRequest, "options" | "key"> & Partial<ReadRequest>) =>
    readAll(from, { ...request, options: { ...request.options, copy } });

  describe(`postgres connector: read (${label})`, () => {
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
      options: { table: `${s}.events` },
      key: ["region", "seq"],
      cursor: "happened_at",
      batchSize: 5,
    });

    before(async () => {
      await db.query(
        `CREATE TABLE ${s}.events (region text, seq int, happened_at timestamptz NOT NULL, note text,
        PRIMARY KEY (region, seq))`,
      );
      for (const row of source) {
        await db.query(
          `INSERT INTO ${s}.events VALUES ($1, $2, '2024-03-01 10:00:00+00'::timestamptz + $3 * interval '1 microsecond', $4)`,
          [row.region, row.seq, row.micro, `note ${row.seq}`],
        );
      }
    });

    it(
      copy
        ? "one COPY statement per read: no index needed, no warning"
        : "warns, once, when no index starts with the cursor (every batch would scan and sort the table)",
      async () => {
        const warnings: string[] = [];
        const warn = (message: string) => warnings.push(message);
        assert.equal(rowsOf(await scan(connection, { ...request(), warn })).length, source.length, "the read goes on");
        if (copy) {
          assert.deepEqual(warnings, []);
          return;
        }
        assert.deepEqual(warnings, [
          `'${s}.events' is read by (happened_at, region, seq), but no index of the table starts with happened_at: ` +
            `every batch scans and sorts the whole table (create one: CREATE INDEX … ON ${s}.events (happened_at, region, seq))`,
        ]);
        // with an index led by the cursor on events: nothing for it, nor for a view of it (a view has no index of its
        // own), a full read (by the primary key) or a query as the source; but a table named Events, case kept, with
        // only a partial index (no index for the read) is found as the read names it, not as events
        await db.query(`CREATE INDEX events_by_time ON ${s}.events (happened_at, region, seq)`);
        await db.query(`CREATE TABLE ${s}."Events" AS SELECT * FROM ${s}.events`);
        await db.query(`CREATE INDEX events_recent ON ${s}."Events" (happened_at) WHERE happened_at > '2024-03-02'`);
        await db.query(`CREATE VIEW ${s}.events_view AS SELECT * FROM ${s}.events`);
        try {
          await scan(connection, { ...request(), warn });
          await scan(connection, { ...request(), options: { table: `${s}.events_view` }, warn });
          const { cursor: _, ...full } = request();
          await scan(connection, { ...full, warn });
          await scan(connection, { ...request(), options: { query: `SELECT * FROM ${s}.events` }, warn });
          assert.equal(warnings.length, 1);
          await scan(connection, { ...request(), options: { table: `${s}.Events` }, warn });
          assert.equal(warnings.length, 2);
          assert.ok((warnings[1] as string).startsWith(`'${s}.Events' is read by (happened_at, region, seq)`));
        } finally {
          await db.query(`DROP VIEW IF EXISTS ${s}.events_view`);
          await db.query(`DROP TABLE IF EXISTS ${s}."Events"`);
          await db.query(`DROP INDEX IF EXISTS ${s}.events_by_time`);
        }
      },
    );

    it("reads every row exactly once, in cursor then key order, in batches", async () => {
      const batches = await scan(connection, request());
      assert.deepEqual(
        batches.map((batch) => batch.rows.length),
        [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 3],
      );
      const got = rowsOf(batches).map((row) => `${row.region}/${row.seq}`);
      assert.deepEqual(got, expected);
      assert.equal(new Set(got).size, source.length);
      // The cursor is the server's text with its microseconds, not a millisecond JS Date.
      assert.equal(batches[0]?.rows[0]?.happened_at, "2024-03-01 10:00:00.000001+00");
      assert.deepEqual(batches[0]?.position, ["2024-03-01 10:00:00.000002+00", "eu", 96]);
    });

    it("reads every row when the batch size grows between batches, as the engine's first chunks fill", async () => {
      // each page is judged short against the size it was asked for: judged against a grown size, the first page
      // of 2 rows looked short and ended the read there (copy: false read 50 rows of any table, then stopped)
      const { sizes, rows } = await readGrowing(connection, {
        ...request(),
        options: { ...request().options, copy },
      });
      assert.deepEqual(
        rows.map((row) => `${row.region}/${row.seq}`),
        expected,
      );
      assert.deepEqual(sizes, [2, 4, 8, 16, 16, 7]);
    });

    it("continues right after the position of any batch", async () => {
      const batches = await scan(connection, request());
      for (let k = 0; k < batches.length; k++) {
        // The engine stores positions as JSON: resume from what it would read back.
        const from = JSON.parse(JSON.stringify(batches[k]?.position));
        const rest = rowsOf(await scan(connection, { ...request(), from }));
        assert.deepEqual(
          rest.map((row) => `${row.region}/${row.seq}`),
          expected.slice((k + 1) * 5),
          `from the position of batch ${k}`,
        );
      }
    });

    it("reads a user query with a join as the source", async () => {
      await db.query(`CREATE TABLE ${s}.customers (id int PRIMARY KEY, name text NOT NULL)`);
      await db.query(
        `CREATE TABLE ${s}.orders (id int PRIMARY KEY, customer_id int REFERENCES ${s}.customers, total numeric(12,2))`,
      );
      await db.query(`INSERT INTO ${s}.customers VALUES (1, 'Ada'), (2, 'Grace')`);
      await db.query(
        `INSERT INTO ${s}.orders VALUES (10, 2, 10.50), (11, 1, 99999999.99), (12, 2, 0.10), (13, 1, 7), (14, 2, NULL)`,
      );
      const batches = await scan(connection, {
        options: {
          query: `SELECT o.id, o.total, c.name AS customer FROM ${s}.orders o JOIN ${s}.customers c ON c.id = o.customer_id`,
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

    it("cancels the statement on the server when the call's signal aborts", async () => {
      const reader = open({ url, applicationName: `franca-cancel-${s}` }, "cancel");
      try {
        const controller = new AbortController();
        const read = (reader.read as NonNullable<Connection["read"]>)({
          options: { query: "SELECT 1 AS id, pg_sleep(30) AS slept", copy },
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
              // The COPY read first describes its query with LIMIT 0, which returns at once: wait for the statement
              // that sleeps, or the abort lands between the two and is reported as the abort, not as the server's.
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%' AND query NOT LIKE '%LIMIT 0'",
              [`franca-cancel-${s}`],
            )
          )[0]?.n;
        // Wait until the server runs the statement, then abort.
        while (!settled && (await running()) !== 1) await new Promise((resolve) => setTimeout(resolve, 20));
        controller.abort(new Error("stop"));
        // Only a cancel on the server ends pg_sleep(30) early, with query_canceled.
        await assert.rejects(first, (error: unknown) => (error as { code?: string }).code === "57014");
      } finally {
        await reader.close();
      }
    });
  });

  describe(`postgres connector: write (${label})`, () => {
    before(async () => {
      await db.query(`CREATE TABLE ${s}.clients (code text PRIMARY KEY, name text, balance numeric(12,2))`);
    });

    const snapshot = () => db.query(`SELECT * FROM ${s}.clients ORDER BY code`);
    const clients = Array.from({ length: 6 }, (_, i) => ({
      code: `c${i}`,
      name: `Client ${i}`,
      balance: `${i}00.5${i}`,
    }));

    it("upserts: the same items twice leave the table identical; an update changes only its row", async () => {
      assert.deepEqual(
        await put(connection, `${s}.clients`, ["code"], clients),
        clients.map(() => ({ ok: true })),
      );
      const once = await snapshot();
      assert.equal(once.length, 6);
      assert.deepEqual(once[2], { code: "c2", name: "Client 2", balance: "200.52" });

      assert.deepEqual(
        await put(connection, `${s}.clients`, ["code"], clients),
        clients.map(() => ({ ok: true })),
      );
      assert.deepEqual(await snapshot(), once);

      assert.deepEqual(
        await put(connection, `${s}.clients`, ["code"], [{ code: "c3", name: "Renamed", balance: "1.00" }]),
        [{ ok: true }],
      );
      const updated = await snapshot();
      assert.deepEqual(updated, [
        ...once.slice(0, 3),
        { code: "c3", name: "Renamed", balance: "1.00" },
        ...once.slice(4),
      ]);
    });

    it("lets the later row win when a batch holds the same key twice", async () => {
      const results = await write(
        connection,
        `${s}.clients`,
        ["code"],
        [
          { code: "dup", name: "first", balance: "1.00" },
          { code: "dup", name: "second", balance: "2.00" },
        ],
      );
      assert.deepEqual(results, [{ ok: true }, { ok: true }]);
      assert.deepEqual(await db.query(`SELECT name FROM ${s}.clients WHERE code = 'dup'`), [{ name: "second" }]);
    });

    it("does nothing on conflict when every column is a key column", async () => {
      await db.query(`CREATE TABLE ${s}.tags (a text, b text, PRIMARY KEY (a, b))`);
      const tags = [
        { a: "x", b: "1" },
        { a: "x", b: "2" },
      ];
      assert.deepEqual(await put(connection, `${s}.tags`, ["a", "b"], tags), [{ ok: true }, { ok: true }]);
      assert.deepEqual(await put(connection, `${s}.tags`, ["a", "b"], tags), [{ ok: true }, { ok: true }]);
      assert.deepEqual(await db.query(`SELECT * FROM ${s}.tags ORDER BY a, b`), tags);
    });

    it("splits a batch over the 65,535-parameter limit into several statements of one transaction", async () => {
      const columns = Array.from({ length: 10 }, (_, i) => `c${i}`);
      await db.query(`CREATE TABLE ${s}.wide (id int PRIMARY KEY, ${columns.map((c) => `${c} int`).join(", ")})`);
      // 7,000 rows × 11 columns = 77,000 parameters: one statement cannot carry them.
      const rows: Row[] = Array.from({ length: 7000 }, (_, id) => ({
        id,
        ...Object.fromEntries(columns.map((c, i) => [c, id + i])),
      }));
      const results = await put(connection, `${s}.wide`, ["id"], rows);
      assert.equal(results.length, 7000);
      assert.ok(results.every((result) => result.ok));
      assert.deepEqual(await db.query(`SELECT count(*)::int AS n, sum(c9)::int8 AS s FROM ${s}.wide`), [
        { n: 7000, s: String(rows.reduce((sum, row) => sum + Number(row.c9), 0)) },
      ]);
    });

    it("round-trips tricky values exactly through write then read", async () => {
      await db.query(
        `CREATE TABLE ${s}.tricky (id int PRIMARY KEY, label text, big text, amount numeric(30,10),
        at timestamptz, doc jsonb, n int8, tags text[])`,
      );
      const big = `${"é🎉x".repeat(25_000)}end`; // ~100 kB
      const rows: Row[] = [
        { id: 1, label: null, big: "", amount: "12345678901234567890.0123456789", n: "9223372036854775807" },
        { id: 2, label: "", big, amount: "-0.0000000001", n: "-9007199254740993" },
        { id: 3, label: "ünïcødé 日本語 👩‍👩‍👧 🎉", at: "2024-06-30 23:59:59.999999+05:30", n: "9007199254740993" },
        { id: 4, at: "1999-12-31T18:00:00.000001-08:00", doc: { a: { b: [1, "two", null, { c: true }] }, e: [] } },
        { id: 5, at: new Date("2024-01-01T00:00:00.123Z"), doc: [1, [2, [3]], { "key with space": "ü" }] },
        { id: 6, tags: ["a", "b,c", '"quoted"', "", null, "🎉"], doc: { n: 1.5, s: "text", t: false } },
      ];
      const results = await put(connection, `${s}.tricky`, ["id"], rows);
      assert.deepEqual(
        results,
        rows.map(() => ({ ok: true })),
      );
      const read = async () => rowsOf(await scan(connection, { options: { table: `${s}.tricky` }, key: ["id"] }));
      const back = await read();
      const blank = { label: null, big: null, amount: null, at: null, doc: null, n: null, tags: null };
      assert.deepEqual(back, [
        { ...blank, id: 1, big: "", amount: "12345678901234567890.0123456789", n: "9223372036854775807" },
        { ...blank, id: 2, label: "", big, amount: "-0.0000000001", n: "-9007199254740993" },
        // Instants as PostgreSQL renders them (the session is pinned to UTC), microseconds kept.
        {
          ...blank,
          id: 3,
          label: "ünïcødé 日本語 👩‍👩‍👧 🎉",
          at: "2024-06-30 18:29:59.999999+00",
          n: "9007199254740993",
        },
        {
          ...blank,
          id: 4,
          at: "2000-01-01 02:00:00.000001+00",
          doc: { a: { b: [1, "two", null, { c: true }] }, e: [] },
        },
        { ...blank, id: 5, at: "2024-01-01 00:00:00.123+00", doc: [1, [2, [3]], { "key with space": "ü" }] },
        { ...blank, id: 6, tags: ["a", "b,c", '"quoted"', "", null, "🎉"], doc: { n: 1.5, s: "text", t: false } },
      ]);
      assert.equal(String(back[1]?.big).length, big.length);
      // What was read writes back unchanged: the read shapes are the write shapes.
      assert.ok((await put(connection, `${s}.tricky`, ["id"], back)).every((result) => result.ok));
      assert.deepEqual(await read(), back);
    });

    it("keeps values exact even when the process changed pg's global type parsers", async () => {
      // Another library in the process (or the user's code) may make pg return numbers and Dates.
      const changed = [20, 1700, 1184];
      for (const oid of changed) pg.types.setTypeParser(oid, (value: string) => Number.parseFloat(value));
      try {
        const [row] = await db.query(
          "SELECT 9007199254740993::int8 AS n, 0.1::numeric(3,2) AS d, '2024-01-01 00:00:00.000001+00'::timestamptz AS t",
        );
        assert.deepEqual(row, { n: "9007199254740993", d: "0.10", t: "2024-01-01 00:00:00.000001+00" });
      } finally {
        for (const oid of changed) pg.types.setTypeParser(oid, (value: string) => value);
      }
    });

    it("isolates a row that violates NOT NULL or a CHECK: the 9 others land", async () => {
      await db.query(
        `CREATE TABLE ${s}.checked (id int PRIMARY KEY, name text NOT NULL,
        qty int CONSTRAINT checked_qty_not_negative CHECK (qty >= 0), code varchar(3), price numeric(4,2))`,
      );
      const cases = [
        { bad: { name: null, qty: 1 }, names: ["name", "not-null"], path: "/name" },
        { bad: { name: "bad", qty: -5 }, names: ["checked_qty_not_negative"], path: undefined },
        // Bad values: the server names no column, the connector finds it.
        { bad: { name: "bad", qty: "many" }, names: ["integer", '"qty"'], path: "/qty" },
        { bad: { name: "bad", qty: 1, code: "too long" }, names: ["too long", '"code"'], path: "/code" },
        { bad: { name: "bad", qty: 1, price: "12345.5" }, names: ["overflow", '"price"'], path: "/price" },
      ];
      for (const [round, { bad, names, path }] of cases.entries()) {
        const base = round * 100;
        const rows: Row[] = Array.from({ length: 10 }, (_, i) => ({ id: base + i, name: `row ${i}`, qty: i }));
        rows[4] = { id: base + 4, ...bad };
        const results = await put(connection, `${s}.checked`, ["id"], rows);
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
          assert.equal(result.error.path, path);
        }
        const landed = await db.query(`SELECT id FROM ${s}.checked WHERE id >= $1 AND id < $2 ORDER BY id`, [
          base,
          base + 100,
        ]);
        assert.deepEqual(
          landed.map((row) => row.id),
          [0, 1, 2, 3, 5, 6, 7, 8, 9].map((i) => base + i),
        );
      }
    });

    it("refuses a column the table does not have, naming column and table", async () => {
      const error = await rejection(
        put(connection, `${s}.clients`, ["code"], [{ code: "z", name: "Z", nickname: "zed" }]),
      );
      assert.equal(error.errorClass, "permanent");
      assert.equal(error.code, ErrorCode.SystemError);
      assert.match(error.message, /nickname/);
      assert.match(error.message, new RegExp(`${s}\\.clients`));
      assert.deepEqual(await db.query(`SELECT * FROM ${s}.clients WHERE code = 'z'`), []);
    });
  });
}

describe("postgres connector: errors", () => {
  it("a closed port is transient, for reads, writes and health", async () => {
    const down = open({ url: "postgres://postgres:secret@127.0.0.1:1/test" }, "down");
    try {
      const readError = await rejection(readAll(down, { options: { table: `${schema}.clients` }, key: ["code"] }));
      assert.equal(readError.errorClass, "transient");
      assert.equal(readError.code, ErrorCode.SystemUnavailable);
      const writeError = await rejection(write(down, `${schema}.clients`, ["code"], [{ code: "x" }]));
      assert.equal(writeError.errorClass, "transient");
      const health = await down.health(AbortSignal.timeout(10_000));
      assert.equal(health.ok, false);
    } finally {
      await down.close();
    }
  });

  it("a missing table is permanent and named", async () => {
    const readError = await rejection(
      readAll(connection, { options: { table: `${schema}.missing_table` }, key: ["id"] }),
    );
    assert.equal(readError.errorClass, "permanent");
    assert.equal(readError.code, ErrorCode.SystemError);
    assert.match(readError.message, /missing_table/);
    const writeError = await rejection(write(connection, `${schema}.missing_table`, ["id"], [{ id: 1 }]));
    assert.equal(writeError.errorClass, "permanent");
    assert.match(writeError.message, /missing_table/);
  });

  it("classifies by SQLSTATE: a lock not available and a statement timeout are transient, a division by zero is not", async () => {
    await db.query(`CREATE TABLE ${schema}.locked (id int PRIMARY KEY)`);
    await db.query(`INSERT INTO ${schema}.locked VALUES (1)`);
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT * FROM ${schema}.locked WHERE id = 1 FOR UPDATE`);
      const locked = await rejection(db.query(`SELECT * FROM ${schema}.locked WHERE id = 1 FOR UPDATE NOWAIT`));
      assert.equal(locked.status, "55P03");
      assert.equal(locked.errorClass, "transient");
      assert.equal(locked.code, ErrorCode.SystemUnavailable);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }

    const limited = open({ url, statementTimeoutMs: 1 }, "limited");
    try {
      const timedOut = await rejection(clientOf(limited).query("SELECT pg_sleep(5)"));
      assert.equal(timedOut.status, "57014");
      assert.equal(timedOut.errorClass, "transient");
    } finally {
      await limited.close();
    }

    const division = await rejection(db.query("SELECT 1 / 0"));
    assert.equal(division.status, "22012");
    assert.equal(division.errorClass, "permanent");
    assert.equal(division.code, ErrorCode.SystemError);
  });
});

describe("postgres connector: through the engine", () => {
  it("runs PostgreSQL → PostgreSQL incrementally: a second run extracts nothing, then only the changed rows", async () => {
    await db.query(
      `CREATE TABLE ${schema}.people (id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL)`,
    );
    await db.query(
      `INSERT INTO ${schema}.people SELECT i, 'Person ' || i, '2024-05-01 08:00:00+02'::timestamptz + i * interval '1.000001 second'
         FROM generate_series(1, 25) AS i`,
    );
    await db.query(
      `CREATE TABLE ${targetSchema}.contacts (code text PRIMARY KEY, full_name text NOT NULL, source_updated_at timestamptz)`,
    );
    const Person = entity("Person", {
      version: 1,
      key: "id",
      schema: Type.Object(
        { id: Type.String(), name: Type.String(), updatedAt: Type.String() },
        { additionalProperties: false },
      ),
    });
    const crm = postgres("crm", { url, poolSize: 2 });
    const erp = postgres("erp", { url });
    const from = bind(crm, Person, {
      table: `${schema}.people`,
      key: "id",
      cursor: "updated_at",
      toCanonical: (row) => ({ id: String(row.id), name: String(row.name), updatedAt: String(row.updated_at) }),
    });
    const to = bind(erp, Person, {
      name: "erp.contacts",
      table: `${targetSchema}.contacts`,
      key: "code",
      fromCanonical: (person) => ({ code: person.id, full_name: person.name, source_updated_at: person.updatedAt }),
    });
    const hub = defineHub({
      systems: [crm, erp],
      entities: [Person],
      flows: [flow("people", { from, to, chunkSize: 10 })],
    });
    const dir = mkdtempSync(join(tmpdir(), "franca-pg-"));
    const store = new SqliteStore(join(dir, "franca.db"));
    await store.migrate();
    const engine = await Engine.open({ hub, baseDir: dir, store });
    try {
      const first = await engine.run("people", { trigger: "test" });
      assert.equal(first.run.status, "succeeded");
      assert.equal(first.counts.extracted, 25);
      assert.equal(first.counts.targets["erp.contacts"]?.loaded, 25);
      const loaded = await db.query(`SELECT * FROM ${targetSchema}.contacts ORDER BY code::int`);
      assert.equal(loaded.length, 25);
      assert.deepEqual(loaded[0], {
        code: "1",
        full_name: "Person 1",
        source_updated_at: "2024-05-01 06:00:01.000001+00",
      });

      const second = await engine.run("people", { trigger: "test" });
      assert.equal(second.run.status, "succeeded");
      assert.equal(second.counts.extracted, 0);

      await db.query(
        `UPDATE ${schema}.people SET name = name || ' (changed)',
           updated_at = (SELECT max(updated_at) FROM ${schema}.people) + id * interval '1 microsecond'
         WHERE id IN (3, 11, 20)`,
      );
      const third = await engine.run("people", { trigger: "test" });
      assert.equal(third.run.status, "succeeded");
      assert.equal(third.counts.extracted, 3);
      assert.equal(third.counts.targets["erp.contacts"]?.loaded, 3);
      const changed = await db.query(
        `SELECT code FROM ${targetSchema}.contacts WHERE full_name LIKE '%(changed)' ORDER BY code::int`,
      );
      assert.deepEqual(
        changed.map((row) => row.code),
        ["3", "11", "20"],
      );
    } finally {
      await engine.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

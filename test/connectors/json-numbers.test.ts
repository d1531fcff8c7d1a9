/**
 * JSON columns whose numbers a double cannot hold (an integer beyond ±2^53, a decimal with more significant digits
 * than a double keeps) arrive exactly: PostgreSQL jsonb → MariaDB JSON and MariaDB JSON → PostgreSQL jsonb, through
 * COPY and LOAD DATA and through keyset SELECTs and INSERTs, with the number's text in the canonical JSON. A field
 * the schema says is a number refuses such a value (quarantined, with its path) rather than take another number.
 */
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { mysql } from "../../src/connectors/mysql/index.ts";
import { postgres } from "../../src/connectors/postgres/index.ts";
import type { Row } from "../../src/core/binding.ts";
import { compileCanonicalJson, stableStringify } from "../../src/core/canonical-json.ts";
import { compileEntity } from "../../src/core/compiled-entity.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { contentHash } from "../../src/core/hash.ts";
import type { Hub } from "../../src/core/hub.ts";
import { bind, defineHub, Engine, entity, flow, Type } from "../../src/index.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { readAll, rowsOf } from "../support/connection-calls.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";
import { pgTestSchema } from "../support/pg-schema.ts";

// JSON.rawJSON and JSON.isRawJSON (Node 24), which the project's TypeScript lib does not declare
const rawJson = JSON as unknown as { rawJSON(text: string): unknown; isRawJSON(value: unknown): boolean };

const pgFiles = pgTestSchema(`franca_jn_${process.pid}`);
const mariaFiles = mysqlTestDatabase(`franca_jn_${process.pid}`);
const { schema, url: pgUrl } = pgFiles;
const { url: mariaUrl } = mariaFiles;

/**
 * The source documents, as JSON text, by id: the walkthrough's document (n beyond 2^53, d with 20 significant
 * digits), one with nothing a double cannot hold, a scalar beyond 2^53, and an array of a number beyond 2^53, numbers
 * of 16 and more digits that a double does hold (0.30000000000000004 is a double's own text, 2^53 a double) and a
 * string of digits.
 */
const docs: [number, string][] = [
  [1, '{"n":12345678901234567890,"f":0.1,"d":1.0000000000000000001,"small":[1,2.5,-3]}'],
  [2, '{"a":[1,2.5,-3],"s":"plain"}'],
  [3, "12345678901234567890"],
  [4, '[9007199254740993,0.30000000000000004,9007199254740992,"12345678901234567890"]'],
];

const Doc = entity("JsonDoc", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.String(), doc: Type.Unknown() }, { additionalProperties: false }),
});
// the same documents' n, which the schema says is a number
const Amount = entity("JsonAmount", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.String(), n: Type.Number() }, { additionalProperties: false }),
});

const toDoc = (row: Row) => ({ id: String(row.id), doc: row.doc });
const fromDoc = (record: { id: string; doc: unknown }) => ({ id: Number(record.id), doc: record.doc });

function jsonHub(): Hub {
  const pgSource = postgres("pg-source", { url: pgUrl });
  const pgTarget = postgres("pg-target", { url: pgUrl });
  const maria = mysql("maria", { url: mariaUrl, poolSize: 2 });
  const fromPg = (copy: boolean) =>
    bind(pgSource, Doc, {
      name: copy ? "pg.src-copy" : "pg.src-keyset",
      table: `${schema}.src`,
      key: "id",
      ...(copy ? {} : { copy: false }),
      toCanonical: toDoc,
    });
  const toMaria = (table: string, load: boolean) =>
    bind(maria, Doc, {
      name: `maria.${table}`,
      table,
      key: "id",
      ...(load ? {} : { load: false }),
      fromCanonical: fromDoc,
    });
  const fromMaria = bind(maria, Doc, { name: "maria.src", table: "src", key: "id", toCanonical: toDoc });
  const toPg = (table: string, copy: boolean) =>
    bind(pgTarget, Doc, {
      name: `pg.${table}`,
      table: `${schema}.${table}`,
      key: "id",
      ...(copy ? {} : { copy: false }),
      fromCanonical: fromDoc,
    });
  const amounts = bind(pgSource, Amount, {
    name: "pg.src-amounts",
    table: `${schema}.src`,
    key: "id",
    toCanonical: (row: Row) => ({
      id: String(row.id),
      n: ((row.doc as { n?: unknown } | null)?.n ?? 0) as number,
    }),
  });
  const amountsTarget = bind(pgTarget, Amount, {
    name: "pg.amounts",
    table: `${schema}.amounts`,
    key: "id",
    fromCanonical: (record: { id: string; n: number }) => ({ id: Number(record.id), n: record.n }),
  });
  return defineHub({
    systems: [pgSource, pgTarget, maria],
    entities: [Doc, Amount],
    flows: [
      // COPY read → LOAD DATA (new keys), and MariaDB's encoded read → COPY write
      flow("pg-copy-to-maria", { from: fromPg(true), to: toMaria("from_pg_copy", true) }),
      flow("maria-to-pg-copy", { from: fromMaria, to: toPg("back_copy", true) }),
      // keyset SELECTs → INSERTs, both ways
      flow("pg-keyset-to-maria", { from: fromPg(false), to: toMaria("from_pg_keyset", false) }),
      flow("maria-to-pg-keyset", { from: fromMaria, to: toPg("back_keyset", false) }),
      flow("amounts", { from: amounts, to: amountsTarget }),
    ],
  });
}

/** Runs `work` with an engine of the hub on a store of its own, on the engine's thread. */
async function withEngine<T>(work: (engine: Engine, store: SqliteStore) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "franca-json-numbers-"));
  const store = new SqliteStore(join(dir, "franca.db"));
  await store.migrate();
  const engine = await Engine.open({ hub: jsonHub(), baseDir: dir, store });
  try {
    return await work(engine, store);
  } finally {
    await engine.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How the statements mysql2 sends while `work` runs begin (LOAD DATA, INSERT INTO…): its tracing channel has them. */
async function statementsSent<T>(work: () => Promise<T>): Promise<{ result: T; kinds: string[] }> {
  const kinds: string[] = [];
  const onStart = (message: unknown) => {
    const sql = (message as { query?: unknown }).query;
    const kind = typeof sql === "string" ? /^(LOAD DATA|INSERT INTO)/.exec(sql)?.[0] : undefined;
    if (kind !== undefined) kinds.push(kind);
  };
  subscribe("tracing:mysql2:query:start", onStart);
  try {
    return { result: await work(), kinds };
  } finally {
    unsubscribe("tracing:mysql2:query:start", onStart);
  }
}

/** The MariaDB table's documents as the server's text, each compared with the source's by JSON_EQUALS. */
async function mariaDocs(table: string): Promise<{ id: number; text: string; same: number; n: unknown; d: unknown }[]> {
  const rows = await mariaFiles.db.query(
    `SELECT t.id, CONCAT(t.doc) AS text, JSON_EQUALS(t.doc, s.doc) AS same,
            CONCAT(JSON_EXTRACT(t.doc, '$.n')) AS n, CONCAT(JSON_EXTRACT(t.doc, '$.d')) AS d
       FROM ${table} t JOIN src s USING (id) ORDER BY t.id`,
  );
  return rows as { id: number; text: string; same: number; n: unknown; d: unknown }[];
}

/** The PostgreSQL table's documents: jsonb equality with the source's text (numeric: exact), and as text. */
async function pgDocs(table: string): Promise<{ id: number; same: boolean; text: string; n: unknown; d: unknown }[]> {
  return (await pgFiles.db.query(
    `SELECT b.id, b.doc = s.doc AS same, b.doc::text AS text, b.doc->>'n' AS n, b.doc->>'d' AS d
       FROM ${schema}.${table} b JOIN (VALUES ${docs.map((_, i) => `($${2 * i + 1}::int, $${2 * i + 2}::jsonb)`).join(", ")})
         AS s (id, doc) USING (id) ORDER BY b.id`,
    docs.flat(),
  )) as { id: number; same: boolean; text: string; n: unknown; d: unknown }[];
}

/** What each document's text is in PostgreSQL's jsonb (its own order of keys, its spacing). */
async function jsonbTexts(): Promise<string[]> {
  return (
    await pgFiles.db.query(
      `SELECT s.doc::text AS text FROM (VALUES ${docs.map((_, i) => `($${i + 1}::jsonb, ${i})`).join(", ")}) AS s (doc, i) ORDER BY i`,
      docs.map(([, text]) => text),
    )
  ).map((row) => row.text as string);
}

describe("JSON numbers a double cannot hold", () => {
  // in the suite: the file's own hooks would not wait for the helpers' (the database must exist first)
  before(async () => {
    const pgDb = pgFiles.db;
    await pgDb.query(`CREATE TABLE ${schema}.src (id int PRIMARY KEY, doc jsonb)`);
    for (const table of ["back_copy", "back_keyset"])
      await pgDb.query(`CREATE TABLE ${schema}.${table} (id int PRIMARY KEY, doc jsonb)`);
    await pgDb.query(`CREATE TABLE ${schema}.amounts (id int PRIMARY KEY, n float8)`);
    for (const [id, text] of docs) await pgDb.query(`INSERT INTO ${schema}.src VALUES ($1, $2::jsonb)`, [id, text]);
    const mariaDb = mariaFiles.db;
    for (const table of ["src", "from_pg_copy", "from_pg_keyset"])
      await mariaDb.query(`CREATE TABLE ${table} (id int PRIMARY KEY, doc json) CHARACTER SET utf8mb4`);
    for (const [id, text] of docs) await mariaDb.query("INSERT INTO src VALUES (?, ?)", [id, text]);
  });

  after(async () => {
    // (the schema and the database are dropped after every suite, by their helpers)
    await pgFiles.db.query(
      `DROP TABLE IF EXISTS ${schema}.src, ${schema}.back_copy, ${schema}.back_keyset, ${schema}.amounts`,
    );
    await mariaFiles.db.query("DROP TABLE IF EXISTS src, from_pg_copy, from_pg_keyset");
  });

  it("read from PostgreSQL jsonb (COPY and keyset) and MariaDB JSON as their exact text, others as numbers", async () => {
    const pgConnection = pgFiles.connection;
    const mariaConnection = mariaFiles.connection;
    const reads = {
      copy: rowsOf(await readAll(pgConnection, { options: { table: `${schema}.src` }, key: ["id"] })),
      keyset: rowsOf(await readAll(pgConnection, { options: { table: `${schema}.src`, copy: false }, key: ["id"] })),
      maria: rowsOf(await readAll(mariaConnection, { options: { table: "src" }, key: ["id"] })),
      // the client's query parses JSON columns as the read does
      query: await mariaFiles.db.query("SELECT id, doc FROM src ORDER BY id"),
    };
    for (const [path, rows] of Object.entries(reads)) {
      const [one, two, three, four] = rows.map((row) => row.doc) as [
        Record<string, unknown>,
        Record<string, unknown>,
        unknown,
        unknown[],
      ];
      assert.equal(rawJson.isRawJSON(one.n), true, `${path}: n is a raw JSON value`);
      assert.equal(rawJson.isRawJSON(one.d), true, `${path}: d is a raw JSON value`);
      assert.equal(one.f, 0.1, path);
      assert.deepEqual(one.small, [1, 2.5, -3], path);
      assert.equal(JSON.stringify(one.n), "12345678901234567890", path);
      assert.equal(JSON.stringify(one.d), "1.0000000000000000001", path);
      // nothing a double cannot hold: plain values
      assert.deepEqual(two, { a: [1, 2.5, -3], s: "plain" }, path);
      assert.equal(rawJson.isRawJSON(three), true, path);
      assert.equal(JSON.stringify(three), "12345678901234567890", path);
      assert.equal(rawJson.isRawJSON(four[0]), true, path);
      assert.deepEqual(four.slice(1), [0.30000000000000004, 9007199254740992, "12345678901234567890"], path);
      assert.equal(
        JSON.stringify(four),
        '[9007199254740993,0.30000000000000004,9007199254740992,"12345678901234567890"]',
        path,
      );
    }
  });

  it("the canonical JSON and its content hash hold the exact digits", async () => {
    const record = {
      id: "1",
      doc: {
        small: [1, 2.5, -3],
        n: rawJson.rawJSON("12345678901234567890"),
        f: 0.1,
        d: rawJson.rawJSON("1.0000000000000000001"),
      },
    };
    const expected = '{"doc":{"d":1.0000000000000000001,"f":0.1,"n":12345678901234567890,"small":[1,2.5,-3]},"id":"1"}';
    assert.equal(stableStringify(record), expected);
    assert.equal(compileCanonicalJson(Doc.schema)(record), expected);
    // a schema that names the document's fields: the compiled copier of a fixed object, with a raw value in it
    const Fixed = Type.Object({
      id: Type.String(),
      doc: Type.Object({ d: Type.Unknown(), f: Type.Number(), n: Type.Unknown(), small: Type.Array(Type.Number()) }),
    });
    assert.equal(compileCanonicalJson(Fixed)(record), expected);
    assert.equal(stableStringify(rawJson.rawJSON("-1e400")), "-1e400", "a raw value at the top");
    const { json, hash } = compileEntity(Doc).fingerprint(record);
    assert.equal(json, expected);
    assert.equal(hash, contentHash(expected));
    // a record made of a row as read: the same text
    const [row] = rowsOf(await readAll(pgFiles.connection, { options: { table: `${schema}.src` }, key: ["id"] }));
    assert.equal(compileEntity(Doc).serialize(toDoc(row as Row)), expected);
  });

  it("PostgreSQL jsonb → MariaDB JSON: COPY read and LOAD DATA, keyset read and INSERT, exactly", () =>
    withEngine(async (engine) => {
      const texts = await jsonbTexts();
      for (const [name, table, statement] of [
        ["pg-copy-to-maria", "from_pg_copy", "LOAD DATA"],
        ["pg-keyset-to-maria", "from_pg_keyset", "INSERT INTO"],
      ] as const) {
        const { result, kinds } = await statementsSent(() => engine.run(name, { trigger: "test" }));
        const { run, counts } = result;
        assert.equal(run.status, "succeeded", `${name}: ${JSON.stringify(run.error)}`);
        assert.equal(counts.targets[`maria.${table}`]?.loaded, docs.length, name);
        assert.deepEqual([...new Set(kinds)], [statement], `${name} writes with ${statement}`);
        assert.deepEqual(
          await mariaDocs(table),
          docs.map(([id], i) => ({
            id,
            // jsonb's own order of keys, without its spaces: JSON.stringify of what was read
            text: (texts[i] as string).replaceAll(", ", ",").replaceAll(": ", ":"),
            same: 1,
            n: id === 1 ? "12345678901234567890" : null,
            d: id === 1 ? "1.0000000000000000001" : null,
          })),
          name,
        );
      }
    }));

  it("MariaDB JSON → PostgreSQL jsonb: encoded read and COPY, and INSERT parameters, exactly", () =>
    withEngine(async (engine) => {
      const texts = await jsonbTexts();
      for (const [name, table] of [
        ["maria-to-pg-copy", "back_copy"],
        ["maria-to-pg-keyset", "back_keyset"],
      ] as const) {
        const { run, counts } = await engine.run(name, { trigger: "test" });
        assert.equal(run.status, "succeeded", `${name}: ${JSON.stringify(run.error)}`);
        assert.equal(counts.targets[`pg.${table}`]?.loaded, docs.length, name);
        assert.deepEqual(
          await pgDocs(table),
          docs.map(([id], i) => ({
            id,
            same: true,
            text: texts[i],
            n: id === 1 ? "12345678901234567890" : null,
            d: id === 1 ? "1.0000000000000000001" : null,
          })),
          name,
        );
      }
    }));

  it("a field the schema says is a number refuses such a value: quarantined with its path, not another number", () =>
    withEngine(async (engine, store) => {
      const { run, counts } = await engine.run("amounts", { trigger: "test" });
      assert.equal(run.status, "partial");
      assert.equal(counts.quarantined, 1);
      assert.equal(counts.targets["pg.amounts"]?.loaded, docs.length - 1);
      const quarantined = await store.records(run.id, { status: "quarantined" });
      assert.deepEqual(
        quarantined.map((record) => [record.key, record.code, record.path, record.message]),
        [["1", ErrorCode.ValidationFailed, "/n", "/n must be number"]],
      );
      assert.deepEqual(await pgFiles.db.query(`SELECT id, n FROM ${schema}.amounts ORDER BY id`), [
        { id: 2, n: 0 },
        { id: 3, n: 0 },
        { id: 4, n: 0 },
      ]);
    }));
});

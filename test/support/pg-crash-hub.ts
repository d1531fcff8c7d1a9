/**
 * The hub of the crash tests of a PostgreSQL source, shared by the tests and their child process: <schema>.src → a
 * target table of <schema>, both PostgreSQL, moved through COPY (read and write), or → MariaDB's `dst` table of a
 * database of the MariaDB crash test's (test/connectors/mysql-crash.test.ts, which makes that table). Two targets: `dst`, whose audit trigger keeps the
 * direct COPY off (each chunk is COPYed into a staging table, then upserted), and `dst_direct`, which each chunk of new
 * keys is COPYed straight into (see directCopySql in src/connectors/postgres/write.ts).
 *
 * The targets' `name` column is of a domain whose check sleeps a millisecond a value, so each chunk's COPY takes a
 * while and the test can kill the child in the middle of one. Their `gate` column (never written: its default) is a
 * deferred foreign key to <schema>.gate, checked at commit (a COMMIT's, or the end of a COPY that is a transaction of
 * its own): while the test holds gate's row locked, every commit into a target waits, and the test can kill the child
 * there, then let the server finish that commit. Each system has its
 * own application_name, for the test to find its connections.
 */
import { mysql } from "../../src/connectors/mysql/index.ts";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Type } from "../../src/index.ts";

export const pgCrashUrl = "postgres://postgres@127.0.0.1:5432/test";
export const pgCrashChunk = 250;

export const Item = entity("Item", {
  version: 1,
  key: "id",
  schema: Type.Object(
    {
      id: Type.String(),
      name: Type.String(),
      amount: Type.Union([Type.String(), Type.Null()]),
      updatedAt: Type.String(),
      doc: Type.Unknown(),
      tags: Type.Union([Type.Array(Type.Union([Type.String(), Type.Null()])), Type.Null()]),
    },
    { additionalProperties: false },
  ),
});

/** The application_name of the source's and the target's connections. */
export function pgCrashApps(schema: string): { source: string; target: string } {
  return { source: `franca-crash-src-${schema}`, target: `franca-crash-dst-${schema}` };
}

/** The target tables: one upserted through a staging table (`dst`), one COPYed into directly (`dst_direct`). */
export type PgCrashTarget = "dst" | "dst_direct";

/** A MariaDB target: the `dst` table of this database. */
export interface MariaCrashTarget {
  maria: string;
}

/**
 * Creates the schema and its source table `src`, filled with `rows` rows of awkward values (tabs, newlines,
 * backslashes, `\N`, an emoji and quotes in text, NULL amounts, microseconds, nested JSON, arrays of quoted and NULL
 * elements), ids beyond 2^53.
 */
export function pgCrashSourceSql(schema: string, rows: number): string[] {
  return [
    `CREATE SCHEMA ${schema}`,
    `CREATE TABLE ${schema}.src (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(14,4),
       updated_at timestamptz NOT NULL, doc jsonb, tags text[])`,
    `CREATE INDEX ON ${schema}.src (updated_at, id)`,
    `INSERT INTO ${schema}.src
       SELECT 9007199254740993 + i,
              'name ' || i || E'\\t tab \\n newline \\\\ backslash \\\\N ' || chr(128512) || ' "q" ''s''',
              CASE WHEN i % 7 = 0 THEN NULL ELSE round(i * 1234.5678 / 7, 4) END,
              '2024-02-29 23:59:59.999999+00'::timestamptz + i * interval '1.000001 second',
              jsonb_build_object('i', i, 'text', E'line\\nnext\\ttab \\\\ "quoted"', 'nested', jsonb_build_object('a', jsonb_build_array(1, 'two', NULL))),
              ARRAY['a,b', '"quoted"', NULL, E'back\\\\slash', '{brace}', 'n' || i]
         FROM generate_series(1, ${rows}) AS i`,
  ];
}

/**
 * Creates the schema: `src` (pgCrashSourceSql), the empty targets, the gate, and the audit
 * of writes: a row of `writes` (target, id) for every row a committed statement inserted or updated in a target.
 * `dst_direct` is partitioned, its audit trigger its one partition's: the table the rows are COPYed into has no
 * trigger of its own, so it takes the direct COPY, and COPY into it fires the partition's row triggers as INSERT does.
 */
export function pgCrashSetupSql(schema: string, rows: number): string[] {
  const columns = `id bigint PRIMARY KEY, name ${schema}.slow_text NOT NULL, amount numeric(14,4),
       updated_at timestamptz NOT NULL, doc jsonb, tags text[],
       gate int NOT NULL DEFAULT 1 REFERENCES ${schema}.gate DEFERRABLE INITIALLY DEFERRED`;
  return [
    ...pgCrashSourceSql(schema, rows),
    `CREATE FUNCTION ${schema}.slow_ok(value text) RETURNS boolean LANGUAGE sql AS 'SELECT true FROM pg_sleep(0.001)'`,
    `CREATE DOMAIN ${schema}.slow_text AS text CHECK (${schema}.slow_ok(VALUE))`,
    `CREATE TABLE ${schema}.gate (id int PRIMARY KEY)`,
    `INSERT INTO ${schema}.gate VALUES (1)`,
    `CREATE TABLE ${schema}.dst (${columns})`,
    `CREATE TABLE ${schema}.dst_direct (${columns}) PARTITION BY RANGE (id)`,
    `CREATE TABLE ${schema}.dst_direct_all PARTITION OF ${schema}.dst_direct DEFAULT`,
    `CREATE TABLE ${schema}.writes (target text NOT NULL, id bigint NOT NULL)`,
    `CREATE FUNCTION ${schema}.audit() RETURNS trigger LANGUAGE plpgsql AS
       'BEGIN INSERT INTO ${schema}.writes VALUES (TG_ARGV[0], NEW.id); RETURN NEW; END'`,
    `CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${schema}.dst
       FOR EACH ROW EXECUTE FUNCTION ${schema}.audit('dst')`,
    `CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${schema}.dst_direct_all
       FOR EACH ROW EXECUTE FUNCTION ${schema}.audit('dst_direct')`,
  ];
}

export function pgCrashHub(schema: string, table: PgCrashTarget | MariaCrashTarget = "dst") {
  const apps = pgCrashApps(schema);
  const crm = postgres("crm", { url: pgCrashUrl, applicationName: apps.source });
  const erp =
    typeof table === "string"
      ? postgres("erp", { url: pgCrashUrl, applicationName: apps.target })
      : mysql("erp", { url: `mysql://root@127.0.0.1:3306/${table.maria}` });
  const source = bind(crm, Item, {
    table: `${schema}.src`,
    key: "id",
    cursor: "updated_at",
    toCanonical: (row) => ({
      id: String(row.id),
      name: row.name as string,
      amount: row.amount as string | null,
      updatedAt: row.updated_at as string,
      doc: row.doc,
      tags: row.tags as (string | null)[] | null,
    }),
  });
  // the same columns in both: MariaDB's DATETIME takes PostgreSQL's timestamptz text as UTC, its JSON columns the doc
  // and the tags
  const target = bind(erp, Item, {
    table: typeof table === "string" ? `${schema}.${table}` : "dst",
    key: "id",
    fromCanonical: (item) => ({
      id: item.id,
      name: item.name,
      amount: item.amount,
      updated_at: item.updatedAt,
      doc: item.doc,
      tags: item.tags,
    }),
  });
  return defineHub({
    systems: [crm, erp],
    entities: [Item],
    flows: [flow("items", { from: source, to: target, chunkSize: pgCrashChunk, loadConcurrency: 1 })],
    heartbeatMs: 200,
    staleAfterMs: 2000,
  });
}

/**
 * The hub of the PostgreSQL crash test, shared by the test and its child process: <schema>.src → <schema>.dst, both
 * PostgreSQL, moved through COPY (read and write). The target's `name` column is of a domain whose check sleeps a
 * millisecond a value, so each chunk's COPY into the staging table takes a while and the test can kill the child in
 * the middle of one. Each system has its own application_name, for the test to find its connections.
 */
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

/** Creates the schema: `src` (filled with `rows` rows of awkward values), an empty `dst`, and the audit of writes. */
export function pgCrashSetupSql(schema: string, rows: number): string[] {
  return [
    `CREATE SCHEMA ${schema}`,
    `CREATE FUNCTION ${schema}.slow_ok(value text) RETURNS boolean LANGUAGE sql AS 'SELECT true FROM pg_sleep(0.001)'`,
    `CREATE DOMAIN ${schema}.slow_text AS text CHECK (${schema}.slow_ok(VALUE))`,
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
    `CREATE TABLE ${schema}.dst (id bigint PRIMARY KEY, name ${schema}.slow_text NOT NULL, amount numeric(14,4),
       updated_at timestamptz NOT NULL, doc jsonb, tags text[])`,
    `CREATE TABLE ${schema}.writes (id bigint)`,
    `CREATE FUNCTION ${schema}.audit() RETURNS trigger LANGUAGE plpgsql AS
       'BEGIN INSERT INTO ${schema}.writes VALUES (NEW.id); RETURN NEW; END'`,
    `CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${schema}.dst FOR EACH ROW EXECUTE FUNCTION ${schema}.audit()`,
  ];
}

export function pgCrashHub(schema: string) {
  const apps = pgCrashApps(schema);
  const crm = postgres("crm", { url: pgCrashUrl, applicationName: apps.source });
  const erp = postgres("erp", { url: pgCrashUrl, applicationName: apps.target });
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
  const target = bind(erp, Item, {
    table: `${schema}.dst`,
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

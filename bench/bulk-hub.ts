/**
 * The hub of bench:bulk's engine parts, as a module (the engine's transform threads import it, as they import a
 * franca.config.ts): PostgreSQL → PostgreSQL or PostgreSQL → MariaDB, with a mapping that renames every field both
 * ways and rewrites the timestamp as RFC 3339, and full validation (email format, decimal, date-time, the jsonb as a
 * typed object with an enum and a pattern). Its settings come from the environment, which the threads share:
 *
 *   FRANCA_BULK_TARGET  pg | maria               FRANCA_BULK_SOURCE  the source table (schema-qualified)
 *   FRANCA_BULK_PG      PostgreSQL URL            FRANCA_BULK_MARIA   MariaDB URL
 *   FRANCA_BULK_STORE   the SQLite store file     FRANCA_BULK_CHUNK_SIZE, FRANCA_BULK_LOAD_CONCURRENCY (optional)
 *   FRANCA_BULK_FROM    pg (default) | maria: the source, PostgreSQL's table or MariaDB's (the one a PostgreSQL →
 *                       MariaDB run wrote, read back into PostgreSQL: its pages as JSON lines of mysql2's values,
 *                       which the threads decode)
 *   FRANCA_BULK_SOURCE_COPY  false: the PostgreSQL source read by keyset pages of SELECT (its binding's `copy: false`),
 *                       decoded rows staged as JSON, which the threads parse, rather than COPY text
 */
import Type from "typebox";
import { postgres } from "../src/connectors/postgres/index.ts";
import { bind, type Row } from "../src/core/binding.ts";
import { entity } from "../src/core/entity.ts";
import { flow } from "../src/core/flow.ts";
import { defineHub } from "../src/core/hub.ts";
import { Money, Timestamp } from "../src/core/types.ts";
import { mariaTarget } from "./bulk-tables.ts";

const setting = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`bench/bulk-hub.ts needs ${name}`);
  return value;
};
const maria = setting("FRANCA_BULK_TARGET") === "maria";
const pgUrl = setting("FRANCA_BULK_PG");

/** PostgreSQL's timestamptz text (`2025-01-01 00:00:01.000001+00`) → RFC 3339 (`2025-01-01T00:00:01.000001+00:00`). */
function rfc3339(text: string): string {
  const iso = `${text.slice(0, 10)}T${text.slice(11)}`;
  return /[+-]\d\d$/.test(iso) ? `${iso}:00` : iso;
}

export const Account = entity("Account", {
  version: 1,
  key: "id",
  schema: Type.Object(
    {
      id: Type.Integer({ minimum: 1 }),
      name: Type.String({ minLength: 1 }),
      email: Type.String({ format: "email" }),
      balance: Money(),
      updatedAt: Timestamp(),
      profile: Type.Object({
        segment: Type.Union([Type.Literal("retail"), Type.Literal("wholesale"), Type.Literal("online")]),
        score: Type.Integer({ minimum: 0 }),
        tags: Type.Array(Type.String()),
        active: Type.Boolean(),
        address: Type.Object({
          street: Type.String(),
          city: Type.String(),
          zip: Type.String({ pattern: "^\\d{5}$" }),
        }),
        note: Type.String(),
      }),
    },
    { additionalProperties: false },
  ),
});

const fromMaria = process.env.FRANCA_BULK_FROM === "maria";
// the MariaDB connector only where MariaDB is used: a PostgreSQL run's memory is then the engine's and pg's alone
const mysql = maria || fromMaria ? (await import("../src/connectors/mysql/index.ts")).mysql : undefined;
const erp = fromMaria
  ? (mysql as NonNullable<typeof mysql>)("erp", { url: setting("FRANCA_BULK_MARIA") })
  : postgres("erp", { url: pgUrl });
const target = maria
  ? (mysql as NonNullable<typeof mysql>)("warehouse", { url: setting("FRANCA_BULK_MARIA") })
  : postgres("warehouse", { url: pgUrl });

/** The source binding: PostgreSQL's table, or MariaDB's with its renamed columns (DATETIME as UTC wall time). */
const source = fromMaria
  ? bind(erp, Account, {
      table: mariaTarget,
      key: "account_id",
      cursor: "changed_at",
      toCanonical: (row: Row) => ({
        id: Number(row.account_id),
        name: row.display_name as string,
        email: row.email as string,
        balance: row.balance as string,
        updatedAt: `${(row.changed_at as string).replace(" ", "T")}Z`,
        profile: row.profile as never,
      }),
    })
  : bind(erp, Account, {
      table: setting("FRANCA_BULK_SOURCE"),
      ...(process.env.FRANCA_BULK_SOURCE_COPY === "false" ? { copy: false } : {}),
      key: "id",
      cursor: "updated_at",
      toCanonical: (row: Row) => ({
        id: Number(row.id),
        name: row.name as string,
        email: row.email as string,
        balance: row.amount as string,
        updatedAt: rfc3339(row.updated_at as string),
        profile: row.doc as never,
      }),
    });
const chunkSize = process.env.FRANCA_BULK_CHUNK_SIZE;
const loadConcurrency = process.env.FRANCA_BULK_LOAD_CONCURRENCY;

export default defineHub({
  systems: [erp, target],
  entities: [Account],
  store: setting("FRANCA_BULK_STORE"),
  flows: [
    flow("accounts", {
      ...(chunkSize === undefined ? {} : { chunkSize: Number(chunkSize) }),
      ...(loadConcurrency === undefined ? {} : { loadConcurrency: Number(loadConcurrency) }),
      from: source,
      to: bind(target, Account, {
        table: maria ? mariaTarget : `${setting("FRANCA_BULK_SOURCE").split(".")[0]}.dst`,
        key: "account_id",
        fromCanonical: (account) => ({
          account_id: account.id,
          display_name: account.name,
          email: account.email,
          balance: account.balance,
          changed_at: account.updatedAt,
          profile: account.profile,
        }),
      }),
    }),
  ],
});

/**
 * The hub of the PostgreSQL ↔ MariaDB round-trip test, as a module (the engine's transform threads import it, as
 * they import a franca.config.ts). Its settings come from the environment, which the threads share:
 * FRANCA_RT_PG_SCHEMA (the PostgreSQL schema of `items` and `items_back`) and FRANCA_RT_MARIA_URL (the MariaDB
 * database of `items`).
 *
 * `to-maria`: <schema>.items → MariaDB items (COPY read, LOAD DATA or INSERT write); `to-pg`: back, incrementally by
 * MariaDB's `seen_at`, into <schema>.items_back. Chunks of 2 records; `to-maria-wide` and `to-pg-wide` the same in
 * chunks of up to 250. Bytes travel as base64 in the record (records are JSON), booleans as booleans (MariaDB's
 * BOOLEAN reads as 0 or 1).
 */
import { mysql } from "../../src/connectors/mysql/index.ts";
import { postgres } from "../../src/connectors/postgres/index.ts";
import type { Row } from "../../src/core/binding.ts";
import { bind, defineHub, entity, flow, Type } from "../../src/index.ts";

const pgUrl = "postgres://postgres@127.0.0.1:5432/test";
const pgSchema = process.env.FRANCA_RT_PG_SCHEMA ?? "franca_roundtrip";
const mariaUrl = process.env.FRANCA_RT_MARIA_URL ?? "mysql://root@127.0.0.1:3306/test";

export const Item = entity("Item", {
  version: 1,
  key: "id",
  schema: Type.Object(
    {
      id: Type.String(),
      label: Type.Union([Type.String(), Type.Null()]),
      big: Type.Union([Type.String(), Type.Null()]),
      amount: Type.Union([Type.String(), Type.Null()]),
      at: Type.Union([Type.String(), Type.Null()]),
      doc: Type.Unknown(),
      f: Type.Union([Type.Number(), Type.Null()]),
      n: Type.Union([Type.String(), Type.Null()]),
      raw: Type.Union([Type.String(), Type.Null()]),
      flag: Type.Union([Type.Boolean(), Type.Null()]),
      day: Type.Union([Type.String(), Type.Null()]),
    },
    { additionalProperties: false },
  ),
});

const toItem = (row: Row) => ({
  id: String(row.id),
  label: row.label as string | null,
  big: row.big as string | null,
  amount: row.amount as string | null,
  at: row.at as string | null,
  doc: row.doc,
  f: row.f as number | null,
  n: row.n as string | null,
  raw: row.raw === null ? null : Buffer.from(row.raw as Uint8Array).toString("base64"),
  flag: row.flag === null ? null : Boolean(row.flag),
  day: row.day as string | null,
});
const fromItem = (item: ReturnType<typeof toItem>) => ({
  ...item,
  id: Number(item.id),
  raw: item.raw === null ? null : Buffer.from(item.raw, "base64"),
});
// The PostgreSQL connector sends a string for a json column as JSON text (objects and arrays as their JSON), unlike
// the MySQL connector, which stores it as a JSON string: a JSON string scalar goes to PostgreSQL as its JSON text, or
// it would be refused (invalid JSON) or, for a string like "123", land as another JSON value.
const fromItemToPg = (item: ReturnType<typeof toItem>) => ({
  ...fromItem(item),
  doc: typeof item.doc === "string" ? JSON.stringify(item.doc) : item.doc,
});

const pgSource = postgres("pg-source", { url: pgUrl });
const pgTarget = postgres("pg-target", { url: pgUrl });
const maria = mysql("maria", { url: mariaUrl, poolSize: 2 });

const fromPg = bind(pgSource, Item, { table: `${pgSchema}.items`, key: "id", toCanonical: toItem });
const toMaria = bind(maria, Item, { name: "maria.items", table: "items", key: "id", fromCanonical: fromItem });
const fromMaria = bind(maria, Item, {
  name: "maria.items-source",
  table: "items",
  key: "id",
  cursor: "seen_at",
  toCanonical: toItem,
});
const toPg = bind(pgTarget, Item, {
  name: "pg.items_back",
  table: `${pgSchema}.items_back`,
  key: "id",
  fromCanonical: fromItemToPg,
});

export default defineHub({
  systems: [pgSource, pgTarget, maria],
  entities: [Item],
  flows: [
    flow("to-maria", { from: fromPg, to: toMaria, chunkSize: 2 }),
    flow("to-pg", { from: fromMaria, to: toPg, chunkSize: 2 }),
    // the same in chunks of up to 250 records: a transform thread streams them a piece of 100 rows at a time; loaded
    // one chunk at a time, so that the statements writing them come in chunk order (the test checks which each took)
    flow("to-maria-wide", { from: fromPg, to: toMaria, chunkSize: 250, loadConcurrency: 1 }),
    flow("to-pg-wide", { from: fromMaria, to: toPg, chunkSize: 250 }),
  ],
});

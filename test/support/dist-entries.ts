/**
 * A small PostgreSQL → PostgreSQL flow on a PostgreSQL store for the distributed executor's tests that run its jobs in
 * the test's own process: `entries`, from `<app>.src` to `<app>.dst` (id integer, name text), in chunks of 10, with
 * the test's own mapping; and schemas of the test's own (the store's and the tables'), dropped after it.
 */
import { randomBytes } from "node:crypto";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { bind, type Row, type ToCanonical } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { type DriftPolicy, type FailurePolicy, flow } from "../../src/core/flow.ts";
import { defineHub, type Hub } from "../../src/core/hub.ts";
import { Type } from "../../src/index.ts";
import { dropStoreSchemas, pgStatements, pgUrl } from "./pg-schema.ts";

export const Entry = entity("Entry", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.Integer(), name: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
});

export interface EntriesSpec {
  /** The store's schema; the tables live in `app`. */
  schema: string;
  app: string;
  toCanonical: ToCanonical<typeof Entry, Row>;
  failure?: FailurePolicy;
  drift?: DriftPolicy;
  /** The hub's heartbeat (how soon a worker sees that a run ended elsewhere). */
  heartbeatMs?: number;
}

/** The tables of `entries` in `app`: `src` holding `rows` rows named by `name` (SQL over `i`), an empty `dst`. */
export function entriesTablesSql(app: string, rows: number, name = "'n' || i"): string[] {
  return [
    `CREATE TABLE ${app}.src (id integer PRIMARY KEY, name text NOT NULL)`,
    `INSERT INTO ${app}.src SELECT i, ${name} FROM generate_series(1, ${rows}) AS i`,
    `CREATE TABLE ${app}.dst (id integer PRIMARY KEY, name text NOT NULL)`,
  ];
}

export function entriesHub(spec: EntriesSpec): Hub {
  const db = postgres("db", { url: pgUrl });
  return defineHub({
    store: `${pgUrl}?schema=${spec.schema}`,
    systems: [db],
    entities: [Entry],
    flows: [
      flow("entries", {
        from: bind(db, Entry, { name: "src", table: `${spec.app}.src`, key: "id", toCanonical: spec.toCanonical }),
        to: bind(db, Entry, { name: "dst", table: `${spec.app}.dst`, key: "id", fromCanonical: (entry) => entry }),
        chunkSize: 10,
        ...(spec.failure === undefined ? {} : { failure: spec.failure }),
        ...(spec.drift === undefined ? {} : { drift: spec.drift }),
      }),
    ],
    ...(spec.heartbeatMs === undefined ? {} : { heartbeatMs: spec.heartbeatMs }),
  });
}

/** A store schema and a tables' schema (`<schema>_app`, created) of the test's own, dropped after `work`. */
export async function withEntrySchemas(prefix: string, work: (schema: string, app: string) => Promise<void>) {
  const schema = `${prefix}_${randomBytes(5).toString("hex")}`;
  const app = `${schema}_app`;
  await pgStatements([`CREATE SCHEMA ${app}`]);
  try {
    await work(schema, app);
  } finally {
    await dropStoreSchemas(schema);
    await pgStatements([`DROP SCHEMA IF EXISTS ${app} CASCADE`]);
  }
}

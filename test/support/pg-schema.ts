/**
 * A PostgreSQL schema of a test file's own, and the PostgreSQL connector's connections to it: the schema is created
 * before the file's tests and dropped after them, with every connection opened through `open` closed.
 */
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { after, before } from "node:test";
import pg from "pg";
import { type PostgresClient, postgres, postgresDriver } from "../../src/connectors/postgres/index.ts";
import type { Connection } from "../../src/connectors/types.ts";
import { queueSchemaOf } from "../../src/engine/distributed/queue.ts";

export const pgUrl = "postgres://postgres@127.0.0.1:5432/test";

/** A signal that never aborts. */
export const never = new AbortController().signal;

export interface PgTestSchema {
  readonly url: string;
  /** `<prefix>_<suffix>`. */
  readonly schema: string;
  /** Random, for names of the file's own (application names, say). */
  readonly suffix: string;
  /** The file's first connection, and its client (from `before` on). */
  readonly connection: Connection;
  readonly db: PostgresClient;
  open(settings?: Parameters<typeof postgres>[1], name?: string): Connection;
  clientOf(from: Connection): PostgresClient;
  /** The connections of one application_name on the server, with what each is doing. */
  backends(app: string): Promise<{ pid: number; state: string; wait: string | null; query: string }[]>;
}

export function pgTestSchema(prefix: string): PgTestSchema {
  const suffix = randomBytes(5).toString("hex");
  const schema = `${prefix}_${suffix}`;
  const opened: Connection[] = [];
  let connection: Connection | undefined;
  let db: PostgresClient | undefined;
  const open = (settings: Parameters<typeof postgres>[1] = { url: pgUrl }, name = "db"): Connection => {
    const made = postgresDriver.open(postgres(name, settings), { baseDir: tmpdir() });
    opened.push(made);
    return made;
  };
  const clientOf = (from: Connection): PostgresClient =>
    (from.client as NonNullable<Connection["client"]>)() as PostgresClient;

  before(async () => {
    // set before the first await: node:test starts a file's next top-level hook (the file's own) at this one's await
    connection = open();
    db = clientOf(connection);
    await db.query(`CREATE SCHEMA ${schema}`);
  });

  after(async () => {
    for (const made of opened) await made.close();
    const cleanup = new pg.Client({ connectionString: pgUrl });
    await cleanup.connect();
    await cleanup.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await cleanup.end();
  });

  return {
    url: pgUrl,
    schema,
    suffix,
    get connection() {
      return connection as Connection;
    },
    get db() {
      return db as PostgresClient;
    },
    open,
    clientOf,
    backends: (app) =>
      (db as PostgresClient).query(
        "SELECT pid, state, wait_event AS wait, query FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
        [app],
      ),
  };
}

export { until } from "./poll.ts";

/** Runs statements one after the other on a connection of their own to the test database; the last one's rows. */
export async function pgStatements(statements: readonly string[]): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    let rows: pg.QueryResultRow[] = [];
    for (const statement of statements) rows = (await client.query(statement)).rows;
    return rows;
  } finally {
    await client.end();
  }
}

/** Drops a PostgreSQL store's schema and its job queue's (a distributed run's), from a connection of its own. */
export async function dropStoreSchemas(schema: string): Promise<void> {
  await pgStatements([schema, queueSchemaOf(schema)].map((name) => `DROP SCHEMA IF EXISTS "${name}" CASCADE`));
}

/** How many COPY staging tables (temporary, `franca_copy_*`) the client's session holds. */
export async function stagingTables(client: PostgresClient): Promise<number | undefined> {
  const [counted] = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relname LIKE 'franca\\_copy\\_%'`,
  );
  return counted?.n;
}

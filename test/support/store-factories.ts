/**
 * Fresh, migrated, empty stores for suites that run the same scenarios against every Store implementation: a SQLite
 * file in a temp directory, or a PostgreSQL schema of its own (random suffix) in the test database. `dispose` removes
 * what the factory made (the temp directory, the schemas); close every store it opened first.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { queueSchemaOf } from "../../src/engine/distributed/queue.ts";
import { PostgresStore } from "../../src/store/postgres/store.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import type { Store } from "../../src/store/types.ts";
import { tempDir } from "./fixtures.ts";

/** The test PostgreSQL (15, trust authentication). */
export const testPostgresUrl = "postgres://postgres@127.0.0.1:5432/test";

export interface StoreFactory {
  /** `SQLite` or `PostgreSQL`: for test names. */
  readonly name: string;
  /** A fresh, migrated, empty store. The caller closes it. */
  open(): Promise<Store>;
  /** Removes everything the factory created. */
  dispose(): Promise<void>;
}

/** One SQLite file per store, `store-<n>.db`, in one temp directory. */
export function sqliteStores(): StoreFactory {
  const tmp = tempDir("franca-stores-");
  let next = 0;
  return {
    name: "SQLite",
    async open() {
      const store = new SqliteStore(join(tmp.dir, `store-${next++}.db`));
      await store.migrate();
      return store;
    },
    async dispose() {
      rmSync(tmp.dir, { recursive: true, force: true });
    },
  };
}

/** One schema per store, `franca_e<random>_<n>`, dropped by `dispose`. */
export function postgresStores(url = testPostgresUrl): StoreFactory {
  const prefix = `franca_e${randomBytes(4).toString("hex")}`;
  const schemas: string[] = [];
  return {
    name: "PostgreSQL",
    async open() {
      const schema = `${prefix}_${schemas.length}`;
      schemas.push(schema);
      const store = new PostgresStore(url, { schema });
      try {
        await store.migrate();
      } catch (error) {
        await store.close();
        throw error;
      }
      return store;
    },
    async dispose() {
      if (schemas.length === 0) return;
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        // the store's schema, and its job queue's when the distributed executor ran on it
        for (const schema of schemas.splice(0))
          for (const name of [schema, queueSchemaOf(schema)])
            await admin.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

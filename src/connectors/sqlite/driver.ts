import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { pathToFileURL } from "node:url";
import type { System } from "../../core/system.ts";
import { probeHealth } from "../pooled.ts";
import { settingsChecker } from "../settings.ts";
import { sourceRelation, tableOrQueryIssues } from "../sql.ts";
import type { Connection, Driver, DriverEnv } from "../types.ts";
import { sqliteError } from "./errors.ts";
import { SqliteBindingOptions, SqliteSystemOptions } from "./options.ts";
import { readSqlite } from "./read.ts";
import { writeSqlite } from "./write.ts";

const checkSystem = settingsChecker(SqliteSystemOptions);
const checkBinding = settingsChecker(SqliteBindingOptions);

export interface SqliteClient {
  /** Runs a query and returns its rows. */
  query(sql: string, params?: readonly unknown[]): Record<string, unknown>[];
  readonly db: DatabaseSync;
}

/** A file's URL that SQLite opens only if the file exists. */
function existingFile(file: string): URL {
  const url = pathToFileURL(file);
  url.searchParams.set("mode", "rw");
  return url;
}

function open(system: System, env: DriverEnv): Connection {
  const options = system.options as SqliteSystemOptions;
  const file = resolve(env.baseDir, options.file);
  let db: DatabaseSync | undefined;
  const database = (): DatabaseSync => {
    if (db === undefined) {
      try {
        // without `create`, opened read-write only (SQLite's `mode=rw`): a file that is not there is an error, not a
        // new empty database that a run would then read nothing from
        db = new DatabaseSync(options.create === true ? file : existingFile(file), {
          timeout: options.busyTimeoutMs ?? 5000,
        });
      } catch (error) {
        throw sqliteError(error, system.name, `cannot open SQLite file ${file}`);
      }
    }
    return db;
  };
  return {
    read(request) {
      return readSqlite(database(), request);
    },
    async write(request) {
      // On this thread: measured against a writer thread on two cores, copying each chunk to another thread cost
      // more than the upsert it moved (docs/benchmarks.md). A chunk's upsert is one short transaction.
      const table = (request.options as SqliteBindingOptions).table as string;
      return writeSqlite(
        database(),
        system.name,
        table,
        request.key,
        request.items.map((item) => item.row),
      );
    },
    async columns(options) {
      const relation = sourceRelation(options as SqliteBindingOptions, '"');
      try {
        const statement = database().prepare(`SELECT * FROM ${relation} LIMIT 0`);
        // run first: a statement's columns are those of the schema it was compiled against, which a step brings up
        // to date when another connection has changed the table since
        statement.all();
        return { names: statement.columns().map((column) => column.name), caseSensitive: false };
      } catch (error) {
        throw sqliteError(error, system.name, `cannot read ${relation}`);
      }
    },
    client(): SqliteClient {
      return {
        query: (sql, params = []) =>
          database()
            .prepare(sql)
            .all(...(params as SQLInputValue[])) as Record<string, unknown>[],
        get db() {
          return database();
        },
      };
    },
    health() {
      return probeHealth(() => database().prepare("SELECT 1").get());
    },
    async close() {
      db?.close();
      db = undefined;
    },
  };
}

export const sqliteDriver: Driver = {
  type: "sqlite",
  canRead: true,
  canWrite: true,
  validateSystem: (options) => checkSystem(options),
  validateBinding: (options, role) => [...checkBinding(options), ...tableOrQueryIssues(options, role)],
  preflight(system, env) {
    const options = system.options as SqliteSystemOptions;
    const file = resolve(env.baseDir, options.file);
    if (existsSync(file)) return [];
    if (!options.create)
      return [{ setting: "file", message: `${file} does not exist (set create: true to create it)` }];
    if (!existsSync(dirname(file))) return [{ setting: "file", message: `directory ${dirname(file)} does not exist` }];
    return [];
  },
  open,
  // a target table is written by upsert on the binding's key
  replacesByKey: () => true,
  // a query's rows carry each of its columns
  fieldsInEveryRow: () => true,
};

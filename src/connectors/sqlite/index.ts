import type { CommonSystemSettings, System } from "../../core/system.ts";
import { defineSystem } from "../../core/system.ts";
import { type SqliteClient, sqliteDriver } from "./driver.ts";
import type { SqliteBindingOptions, SqliteSystemOptions } from "./options.ts";

export type { SqliteBindingOptions, SqliteClient, SqliteSystemOptions };
export { sqliteDriver };

/** A SQLite database file: `sqlite("erp", { file: "erp.db" })`. */
export function sqlite(
  name: string,
  settings: SqliteSystemOptions & CommonSystemSettings,
): System<SqliteBindingOptions, SqliteClient> {
  return defineSystem(sqliteDriver, name, settings as unknown as Record<string, unknown>);
}

import type { CommonSystemSettings, System } from "../../core/system.ts";
import { defineSystem } from "../../core/system.ts";
import { type PostgresClient, postgresDriver } from "./driver.ts";
import type { PostgresBindingOptions, PostgresSystemOptions } from "./options.ts";

export type { PostgresBindingOptions, PostgresClient, PostgresSystemOptions };
export { postgresDriver };

/** A PostgreSQL database: `postgres("erp", { url: "postgres://app@db.internal:5432/erp" })`. */
export function postgres(
  name: string,
  settings: PostgresSystemOptions & CommonSystemSettings,
): System<PostgresBindingOptions, PostgresClient> {
  return defineSystem(postgresDriver, name, settings as unknown as Record<string, unknown>);
}

import type { CommonSystemSettings, System } from "../../core/system.ts";
import { defineSystem } from "../../core/system.ts";
import { type MysqlClient, mysqlDriver } from "./driver.ts";
import type { MysqlBindingOptions, MysqlSystemOptions } from "./options.ts";

export type { MysqlBindingOptions, MysqlClient, MysqlSystemOptions };
export { mysqlDriver };

/**
 * A MariaDB or MySQL database: `mysql("shop", { url: "mariadb://app@db.internal:3306/shop" })`.
 *
 * Values read are exact (see options.ts): DECIMAL and BIGINT as strings, DATETIME/TIMESTAMP/DATE as the server's
 * text in a UTC session, JSON parsed, binary columns as Buffers. Writes are upserts (INSERT … ON DUPLICATE KEY
 * UPDATE) on a PRIMARY KEY or UNIQUE index over the binding's key, one transaction per write call, a refused row
 * quarantined alone; a batch whose keys are all new goes through LOAD DATA LOCAL INFILE instead, landing the same
 * (binding setting `load`). Rows may be encoded ahead on the engine's transform threads (`describeTarget`,
 * `prepare`).
 */
export function mysql(
  name: string,
  settings: MysqlSystemOptions & CommonSystemSettings,
): System<MysqlBindingOptions, MysqlClient> {
  return defineSystem(mysqlDriver, name, settings as unknown as Record<string, unknown>);
}

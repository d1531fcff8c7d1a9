/**
 * `Connection.columns` of the SQL connectors against their real servers: a table's or a query's column names, and
 * the system's error, named, for a table that is not there.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import type { Connection, Driver } from "../../src/connectors/types.ts";
import { tempDir } from "../support/fixtures.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";
import { never, pgTestSchema } from "../support/pg-schema.ts";

const pg = pgTestSchema("franca_columns");
const maria = mysqlTestDatabase("franca_columns");

const columnsOf = (connection: Connection, options: Record<string, unknown>) =>
  (connection.columns as NonNullable<Connection["columns"]>)(options, never);

describe("the columns of a binding's relation", () => {
  it("PostgreSQL: a table's (schema-qualified), a query's; a missing table is the server's error, named", async () => {
    await pg.db.query(
      `CREATE TABLE ${pg.schema}.clients (code text PRIMARY KEY, "Full Name" text, updated_at timestamptz)`,
    );
    assert.deepEqual(await columnsOf(pg.connection, { table: `${pg.schema}.clients` }), [
      "code",
      "Full Name",
      "updated_at",
    ]);
    assert.deepEqual(
      await columnsOf(pg.connection, { query: `SELECT code AS id, updated_at FROM ${pg.schema}.clients` }),
      ["id", "updated_at"],
    );
    await assert.rejects(columnsOf(pg.connection, { table: `${pg.schema}.client` }), (error: Error) => {
      assert.match(error.message, /cannot read ".*"\."client"/);
      assert.match(error.message, /does not exist/);
      return true;
    });
  });

  it("MariaDB: a table's, a query's; a missing table is the server's error, named", async () => {
    await maria.db.query("CREATE TABLE clients (code VARCHAR(20) PRIMARY KEY, full_name TEXT, changed_at DATETIME)");
    assert.deepEqual(await columnsOf(maria.connection, { table: "clients" }), ["code", "full_name", "changed_at"]);
    assert.deepEqual(await columnsOf(maria.connection, { query: "SELECT code AS id FROM clients" }), ["id"]);
    await assert.rejects(columnsOf(maria.connection, { table: "client" }), /cannot read `client`.*doesn't exist/s);
  });

  it("SQLite: a table's, as it is now; a missing table is the error, named", async () => {
    using tmp = tempDir();
    const file = join(tmp.dir, "erp.db");
    const db = new DatabaseSync(file);
    db.exec("CREATE TABLE clients (code TEXT PRIMARY KEY, full_name TEXT)");
    db.close();
    const system = sqlite("erp", { file });
    const connection = (system.driver as Driver).open(system, { baseDir: tmp.dir });
    try {
      assert.deepEqual(await columnsOf(connection, { table: "clients" }), ["code", "full_name"]);
      // changed by another connection since: the columns as they are now
      const other = new DatabaseSync(file);
      other.exec("ALTER TABLE clients RENAME COLUMN full_name TO name");
      other.close();
      assert.deepEqual(await columnsOf(connection, { table: "clients" }), ["code", "name"]);
      await assert.rejects(columnsOf(connection, { table: "client" }), /cannot read "client".*no such table/s);
    } finally {
      await connection.close();
    }
  });
});

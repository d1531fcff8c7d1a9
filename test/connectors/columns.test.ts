/**
 * `Connection.columns` of the SQL connectors against their real servers: a table's or a query's column names, and
 * the system's error, named, for a table that is not there.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import type { Connection, Driver } from "../../src/connectors/types.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { columnIssues } from "../../src/engine/preflight.ts";
import { Type } from "../../src/index.ts";
import { tempDir } from "../support/fixtures.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";
import { never, pgTestSchema } from "../support/pg-schema.ts";

const pg = pgTestSchema("franca_columns");
const maria = mysqlTestDatabase("franca_columns");

const columnsOf = async (connection: Connection, options: Record<string, unknown>) =>
  (await (connection.columns as NonNullable<Connection["columns"]>)(options, never)).names;
const caseOf = async (connection: Connection, options: Record<string, unknown>) =>
  (await (connection.columns as NonNullable<Connection["columns"]>)(options, never)).caseSensitive;

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
    assert.equal(await caseOf(pg.connection, { table: `${pg.schema}.clients` }), true, "names are quoted");
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
    assert.equal(await caseOf(maria.connection, { table: "clients" }), false);
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
  it("a run's check compares PostgreSQL's names in case: a cursor 'updatedAt' is not the column updatedat", async () => {
    await pg.db.query(`CREATE TABLE ${pg.schema}.accounts (id bigint PRIMARY KEY, updatedat timestamptz)`);
    const Account = entity("Account", {
      version: 1,
      key: "id",
      schema: Type.Object({ id: Type.Integer() }),
    });
    const db = postgres("db", { url: pg.url });
    const accounts = flow("accounts", {
      from: bind(db, Account, { table: `${pg.schema}.accounts`, key: "id", cursor: "updatedAt" }),
      to: bind(db, Account, { table: `${pg.schema}.accounts`, key: "id" }),
    });
    const issues = await columnIssues(accounts, () => pg.connection, "skip");
    assert.deepEqual(
      issues.map((issue) => [issue.setting, issue.message.split(" (")[0]]),
      [["flows.accounts.from.cursor", `column 'updatedAt' is not in table ${pg.schema}.accounts`]],
    );
    assert.match(issues[0]?.message ?? "", /did you mean 'updatedat'/);
  });
  it("a run's check reports a table the system says is not there, and skips a system that does not answer", async () => {
    await pg.db.query(`CREATE TABLE ${pg.schema}.ledger (id bigint PRIMARY KEY)`);
    const Account = entity("Account", { version: 1, key: "id", schema: Type.Object({ id: Type.Integer() }) });
    const db = postgres("db", { url: pg.url });
    const accounts = flow("accounts", {
      from: bind(db, Account, { table: `${pg.schema}.ledger`, key: "id" }),
      to: bind(db, Account, { table: `${pg.schema}.legder`, key: "id" }),
    });
    const issues = await columnIssues(accounts, () => pg.connection, "skip");
    assert.deepEqual(
      issues.map((issue) => [issue.code, issue.setting]),
      [[ErrorCode.ConfigUnreachable, "flows.accounts.to[0].table"]],
    );
    assert.match(issues[0]?.message ?? "", /legder.*does not exist/s);
    // nothing listens on port 1: refused, transient, the run's policy meets it
    const down = postgres("down", { url: "postgres://postgres@127.0.0.1:1/test" });
    const connection = (down.driver as Driver).open(down, { baseDir: "." });
    try {
      const elsewhere = flow("elsewhere", {
        from: bind(down, Account, { table: "ledger", key: "id" }),
        to: bind(down, Account, { table: "ledger", key: "id" }),
      });
      assert.deepEqual(await columnIssues(elsewhere, () => connection, "skip"), []);
    } finally {
      await connection.close();
    }
  });
});

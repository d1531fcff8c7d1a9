import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { httpDriver } from "../../src/connectors/http/driver.ts";
import { mysqlDriver } from "../../src/connectors/mysql/driver.ts";
import { postgresDriver } from "../../src/connectors/postgres/driver.ts";
import { batchColumns } from "../../src/connectors/sql.ts";
import type { System } from "../../src/core/system.ts";

const preflight = (driver: typeof mysqlDriver, options: Record<string, unknown>) =>
  (driver.preflight?.({ name: "db", options } as unknown as System, { baseDir: "." }) ?? []).map(
    (issue) => `${issue.setting}: ${issue.message}`,
  );
const validate = (driver: typeof mysqlDriver, options: Record<string, unknown>) =>
  driver.validateSystem(options).map((issue) => `${issue.setting}: ${issue.message}`);

describe("database connection settings (PostgreSQL, MariaDB)", () => {
  for (const driver of [postgresDriver, mysqlDriver]) {
    it(`${driver.type}: a url or host/database, never a mix, and a url of the right kind`, () => {
      assert.deepEqual(validate(driver, { url: "x://h/d", host: "h" }), [
        "host: give either url or host/port/user/password/database",
      ]);
      assert.deepEqual(validate(driver, {}), ["url: is required (or host and database)"]);
      assert.deepEqual(preflight(driver, { host: "h" }), ["database: is required (or url)"]);
      assert.deepEqual(preflight(driver, { url: "not a url" }), ["url: is not a valid URL"]);
      assert.match(preflight(driver, { url: "http://h/d" })[0] ?? "", /^url: must start with .* \(not http:\/\/\)$/);
    });
  }

  it("mysql: the url names a host and a database, and takes no query parameters", () => {
    assert.deepEqual(preflight(mysqlDriver, { url: "mariadb://127.0.0.1:3306/shop" }), []);
    assert.deepEqual(preflight(mysqlDriver, { url: "mysql://127.0.0.1:3306/" }), [
      "url: names no database (mysql://host:3306/database)",
    ]);
    assert.deepEqual(preflight(mysqlDriver, { url: "mysql://127.0.0.1/shop?ssl=1" }), [
      "url: takes no query parameters: use the ssl and connectTimeoutMs settings",
    ]);
    assert.deepEqual(preflight(postgresDriver, { url: "postgresql://127.0.0.1/test?sslmode=off" }), []);
  });
});

describe("a setting of the wrong type", () => {
  it("says what it got, and, for undefined, that an environment variable may not be set", () => {
    assert.deepEqual(validate(httpDriver as never, { baseUrl: undefined }), [
      "baseUrl: must be string, got undefined (an environment variable it reads that is not set?)",
    ]);
    assert.deepEqual(validate(httpDriver as never, { baseUrl: 8080 }), ["baseUrl: must be string, got 8080"]);
  });
});

describe("a batch's columns (the bulk writes of PostgreSQL and MariaDB)", () => {
  it("are the union of the rows' fields in first-seen order, however the rows differ", () => {
    assert.deepEqual(batchColumns([]), []);
    assert.deepEqual(
      batchColumns([
        { a: 1, b: 2 },
        { a: 3, b: 4 },
      ]),
      ["a", "b"],
    );
    // a row with fewer fields, the same in another order, then new ones
    assert.deepEqual(batchColumns([{ a: 1, b: 1 }, { a: 1 }, { b: 1, a: 1 }, { c: 1, a: 1 }, { d: 1 }]), [
      "a",
      "b",
      "c",
      "d",
    ]);
    assert.deepEqual(batchColumns([{ a: 1 }, { b: 1, a: 2 }, { a: 3, c: 1 }]), ["a", "b", "c"]);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileDriver } from "../../src/connectors/file/driver.ts";
import { httpDriver } from "../../src/connectors/http/driver.ts";
import { mysqlDriver } from "../../src/connectors/mysql/driver.ts";
import { postgresDriver } from "../../src/connectors/postgres/driver.ts";
import { sqliteDriver } from "../../src/connectors/sqlite/driver.ts";

// Whether a target keeps one version of a record, the last written (engine/load.ts: a resumed run then leaves out an
// earlier chunk's version of a key that a later chunk wrote)
describe("drivers that replace what a target holds under the binding's key", () => {
  it("are the SQL tables (an upsert on the key), not files", () => {
    for (const driver of [postgresDriver, mysqlDriver, sqliteDriver])
      assert.equal(driver.replacesByKey?.({ table: "t" }, ["id"]), true, driver.type);
    assert.equal(fileDriver.replacesByKey?.({ path: "out.csv" }, ["id"]) ?? false, false);
  });

  it("are an API's PUT or PATCH of one record at a path filled from its key, not a POST or a batch", () => {
    const put = { path: "/customers/{id}", method: "PUT" };
    const key = ["id"];
    assert.equal(httpDriver.replacesByKey?.(put, key), true);
    assert.equal(httpDriver.replacesByKey?.({ ...put, method: "PATCH" }, key), true);
    assert.equal(httpDriver.replacesByKey?.({ ...put, method: "POST" }, key), false);
    assert.equal(httpDriver.replacesByKey?.({ path: "/customers/{id}" }, key), false, "POST by default");
    assert.equal(httpDriver.replacesByKey?.({ ...put, path: "/customers" }, key), false, "one path for every record");
    assert.equal(httpDriver.replacesByKey?.({ ...put, mode: "batch" }, key), false);
    // the path must name the record by its key: every key field filled in
    assert.equal(httpDriver.replacesByKey?.({ ...put, path: "/accounts/{account}/notes" }, key), false);
    assert.equal(httpDriver.replacesByKey?.({ ...put, path: "/t/{tenant}/c/{id}" }, ["tenant", "id"]), true);
    assert.equal(httpDriver.replacesByKey?.({ ...put, path: "/t/{tenant}/c" }, ["tenant", "id"]), false);
  });
});

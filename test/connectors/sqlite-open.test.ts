/** The SQLite connector creates its database file only when told to (`create: true`). */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import type { Driver } from "../../src/connectors/types.ts";
import { tempDir } from "../support/fixtures.ts";

function connect(dir: string, create?: boolean) {
  const system = sqlite("crm", { file: "crm.db", ...(create === undefined ? {} : { create }) });
  return (system.driver as Driver).open(system, { baseDir: dir });
}

describe("sqlite connector: the database file", () => {
  it("is not created by a connection (a health call, a query) when the system does not say create", async () => {
    using tmp = tempDir();
    const connection = connect(tmp.dir);
    const health = await connection.health(AbortSignal.timeout(5000));
    assert.equal(health.ok, false);
    assert.match(health.message ?? "", /unable to open database file/);
    assert.equal(existsSync(join(tmp.dir, "crm.db")), false);
    await connection.close();
  });

  it("is created with create: true", async () => {
    using tmp = tempDir();
    const connection = connect(tmp.dir, true);
    const health = await connection.health(AbortSignal.timeout(5000));
    assert.equal(health.ok, true, health.message);
    assert.equal(existsSync(join(tmp.dir, "crm.db")), true);
    await connection.close();
  });
});

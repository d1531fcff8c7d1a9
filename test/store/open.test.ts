import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { openStore } from "../../src/store/open.ts";
import { tempDir } from "../support/fixtures.ts";

describe("openStore", () => {
  it("refuses a store URL of an unknown scheme before making anything, instead of taking it for a file path", async () => {
    using tmp = tempDir();
    for (const location of ["postgress://x", "mysql://db/franca", "Postgres://db/franca", "postgres:/db"]) {
      await assert.rejects(
        openStore(location, tmp.dir),
        (error: unknown) =>
          error instanceof FrancaError &&
          error.code === ErrorCode.ConfigInvalid &&
          error.setting === "store" &&
          /^store: /.test(error.message),
        location,
      );
    }
    assert.deepEqual(readdirSync(tmp.dir), [], "no SQLite store was made at ./postgress:/x or elsewhere");
  });

  it("still opens a SQLite file given as a path or as sqlite:<path>", async () => {
    using tmp = tempDir();
    for (const location of ["plain.db", "sqlite:prefixed.db"]) {
      const store = await openStore(location, tmp.dir);
      await store.close();
    }
    assert.ok(existsSync(join(tmp.dir, "plain.db")));
    assert.ok(existsSync(join(tmp.dir, "prefixed.db")));
  });
});

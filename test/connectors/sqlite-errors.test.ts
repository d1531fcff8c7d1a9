/** Which SQLite errors of a write are its table's or database's (every row alike) and which are one row's. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isTableError } from "../../src/connectors/sqlite/errors.ts";

const sqliteError = (errcode: number | undefined, message: string) => Object.assign(new Error(message), { errcode });

describe("a SQLite write's error", () => {
  it("is the table's or the database's when no row could be written", () => {
    assert.equal(isTableError(sqliteError(1, "no such table: clients")), true);
    assert.equal(isTableError(sqliteError(1, "table clients has no column named mail")), true);
    assert.equal(isTableError(sqliteError(17, "database schema has changed")), true);
    assert.equal(isTableError(sqliteError(8, "attempt to write a readonly database")), true);
    assert.equal(isTableError(sqliteError(13, "database or disk is full")), true);
    assert.equal(isTableError(sqliteError(10 | (3 << 8), "disk I/O error")), true);
    assert.equal(isTableError(sqliteError(11, "database disk image is malformed")), true);
  });

  it("is the row's for what a row's values cause", () => {
    assert.equal(isTableError(sqliteError(19 | (1 << 8), "CHECK constraint failed: amount")), false);
    assert.equal(isTableError(sqliteError(1, "malformed JSON")), false);
    assert.equal(isTableError(sqliteError(20, "datatype mismatch")), false);
    assert.equal(isTableError(sqliteError(18, "string or blob too big")), false);
    assert.equal(
      isTableError(sqliteError(undefined, "Value is too large to be represented as a SQLite integer")),
      false,
    );
  });
});

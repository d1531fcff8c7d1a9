import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type { Row } from "../../core/binding.ts";
import { batchColumns, quoteIdent, quoteQualified, toParam } from "../sql.ts";
import type { ItemResult, WriteRequest } from "../types.ts";
import { sqliteError } from "./errors.ts";
import type { SqliteBindingOptions } from "./options.ts";

function upsertSql(table: string, columns: readonly string[], key: readonly string[]): string {
  const names = columns.map((column) => quoteIdent(column)).join(", ");
  const values = columns.map(() => "?").join(", ");
  const updates = columns.filter((column) => !key.includes(column));
  const conflict = key.map((column) => quoteIdent(column)).join(", ");
  const action =
    updates.length === 0
      ? "DO NOTHING"
      : `DO UPDATE SET ${updates.map((column) => `${quoteIdent(column)} = excluded.${quoteIdent(column)}`).join(", ")}`;
  return `INSERT INTO ${quoteQualified(table)} (${names}) VALUES (${values}) ON CONFLICT (${conflict}) ${action}`;
}

function params(row: Row, columns: readonly string[]): SQLInputValue[] {
  const out = new Array<SQLInputValue>(columns.length);
  for (let i = 0; i < columns.length; i++) {
    const value = toParam(row[columns[i] as string]);
    out[i] = (typeof value === "boolean" ? (value ? 1 : 0) : value) as SQLInputValue;
  }
  return out;
}

/**
 * Upserts a batch in one transaction. When a row is refused (a constraint, a bad value), the batch is written again
 * row by row under savepoints, so the good rows land and each bad one gets its own error.
 */
export function writeSqlite(db: DatabaseSync, system: string, request: WriteRequest): ItemResult[] {
  const options = request.options as SqliteBindingOptions;
  const table = options.table as string;
  const rows = request.items.map((item) => item.row);
  const columns = batchColumns(rows);
  let statement: StatementSync;
  try {
    statement = db.prepare(upsertSql(table, columns, request.key));
  } catch (error) {
    throw sqliteError(error, system, `cannot write table '${table}'`);
  }
  try {
    db.exec("BEGIN IMMEDIATE");
  } catch (error) {
    throw sqliteError(error, system, "cannot start a transaction");
  }
  try {
    for (const row of rows) statement.run(...params(row, columns));
    db.exec("COMMIT");
    return request.items.map(() => ({ ok: true }));
  } catch (error) {
    db.exec("ROLLBACK");
    const failure = sqliteError(error, system, `write to '${table}' failed`);
    if (failure.transient) throw failure;
  }
  return writeRowByRow(db, system, statement, rows, columns, table);
}

function writeRowByRow(
  db: DatabaseSync,
  system: string,
  statement: StatementSync,
  rows: readonly Row[],
  columns: readonly string[],
  table: string,
): ItemResult[] {
  const results: ItemResult[] = [];
  db.exec("BEGIN IMMEDIATE");
  try {
    for (const row of rows) {
      db.exec("SAVEPOINT franca_row");
      try {
        statement.run(...params(row, columns));
        db.exec("RELEASE franca_row");
        results.push({ ok: true });
      } catch (error) {
        db.exec("ROLLBACK TO franca_row");
        db.exec("RELEASE franca_row");
        results.push({ ok: false, error: sqliteError(error, system, `'${table}' refused the row`, true) });
      }
    }
    db.exec("COMMIT");
  } catch (error) {
    db.exec("ROLLBACK");
    throw sqliteError(error, system, `write to '${table}' failed`);
  }
  return results;
}

import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type { Row } from "../../core/binding.ts";
import { batchColumns, quoteIdent, quoteQualified, toParam } from "../sql.ts";
import type { ItemResult } from "../types.ts";
import { isTableError, sqliteError } from "./errors.ts";

/** Rows per statement: one multi-row INSERT crosses from JS to SQLite once per 50 rows instead of once per row. */
const rowsPerStatement = 50;
const maxParameters = 32_000; // SQLite allows 32,766 since 3.32

function upsertSql(table: string, columns: readonly string[], key: readonly string[], rows = 1): string {
  const names = columns.map((column) => quoteIdent(column)).join(", ");
  const one = `(${columns.map(() => "?").join(", ")})`;
  const values = Array.from({ length: rows }, () => one).join(", ");
  const updates = columns.filter((column) => !key.includes(column));
  const conflict = key.map((column) => quoteIdent(column)).join(", ");
  const action =
    updates.length === 0
      ? "DO NOTHING"
      : `DO UPDATE SET ${updates.map((column) => `${quoteIdent(column)} = excluded.${quoteIdent(column)}`).join(", ")}`;
  return `INSERT INTO ${quoteQualified(table)} (${names}) VALUES ${values} ON CONFLICT (${conflict}) ${action}`;
}

function params(rows: readonly Row[], columns: readonly string[]): SQLInputValue[] {
  const out = new Array<SQLInputValue>(columns.length * rows.length);
  let at = 0;
  for (const row of rows) {
    for (let i = 0; i < columns.length; i++) {
      const value = toParam(row[columns[i] as string]);
      out[at++] = (typeof value === "boolean" ? (value ? 1 : 0) : value) as SQLInputValue;
    }
  }
  return out;
}

/**
 * Upserts a batch in one transaction. When a row is refused (a constraint, a bad value), the batch is written again
 * row by row under savepoints, so the good rows land and each bad one gets its own error.
 */
export function writeSqlite(
  db: DatabaseSync,
  system: string,
  table: string,
  key: readonly string[],
  rows: readonly Row[],
): ItemResult[] {
  const columns = batchColumns(rows);
  const perStatement = Math.max(1, Math.min(rowsPerStatement, Math.floor(maxParameters / Math.max(1, columns.length))));
  let statement: StatementSync;
  let full: StatementSync | undefined;
  try {
    statement = db.prepare(upsertSql(table, columns, key));
    if (rows.length >= perStatement && perStatement > 1)
      full = db.prepare(upsertSql(table, columns, key, perStatement));
  } catch (error) {
    throw sqliteError(error, system, `cannot write table '${table}'`);
  }
  try {
    db.exec("BEGIN IMMEDIATE");
  } catch (error) {
    throw sqliteError(error, system, "cannot start a transaction");
  }
  try {
    let at = 0;
    if (full !== undefined)
      for (; at + perStatement <= rows.length; at += perStatement)
        full.run(...params(rows.slice(at, at + perStatement), columns));
    for (; at < rows.length; at++) statement.run(...params([rows[at] as Row], columns));
    db.exec("COMMIT");
    return rows.map(() => ({ ok: true }));
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
        statement.run(...params([row], columns));
        db.exec("RELEASE franca_row");
        results.push({ ok: true });
      } catch (error) {
        db.exec("ROLLBACK TO franca_row");
        db.exec("RELEASE franca_row");
        // not the row's fault (the table went since the statement was prepared): the write's, rolled back below
        if (isTableError(error)) throw error;
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

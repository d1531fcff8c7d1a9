import mysql from "mysql2/promise";
import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { isDateTime } from "../../core/formats.ts";
import { batchColumns, quoteIdent, quoteQualified, toParam } from "../sql.ts";
import type { ItemResult, WriteRequest } from "../types.ts";
import type { MysqlSession, Query } from "./driver.ts";
import { columnNamed, isDataError, mysqlError } from "./errors.ts";
import type { MysqlBindingOptions } from "./options.ts";

/** Room left in a packet besides the statement's text (header, command byte). */
const packetSlack = 1024;

interface ColumnInfo {
  /** JSON (MySQL's type, or MariaDB's LONGTEXT known as JSON by its metadata): every value goes as JSON text. */
  json: boolean;
  /** DATETIME or TIMESTAMP: Dates and texts with an offset go as UTC wall time. */
  dateTime: boolean;
  /** DATE: Dates go as their UTC day. */
  date: boolean;
}

interface UniqueIndex {
  name: string;
  /** Lower-cased column names, in index order. */
  columns: string[];
}

interface TableInfo {
  /** By lower-cased name: MariaDB compares column names without regard to case. */
  columns: ReadonlyMap<string, ColumnInfo>;
  unique: readonly UniqueIndex[];
}

/** Column types and unique indexes of the target tables, read once per table. */
export interface TableCache {
  get(table: string, query: Query, fresh?: boolean): Promise<TableInfo>;
  clear(): void;
}

/** A string as a SQL literal (backslash escapes: sessions run without NO_BACKSLASH_ESCAPES). */
export function sqlString(text: string): string {
  return mysql.escape(text);
}

/** A parameter value (see toMysql) as a SQL literal. */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "string") return mysql.escape(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${value} is not a number the server can store`);
    return String(value);
  }
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "boolean") return value ? "TRUE" : "FALSE";
  if (value instanceof Uint8Array)
    return `X'${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}'`;
  return mysql.escape(String(value));
}

/** `db.table` or `table` → where information_schema finds it. */
function schemaAndName(table: string): { schema: string; name: string } {
  const dot = table.indexOf(".");
  if (dot < 0) return { schema: "DATABASE()", name: sqlString(table) };
  return { schema: sqlString(table.slice(0, dot)), name: sqlString(table.slice(dot + 1)) };
}

export function tableCache(system: string): TableCache {
  const tables = new Map<string, TableInfo>();
  return {
    async get(table, query, fresh = false) {
      const known = fresh ? undefined : tables.get(table);
      if (known !== undefined) return known;
      const { schema, name } = schemaAndName(table);
      const found = await query(
        `SELECT COLUMN_NAME AS name, DATA_TYPE AS type FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = ${schema} AND TABLE_NAME = ${name} ORDER BY ORDINAL_POSITION`,
      );
      if (found.rows.length === 0) {
        throw new FrancaError(ErrorCode.SystemError, `cannot write '${table}': the table does not exist`, {
          status: 1146,
          system,
        });
      }
      // MariaDB's JSON is LONGTEXT to information_schema: the column's metadata in a result says what it is.
      const probe = await query(`SELECT * FROM ${quoteQualified(table, "`")} LIMIT 0`);
      const json = new Set(
        probe.fields
          .filter((field) => field.columnType === 245 || field.extendedFormat === "json")
          .map((field) => (field.orgName || field.name).toLowerCase()),
      );
      const columns = new Map<string, ColumnInfo>();
      for (const row of found.rows) {
        const column = String(row.name).toLowerCase();
        const type = String(row.type).toLowerCase();
        columns.set(column, {
          json: json.has(column) || type === "json",
          dateTime: type === "datetime" || type === "timestamp",
          date: type === "date",
        });
      }
      const indexes = await query(
        `SELECT INDEX_NAME AS name, COLUMN_NAME AS \`column\` FROM information_schema.STATISTICS
          WHERE TABLE_SCHEMA = ${schema} AND TABLE_NAME = ${name} AND NON_UNIQUE = 0
          ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
      );
      const unique = new Map<string, string[]>();
      for (const row of indexes.rows) {
        const index = String(row.name);
        unique.set(index, [...(unique.get(index) ?? []), String(row.column).toLowerCase()]);
      }
      const info: TableInfo = {
        columns,
        unique: [...unique].map(([index, names]) => ({ name: index, columns: names })),
      };
      tables.set(table, info);
      return info;
    },
    clear() {
      tables.clear();
    },
  };
}

const zoned = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)$/i;

/** `YYYY-MM-DD HH:MM:SS.fff` of a Date, in UTC. */
function utcText(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

/** Two ASCII digits at `at` as a number, or -1. */
function twoDigits(text: string, at: number): number {
  const tens = text.charCodeAt(at) - 48;
  const units = text.charCodeAt(at + 1) - 48;
  return tens >= 0 && tens <= 9 && units >= 0 && units <= 9 ? tens * 10 + units : -1;
}

/**
 * The common case, without a Date: a valid RFC 3339 date-time already in UTC (`…T…Z` or `…T…+00:00`, hours 00–23,
 * seconds 00–59) is its own UTC wall time, `T` and zone aside. Undefined for anything else.
 */
function utcAsIs(text: string): string | undefined {
  const length = text.length;
  let zoneAt: number;
  if (text.charCodeAt(length - 1) === 90)
    zoneAt = length - 1; // Z
  else if (text.endsWith("+00:00")) zoneAt = length - 6;
  else return undefined;
  if (text.charCodeAt(10) !== 84) return undefined; // T
  const hour = twoDigits(text, 11);
  const second = twoDigits(text, 17);
  if (hour < 0 || hour > 23 || second < 0 || second > 59 || !isDateTime(text)) return undefined;
  return `${text.slice(0, 10)} ${text.slice(11, zoneAt)}`;
}

/**
 * A date-time text with an offset (`2024-06-30T23:59:59.999999+05:30`, `…Z`, PostgreSQL's `… +00`) → the same
 * instant as UTC wall time `2024-06-30 18:29:59.999999`, the fraction kept to the digit. Undefined when the text has
 * no offset or is not a valid date-time: it then goes to the server as it is.
 */
export function utcDateTime(text: string): string | undefined {
  const fast = utcAsIs(text);
  if (fast !== undefined) return fast;
  const match = zoned.exec(text);
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second = "00", fraction = "", zone = "Z"] = match;
  const local = new Date(0);
  local.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  local.setUTCHours(Number(hour), Number(minute), Number(second), 0);
  // A day or time out of range (Feb 30, 25:00) would roll over: leave it to the server to refuse.
  if (
    local.getUTCFullYear() !== Number(year) ||
    local.getUTCMonth() !== Number(month) - 1 ||
    local.getUTCDate() !== Number(day) ||
    local.getUTCHours() !== Number(hour) ||
    local.getUTCMinutes() !== Number(minute) ||
    local.getUTCSeconds() !== Number(second)
  )
    return undefined;
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== "Z") {
    const digits = zone.slice(1).replace(":", "");
    offsetMinutes = (zone.startsWith("-") ? -1 : 1) * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0));
  }
  const utc = new Date(local.getTime() - offsetMinutes * 60_000).toISOString();
  if (!/^\d{4}-/.test(utc)) return undefined; // beyond year 9999 or before year 0
  return `${utc.slice(0, 10)} ${utc.slice(11, 19)}${fraction}`;
}

/** Canonical value → parameter for a column of this type (see options.ts for the rules). */
function toMysql(value: unknown, column: ColumnInfo): unknown {
  if (value === undefined || value === null) return null;
  // A JSON column takes the value as read: its JSON text, a string included (read back as that same string).
  if (column.json) return JSON.stringify(value);
  if (value instanceof Uint8Array) return value;
  if (column.dateTime) {
    if (value instanceof Date) return utcText(value);
    if (typeof value === "string") return utcDateTime(value) ?? value;
  }
  if (column.date && value instanceof Date) return value.toISOString().slice(0, 10);
  if (value instanceof Date) return utcText(value);
  return toParam(value);
}

/**
 * A value as the SQL literal for a column of this type. JSON goes the short way: JSON.stringify escapes every control
 * character, and a double quote needs none between single quotes, so only backslashes and single quotes are escaped
 * (what mysql.escape does to JSON text, without looking at each of its characters).
 */
function literalFor(value: unknown, column: ColumnInfo): string {
  if (!column.json || value === undefined || value === null) return sqlLiteral(toMysql(value, column));
  let json = JSON.stringify(value) as string | undefined;
  if (json === undefined) return "NULL";
  if (json.includes("\\")) json = json.replaceAll("\\", "\\\\");
  if (json.includes("'")) json = json.replaceAll("'", "\\'");
  return `'${json}'`;
}

function upsertParts(
  relation: string,
  columns: readonly string[],
  key: readonly string[],
): { head: string; tail: string } {
  const keys = new Set(key.map((column) => column.toLowerCase()));
  const names = columns.map((column) => quoteIdent(column, "`")).join(", ");
  const updates = columns.filter((column) => !keys.has(column.toLowerCase()));
  const first = quoteIdent(key[0] as string, "`");
  const action =
    updates.length === 0
      ? `${first} = ${first}` // every column is a key column: nothing to update, but no error either
      : updates.map((column) => `${quoteIdent(column, "`")} = VALUES(${quoteIdent(column, "`")})`).join(", ");
  return { head: `INSERT INTO ${relation} (${names}) VALUES `, tail: ` ON DUPLICATE KEY UPDATE ${action}` };
}

/** The unique index the upsert's conflict needs: on exactly the key columns, in any order. */
function uniqueKeyIssue(table: string, info: TableInfo, key: readonly string[]): string | undefined {
  const wanted = new Set(key.map((column) => column.toLowerCase()));
  const match = info.unique.some(
    (index) => index.columns.length === wanted.size && index.columns.every((column) => wanted.has(column)),
  );
  if (match) return undefined;
  const have =
    info.unique.length === 0
      ? "it has none"
      : `it has ${info.unique.map((index) => `${index.name} (${index.columns.join(", ")})`).join(", ")}`;
  return (
    `cannot upsert into '${table}': INSERT … ON DUPLICATE KEY UPDATE needs a PRIMARY KEY or UNIQUE index on exactly ` +
    `the key column(s) (${key.join(", ")}); ${have}`
  );
}

/**
 * Rolls back after `failure`. When even that fails, the connection is lost or in doubt: the first failure is
 * reported, caused by the rollback's error, which tells withConnection to close the connection rather than reuse it.
 */
async function rollback(query: Query, failure: unknown, system: string, what: string): Promise<void> {
  try {
    await query("ROLLBACK");
  } catch (error) {
    const first = mysqlError(failure, system, what);
    throw new FrancaError(first.code, first.message, { errorClass: first.errorClass, system, cause: error });
  }
}

/**
 * Upserts a batch in one transaction: multi-row `INSERT … ON DUPLICATE KEY UPDATE c = VALUES(c)` (the syntax both
 * MariaDB and MySQL take), split into statements of at most maxStatementBytes of SQL (and below the server's
 * max_allowed_packet). Values are written into the SQL as literals, so that a statement's size is known to the byte.
 * When the batch fails on a data problem (strict mode: too long, NOT NULL, bad value, CHECK, foreign key), it is
 * written again row by row under savepoints, so the good rows land and each bad one gets its own TARGET_REJECTED
 * naming its column. The same key twice in a batch is fine: the later row wins, as in row order.
 */
export async function writeMysql(
  session: MysqlSession,
  cache: TableCache,
  request: WriteRequest,
): Promise<ItemResult[]> {
  const options = request.options as MysqlBindingOptions;
  const table = options.table as string;
  const system = session.system;
  const relation = quoteQualified(table, "`");
  const rows: Row[] = request.items.map((item) => item.row);
  if (rows.length === 0) return [];
  const columns = batchColumns(rows);
  const lower = columns.map((column) => column.toLowerCase());
  const missingKey = request.key.filter((column) => !lower.includes(column.toLowerCase()));
  if (missingKey.length > 0) {
    throw new FrancaError(
      ErrorCode.SystemError,
      `cannot write '${table}': the rows have no value for key column '${missingKey[0]}', the upsert's conflict target`,
      { system },
    );
  }
  const what = `write to '${table}' failed`;
  try {
    return await session.withConnection(request.signal, async ({ query, maxPacket }) => {
      let info = await cache.get(table, query);
      // The table may have gained a column or an index since it was described: look again before refusing.
      if (lower.some((column) => !info.columns.has(column)) || uniqueKeyIssue(table, info, request.key) !== undefined)
        info = await cache.get(table, query, true);
      const unknown = columns.find((column) => !info.columns.has(column.toLowerCase()));
      if (unknown !== undefined) {
        throw new FrancaError(ErrorCode.SystemError, `table '${table}' has no column '${unknown}'`, {
          system,
          path: `/${unknown}`,
        });
      }
      const keyIssue = uniqueKeyIssue(table, info, request.key);
      if (keyIssue !== undefined) throw new FrancaError(ErrorCode.SystemError, keyIssue, { system });
      const types = lower.map((column) => info.columns.get(column) as ColumnInfo);

      const { head, tail } = upsertParts(relation, columns, request.key);
      const fixed = Buffer.byteLength(head) + Buffer.byteLength(tail);
      const packetLimit = maxPacket - packetSlack;
      const budget = Math.min(session.maxStatementBytes, packetLimit);
      const results: (ItemResult | undefined)[] = new Array(rows.length);
      const tuples: string[] = new Array(rows.length);
      const good: number[] = [];
      const groups: number[][] = [];
      let group: number[] = [];
      let size = fixed;
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i] as Row;
        let tuple: string;
        try {
          tuple = `(${columns.map((column, c) => literalFor(row[column], types[c] as ColumnInfo)).join(", ")})`;
        } catch (error) {
          // A value that cannot be sent at all (NaN, a BigInt inside a JSON value): this row only.
          const message = `'${table}' refused the row: ${(error as Error).message}`;
          results[i] = { ok: false, error: new FrancaError(ErrorCode.TargetRejected, message, { system }) };
          continue;
        }
        const bytes = Buffer.byteLength(tuple);
        if (fixed + bytes > packetLimit) {
          const message =
            `'${table}' refused the row: its INSERT statement takes ${fixed + bytes} bytes, more than the server's ` +
            `max_allowed_packet (${maxPacket})`;
          results[i] = { ok: false, error: new FrancaError(ErrorCode.TargetRejected, message, { system }) };
          continue;
        }
        if (group.length > 0 && size + 2 + bytes > budget) {
          groups.push(group);
          group = [];
          size = fixed;
        }
        size += (group.length > 0 ? 2 : 0) + bytes;
        group.push(i);
        tuples[i] = tuple;
        good.push(i);
      }
      if (group.length > 0) groups.push(group);
      if (good.length === 0) return results as ItemResult[];

      try {
        await query("START TRANSACTION");
        for (const statement of groups) await query(head + statement.map((i) => tuples[i] as string).join(", ") + tail);
        await query("COMMIT");
        for (const i of good) results[i] = { ok: true };
        return results as ItemResult[];
      } catch (error) {
        await rollback(query, error, system, what);
        if (!isDataError(error) || request.signal.aborted) throw mysqlError(error, system, what);
      }

      // Row by row, each under a savepoint: a refused row leaves no trace, the others land.
      try {
        await query("START TRANSACTION");
        for (const i of good) {
          await query("SAVEPOINT franca_row");
          try {
            await query(head + (tuples[i] as string) + tail);
            results[i] = { ok: true };
          } catch (error) {
            if (!isDataError(error)) throw error;
            await query("ROLLBACK TO SAVEPOINT franca_row");
            const column = columnNamed(error, columns);
            results[i] = { ok: false, error: mysqlError(error, system, `'${table}' refused the row`, true, column) };
          }
          await query("RELEASE SAVEPOINT franca_row");
        }
        await query("COMMIT");
      } catch (error) {
        await rollback(query, error, system, what);
        throw mysqlError(error, system, what);
      }
      return results as ItemResult[];
    });
  } catch (error) {
    if (request.signal.aborted && !(error instanceof FrancaError)) throw error;
    throw mysqlError(error, system, `cannot write '${table}'`);
  }
}

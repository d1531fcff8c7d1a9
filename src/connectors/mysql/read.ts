import type { FieldPacket } from "mysql2/promise";
import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import {
  afterPredicate,
  expandedParams,
  nullOrderCountSql,
  orderColumns,
  orderNotNull,
  positionOf,
  quoteIdent,
  sourceRelation,
  warnNullOrder,
  warnUnindexedOrder,
} from "../sql.ts";
import type { EncodedBatch, ReadBatch, ReadRequest } from "../types.ts";
import type { MysqlArrays, MysqlResult, MysqlSession, SessionConnection } from "./driver.ts";
import { sqlLiteral } from "./encode.ts";
import { mysqlError } from "./errors.ts";
import type { MysqlBindingOptions } from "./options.ts";
import { type ColumnKind, encodeRows, kindOf, rowsEncoding } from "./rows-text.ts";

/** How a position value is written back into SQL, by the type of its column. */
type Kind = "number" | "binary" | "text";

// Field types (mysql2's column types) whose position values are exact numbers: BIGINT and DECIMAL arrive as strings
// and go back as numeric literals: MySQL compares a number with a string as floating point (MariaDB as decimal).
const numberTypes = new Set([0, 1, 2, 3, 4, 5, 8, 9, 13, 246]);
// String and BLOB types: with the binary character set (63) they are bytes; BIT (16) is always bytes.
const stringTypes = new Set([15, 249, 250, 251, 252, 253, 254]);
const binaryCharset = 63;

function kindsOf(fields: readonly FieldPacket[], columns: readonly string[]): Kind[] {
  return columns.map((column) => {
    const field = fields.find((item) => item.name === column);
    const type = field?.columnType;
    if (type === undefined) return "text";
    if (numberTypes.has(type)) return "number";
    if (type === 16 || (stringTypes.has(type) && field?.characterSet === binaryCharset)) return "binary";
    return "text";
  });
}

const exactNumber = /^-?\d+(\.\d+)?$/;

/** A position value as SQL: numbers unquoted (exact comparison), bytes as hex, the rest as a string literal. */
function positionLiteral(value: unknown, kind: Kind): string {
  if (kind === "number" && typeof value === "string" && exactNumber.test(value)) return value;
  if (kind === "binary" && typeof value === "string") return sqlLiteral(Buffer.from(value, "base64"));
  return sqlLiteral(value);
}

/**
 * Whether no index of `table` (a base table: not a view) starts with `column` whole (not a prefix of it, not a
 * FULLTEXT or SPATIAL index); false when the table is unknown. Each count filters `information_schema` by constants,
 * so that MariaDB opens this table's definition only ("Scanned 0 databases"), not every table on the server.
 */
async function cursorUnindexed(connection: SessionConnection, table: string, column: string): Promise<boolean> {
  const dot = table.lastIndexOf(".");
  const where = dot === -1 ? "table_schema = DATABASE() AND table_name = ?" : "table_schema = ? AND table_name = ?";
  const names = dot === -1 ? [table] : [table.slice(0, dot), table.slice(dot + 1)];
  const { rows } = await connection.query(
    `SELECT (SELECT count(*) FROM information_schema.tables WHERE ${where} AND table_type = 'BASE TABLE') AS tables,
       (SELECT count(*) FROM information_schema.statistics WHERE ${where} AND column_name = ? AND seq_in_index = 1
          AND sub_part IS NULL AND index_type NOT IN ('FULLTEXT', 'SPATIAL')) AS led`,
    [...names, ...names, column],
  );
  const found = rows[0] as { tables?: unknown; led?: unknown } | undefined;
  return Number(found?.tables ?? 0) > 0 && Number(found?.led ?? 0) === 0;
}

/** A page of a keyset read: its rows (objects, or arrays of values), their fields, and the position after its last row. */
interface Page {
  rows: Row[] | unknown[][];
  fields: readonly FieldPacket[];
  position: unknown[];
}

/**
 * Keyset reads: `SELECT * FROM r WHERE a > ? OR (a = ? AND b > ?) ORDER BY a, b LIMIT n`, one statement per batch,
 * each under the system's policy (request.call). The expanded predicate, rather than a row comparison `(a, b) > (…)`,
 * is what MariaDB and MySQL answer from an index. Positions are the values of the order columns as read (the
 * server's text for DATETIME, BIGINT and DECIMAL, so comparisons are exact); binary values are kept as base64 so that
 * the position stays JSON. A resumed read first learns the order columns' types from a `LIMIT 0` query.
 *
 * The pages' rows are objects with their JSON columns parsed (`read`), or, `arrays`, arrays of the values as mysql2
 * gives them, JSON columns as text (`readEncoded`, whose rows are decoded where their chunk is transformed).
 */
async function* keysetPages(session: MysqlSession, request: ReadRequest, arrays: boolean): AsyncIterable<Page> {
  const options = request.options as MysqlBindingOptions;
  const columns = orderColumns(request.cursor, request.key);
  const relation = sourceRelation(options, "`");
  const what = options.table === undefined ? "cannot read the source query" : `cannot read '${options.table}'`;
  const order = columns.map((column) => quoteIdent(column, "`")).join(", ");
  let position = request.from as unknown[] | undefined;
  if (position !== undefined && (!Array.isArray(position) || position.length !== columns.length)) {
    throw new FrancaError(
      ErrorCode.SystemError,
      `${what}: the saved position ${JSON.stringify(position)} does not match the order columns (${columns.join(", ")}); ` +
        "were the binding's key or cursor changed?",
      { system: session.system },
    );
  }
  let kinds: Kind[] | undefined;
  await warnUnindexedOrder(request, options.table, columns, (signal) =>
    session.withConnection(signal, (connection) =>
      cursorUnindexed(connection, options.table as string, columns[0] as string),
    ),
  );
  await warnNullOrder(request, options.table, (signal) =>
    session.withConnection(signal, async (connection) => {
      const { rows } = await connection.query(nullOrderCountSql(relation, columns, "`"));
      return Number((rows as { n: number | string }[])[0]?.n ?? 0);
    }),
  );
  const select = (connection: SessionConnection, sql: string): Promise<MysqlResult | MysqlArrays> =>
    arrays ? connection.queryArrays(sql) : connection.query(sql);
  /** The read ended (the consumer stopped, or the last page came): a page asked ahead is not run any more. */
  let abandoned = false;
  /**
   * The page of `limit` rows after `after` (undefined: the first). Its failure is caught at once: awaited later, it
   * still throws there; one never awaited (the read stopped, or was aborted, before it) fails nothing.
   */
  const ask = (after: unknown[] | undefined, limit: number): Promise<MysqlResult | MysqlArrays> => {
    // Only the driver's errors are classified here; the policy's own (timeout, open circuit) pass through.
    const page = request.call(async (signal) => {
      // a page asked ahead whose turn came after the read ended (it waited on the system's gate or rate limit)
      if (abandoned) return { rows: [], fields: [] };
      try {
        return await session.withConnection(signal, async (connection) => {
          if (after === undefined) {
            const notNull = orderNotNull(columns, "`");
            const result = await select(
              connection,
              `SELECT * FROM ${relation} WHERE ${notNull} ORDER BY ${order} LIMIT ${limit}`,
            );
            kinds ??= kindsOf(result.fields, columns);
            return result;
          }
          kinds ??= kindsOf((await connection.query(`SELECT * FROM ${relation} LIMIT 0`)).fields, columns);
          const known = kinds;
          const literals = expandedParams(after.map((value, i) => positionLiteral(value, known[i] as Kind)));
          const where = afterPredicate(columns, (index) => literals[index] as string, "`", "expanded").sql;
          return await select(
            connection,
            `SELECT * FROM ${relation} WHERE (${where}) AND ${orderNotNull(columns, "`")} ORDER BY ${order} LIMIT ${limit}`,
          );
        });
      } catch (error) {
        if (signal.aborted) throw error;
        throw mysqlError(error, session.system, what);
      }
    }) as Promise<MysqlResult | MysqlArrays>;
    page.catch(() => {});
    return page;
  };
  // The size of each page is asked for when the page is: request.batchSize grows as the engine's first chunks fill
  // (slow start), and a page is judged short against the size it was asked for. Once the size stops growing, each
  // page is asked for before the last one is handed on, so that the server finds it while the engine stages and
  // maps the last: asked ahead during the growth, a page would have the size of the chunk being filled, not of the
  // next one, and chunks would come out bigger than the engine asked for.
  const sizeNow = () => Math.max(1, Math.floor(request.batchSize));
  let limit = sizeNow();
  let ahead = false;
  let next: Promise<MysqlResult | MysqlArrays> | undefined = ask(position, limit);
  try {
    while (next !== undefined) {
      if (request.signal.aborted) return;
      const { rows, fields } = await next;
      if (rows.length === 0) return;
      const last = rows[rows.length - 1] as Row | unknown[];
      position = positionOf(Array.isArray(last) ? rowOfArray(last, fields, columns) : last, columns).map((value) =>
        Buffer.isBuffer(value) ? value.toString("base64") : value,
      );
      const asked = limit;
      const ended = rows.length < asked;
      next = undefined;
      if (ahead && !ended) {
        limit = sizeNow();
        next = ask(position, limit);
      }
      yield { rows, fields, position };
      if (ended) return;
      if (!ahead) {
        limit = sizeNow();
        ahead = limit === asked;
        next = ask(position, limit);
      }
    }
  } finally {
    abandoned = true;
  }
}

/** The order columns of a row given as an array of values: the last field of each name, as in an object row. */
function rowOfArray(values: readonly unknown[], fields: readonly FieldPacket[], columns: readonly string[]): Row {
  const row: Row = {};
  for (const column of columns) {
    const at = fields.findLastIndex((field) => field.name === column);
    if (at !== -1) row[column] = values[at];
  }
  return row;
}

/** `read`: keyset pages of rows (see keysetPages). */
export async function* readMysql(session: MysqlSession, request: ReadRequest): AsyncIterable<ReadBatch> {
  for await (const { rows, position } of keysetPages(session, request, false)) yield { rows: rows as Row[], position };
}

/**
 * `readEncoded`: the same pages as `read`, each as the lines of its rows (rows-text.ts) — what mysql2 made of them,
 * not yet made into objects, JSON columns not yet parsed — for `mysqlDriver.decode` to make into `read`'s rows where
 * the chunk is transformed.
 */
export async function* readMysqlEncoded(session: MysqlSession, request: ReadRequest): AsyncIterable<EncodedBatch> {
  let encoding: string | undefined;
  let kinds: ColumnKind[] = [];
  for await (const { rows, fields, position } of keysetPages(session, request, true)) {
    const current = rowsEncoding(fields);
    if (encoding === undefined) {
      encoding = current;
      kinds = fields.map(kindOf);
    } else if (current !== encoding) {
      // Every batch of a read has one encoding (EncodedBatch): columns changed under the read (ALTER TABLE) end it,
      // transient, so that the engine reads again from the last chunk it kept, with the columns as they are now.
      throw new FrancaError(ErrorCode.SystemUnavailable, "the source's columns changed during the read", {
        errorClass: "transient",
        system: session.system,
      });
    }
    yield { encoding, text: encodeRows(rows as unknown[][], kinds), count: rows.length, position };
  }
}

import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import {
  afterPredicate,
  nullOrderCountSql,
  orderColumns,
  orderNotNull,
  positionOf,
  quoteIdent,
  quoteQualified,
  sourceRelation,
  warnNullOrder,
  warnUnindexedOrder,
} from "../sql.ts";
import type { ReadBatch, ReadRequest } from "../types.ts";
import type { PostgresSession } from "./driver.ts";
import { postgresError } from "./errors.ts";
import type { PostgresBindingOptions } from "./options.ts";

/** The position a read continues after: the values of the order columns, or undefined to read from the beginning. */
export function savedPosition(
  from: unknown,
  columns: readonly string[],
  what: string,
  system: string,
): unknown[] | undefined {
  if (from === undefined) return undefined;
  if (!Array.isArray(from) || from.length !== columns.length) {
    throw new FrancaError(
      ErrorCode.SystemError,
      `${what}: the saved position ${JSON.stringify(from)} does not match the order columns (${columns.join(", ")}); ` +
        "were the binding's key or cursor changed?",
      { system },
    );
  }
  return from;
}

/** How many rows of the source no read returns (warnNullOrder). */
export async function countNullOrder(
  session: PostgresSession,
  relation: string,
  columns: readonly string[],
  signal: AbortSignal,
): Promise<number> {
  const sql = nullOrderCountSql(relation, columns, '"');
  return session.withClient(signal, async (query) => Number((await query(sql)).rows[0]?.n ?? 0));
}

/** What a failed read says it could not read. */
export function readWhat(options: PostgresBindingOptions): string {
  return options.table === undefined ? "cannot read the source query" : `cannot read '${options.table}'`;
}

/**
 * Keyset reads (binding setting `copy: false`): `SELECT * FROM r WHERE (cursor, key) > ($1, …) ORDER BY cursor, key LIMIT $n`, one statement per
 * batch, each under the system's policy (request.call). Position values are the server's text for exact types
 * (int8, numeric, timestamps), and the server parses them back as the column's type, so comparisons are exact.
 */
export async function* readPostgres(session: PostgresSession, request: ReadRequest): AsyncIterable<ReadBatch> {
  const options = request.options as PostgresBindingOptions;
  const columns = orderColumns(request.cursor, request.key);
  const relation = sourceRelation(options, '"');
  const what = readWhat(options);
  const order = columns.map((column) => quoteIdent(column)).join(", ");
  const after = afterPredicate(columns, (index) => `$${index + 1}`, '"', "row");
  const first = `SELECT * FROM ${relation} WHERE ${orderNotNull(columns, '"')} ORDER BY ${order} LIMIT $1`;
  const next = `SELECT * FROM ${relation} WHERE ${after.sql} AND ${orderNotNull(columns, '"')} ORDER BY ${order} LIMIT $${after.arity + 1}`;
  let position = savedPosition(request.from, columns, what, session.system);
  await warnUnindexedOrder(request, options.table, columns, (signal) =>
    session.withClient(signal, async (query) => {
      // the table as the read names it (quoted: mixed case kept); an index that can order its rows (a B-tree, say;
      // not a partial or invalid one) led by the cursor; views and foreign tables have no index to ask for
      const { rows } = await query(
        `SELECT c.relkind IN ('r', 'p', 'm') AS known, EXISTS (
           SELECT 1 FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = c.oid AND a.attname = $2 AND i.indisvalid AND i.indpred IS NULL
              AND pg_indexam_has_property(ic.relam, 'can_order')) AS led
           FROM pg_class c WHERE c.oid = to_regclass($1)`,
        [quoteQualified(options.table as string), columns[0]],
      );
      return rows[0]?.known === true && rows[0]?.led === false;
    }),
  );
  await warnNullOrder(request, options.table, (signal) => countNullOrder(session, relation, columns, signal));
  for (;;) {
    if (request.signal.aborted) return;
    // the size asked for this page: request.batchSize may have grown by the time the page is judged short (the
    // engine's slow start), and a page judged against the new size would end the read after its first page
    const size = request.batchSize;
    const params = position === undefined ? [size] : [...position, size];
    const sql = position === undefined ? first : next;
    // Only pg's errors are classified here; the policy's own (timeout, open circuit) pass through to the engine.
    const rows = await request.call(async (signal) => {
      try {
        return await session.withClient(signal, async (query) => (await query(sql, params)).rows);
      } catch (error) {
        if (signal.aborted) throw error;
        throw postgresError(error, session.system, what);
      }
    });
    if (rows.length === 0) return;
    position = positionOf(rows[rows.length - 1] as Row, columns);
    yield { rows, position };
    if (rows.length < size) return;
  }
}

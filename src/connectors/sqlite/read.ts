import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import type { Row } from "../../core/binding.ts";
import {
  afterPredicate,
  nullOrderCountSql,
  orderColumns,
  orderNotNull,
  positionOf,
  quoteIdent,
  sourceRelation,
  warnNullOrder,
} from "../sql.ts";
import type { ReadBatch, ReadRequest } from "../types.ts";
import type { SqliteBindingOptions } from "./options.ts";

/**
 * Keyset reads: `SELECT … WHERE (cursor, key) > (position) ORDER BY cursor, key LIMIT n`, one statement per batch,
 * so each batch is a short synchronous call and the event loop keeps serving between batches.
 */
export async function* readSqlite(db: DatabaseSync, request: ReadRequest): AsyncIterable<ReadBatch> {
  const options = request.options as SqliteBindingOptions;
  const columns = orderColumns(request.cursor, request.key);
  const relation = sourceRelation(options, '"');
  const order = columns.map((column) => quoteIdent(column)).join(", ");
  const first = db.prepare(`SELECT * FROM ${relation} WHERE ${orderNotNull(columns, '"')} ORDER BY ${order} LIMIT ?`);
  const after = afterPredicate(columns, () => "?", '"', "row");
  const next = db.prepare(
    `SELECT * FROM ${relation} WHERE ${after.sql} AND ${orderNotNull(columns, '"')} ORDER BY ${order} LIMIT ?`,
  );
  let position = request.from as unknown[] | undefined;
  await warnNullOrder(request, options.table, async () =>
    Number((db.prepare(nullOrderCountSql(relation, columns, '"')).get() as { n: number }).n),
  );
  for (;;) {
    if (request.signal.aborted) return;
    // the size asked for this page: request.batchSize may have grown by the time the page is judged short
    const size = request.batchSize;
    const rows = (position === undefined ? first.all(size) : next.all(...(position as SQLInputValue[]), size)) as Row[];
    if (rows.length === 0) return;
    position = positionOf(rows[rows.length - 1] as Row, columns);
    yield { rows, position };
    if (rows.length < size) return;
  }
}

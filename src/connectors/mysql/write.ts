import { Readable } from "node:stream";
import type { FieldPacket } from "mysql2/promise";
import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { batchColumns, quoteIdent, quoteQualified } from "../sql.ts";
import type { ItemResult, WriteItem, WriteRequest } from "../types.ts";
import type { MysqlSession, Query, SessionConnection } from "./driver.ts";
import {
  type ColumnInfo,
  type EncodedRows,
  encodeRows,
  isEncodedRows,
  type LoadKind,
  sqlString,
  type TableInfo,
  type UniqueIndex,
} from "./encode.ts";
import { columnNamed, isDataError, isTransient, mysqlError, serverErrno } from "./errors.ts";
import type { MysqlBindingOptions } from "./options.ts";

/** Room left in a packet besides the statement's text (header, command byte). */
const packetSlack = 1024;

/** LOAD DATA's text is sent in pieces of about this many bytes (one packet each). */
const loadPiece = 64 * 1024;

/**
 * Server errors that say LOAD DATA LOCAL INFILE is off: MariaDB's "the server or client has disabled the local infile
 * capability" (4166), MySQL's (3948), and both servers' older "not allowed with this version" (1148).
 */
const localInfileOff = new Set([1148, 3948, 4166]);

/** Column types, unique indexes and engines of the target tables, read once per table and connection. */
export interface TableCache {
  get(table: string, query: Query, fresh?: boolean): Promise<TableInfo>;
  /** Set when the server or the client refused LOAD DATA LOCAL INFILE: writes go through INSERT from then on. */
  noLoad: boolean;
  clear(): void;
}

/** `db.table` or `table` → where information_schema finds it. */
function schemaAndName(table: string): { schema: string; name: string } {
  const dot = table.indexOf(".");
  if (dot < 0) return { schema: "DATABASE()", name: sqlString(table) };
  return { schema: sqlString(table.slice(0, dot)), name: sqlString(table.slice(dot + 1)) };
}

/** A table's result-set metadata as text: what its description is checked against (see TableInfo). */
function signatureOf(fields: readonly FieldPacket[]): string {
  return fields
    .map((field) =>
      [
        field.orgName || field.name,
        field.columnType,
        field.flags,
        field.columnLength,
        field.decimals,
        field.characterSet,
        field.extendedTypeName ?? "",
        field.extendedFormat ?? "",
      ].join(" "),
    )
    .join("\n");
}

const integerTypes = new Set(["tinyint", "smallint", "mediumint", "int", "bigint"]);
/** Types whose every value the INSERT sends as text or a plain number lands the same through LOAD DATA. */
const loadAny = new Set([
  ...integerTypes,
  ...["decimal", "float", "double", "char", "varchar", "tinytext", "text", "mediumtext", "longtext"],
  ...["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"],
]);
/** Types that take only strings through LOAD DATA (a number or boolean lands differently: see encode.ts). */
const loadText = new Set(["enum", "set", "year", "date", "datetime", "timestamp", "time", "uuid", "inet4", "inet6"]);

function loadKind(type: string, json: boolean, generated: boolean): LoadKind {
  if (generated) return "never";
  if (json || loadAny.has(type)) return "any";
  return loadText.has(type) ? "text" : "never";
}

/**
 * Describes a table: its result-set metadata first (the signature: a change between it and the queries after it
 * shows as a different signature at the next write), then its columns, unique indexes and engine.
 */
async function describeTable(system: string, table: string, query: Query): Promise<TableInfo> {
  let probe: Awaited<ReturnType<Query>>;
  try {
    probe = await query(`SELECT * FROM ${quoteQualified(table, "`")} LIMIT 0`);
  } catch (error) {
    if (serverErrno(error) !== 1146) throw error;
    throw new FrancaError(ErrorCode.SystemError, `cannot write '${table}': the table does not exist`, {
      status: 1146,
      system,
    });
  }
  // MariaDB's JSON is LONGTEXT to information_schema: the column's metadata in a result says what it is.
  const json = new Set(
    probe.fields
      .filter((field) => field.columnType === 245 || field.extendedFormat === "json")
      .map((field) => (field.orgName || field.name).toLowerCase()),
  );
  const { schema, name } = schemaAndName(table);
  const found = await query(
    `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, EXTRA AS extra,
            (SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${schema} AND TABLE_NAME = ${name})
              AS engine
       FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = ${schema} AND TABLE_NAME = ${name} ORDER BY ORDINAL_POSITION`,
  );
  const columns = new Map<string, ColumnInfo>();
  for (const row of found.rows) {
    const column = String(row.name).toLowerCase();
    const type = String(row.type).toLowerCase();
    const isJson = json.has(column) || type === "json";
    columns.set(column, {
      json: isJson,
      dateTime: type === "datetime" || type === "timestamp",
      date: type === "date",
      integer: integerTypes.has(type),
      load: loadKind(type, isJson, /GENERATED/i.test(String(row.extra ?? ""))),
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
  return {
    table,
    signature: signatureOf(probe.fields),
    columns,
    unique: [...unique].map(([index, names]): UniqueIndex => ({ name: index, columns: names })),
    transactional: String(found.rows[0]?.engine ?? "").toLowerCase() === "innodb",
  };
}

export function tableCache(system: string): TableCache {
  const tables = new Map<string, TableInfo>();
  return {
    noLoad: false,
    async get(table, query, fresh = false) {
      const known = fresh ? undefined : tables.get(table);
      if (known !== undefined) return known;
      const info = await describeTable(system, table, query);
      tables.set(table, info);
      return info;
    },
    clear() {
      tables.clear();
      this.noLoad = false;
    },
  };
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

/** A write call's batch, its rows encoded (here, or on a transform thread by `prepare`). */
interface Batch {
  table: string;
  relation: string;
  system: string;
  options: MysqlBindingOptions;
  key: readonly string[];
  info: TableInfo;
  encoded: EncodedRows;
  /** `items[i]`'s row in `encoded`; undefined when item i is row i, for every row. */
  rowOf: readonly number[] | undefined;
  items: readonly WriteItem[];
  count: number;
  signal: AbortSignal;
}

type Results = (ItemResult | undefined)[];

/**
 * The prepared rows of a request, when they can be sent as they are: encoded by this driver for the table as it is
 * described now (same signature), and, for a subset of them, for the same columns (a subset of rows that all lack a
 * column writes without it, as the rows themselves would).
 */
function fromPrepared(request: WriteRequest, info: TableInfo): Pick<Batch, "encoded" | "rowOf"> | undefined {
  const prepared = request.prepared;
  if (prepared === undefined || !isEncodedRows(prepared.data)) return undefined;
  const data = prepared.data;
  if (data.unusable !== undefined || data.table !== info.table || data.signature !== info.signature) return undefined;
  const rows = prepared.rows;
  if (rows.length !== request.items.length || (data.tuples === undefined && data.lines === undefined)) return undefined;
  let whole = rows.length === data.count;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as number;
    if (!(row >= 0 && row < data.count && Number.isInteger(row))) return undefined;
    if (row !== i) whole = false;
  }
  if (!whole && data.gaps.length > 0) {
    const gaps = new Map(data.gaps);
    const lacking = new Uint32Array(data.columns.length);
    for (const row of rows) for (const column of gaps.get(row) ?? []) lacking[column] = (lacking[column] as number) + 1;
    if (lacking.some((count) => count === rows.length)) return undefined;
  }
  return { encoded: data, rowOf: whole ? undefined : rows };
}

/**
 * The batch to write: the prepared rows when they fit the table as described (and `fresh` is not asked for: a table
 * that changed since), else the items' rows, encoded here for the table as described.
 */
async function planBatch(
  query: Query,
  cache: TableCache,
  request: WriteRequest,
  system: string,
  fresh: boolean,
): Promise<Batch> {
  const options = request.options as MysqlBindingOptions;
  const table = options.table as string;
  const { key, signal } = request;
  const base = {
    table,
    relation: quoteQualified(table, "`"),
    system,
    options,
    key,
    items: request.items,
    count: request.items.length,
    signal,
  };
  let info = await cache.get(table, query, fresh);
  let described = fresh;
  // The table may have gained an index since it was described: look again before refusing.
  if (uniqueKeyIssue(table, info, key) !== undefined && !described) {
    info = await cache.get(table, query, true);
    described = true;
  }
  const keyIssue = uniqueKeyIssue(table, info, key);
  const prepared = fresh ? undefined : fromPrepared(request, info);
  if (prepared !== undefined) {
    if (keyIssue !== undefined) throw new FrancaError(ErrorCode.SystemError, keyIssue, { system });
    return { ...base, info, ...prepared };
  }

  const rows: Row[] = request.items.map((item) => item.row);
  const columns = batchColumns(rows);
  const lower = new Set(columns.map((column) => column.toLowerCase()));
  const missingKey = key.find((column) => !lower.has(column.toLowerCase()));
  if (missingKey !== undefined) {
    throw new FrancaError(
      ErrorCode.SystemError,
      `cannot write '${table}': the rows have no value for key column '${missingKey}', the upsert's conflict target`,
      { system },
    );
  }
  // The table may have gained a column since it was described: look again before refusing.
  if (!described && [...lower].some((column) => !info.columns.has(column))) info = await cache.get(table, query, true);
  const unknown = columns.find((column) => !info.columns.has(column.toLowerCase()));
  if (unknown !== undefined)
    throw new FrancaError(ErrorCode.SystemError, `table '${table}' has no column '${unknown}'`, {
      system,
      path: `/${unknown}`,
    });
  const issue = uniqueKeyIssue(table, info, key);
  if (issue !== undefined) throw new FrancaError(ErrorCode.SystemError, issue, { system });
  // Only the encoding the write may need first: LOAD DATA's lines when it may go that way (the tuples if not).
  const load = mayLoad(options, cache, info);
  const encoded = encodeRows(rows, columns, info, key, { insert: !load, load });
  return { ...base, info, encoded, rowOf: undefined };
}

function mayLoad(options: MysqlBindingOptions, cache: TableCache, info: TableInfo): boolean {
  return options.load !== false && !cache.noLoad && info.transactional;
}

/**
 * The batch's INSERT tuples, encoded from the items' rows if they were not yet (a batch encoded for LOAD DATA only,
 * here or by `prepare`, that goes the INSERT way after all): a slow path, the only one where prepared items' rows are
 * read. The batch is then its items' rows, in order.
 */
function ensureTuples(batch: Batch): void {
  if (batch.encoded.tuples !== undefined) return;
  const rows = batch.items.map((item) => item.row);
  batch.encoded = encodeRows(rows, batch.encoded.columns, batch.info, batch.key, { insert: true, load: false });
  batch.rowOf = undefined;
}

const rowAt = (batch: Batch, item: number): number => (batch.rowOf === undefined ? item : batch.rowOf[item]) as number;

function refusedRow(batch: Batch, why: string): ItemResult {
  const message = `'${batch.table}' refused the row: ${why}`;
  return { ok: false, error: new FrancaError(ErrorCode.TargetRejected, message, { system: batch.system }) };
}

/**
 * Refuses the rows that cannot be sent at all, and those whose INSERT would exceed the server's max_allowed_packet
 * (on either path, so that LOAD DATA lands what the INSERT would); returns the items to send, in order.
 */
function rowsToSend(batch: Batch, results: Results, fixed: number, packetLimit: number): number[] {
  const { encoded } = batch;
  if (encoded.refused.length > 0) {
    const refused = new Map(encoded.refused);
    for (let i = 0; i < batch.count; i++) {
      const why = refused.get(rowAt(batch, i));
      if (why !== undefined) results[i] = refusedRow(batch, why);
    }
  }
  // A tuple takes at most twice its LOAD line and 4 bytes a column (quotes, escapes, `, `, TRUE for 1, NULL for \N):
  // when even that fits, no row is too large, and the tuples need not be encoded to know it.
  const bound = 2 * encoded.maxLineBytes + 4 * encoded.columns.length + 4;
  if (encoded.tuples === undefined && fixed + bound > packetLimit) ensureTuples(batch);
  const sizes = batch.encoded.tupleBytes;
  if (sizes !== undefined && fixed + batch.encoded.maxTupleBytes - 1 > packetLimit) {
    for (let i = 0; i < batch.count; i++) {
      const row = rowAt(batch, i);
      const bytes = (sizes[row + 1] as number) - (sizes[row] as number) - 1;
      if (results[i] !== undefined || fixed + bytes <= packetLimit) continue;
      results[i] = refusedRow(
        batch,
        `its INSERT statement takes ${fixed + bytes} bytes, more than the server's max_allowed_packet (${packetLimit + packetSlack})`,
      );
    }
  }
  const send: number[] = [];
  for (let i = 0; i < batch.count; i++) if (results[i] === undefined) send.push(i);
  return send;
}

/** The tuples of `rows` (rows of `encoded`), joined for one statement: consecutive rows are one slice. */
function tupleText(encoded: EncodedRows, rows: readonly number[]): string {
  const tuples = encoded.tuples as string;
  const at = encoded.tupleAt as Uint32Array;
  let text = "";
  let from = -1;
  let to = -1;
  for (const row of rows) {
    const start = at[row] as number;
    if (start === to) {
      to = at[row + 1] as number;
      continue;
    }
    if (to > from) text += tuples.slice(from, to);
    from = start;
    to = at[row + 1] as number;
  }
  if (to > from) text += tuples.slice(from, to);
  return text.slice(0, -1); // the last tuple's comma
}

// ── LOAD DATA ───────────────────────────────────────────────────────────────────────────────────────────────────
//
// A batch goes through LOAD DATA LOCAL INFILE, straight into the table, when all of these hold, and lands exactly
// what the upsert would land:
// - the binding does not say `load: false`, and neither the server nor the client refused LOCAL INFILE on this
//   connection (remembered: TableCache.noLoad);
// - the table is InnoDB, so that a load rolled back leaves nothing (MyISAM, Aria, views: INSERT); it has the unique
//   index on exactly the key that the upsert needs anyway;
// - every column written is of a type whose text LOAD DATA stores as the INSERT stores its literal, none generated,
//   and every value of the batch is one that lands the same both ways (encode.ts, loadField: strings, plain numbers,
//   booleans, JSON, date-times converted to UTC first; not bytes, numbers in exponent notation, numbers into ENUM, SET,
//   YEAR, date or time columns, nor BIT, spatial or unknown types);
// - none of the batch's keys is in the table (probeKeys), and LOAD DATA raised no warning and inserted every row
//   (loadRows; otherwise it is rolled back and the batch upserted).
// Triggers do not keep a table out: for a row whose key is new, INSERT … ON DUPLICATE KEY UPDATE fires the row's
// BEFORE and AFTER INSERT triggers, as LOAD DATA does (MariaDB and MySQL have no statement-level triggers); a
// trigger's error stops both, and its warnings send the batch the INSERT way. Foreign keys, CHECK constraints, other
// unique indexes and NOT NULL are checked by LOAD DATA as by the INSERT. With innodb_autoinc_lock_mode 1 (the
// default), a load into a table with an AUTO_INCREMENT column holds the table's AUTO-INC lock for the statement, as a
// multi-row INSERT of unknown length would. maxStatementBytes does not bound a load: its text is a stream.

/**
 * Byte ranges of the LOAD lines of the items sent, in order: consecutive rows are one range (all of them, when the
 * batch is a whole prepared chunk).
 */
function* lineRanges(batch: Batch, send: readonly number[]): Generator<[number, number]> {
  const at = batch.encoded.lineAt as Uint32Array;
  let from = -1;
  let to = -1;
  for (const item of send) {
    const row = rowAt(batch, item);
    const start = at[row] as number;
    if (start === to) {
      to = at[row + 1] as number;
      continue;
    }
    if (to > from) yield [from, to];
    from = start;
    to = at[row + 1] as number;
  }
  if (to > from) yield [from, to];
}

/**
 * The LOAD lines of the items sent as pieces of about `loadPiece` bytes, views of the encoded bytes (short ranges
 * gathered into one piece): LOAD DATA reads its input as one stream, so a piece may end anywhere.
 */
function* linePieces(batch: Batch, send: readonly number[]): Generator<Buffer> {
  const lines = batch.encoded.lines as Uint8Array;
  const all = Buffer.from(lines.buffer, lines.byteOffset, lines.byteLength);
  let held: Buffer[] = [];
  let heldBytes = 0;
  for (let [from, to] of lineRanges(batch, send)) {
    while (to - from >= loadPiece) {
      if (heldBytes > 0) {
        yield Buffer.concat(held);
        held = [];
        heldBytes = 0;
      }
      yield all.subarray(from, from + loadPiece);
      from += loadPiece;
    }
    if (to === from) continue;
    held.push(all.subarray(from, to));
    heldBytes += to - from;
    if (heldBytes >= loadPiece) {
      yield Buffer.concat(held);
      held = [];
      heldBytes = 0;
    }
  }
  if (heldBytes > 0) yield held.length === 1 ? (held[0] as Buffer) : Buffer.concat(held);
}

/**
 * The keys of the items sent, as `IN` lists of at most `chars` characters each (a character takes at most 3 bytes
 * of UTF-8, so a list fits `3 × chars` bytes).
 */
function* keyLists(batch: Batch, send: readonly number[], chars: number): Generator<string> {
  const { keys, keyAt } = batch.encoded;
  let list = "";
  for (const item of send) {
    const row = rowAt(batch, item);
    const text = keys.slice(keyAt[row], keyAt[row + 1]);
    if (list.length > 0 && list.length + text.length > chars) {
      yield list.slice(0, -1);
      list = "";
    }
    list += text;
  }
  if (list.length > 0) yield list.slice(0, -1);
}

/**
 * Whether any key of the items sent is in the table, in the write's transaction: its key range first when the key
 * is one integer column (one index lookup, and none of them can be there when nothing is in their range), then the
 * keys themselves. A plain consistent read, no locks: it only spares LOAD DATA a batch that would fall back anyway
 * (see loadRows for why a key written meanwhile cannot be lost). Each statement is `SELECT *`, so that its metadata
 * checks the table's description when `check` ("stale": the table changed since).
 */
async function probeKeys(
  query: Query,
  batch: Batch,
  send: readonly number[],
  budget: number,
  check: boolean,
): Promise<"new" | "found" | "stale"> {
  let unchecked = check;
  const changed = (fields: readonly FieldPacket[]): boolean => {
    if (!unchecked) return false;
    unchecked = false;
    return signatureOf(fields) !== batch.info.signature;
  };
  const names = batch.key.map((column) => quoteIdent(column, "`"));
  const range = batch.encoded.keyRange;
  if (range !== undefined) {
    const found = await query(
      `SELECT * FROM ${batch.relation} WHERE ${names[0]} BETWEEN ${range[0]} AND ${range[1]} LIMIT 1`,
    );
    if (changed(found.fields)) return "stale";
    if (found.rows.length === 0) return "new";
  }
  const head = `SELECT * FROM ${batch.relation} WHERE ${names.length === 1 ? names[0] : `(${names.join(", ")})`} IN (`;
  const tail = ") LIMIT 1";
  const chars = Math.max(1, Math.floor((budget - Buffer.byteLength(head) - tail.length) / 3));
  for (const list of keyLists(batch, send, chars)) {
    const found = await query(head + list + tail);
    if (changed(found.fields)) return "stale";
    if (found.rows.length > 0) return "found";
  }
  return "new";
}

/**
 * LOAD DATA LOCAL INFILE of the items sent, in the transaction that found their keys new (not committed here).
 * Returns "done" when every row landed, without a warning; else rolls back and returns "insert", for the upsert.
 *
 * With LOCAL, MariaDB and MySQL turn what the INSERT refuses (a duplicate key, a value that does not fit, NULL for NOT
 * NULL, a foreign key or CHECK) into warnings, and skip or adjust the row: any warning, or fewer rows than sent, and
 * the batch goes the INSERT way, which upserts the duplicates and reports bad rows one by one. That is also why a
 * key another session writes between the probe and the load is neither lost nor doubled: the key's unique index
 * refuses the second row whatever the probe saw (it waits for the other session's transaction first, if that has
 * not ended), LOAD DATA skips it with a warning, and the upsert then updates that row. The probe takes no locking
 * read on purpose: gap locks on keys not there yet would make concurrent loads of neighbouring keys (the chunks of
 * one run, in flight together) deadlock each other.
 */
async function loadRows(
  connection: SessionConnection,
  cache: TableCache,
  batch: Batch,
  send: readonly number[],
): Promise<"done" | "insert"> {
  const names = batch.encoded.columns.map((column) => quoteIdent(column, "`")).join(", ");
  // The format spelled out, though it is LOAD DATA's default: the text does not depend on the server's defaults.
  const sql =
    `LOAD DATA LOCAL INFILE 'franca' INTO TABLE ${batch.relation} CHARACTER SET utf8mb4 ` +
    `FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' STARTING BY '' (${names})`;
  try {
    const { affectedRows, warnings } = await connection.load(sql, () => Readable.from(linePieces(batch, send)));
    if (warnings === 0 && affectedRows === send.length) return "done";
  } catch (error) {
    if (batch.signal.aborted || isTransient(error)) throw error;
    if (localInfileOff.has(serverErrno(error) ?? 0)) cache.noLoad = true;
    // Any other error: the INSERT reports it, as it would have without LOAD DATA.
  }
  await connection.query("ROLLBACK");
  return "insert";
}

// ── INSERT ──────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Whether the table changed since it was described: its result-set metadata differs from the description's (one
 * statement that reads no row).
 */
async function changedSince(query: Query, batch: Batch): Promise<boolean> {
  const { fields } = await query(`SELECT * FROM ${batch.relation} LIMIT 0`);
  return signatureOf(fields) !== batch.info.signature;
}

/**
 * Writes a batch in one transaction. When its keys are all new and it may (see mayLoad, loadRows): LOAD DATA LOCAL
 * INFILE. Otherwise, or when LOAD DATA did not land every row cleanly: multi-row `INSERT … ON DUPLICATE KEY UPDATE c
 * = VALUES(c)` (the syntax both MariaDB and MySQL take), split into statements of at most maxStatementBytes of SQL
 * (and below the server's max_allowed_packet); values are SQL literals in the text, so that a statement's size is
 * known to the byte. When the INSERTs fail on a data problem (strict mode: too long, NOT NULL, bad value, CHECK,
 * foreign key), the batch is written again row by row under savepoints, so the good rows land and each bad one gets
 * its own TARGET_REJECTED naming its column. The same key twice in a batch is fine: the later row wins, as in row
 * order (LOAD DATA skips the second with a warning, so such a batch is upserted). When `check`, the first statement
 * on the table also checks that it is still as described: "stale" if not (nothing written).
 */
async function upsert(
  connection: SessionConnection,
  cache: TableCache,
  batch: Batch,
  maxStatementBytes: number,
  check: boolean,
): Promise<ItemResult[] | "stale"> {
  const { query, maxPacket } = connection;
  const { system, table } = batch;
  const what = `write to '${table}' failed`;
  const { head, tail } = upsertParts(batch.relation, batch.encoded.columns, batch.key);
  const fixed = Buffer.byteLength(head) + Buffer.byteLength(tail);
  const packetLimit = maxPacket - packetSlack;
  const budget = Math.min(maxStatementBytes, packetLimit);
  const results: Results = new Array(batch.count);
  const send = rowsToSend(batch, results, fixed, packetLimit);
  if (send.length === 0) return results as ItemResult[];

  try {
    await query("START TRANSACTION");
    let checked = !check;
    if (batch.encoded.lines !== undefined && mayLoad(batch.options, cache, batch.info)) {
      const found = await probeKeys(query, batch, send, budget, check);
      checked = true;
      if (found === "stale") {
        await query("ROLLBACK");
        return "stale";
      }
      if (found === "new") {
        if ((await loadRows(connection, cache, batch, send)) === "done") {
          await query("COMMIT");
          for (const i of send) results[i] = { ok: true };
          return results as ItemResult[];
        }
        await query("START TRANSACTION");
        checked = !check;
      }
    }
    if (!checked && (await changedSince(query, batch))) {
      await query("ROLLBACK");
      return "stale";
    }
    ensureTuples(batch);
    const sizes = batch.encoded.tupleBytes as Uint32Array;
    let group: number[] = [];
    let size = fixed;
    for (const i of send) {
      const row = rowAt(batch, i);
      const bytes = (sizes[row + 1] as number) - (sizes[row] as number);
      if (group.length > 0 && size + bytes - 1 > budget) {
        await query(head + tupleText(batch.encoded, group) + tail);
        group = [];
        size = fixed;
      }
      size += bytes;
      group.push(row);
    }
    if (group.length > 0) await query(head + tupleText(batch.encoded, group) + tail);
    await query("COMMIT");
    for (const i of send) results[i] = { ok: true };
    return results as ItemResult[];
  } catch (error) {
    await rollback(query, error, system, what);
    if (!isDataError(error) || batch.signal.aborted) throw mysqlError(error, system, what);
  }

  // Row by row, each under a savepoint: a refused row leaves no trace, the others land.
  ensureTuples(batch);
  const columns = batch.encoded.columns;
  try {
    await query("START TRANSACTION");
    for (const i of send) {
      await query("SAVEPOINT franca_row");
      try {
        await query(head + tupleText(batch.encoded, [rowAt(batch, i)]) + tail);
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
}

/**
 * Upserts a batch (see upsert), from its prepared rows when the request carries rows `prepare` encoded for the table
 * as it is (their `row`s are then never read), else from the items' rows. A table found changed since it was
 * described is described again, and the batch written from its rows.
 */
export async function writeMysql(
  session: MysqlSession,
  cache: TableCache,
  request: WriteRequest,
): Promise<ItemResult[]> {
  const options = request.options as MysqlBindingOptions;
  const table = options.table as string;
  const system = session.system;
  if (request.items.length === 0) return [];
  try {
    return await session.withConnection(request.signal, async (connection) => {
      let fresh = false;
      for (;;) {
        const batch = await planBatch(connection.query, cache, request, system, fresh);
        const results = await upsert(connection, cache, batch, session.maxStatementBytes, !fresh);
        if (results !== "stale") return results;
        fresh = true;
      }
    });
  } catch (error) {
    if (request.signal.aborted && !(error instanceof FrancaError)) throw error;
    throw mysqlError(error, system, `cannot write '${table}'`);
  }
}

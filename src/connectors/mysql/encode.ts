/**
 * The encoding of rows for a MariaDB/MySQL table, pure (no connection, no I/O): write.ts encodes a batch's rows with
 * it on the calling thread, and `mysqlDriver.prepare` encodes a chunk's rows on one of the engine's transform threads
 * (a piece at a time, joined by `joinEncodedRows`), so that a write of prepared rows only moves bytes. Each row gets:
 * - its INSERT tuple, `(v1, v2, …)`: SQL literals, as the upsert sends them (toMysql has the conversions);
 * - its LOAD DATA line (`LOAD DATA`'s default text format: fields separated by tabs, lines ended by a newline, NULL as
 *   `\N`, backslash, tab, newline, carriage return and NUL escaped by a backslash), when the row lands through LOAD
 *   DATA exactly as through the INSERT (see loadField);
 * - its key, as SQL literals, for the check that a batch's keys are all new.
 */
// mysql2's own escaping (its `escape` is sql-escaper's), without mysql2: a transform thread that prepares rows then
// never loads the client library (~24 MB of a thread's memory)
import { escape as escapeSql } from "sql-escaper";
import type { Row } from "../../core/binding.ts";
import { joinBytes } from "../../core/bytes.ts";
import { isDateTime } from "../../core/formats.ts";
import { joinedRowLists, sameColumns, shiftInto } from "../joined-rows.ts";
import { LineBuffer } from "../line-buffer.ts";
import { batchColumns, toParam } from "../sql.ts";
import type { PrepareRequest } from "../types.ts";
import type { MysqlBindingOptions } from "./options.ts";

/**
 * How a column's values may go through LOAD DATA: `any` value the INSERT sends as text or a plain number, `text`
 * only (a number or boolean would land differently), or `never` (see loadField).
 */
export type LoadKind = "any" | "text" | "never";

export interface ColumnInfo {
  /** JSON (MySQL's type, or MariaDB's LONGTEXT known as JSON by its metadata): every value goes as JSON text. */
  json: boolean;
  /** DATETIME or TIMESTAMP: Dates and texts with an offset go as UTC wall time. */
  dateTime: boolean;
  /** DATE: Dates go as their UTC day. */
  date: boolean;
  /** TINYINT … BIGINT: a key of such a column is checked for new keys by its range first. */
  integer: boolean;
  load: LoadKind;
}

export interface UniqueIndex {
  name: string;
  /** Lower-cased column names, in index order. */
  columns: string[];
}

/**
 * A target table as described (what `describeTarget` returns and `prepare` takes: structured-cloneable). Its
 * `signature` is the table's result-set metadata (each column's name, type, flags, length, decimals, extended type):
 * a write compares it with the metadata of its own first statement on the table, so that rows encoded for a table
 * that changed since are encoded again.
 */
export interface TableInfo {
  table: string;
  signature: string;
  /** By lower-cased name: MariaDB compares column names without regard to case. */
  columns: ReadonlyMap<string, ColumnInfo>;
  unique: readonly UniqueIndex[];
  /** InnoDB: a LOAD DATA rolled back leaves nothing behind. */
  transactional: boolean;
  /**
   * Set by `describeTarget` when the table held no row: a run into it writes new keys, so `prepare` encodes the LOAD
   * DATA lines only (a batch that goes the INSERT way after all is encoded from its rows then).
   */
  empty?: boolean;
}

/** The encoded rows of a batch or chunk: `mysqlDriver.prepare`'s result, and what write.ts sends. */
export interface EncodedRows {
  format: typeof encodedFormat;
  table: string;
  /** The signature of the TableInfo the rows were encoded for. */
  signature: string;
  /** Set when the rows do not fit the table as described (an unknown column, no key): the rows are written instead. */
  unusable?: string;
  /** The batch's columns, as the rows name them (the union of their fields, in first-seen order). */
  columns: string[];
  count: number;
  /** Rows that cannot be sent at all (NaN, a BigInt inside a JSON value): [row, why]. */
  refused: [number, string][];
  /** Rows that lack some of `columns`: [row, the indexes in `columns` it lacks]. */
  gaps: [number, number[]][];
  /**
   * `(…),` per row, concatenated: row i is `tuples.slice(tupleAt[i], tupleAt[i + 1])` ('' when refused). Absent when
   * only the LOAD DATA lines were asked for.
   */
  tuples?: string;
  tupleAt?: Uint32Array;
  /** UTF-8 bytes of the tuples before row i (count + 1 entries). */
  tupleBytes?: Uint32Array;
  /** Most UTF-8 bytes of one tuple, its comma included. */
  maxTupleBytes: number;
  /**
   * LOAD DATA lines of every row, UTF-8, concatenated: row i is bytes `lineAt[i]` to `lineAt[i + 1]` (none when
   * refused). Absent when the table does not qualify or some row cannot go through LOAD DATA.
   */
  lines?: Uint8Array;
  lineAt?: Uint32Array;
  maxLineBytes: number;
  /** `k,` or `(k1,k2),` per row, concatenated: row i is `keys.slice(keyAt[i], keyAt[i + 1])`. */
  keys: string;
  keyAt: Uint32Array;
  /** Smallest and largest key, when the key is one integer column and every row's key an integer. */
  keyRange?: [string, string];
  /**
   * The key is one integer column, but some row's key was not an integer: no range, whatever the other rows' keys
   * (rows joined from pieces have none if one piece has this; a piece with neither has no key to range over).
   */
  unranged?: true;
}

export const encodedFormat = "franca-mysql-rows-1";

/** A string as a SQL literal (backslash escapes: sessions run without NO_BACKSLASH_ESCAPES). */
export function sqlString(text: string): string {
  return escapeSql(text);
}

/** A parameter value (see toMysql) as a SQL literal. */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "string") return escapeSql(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${value} is not a number the server can store`);
    return String(value);
  }
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "boolean") return value ? "TRUE" : "FALSE";
  if (value instanceof Uint8Array)
    return `X'${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}'`;
  return escapeSql(String(value));
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

/** Canonical value → parameter for a column of this type (see options.ts for the rules). JSON columns: jsonText. */
function toMysql(value: unknown, column: ColumnInfo): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return column.dateTime ? (utcDateTime(value) ?? value) : value;
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
 * A JSON column takes the value as read: its JSON text, a string included (read back as that same string), its
 * backslashes doubled, which both encodings need: JSON.stringify escapes every control character, so no other
 * character needs escaping in a LOAD DATA field, and only single quotes between single quotes in SQL. Undefined for
 * a value JSON has no text for (NULL then).
 */
function jsonText(value: unknown): string | undefined {
  const json = JSON.stringify(value) as string | undefined;
  if (json === undefined) return undefined;
  return json.includes("\\") ? json.replaceAll("\\", "\\\\") : json;
}

const loadSpecial = /[\\\t\n\r\0]/;
const loadSpecials = /[\\\t\n\r\0]/g;
const loadEscapes: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0" };
const loadEscape = (char: string): string => loadEscapes[char] as string;

/**
 * A parameter (see toMysql) as a LOAD DATA field for a column of this kind, or undefined when it would not land as
 * the INSERT lands it. LOAD DATA reads every field as text and stores it as the INSERT stores a string literal (the
 * same conversion), so strings land the same. The INSERT's other literals land differently in places (measured on
 * MariaDB 10.11, every column type against strings, numbers, big integers, booleans and NULL):
 * - numbers in exponent notation (`1e21`, `1e-7`): the INSERT's double lands as the server prints it (`1e21`,
 *   `0.0000001`), the text as written;
 * - numbers and booleans in ENUM and SET (the INSERT's number is an index: 1 → the first value), YEAR (0 → 0000,
 *   but '0' → 2000) and the date and time types: only strings go (kind `text`);
 * - BIT (a number is bits, a text its characters), spatial and unknown types, and generated columns (LOAD DATA
 *   ignores their values where the INSERT refuses them): never (kind `never`);
 * - bytes (Buffers, sent as hex literals): never, LOAD DATA's text is UTF-8.
 * Everything else is text both ways: plain numbers and big integers (parsed as the literal is), booleans as 1 and 0
 * (TRUE and FALSE are 1 and 0), JSON text, and date-times already converted to UTC wall time.
 */
function loadField(param: unknown, column: ColumnInfo): string | undefined {
  if (param === null) return "\\N";
  if (typeof param === "string") return loadSpecial.test(param) ? param.replace(loadSpecials, loadEscape) : param;
  if (column.load !== "any") return undefined;
  if (typeof param === "number") {
    const text = String(param);
    return text.includes("e") ? undefined : text;
  }
  if (typeof param === "bigint") return param.toString();
  if (typeof param === "boolean") return param ? "1" : "0";
  if (param instanceof Uint8Array) return undefined;
  const text = String(param);
  return loadSpecial.test(text) ? text.replace(loadSpecials, loadEscape) : text;
}

/** An integer key's value as a BigInt, or undefined when it is not one plainly (then no range check). */
function integerKey(param: unknown): bigint | undefined {
  if (typeof param === "number") return Number.isSafeInteger(param) ? BigInt(param) : undefined;
  if (typeof param === "bigint") return param;
  if (typeof param === "string" && /^-?\d{1,20}$/.test(param)) return BigInt(param);
  return undefined;
}

/**
 * UTF-8 byte offsets of the rows of `text` from their character offsets `at`: the same numbers when the text is ASCII
 * (one pass over it), else each row's bytes counted. Returns them with the most bytes of one row. Always an array of
 * its own (an engine that transfers the prepared data's buffers must not meet one twice).
 */
function byteOffsets(text: string, at: Uint32Array, count: number): { bytes: Uint32Array; max: number } {
  const ascii = Buffer.byteLength(text) === text.length;
  const bytes = ascii ? at.slice() : new Uint32Array(count + 1);
  let max = 0;
  for (let i = 0; i < count; i++) {
    const size = ascii ? (at[i + 1] as number) - (at[i] as number) : Buffer.byteLength(text.slice(at[i], at[i + 1]));
    if (!ascii) bytes[i + 1] = (bytes[i] as number) + size;
    if (size > max) max = size;
  }
  return { bytes, max };
}

// Characters `escapeSql` escapes in a string (sql-escaper's class; ctrl-Z, which lint keeps out of a regular
// expression, is looked for apart) or LOAD DATA needs escaped: a string with none goes between quotes as it is, and
// as the LOAD field as it is (what both escapes would return), without calling them.
const special = /[\0\b\t\n\r"'\\]/;
const plain = (text: string): boolean => !special.test(text) && !text.includes("\u001a");

/**
 * Encodes rows for a table described by `info`: the INSERT tuples (`insert`), the LOAD DATA lines (`load`; dropped
 * as soon as a row cannot go that way, and then the tuples encoded instead when they were not asked for), and the
 * keys. Every column must be known to `info`, every key column among `columns`. A row whose value cannot be sent at
 * all is refused, never thrown for. Lines go straight into one buffer, a row at a time (LineBuffer); tuples are
 * joined once, a string a row.
 */
export function encodeRows(
  rows: readonly Row[],
  columns: readonly string[],
  info: TableInfo,
  key: readonly string[],
  parts: { insert: boolean; load: boolean },
): EncodedRows {
  const count = rows.length;
  const width = columns.length;
  const kinds = columns.map((column) => info.columns.get(column.toLowerCase()) as ColumnInfo);
  const lowerKey = key.map((column) => column.toLowerCase());
  const keyAt = lowerKey.map((column) => columns.findIndex((name) => name.toLowerCase() === column));
  const keyOf = columns.map((_, c) => keyAt.indexOf(c));
  const insert = parts.insert;
  let load = parts.load && kinds.every((kind) => kind.load !== "never");
  const single = keyAt.length === 1;
  const rangedKey = single && (kinds[keyAt[0] as number] as ColumnInfo).integer;
  let ranged = rangedKey;
  let low: bigint | undefined;
  let high: bigint | undefined;

  const tuples: string[] = insert ? new Array(count).fill("") : [];
  const tupleAt = new Uint32Array(count + 1);
  const keys: string[] = new Array(count).fill("");
  const keyChars = new Uint32Array(count + 1);
  const lineAt = new Uint32Array(count + 1);
  const lineBuffer = new LineBuffer();
  const refused: [number, string][] = [];
  const gaps: [number, number[]][] = [];
  const rowKey: string[] = new Array(keyAt.length);
  for (let i = 0; i < count; i++) {
    const row = rows[i] as Row;
    try {
      let tuple = "(";
      let line = "";
      for (let c = 0; c < width; c++) {
        const name = columns[c] as string;
        const value = row[name];
        const kind = kinds[c] as ColumnInfo;
        let literal: string;
        let field: string | undefined;
        if (value === undefined || value === null) {
          if (value === undefined && !Object.hasOwn(row, name)) {
            const last = gaps.at(-1);
            if (last?.[0] === i) last[1].push(c);
            else gaps.push([i, [c]]);
          }
          literal = "NULL";
          field = "\\N";
        } else if (kind.json) {
          const json = jsonText(value);
          if (json === undefined) {
            literal = "NULL";
            field = "\\N";
          } else {
            // the literal only when the tuples or the key want it
            literal = !insert && keyOf[c] === -1 ? "" : `'${json.includes("'") ? json.replaceAll("'", "\\'") : json}'`;
            field = json;
          }
        } else {
          const param = toMysql(value, kind);
          if (typeof param === "string" && plain(param)) {
            literal = `'${param}'`;
            field = param;
          } else {
            // sqlLiteral refuses what cannot be sent (NaN, Infinity): also when only the LOAD line is wanted
            literal = insert || keyOf[c] !== -1 || typeof param === "number" ? sqlLiteral(param) : "";
            field = load ? loadField(param, kind) : undefined;
          }
          if (ranged && keyOf[c] !== -1) {
            const integer = integerKey(param);
            if (integer === undefined) ranged = false;
            else {
              if (low === undefined || integer < low) low = integer;
              if (high === undefined || integer > high) high = integer;
            }
          }
        }
        if (insert) tuple = c === 0 ? `(${literal}` : `${tuple}, ${literal}`;
        if (load) {
          // This row cannot go through LOAD DATA, so the batch will not: its tuples are what it needs.
          if (field === undefined) {
            if (!insert) return encodeRows(rows, columns, info, key, { insert: true, load: false });
            load = false;
          } else line = c === 0 ? field : `${line}\t${field}`;
        }
        const k = keyOf[c] as number;
        if (k !== -1) rowKey[k] = literal;
      }
      if (insert) tuples[i] = `${tuple}),`;
      if (load) lineBuffer.push(line);
      keys[i] = single ? `${rowKey[0]},` : `(${rowKey.join(", ")}),`;
    } catch (error) {
      refused.push([i, (error as Error).message]);
    }
    tupleAt[i + 1] = (tupleAt[i] as number) + (tuples[i]?.length ?? 0);
    keyChars[i + 1] = (keyChars[i] as number) + (keys[i] as string).length;
    lineAt[i + 1] = lineBuffer.length;
  }

  const encoded: EncodedRows = {
    format: encodedFormat,
    table: info.table,
    signature: info.signature,
    columns: [...columns],
    count,
    refused,
    gaps,
    maxTupleBytes: 0,
    maxLineBytes: 0,
    keys: keys.join(""),
    keyAt: keyChars,
  };
  if (insert) {
    const text = tuples.join("");
    const { bytes, max } = byteOffsets(text, tupleAt, count);
    encoded.tuples = text;
    encoded.tupleAt = tupleAt;
    encoded.tupleBytes = bytes;
    encoded.maxTupleBytes = max;
  }
  if (load) {
    const bytes = lineBuffer.bytes();
    let max = 0;
    for (let i = 0; i < count; i++) max = Math.max(max, (lineAt[i + 1] as number) - (lineAt[i] as number));
    encoded.lines = bytes;
    encoded.lineAt = lineAt;
    encoded.maxLineBytes = max;
  }
  if (ranged && low !== undefined && high !== undefined) encoded.keyRange = [low.toString(), high.toString()];
  if (rangedKey && !ranged) encoded.unranged = true;
  return encoded;
}

/** Why rows cannot be encoded for this table as described (then `write` reports it, from the rows), if they cannot. */
export function columnsIssue(columns: readonly string[], info: TableInfo, key: readonly string[]): string | undefined {
  const lower = new Set(columns.map((column) => column.toLowerCase()));
  const missingKey = key.find((column) => !lower.has(column.toLowerCase()));
  if (missingKey !== undefined) return `the rows have no value for key column '${missingKey}'`;
  const unknown = columns.find((column) => !info.columns.has(column.toLowerCase()));
  if (unknown !== undefined) return `table '${info.table}' has no column '${unknown}'`;
  return undefined;
}

function isTableInfo(value: unknown): value is TableInfo {
  const info = value as TableInfo | null;
  return (
    typeof info === "object" &&
    info !== null &&
    typeof info.signature === "string" &&
    typeof info.table === "string" &&
    info.columns instanceof Map
  );
}

/**
 * `mysqlDriver.prepare`: the rows' INSERT tuples, and their LOAD DATA lines when the table may take them, for the
 * table `describeTarget` found; the lines only when it found the table empty (every key new). Rows that do not fit it
 * (a column it lacks, no key) are marked unusable as a whole: `write` then encodes the rows itself, and reports what
 * is wrong as it always did.
 */
export function prepareRows(rows: readonly Row[], request: PrepareRequest): EncodedRows {
  const info = request.target;
  if (!isTableInfo(info)) return unusable("", "", "the target was not described by this connector");
  const columns = batchColumns(rows);
  const issue = columnsIssue(columns, info, request.key);
  if (issue !== undefined) return unusable(info.table, info.signature, issue);
  const load = (request.options as MysqlBindingOptions).load !== false && info.transactional;
  return encodeRows(rows, columns, info, request.key, { insert: !(load && info.empty === true), load });
}

function unusable(table: string, signature: string, why: string): EncodedRows {
  return {
    format: encodedFormat,
    table,
    signature,
    unusable: why,
    columns: [],
    count: 0,
    refused: [],
    gaps: [],
    maxTupleBytes: 0,
    maxLineBytes: 0,
    keys: "",
    keyAt: new Uint32Array(1),
  };
}

export function isEncodedRows(value: unknown): value is EncodedRows {
  return typeof value === "object" && value !== null && (value as EncodedRows).format === encodedFormat;
}

/**
 * `mysqlDriver.join`: rows encoded in pieces (prepareRows, on a transform thread) as one, as encoding them at once
 * would have made them; undefined when the pieces were not encoded alike (another table or description, other
 * columns, rows that did not fit). The tuples are kept only when every piece has them, the LOAD DATA lines likewise
 * (a row that cannot go through LOAD DATA takes them from its whole chunk, as it would have encoded at once); none of
 * either, and a piece with tuples only beside one with lines only, do not join.
 */
export function joinEncodedRows(parts: readonly unknown[]): EncodedRows | undefined {
  const first = parts[0];
  if (!isEncodedRows(first)) return undefined;
  const pieces = parts as readonly EncodedRows[];
  for (const piece of pieces) {
    if (
      !isEncodedRows(piece) ||
      piece.unusable !== undefined ||
      piece.table !== first.table ||
      piece.signature !== first.signature ||
      !sameColumns(piece.columns, first.columns)
    )
      return undefined;
  }
  if (pieces.length === 1) return first;
  const insert = pieces.every((piece) => piece.tuples !== undefined);
  const load = pieces.every((piece) => piece.lines !== undefined);
  if (!insert && !load) return undefined;
  const count = pieces.reduce((rows, piece) => rows + piece.count, 0);
  const rowsOf = (piece: EncodedRows) => piece.count;
  const joined: EncodedRows = {
    format: encodedFormat,
    table: first.table,
    signature: first.signature,
    columns: [...first.columns],
    count,
    refused: joinedRowLists(pieces, (piece) => piece.refused, rowsOf),
    gaps: joinedRowLists(pieces, (piece) => piece.gaps, rowsOf),
    maxTupleBytes: 0,
    maxLineBytes: 0,
    keys: pieces.map((piece) => piece.keys).join(""),
    keyAt: new Uint32Array(count + 1),
  };
  const tupleAt = new Uint32Array(count + 1);
  const tupleBytes = new Uint32Array(count + 1);
  const lineAt = new Uint32Array(count + 1);
  let low: bigint | undefined;
  let high: bigint | undefined;
  let ranged = true;
  let row = 0;
  for (const piece of pieces) {
    // a piece's offsets after its first (0), the ends of its rows, shifted to where the piece starts in the joined
    const append = (into: Uint32Array, offsets: Uint32Array | undefined) =>
      shiftInto(into, row + 1, (offsets as Uint32Array).subarray(1, piece.count + 1), into[row] as number);
    append(joined.keyAt, piece.keyAt);
    if (insert) {
      append(tupleAt, piece.tupleAt);
      append(tupleBytes, piece.tupleBytes);
      joined.maxTupleBytes = Math.max(joined.maxTupleBytes, piece.maxTupleBytes);
    }
    if (load) {
      append(lineAt, piece.lineAt);
      joined.maxLineBytes = Math.max(joined.maxLineBytes, piece.maxLineBytes);
    }
    // a piece with neither a range nor `unranged` had no key to range over (every row refused, or NULL keys)
    if (piece.unranged === true) ranged = false;
    else if (piece.keyRange !== undefined && ranged) {
      const [from, to] = piece.keyRange.map((end) => BigInt(end)) as [bigint, bigint];
      if (low === undefined || from < low) low = from;
      if (high === undefined || to > high) high = to;
    }
    row += piece.count;
  }
  if (insert) Object.assign(joined, { tuples: pieces.map((piece) => piece.tuples).join(""), tupleAt, tupleBytes });
  // a buffer of its own (not from Buffer's pool), so that it can be transferred
  if (load) Object.assign(joined, { lines: joinBytes(pieces.map((piece) => piece.lines as Uint8Array)), lineAt });
  if (ranged && low !== undefined && high !== undefined) joined.keyRange = [low.toString(), high.toString()];
  if (!ranged) joined.unranged = true;
  return joined;
}

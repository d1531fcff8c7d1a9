/**
 * MariaDB/MySQL rows as text, for encoded reads (`Connection.readEncoded`): one row per line, the JSON array of its
 * values as mysql2 gave them, with the few values JSON would change carried as strings. The engine's thread only
 * writes each page's rows into bytes that it stages and hands to a transform thread as they are; the work of making
 * rows — JSON columns parsed, bytes made Buffers again, an object per row — is done where the chunk is transformed
 * (`decodeRows`, `mysqlDriver.decode`), a piece at a time (`mysqlDriver.cut`).
 *
 * Hand-written because the engine's own staged form of decoded rows (engine/source-rows.ts) is one JSON document per
 * chunk: it cannot be cut into pieces, it is copied to the thread as a string, and the JSON columns have to be parsed
 * before it is made (the rows must be what `read` gives).
 *
 * Pure (no mysql2, no connection): transform threads import it.
 */
import type { Row } from "../../core/binding.ts";
import { parseJsonExact } from "../../core/canonical-json.ts";
import { objectLiteral } from "../../core/object-literal.ts";
import { decoderCache, encodedFields, encodingOf } from "../encoding.ts";
import { LineBuffer } from "../line-buffer.ts";
import { linesText } from "../lines.ts";

/**
 * How a column's values are carried, in one letter, by what mysql2's text protocol makes of them (with the driver's
 * options: dates, BIGINT and DECIMAL as strings, JSON as text):
 * - `j` a JSON column: its text, parsed when decoded (as the driver's `run` parses it, parseJsonExact: numbers a
 *   double cannot hold as raw JSON values of their text; the text kept when not JSON);
 * - `b` bytes (a BINARY, VARBINARY, BLOB or BIT column, or any other of the binary character set): base64;
 * - `n` floating point (FLOAT, DOUBLE; VECTOR and GEOMETRY, whose values hold them): -0, NaN and the infinities,
 *   which JSON cannot hold, as strings, at any depth;
 * - `v` anything else (numbers, strings, NULL): as it is.
 */
export type ColumnKind = "j" | "b" | "n" | "v";

/** What `kindOf` reads of a mysql2 field. */
export interface FieldInfo {
  name: string;
  columnType?: number;
  characterSet?: number;
  extendedFormat?: string;
}

// mysql2's column types (mysql2/lib/constants/types.js) whose text protocol parser is not the default string one.
const numberTypes = new Set([1, 2, 3, 9, 13, 8, 6, 0, 246, 10, 7, 12, 11]); // ints, NULL, DECIMAL, dates, TIME
const floatTypes = new Set([4, 5, 242, 255]); // FLOAT, DOUBLE, VECTOR, GEOMETRY
const jsonType = 245;
const binaryCharset = 63;

/** The kind of a column, by the branch of mysql2's text parser that reads it (parsers/text_parser.js, readCodeFor). */
export function kindOf(field: FieldInfo): ColumnKind {
  if (field.extendedFormat === "json" || field.columnType === jsonType) return "j";
  const type = field.columnType ?? 253;
  if (floatTypes.has(type)) return "n";
  if (numberTypes.has(type)) return "v";
  return field.characterSet === binaryCharset ? "b" : "v";
}

const encodingFormat = "mysql-rows-json/1";

/** The `encoding` of a read's batches: its columns' names and kinds, as JSON (no newline in it). */
export function rowsEncoding(fields: readonly FieldInfo[]): string {
  return encodingOf(
    encodingFormat,
    fields.map((field) => [field.name, kindOf(field)]),
  );
}

/** `value` with every number JSON cannot hold made a string, at any depth; the same value when it holds none. */
function jsonNumbers(value: unknown): unknown {
  if (typeof value === "number")
    return Number.isFinite(value) && !Object.is(value, -0) ? value : Object.is(value, -0) ? "-0" : String(value);
  if (value === null || typeof value !== "object") return value;
  let copy: Record<string, unknown> | unknown[] | undefined;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    const next = jsonNumbers(item);
    if (next === item) continue;
    copy ??= Array.isArray(value) ? value.slice() : { ...(value as Record<string, unknown>) };
    (copy as Record<string, unknown>)[key] = next;
  }
  return copy ?? value;
}

/** The numbers `jsonNumbers` made strings, made numbers again (in place). */
function numbersBack(value: unknown): unknown {
  if (typeof value === "string") return Number(value);
  if (value === null || typeof value !== "object") return value;
  for (const key of Object.keys(value)) {
    const record = value as Record<string, unknown>;
    record[key] = numbersBack(record[key]);
  }
  return value;
}

/**
 * A page of rows (arrays of values, in the fields' order, as mysql2's `rowsAsArray` gives them) as lines of UTF-8.
 * The rows' values of `b` and `n` columns are replaced in place.
 */
export function encodeRows(rows: readonly unknown[][], kinds: readonly ColumnKind[]): Uint8Array {
  const special: number[] = [];
  for (let c = 0; c < kinds.length; c++) if (kinds[c] === "b" || kinds[c] === "n") special.push(c);
  const lines = new LineBuffer();
  for (const row of rows) {
    for (const c of special) {
      const value = row[c];
      if (value === null || value === undefined) continue;
      if (kinds[c] === "n") row[c] = jsonNumbers(value);
      else if (value instanceof Uint8Array)
        row[c] = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
    }
    lines.push(JSON.stringify(row));
  }
  return lines.bytes();
}

interface Decoder {
  kinds: ColumnKind[];
  /** The columns whose values are not taken as they are (kinds other than `v`). */
  special: number[];
  make: (values: unknown[]) => Row;
}

/** The decoder of an encoding made by rowsEncoding, made once per encoding. */
const decoderOf = decoderCache((encoding): Decoder => {
  const fields = encodedFields<ColumnKind>(
    encoding,
    encodingFormat,
    (kind) => typeof kind === "string" && /^[jbnv]$/.test(kind),
    "MariaDB/MySQL rows",
  );
  const names = fields.map(([name]) => name);
  // One object literal with the columns as its keys, compiled once per encoding (as PostgreSQL's COPY decoder does):
  // a later column of the same name wins, in the place of the first, as in mysql2's rows.
  const make = new Function("values", `return ${objectLiteral(names, (_, i) => `values[${i}]`)};`) as Decoder["make"];
  const kinds = fields.map(([, kind]) => kind);
  const special = kinds.flatMap((kind, c) => (kind === "v" ? [] : [c]));
  return { kinds, special, make };
});

// the characters of a line's top level: "[" … "]", values separated by ",", strings in quotes; "{" opens an object
const quote = 0x22;
const backslash = 0x5c;
const comma = 0x2c;
const opening = 0x5b;
const closing = 0x5d;
const brace = 0x7b;

/**
 * The values of the line `text[start, end)`, a JSON array as `encodeRows` writes it (JSON.stringify's text: no white
 * space), when they are all scalars; undefined when one is an array or an object (a VECTOR's or GEOMETRY's, which
 * `JSON.parse` reads instead). Throws on text that is not such an array.
 *
 * Hand-written because V8's JSON.parse internalizes every string value of fewer than 10 characters (V8's
 * kMaxInternalizedStringValueLength) into the thread's string table: a source's short values that differ row by row
 * (BIGINT and DECIMAL as strings, codes, short names) piled up in the table and the old generation until the next
 * full collection, 10 to 48 MB more on a transform thread of a 10,000,000-row MariaDB → PostgreSQL run
 * (docs/benchmarks.md, stop 20). A string without a backslash is its text as it is (JSON escapes with a backslash
 * every character it changes); only strings with one, and numbers, go through JSON.parse.
 */
function lineValues(text: string, start: number, end: number): unknown[] | undefined {
  if (text.charCodeAt(start) !== opening || text.charCodeAt(end - 1) !== closing) throw notArray(text, start, end);
  const values: unknown[] = [];
  if (start + 2 === end) return values;
  let at = start + 1;
  for (;;) {
    const first = text.charCodeAt(at);
    let after: number;
    if (first === quote) {
      let close = text.indexOf('"', at + 1);
      // a quote is the string's end unless an odd number of backslashes stands before it
      for (;;) {
        if (close === -1 || close >= end) throw notArray(text, start, end);
        let slashes = 0;
        while (text.charCodeAt(close - 1 - slashes) === backslash) slashes++;
        if (slashes % 2 === 0) break;
        close = text.indexOf('"', close + 1);
      }
      const value = text.slice(at + 1, close);
      values.push(value.includes("\\") ? JSON.parse(text.slice(at, close + 1)) : value);
      after = close + 1;
    } else if (first === opening || first === brace) {
      return undefined;
    } else {
      after = at;
      while (after < end - 1 && text.charCodeAt(after) !== comma) after++;
      const token = text.slice(at, after);
      values.push(token === "null" ? null : JSON.parse(token));
    }
    if (after === end - 1) return values;
    if (text.charCodeAt(after) !== comma) throw notArray(text, start, end);
    at = after + 1;
  }
}

function notArray(text: string, start: number, end: number): Error {
  const shown = end - start > 80 ? `${text.slice(start, start + 80)}…` : text.slice(start, end);
  return new Error(`a MariaDB/MySQL row is not the JSON array of its values: ${shown}`);
}

/**
 * `mysqlDriver.decode`: the rows of lines made by `encodeRows` (their bytes, or their text), the first `limit` only
 * when given, as `read` yields them.
 */
export function decodeRows(encoding: string, text: string | Uint8Array, limit?: number): Row[] {
  const { kinds, special, make } = decoderOf(encoding);
  const lines = typeof text === "string" ? text : linesText(text, limit);
  const rows: Row[] = [];
  let start = 0;
  while (start < lines.length && (limit === undefined || rows.length < limit)) {
    let end = lines.indexOf("\n", start);
    if (end === -1) end = lines.length;
    const values = lineValues(lines, start, end) ?? (JSON.parse(lines.slice(start, end)) as unknown[]);
    if (!Array.isArray(values) || values.length !== kinds.length)
      throw new Error(
        `a MariaDB/MySQL row has ${Array.isArray(values) ? values.length : 0} values, expected ${kinds.length}`,
      );
    for (const c of special) {
      const value = values[c];
      if (value === null) continue;
      const kind = kinds[c];
      if (kind === "j") {
        if (typeof value !== "string") continue;
        try {
          values[c] = parseJsonExact(value);
        } catch {
          // not JSON after all (an expression the server typed JSON): the text as it is, as `read` gives it
        }
      } else if (kind === "b") values[c] = Buffer.from(value as string, "base64");
      else values[c] = numbersBack(value);
    }
    rows.push(make(values));
    start = end + 1;
  }
  return rows;
}

/**
 * PostgreSQL's COPY text format (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2): one line per
 * row, fields separated by tabs, NULL as `\N`, and backslash, newline, carriage return and tab written as backslash
 * sequences. Encoding gives the server the same text a query parameter would (pg's own conversion of values), so a
 * row written through COPY lands exactly as the multi-row INSERT would land it.
 */
import { createRequire } from "node:module";
import type { Row } from "../../core/binding.ts";
import { mayHoldInexactNumber, parseJsonExact } from "../../core/canonical-json.ts";
import { objectLiteral } from "../../core/object-literal.ts";
import { decoderCache, encodedFields, encodingOf } from "../encoding.ts";
import { cutLines, linesText } from "../lines.ts";
import { isJsonType, textParser } from "./parsers.ts";

/** What the encoding of a column depends on. */
export interface ColumnKind {
  /** json or jsonb (or a domain over them): objects and arrays are sent as JSON text. */
  json: boolean;
  /** An array type: JS arrays become array literals. */
  array: boolean;
}

// pg's conversion of a parameter to its text: array literals (quoting, NULL elements, nested arrays, bytea elements)
// exactly as a parameter would be sent, so that COPY and INSERT agree on every array.
const pgUtils = createRequire(import.meta.url)("pg/lib/utils.js") as { prepareValue(value: unknown): unknown };

/** A value as the text pg would send it as a query parameter (numbers, booleans, arrays, objects as JSON). */
export function parameterText(value: unknown): string {
  return String(pgUtils.prepareValue(value));
}

/**
 * A number as the server's text: as pg would send it (String), but -0 as "-0", which float8 keeps (String gives "0").
 * Canonical records are JSON, which has no -0: a record read back from staging (a resumed run's, the distributed
 * executor's) carries 0.
 */
export function numberText(value: number): string {
  return Object.is(value, -0) ? "-0" : String(value);
}

/**
 * An array value with every -0 in it (nested arrays too) as the text "-0", which pg's array literal quotes and the
 * server reads as -0 (pg writes each number element with String, which gives "0"); the array itself when it holds
 * none. Hand-written: pg has no hook for an element's text.
 */
export function signedZeros(value: readonly unknown[]): readonly unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < value.length; i++) {
    const element = value[i];
    const kept = Object.is(element, -0) ? "-0" : Array.isArray(element) ? signedZeros(element) : element;
    if (!Object.is(kept, element)) {
      copy ??= value.slice();
      copy[i] = kept;
    }
  }
  return copy ?? value;
}

export const copyNull = "\\N";
const special = /[\\\n\r\t]/;
const specials = /[\\\n\r\t]/g;
const escapes: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const escapeChar = (char: string): string => escapes[char] as string;

/** Text → a COPY field: backslash, newline, carriage return and tab as backslash sequences. */
export function escapeCopy(text: string): string {
  return special.test(text) ? text.replace(specials, escapeChar) : text;
}

function bytesText(value: Uint8Array): string {
  return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}`;
}

/**
 * A canonical value → its COPY field, for a column of this kind. The text is what the INSERT path sends as a
 * parameter: objects (and arrays outside array columns) as JSON, Dates as ISO 8601, booleans as true/false, bytes as
 * bytea hex. Throws when the value cannot be sent at all (JSON of a BigInt, an invalid Date), like the INSERT path.
 */
export function encodeField(value: unknown, column: ColumnKind): string {
  switch (typeof value) {
    case "string":
      return escapeCopy(value);
    case "number":
      return numberText(value); // digits, '-', '.', 'e', '+', NaN, Infinity: nothing to escape
    case "bigint":
      return value.toString();
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
      return copyNull;
    case "object": {
      if (value === null) return copyNull;
      if (value instanceof Date) return value.toISOString();
      if (value instanceof Uint8Array) return escapeCopy(bytesText(value));
      if (column.array && !column.json && Array.isArray(value))
        return escapeCopy(pgUtils.prepareValue(signedZeros(value)) as string);
      const json = JSON.stringify(value) as string | undefined;
      // JSON.stringify gives undefined for an object whose toJSON does: NULL, as the parameter would be.
      if (json === undefined) return copyNull;
      // JSON text holds no raw newline, carriage return or tab (it escapes every control character): only its
      // backslashes need escaping, which replaceAll does faster than the general pattern.
      return json.includes("\\") ? json.replaceAll("\\", "\\\\") : json;
    }
    default:
      return escapeCopy(String(value));
  }
}

const unescapes: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v" };
const isOctal = (char: string | undefined): boolean => char !== undefined && char >= "0" && char <= "7";
const isHex = (char: string | undefined): boolean => char !== undefined && /^[0-9a-fA-F]$/.test(char);

/**
 * A COPY field's backslash sequences → text. The server writes \\, \b, \f, \n, \r, \t and \v; octal (\123) and hex
 * (\x5c) sequences, and a backslash before any other character (that character), are decoded too.
 */
export function unescapeCopy(field: string): string {
  let out = "";
  let from = 0;
  for (let at = field.indexOf("\\"); at !== -1 && at < field.length - 1; at = field.indexOf("\\", from)) {
    out += field.slice(from, at);
    const char = field[at + 1] as string;
    const simple = unescapes[char];
    if (simple !== undefined) {
      out += simple;
      from = at + 2;
    } else if (isOctal(char)) {
      let end = at + 2;
      while (end < at + 4 && isOctal(field[end])) end++;
      out += String.fromCharCode(Number.parseInt(field.slice(at + 1, end), 8));
      from = end;
    } else if (char === "x" && isHex(field[at + 2])) {
      const end = isHex(field[at + 3]) ? at + 4 : at + 3;
      out += String.fromCharCode(Number.parseInt(field.slice(at + 2, end), 16));
      from = end;
    } else {
      out += char; // \\ and any other character stand for themselves
      from = at + 2;
    }
  }
  return from === 0 ? field : out + field.slice(from);
}

const elementEscapes = /[\\"]/g;

/**
 * A COPY field → its value as an element of an array literal: quoted, with backslashes and double quotes escaped, or
 * a bare NULL. The field holds a parameter's text (see encodeField), and this is what pg makes of each element of a
 * JS array parameter (utils.js, arrayString), so `'{…}'::type[]` built from fields holds the same values as an array
 * parameter of the rows' values would, at a fraction of the cost.
 */
export function arrayElement(field: string): string {
  const text = fieldText(field);
  if (text === null) return "NULL";
  return text.includes('"') || text.includes("\\") ? `"${text.replace(elementEscapes, "\\$&")}"` : `"${text}"`;
}

export interface CopyField {
  name: string;
  parse: (text: string) => unknown;
  /**
   * The column holds JSON text that the server checked (json, jsonb): parsed with the same column's texts of the
   * other rows decoded at once, in one JSON.parse (see CopyRowDecoder.rows), rather than by `parse`, row by row.
   */
  json?: boolean;
}

/** The fields of a query's columns (name, type OID): each parsed as a read parses it. */
export function copyFields(columns: readonly { name: string; type: number }[]): CopyField[] {
  return columns.map(({ name, type }) => ({
    name,
    parse: textParser(type),
    ...(isJsonType(type) ? { json: true } : {}),
  }));
}

/**
 * Turns lines of `COPY … TO STDOUT` (text format) into rows shaped like pg's own: one property per column in the
 * query's order (a later column of the same name wins), NULL as null, every other value through the column's parser.
 */
export class CopyRowDecoder {
  readonly #names: string[];
  readonly #parsers: ((text: string) => unknown)[];
  /**
   * The JSON columns, parsed a batch of rows at a time (`rows`): one JSON.parse of `[text, text, …]` took 1.08 µs a
   * ~200-byte document against 1.61 for a JSON.parse each, and bench:bulk's rows decoded 100 at a time 2.17–2.28 µs
   * a row against 2.41–2.62 (a slow machine; docs/benchmarks.md, stop 25). None when a JSON column's name is also
   * another column's (the row keeps the later one's value).
   */
  readonly #json: readonly number[];
  /** Per column, whether it is among #json. */
  readonly #isJson: readonly boolean[];
  /** A line's values, in column order, while it is decoded (`row` runs start to end without awaiting). */
  readonly #values: unknown[];
  /**
   * The row of a line's values: one object literal with the columns as its keys, compiled once per decoder. Setting
   * the columns one by one on a copy of a template cost a megamorphic keyed store per field: 2.45 → 2.20 µs a row of
   * bench:bulk's in a microbenchmark of the decoder alone (bench:pipeline's decode stage does not resolve it). A
   * later column of the same name wins, in the place of the first, as in pg's rows; a column named `__proto__` is a
   * property like any other.
   */
  readonly #make: (values: readonly unknown[]) => Row;

  constructor(fields: readonly CopyField[]) {
    this.#names = fields.map((field) => field.name);
    this.#parsers = fields.map((field) => field.parse);
    const json = fields.flatMap((field, i) => (field.json === true ? [i] : []));
    const unique = json.every(
      (i) => this.#names.indexOf(this.#names[i] as string) === this.#names.lastIndexOf(this.#names[i] as string),
    );
    this.#json = unique ? json : [];
    this.#isJson = fields.map((_, i) => this.#json.includes(i));
    this.#values = new Array<unknown>(fields.length).fill(null);
    const literal = objectLiteral(this.#names, (_, i) => `values[${i}]`);
    this.#make = new Function("values", `return ${literal};`) as (values: readonly unknown[]) => Row;
  }

  /** The rows of `text`, lines each ending with a newline: the first `limit` only, when given. */
  rows(text: string, limit = Number.POSITIVE_INFINITY): Row[] {
    const rows: Row[] = [];
    // the JSON columns' texts, row by row, while their rows hold the texts; parsed together at the end
    const json = this.#json.length > 0 ? ([] as string[]) : undefined;
    let start = 0;
    while (rows.length < limit && start < text.length) {
      const end = text.indexOf("\n", start);
      if (end === -1) throw new Error(`COPY data ended in the middle of a row (${text.length - start} characters)`);
      rows.push(this.row(text, start, end, json));
      start = end + 1;
    }
    if (json !== undefined && json.length > 0) this.#parseJson(rows, json);
    return rows;
  }

  /** The row of the line `text[start, end)`; its JSON columns' texts go to `json` (parsed later) when given. */
  row(text: string, start: number, end: number, json?: string[]): Row {
    const values = this.#values;
    const last = values.length - 1;
    let from = start;
    for (let i = 0; i <= last; i++) {
      let to = end;
      if (i < last) {
        to = text.indexOf("\t", from);
        if (to === -1 || to > end) throw new Error(`a COPY row has ${i + 1} fields, expected ${last + 1}`);
      }
      const field = fieldText(text.slice(from, to));
      if (field === null) values[i] = null;
      else if (json !== undefined && this.#isJson[i] === true) {
        json.push(field);
        values[i] = field;
      } else values[i] = (this.#parsers[i] as (text: string) => unknown)(field);
      from = to + 1;
    }
    if (from !== end + 1) throw new Error(`a COPY row has more than ${last + 1} fields`);
    return this.#make(values);
  }

  /**
   * Replaces the texts of the rows' JSON columns (`texts`, in row and column order; NULLs are not among them) by their
   * values. The server checked each text to be one JSON value (json and jsonb take nothing else), so the texts joined
   * by commas make an array of as many. Should they not, each is parsed alone, and a text that is not JSON fails as
   * JSON.parse fails on it. (Texts the server did not check could also join into as many values, wrongly cut: `1,2`,
   * `[3`, `4]` make three. The decoder is only given the server's COPY output, the engine's own staging of it included.)
   * Numbers a double cannot hold become raw JSON values of their text, as the column's parser makes them
   * (parseJsonExact): a batch none of whose texts has 16 digits in a row outside a string (mayHoldInexactNumber, one
   * look over the joined texts) is parsed as it always was.
   */
  #parseJson(rows: Row[], texts: string[]): void {
    // scanned before the brackets are added: a concatenation is a rope, whose characters are slow to read one by one
    // (mayHoldInexactNumber)
    const joined = texts.join(",");
    let values: unknown[] | undefined;
    if (!mayHoldInexactNumber(joined)) values = parseJoined(`[${joined}]`, texts.length);
    else {
      // Rare: some text may hold a number a double cannot hold. Those texts are parsed alone (parseJsonExact), the
      // others still together.
      const exact = texts.map(mayHoldInexactNumber);
      const others = texts.filter((_, k) => !exact[k]);
      const parsed = others.length === 0 ? [] : parseJoined(`[${others.join(",")}]`, others.length);
      if (parsed !== undefined) {
        let next = 0;
        values = texts.map((text, k) => (exact[k] ? parseJsonExact(text) : parsed[next++]));
      }
    }
    values ??= texts.map(parseJsonExact);
    let k = 0;
    for (const row of rows) {
      for (const i of this.#json) {
        const name = this.#names[i] as string;
        if (row[name] !== null) row[name] = values[k++];
      }
    }
  }

  /**
   * Some columns of one line (without its newline), as `row` would give them: what a batch's position needs of its
   * last row, without decoding the rest. A name that is not a column is left out.
   */
  pick(line: string, names: readonly string[]): Row {
    const at = names.map((name) => this.#names.lastIndexOf(name));
    const wanted = Math.max(...at);
    const values: unknown[] = [];
    let from = 0;
    for (let i = 0; i <= wanted; i++) {
      let to = line.indexOf("\t", from);
      if (to === -1) {
        if (i < wanted) throw new Error(`a COPY row has ${i + 1} fields, expected ${this.#names.length}`);
        to = line.length;
      }
      values.push(at.includes(i) ? this.#value(i, line.slice(from, to)) : undefined);
      from = to + 1;
    }
    const row: Row = {};
    for (const [k, name] of names.entries()) if ((at[k] as number) >= 0) row[name] = values[at[k] as number];
    return row;
  }

  #value(index: number, field: string): unknown {
    const text = fieldText(field);
    return text === null ? null : (this.#parsers[index] as (text: string) => unknown)(text);
  }
}

/**
 * The values of `count` JSON texts joined by commas into one array's text, when it holds that many; undefined when it
 * does not parse or holds another number of values (see CopyRowDecoder's #parseJson).
 */
function parseJoined(joined: string, count: number): unknown[] | undefined {
  try {
    const parsed: unknown = JSON.parse(joined);
    return Array.isArray(parsed) && parsed.length === count ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** A COPY field's text, its backslash sequences decoded; null for NULL. */
function fieldText(field: string): string | null {
  if (field === copyNull) return null;
  return field.includes("\\") ? unescapeCopy(field) : field;
}

/**
 * Whole lines taken from a COPY stream: their bytes (each line with its newline), in parts that concatenate into
 * them, how many, and the last line's text.
 */
export interface CopyLinesTaken {
  parts: Buffer[];
  count: number;
  /** The last line, decoded, without its newline ("" when none). */
  last: string;
}

const newline = 0x0a;

/**
 * Cuts the byte stream of `COPY … TO STDOUT` into whole lines, a batch at a time, without looking inside them or
 * decoding them (that is the decoder's work, possibly on another thread): the bytes of each line are found by their
 * newline, which UTF-8 never uses inside a character, and handed out as slices of the chunks received. Each newline
 * is searched once. Only a batch's last line is decoded, for the position after it.
 */
export class CopyLines {
  /** Chunks not handed out whole yet, in order; the first from #offset on. */
  readonly #chunks: Buffer[] = [];
  #offset = 0;
  /** The lines collected for the next take. */
  #parts: Buffer[] = [];
  #count = 0;
  /** Where the last line collected starts and ends: in the chunk it lies in, or (spanning chunks) as its bytes. */
  #last: Buffer | undefined;

  push(chunk: Buffer): void {
    if (chunk.length > 0) this.#chunks.push(chunk);
  }

  /** At the end of the data: bytes after the last newline mean the stream was cut. */
  end(): void {
    const last = this.#chunks.at(-1);
    if (last === undefined || last[last.length - 1] === newline) return;
    const cut = last.length - (last.lastIndexOf(newline) + 1);
    throw new Error(`COPY data ended in the middle of a row (${cut} bytes or more)`);
  }

  /** No line is left, collected or not. */
  get empty(): boolean {
    return this.#count === 0 && this.#chunks.length === 0;
  }

  /** Collects whole lines until `size` are; false when the data pushed so far has fewer. */
  collect(size: number): boolean {
    while (this.#count < size) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) return false;
      const from = this.#offset;
      let at = from;
      let lastStart = -1;
      let lastEnd = -1;
      while (this.#count < size) {
        const end = chunk.indexOf(newline, at);
        if (end === -1) break;
        lastStart = at;
        lastEnd = end;
        this.#count++;
        at = end + 1;
      }
      if (lastStart === -1) {
        // no newline in this chunk from `from` on: its bytes begin a line that a later chunk ends
        if (!this.#joinFirst()) return false;
        continue;
      }
      this.#last = chunk.subarray(lastStart, lastEnd);
      this.#parts.push(from === 0 && at === chunk.length ? chunk : chunk.subarray(from, at));
      if (at === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      } else this.#offset = at;
    }
    return true;
  }

  /**
   * Joins the first chunk's rest with the next chunk (a line spans them); false when there is no next chunk yet.
   * Rare: chunks are tens of kilobytes, lines hundreds of bytes.
   */
  #joinFirst(): boolean {
    if (this.#chunks.length < 2) return false;
    const first = this.#chunks.shift() as Buffer;
    const second = this.#chunks.shift() as Buffer;
    this.#chunks.unshift(Buffer.concat([first.subarray(this.#offset), second]));
    this.#offset = 0;
    return true;
  }

  /** Hands out the lines collected. */
  take(): CopyLinesTaken {
    const taken = { parts: this.#parts, count: this.#count, last: this.#last?.toString("utf8") ?? "" };
    this.#parts = [];
    this.#count = 0;
    this.#last = undefined;
    return taken;
  }
}

// ── encoded reads ───────────────────────────────────────────────────────────────────────────────────────────────

const encodingFormat = "postgres-copy-text/1";

/**
 * The `encoding` of a COPY read's batches: its columns' names and type OIDs, as JSON (which escapes newlines), all
 * `decode` needs to parse the lines as the read would.
 */
export function copyEncoding(fields: readonly { name: string; type: number }[]): string {
  return encodingOf(
    encodingFormat,
    fields.map((field) => [field.name, field.type]),
  );
}

/** The decoder of an encoding made by copyEncoding, made once per encoding. */
const decoderOf = decoderCache(
  (encoding) =>
    new CopyRowDecoder(
      copyFields(
        encodedFields<number>(encoding, encodingFormat, Number.isInteger, "PostgreSQL COPY text").map(
          ([name, type]) => ({
            name,
            type,
          }),
        ),
      ),
    ),
);

/**
 * `postgresDriver.cut`: COPY lines (their bytes, or their text) cut after the first `rows` lines. A field's newlines
 * are escaped (`\n`), so every newline ends a line.
 */
export function cutCopy(
  _encoding: string,
  lines: string | Uint8Array,
  rows: number,
): [string | Uint8Array, string | Uint8Array] {
  return cutLines(lines, rows, "COPY data");
}

/**
 * `postgresDriver.decode`: the rows of COPY lines read with `readEncoded` (their bytes, or their text), as `read`
 * would have yielded them (the same decoder). Pure: it runs on transform threads.
 */
export function decodeCopy(encoding: string, lines: string | Uint8Array, limit?: number): Row[] {
  const text = typeof lines === "string" ? lines : linesText(lines, limit);
  return decoderOf(encoding).rows(text, limit);
}

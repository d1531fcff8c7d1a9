/**
 * PostgreSQL's COPY text format (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2): one line per
 * row, fields separated by tabs, NULL as `\N`, and backslash, newline, carriage return and tab written as backslash
 * sequences. Encoding gives the server the same text a query parameter would (pg's own conversion of values), so a
 * row written through COPY lands exactly as the multi-row INSERT would land it.
 */
import { createRequire } from "node:module";
import { StringDecoder } from "node:string_decoder";
import type { Row } from "../../core/binding.ts";

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
      return String(value); // digits, '-', '.', 'e', '+', NaN, Infinity: nothing to escape
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
        return escapeCopy(pgUtils.prepareValue(value) as string);
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

export interface CopyField {
  name: string;
  parse: (text: string) => unknown;
}

/**
 * Turns the byte stream of `COPY … TO STDOUT` (text format) into rows shaped like pg's own: one property per
 * column in the query's order (a later column of the same name wins), NULL as null, every other value through the
 * column's parser. Chunks may end anywhere, in the middle of a line or of a UTF-8 sequence.
 */
export class CopyTextParser {
  readonly #decoder = new StringDecoder("utf8");
  readonly #names: string[];
  readonly #parsers: ((text: string) => unknown)[];
  readonly #template: Row;
  #rest = "";

  constructor(fields: readonly CopyField[]) {
    this.#names = fields.map((field) => field.name);
    this.#parsers = fields.map((field) => field.parse);
    const template: Row = {};
    for (const name of this.#names) template[name] = null;
    this.#template = template;
  }

  /** Appends the rows of every complete line of `chunk` to `out`; an incomplete last line waits for the next. */
  push(chunk: Buffer, out: Row[]): void {
    const decoded = this.#decoder.write(chunk);
    const text = this.#rest === "" ? decoded : this.#rest + decoded;
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      out.push(this.#row(text, start, end));
      start = end + 1;
    }
    this.#rest = start === text.length ? "" : text.slice(start);
  }

  /** At the end of the data: a last line without its newline means the stream was cut. */
  end(): void {
    const rest = this.#rest + this.#decoder.end();
    this.#rest = "";
    if (rest !== "") throw new Error(`COPY data ended in the middle of a row (${rest.length} characters)`);
  }

  #row(text: string, start: number, end: number): Row {
    const row: Row = { ...this.#template };
    const last = this.#names.length - 1;
    let from = start;
    for (let i = 0; i <= last; i++) {
      let to = end;
      if (i < last) {
        to = text.indexOf("\t", from);
        if (to === -1 || to > end) throw new Error(`a COPY row has ${i + 1} fields, expected ${last + 1}`);
      }
      let field = text.slice(from, to);
      if (field === copyNull) {
        row[this.#names[i] as string] = null;
      } else {
        if (field.includes("\\")) field = unescapeCopy(field);
        row[this.#names[i] as string] = (this.#parsers[i] as (text: string) => unknown)(field);
      }
      from = to + 1;
    }
    if (from !== end + 1) throw new Error(`a COPY row has more than ${last + 1} fields`);
    return row;
  }
}

import pg from "pg";
import { parseJsonExact } from "../../core/canonical-json.ts";

// Types returned as the server's text, so that values are exact: no float for int8 and numeric, no JS Date (which
// keeps milliseconds only) for dates, times and timestamps. Their arrays become arrays of that text.
const textTypes = new Set([
  20, // int8
  1700, // numeric
  1082, // date
  1083, // time
  1266, // timetz
  1114, // timestamp
  1184, // timestamptz
  1186, // interval
]);
const textArrayTypes = new Set([1016, 1231, 1182, 1183, 1270, 1115, 1185, 1187]);
const asText = (value: string): string => value;
// pg's own parsers, typed by plain OID (its TypeId enum lacks the array types).
const builtinParser = pg.types.getTypeParser as (oid: number, format?: string) => (value: string) => unknown;
const parseTextArray = builtinParser(1009, "text"); // text[]: elements kept as text, NULL as null

/** Whether a type OID is json or jsonb, whose text the server checked to be one JSON value. */
export function isJsonType(oid: number): boolean {
  return oid === 114 || oid === 3802;
}

/**
 * json and jsonb: JSON.parse (whatever other code made of pg's global parsers), numbers a double cannot hold kept as
 * raw JSON values of their text (parseJsonExact): COPY reads parse them so too (copy-text.ts).
 */
const parseJson = (value: string): unknown => parseJsonExact(value);

/** Nested arrays of text (and NULLs) with every text parsed as JSON. */
function parseJsonElements(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(parseJsonElements);
  return typeof value === "string" ? parseJsonExact(value) : value;
}

/** json[] and jsonb[]: pg parses their elements with JSON.parse; here as json and jsonb columns are parsed. */
const parseJsonArray = (value: string): unknown => parseJsonElements(parseTextArray(value));

/** The parser of a column's text, by type OID: what every read (keyset pages and COPY) turns values into. */
export function textParser(oid: number): (value: string) => unknown {
  if (textTypes.has(oid)) return asText;
  if (isJsonType(oid)) return parseJson;
  if (oid === 199 || oid === 3807) return parseJsonArray; // json[], jsonb[]
  if (textArrayTypes.has(oid)) return parseTextArray;
  return builtinParser(oid, "text");
}

/** The parsers of every connection of the driver (pg's global parsers may have been changed by other code). */
export const exactTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    format === "binary" ? builtinParser(oid, format) : textParser(oid)) as pg.CustomTypesConfig["getTypeParser"],
};

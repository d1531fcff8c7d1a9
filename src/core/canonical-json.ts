/**
 * Canonical JSON: the same data gives the same text whatever the order of its keys, so that its hash identifies
 * the content. The rule: `JSON.stringify` of a copy of the value whose object keys were inserted in sorted order,
 * at every depth. (JavaScript lists integer-like keys first, in numeric order, whatever the insertion order: the rule
 * stays deterministic for them too.) `undefined` properties are left out, dates become their ISO text, as in JSON.
 *
 * Hand-written because the libraries that sort keys (safe-stable-stringify, fast-json-stable-stringify) sort at
 * every object of every record and build the text by concatenation, which V8 keeps as a rope that the hash must
 * flatten again (~1.7 µs a record here). A copier compiled once from the entity's schema knows each object's sorted
 * property list in advance, and the native JSON.stringify then writes one flat string (~0.6 µs).
 */
import { objectLiteral } from "./object-literal.ts";

type Copy = (value: unknown) => unknown;

/**
 * A copy of `value` with every object's keys inserted in sorted order (dates and other toJSON values resolved). A raw
 * JSON value (`JSON.rawJSON`, see parseJsonExact) is itself: JSON.stringify writes its text as it is.
 */
export function canonicalCopy(value: unknown): unknown {
  if (value === null || typeof value !== "object" || isRawJson(value)) return value;
  const toJSON = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof toJSON === "function") return canonicalCopy(toJSON.call(value));
  if (Array.isArray(value)) return value.map(canonicalCopy);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const item = (value as Record<string, unknown>)[key];
    if (item === undefined) continue;
    // an own "__proto__" (JSON.parse makes them) is data: assigned, it would set the copy's prototype instead
    if (key === "__proto__")
      Object.defineProperty(out, key, {
        value: canonicalCopy(item),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else out[key] = canonicalCopy(item);
  }
  return out;
}

export function stableStringify(value: unknown): string {
  return JSON.stringify(canonicalCopy(value)) ?? "null";
}

interface SchemaNode {
  type?: unknown;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: unknown;
  patternProperties?: unknown;
  items?: unknown;
  anyOf?: unknown;
  oneOf?: unknown;
  allOf?: unknown;
}

const scalarTypes = new Set(["string", "number", "integer", "boolean", "null"]);

function hasFixedProperties(node: SchemaNode): boolean {
  return (
    node.type === "object" &&
    node.properties !== undefined &&
    node.patternProperties === undefined &&
    node.anyOf === undefined &&
    node.oneOf === undefined &&
    node.allOf === undefined
  );
}

const identity: Copy = (value) => value;

/** The copier for a schema: sorted property lists known in advance; open or unknown parts copied the generic way. */
function compileCopy(node: SchemaNode): Copy {
  if (typeof node.type === "string" && scalarTypes.has(node.type) && node.anyOf === undefined) {
    return (value) => (value !== null && typeof value === "object" ? canonicalCopy(value) : value);
  }
  if (
    node.type === "array" &&
    node.items !== undefined &&
    typeof node.items === "object" &&
    !Array.isArray(node.items)
  ) {
    const item = compileCopy(node.items as SchemaNode);
    if (item === identity) return (value) => (Array.isArray(value) ? value.slice() : canonicalCopy(value));
    return (value) => (Array.isArray(value) ? value.map(item) : canonicalCopy(value));
  }
  if (hasFixedProperties(node)) return compileObjectCopy(node);
  return canonicalCopy;
}

/**
 * The copier of an object with fixed properties: one object literal with its keys in sorted order, compiled once per
 * schema node (`new Function`, as TypeBox compiles its checks). A closure setting the keys one by one cost a
 * megamorphic keyed load and store per property: 1.9 µs against 1.2 µs a bench:bulk record for the whole canonical
 * JSON. Properties whose value is undefined are copied as undefined, which JSON.stringify leaves out. A closed object
 * (additionalProperties: false) was checked by validation to have no other keys; an open one is checked here, and one
 * that carries extra keys, like any value that is not a plain object, goes the generic way.
 */
function compileObjectCopy(node: SchemaNode): Copy {
  const properties = node.properties as Record<string, SchemaNode>;
  const keys = Object.keys(properties).sort();
  const copies = keys.map((key) => compileCopy(properties[key] as SchemaNode));
  const read = (key: string): string => `value[${JSON.stringify(key)}]`;
  const check =
    node.additionalProperties === false
      ? ""
      : `let present = 0;
         ${keys.map((key) => `if (${read(key)} !== undefined || Object.hasOwn(value, ${JSON.stringify(key)})) present++;`).join("\n")}
         if (present !== Object.keys(value).length) return generic(value);`;
  const body = `return function copyObject(value) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || typeof value.toJSON === "function")
      return generic(value);
    ${check}
    return ${objectLiteral(keys, (key, i) => `copy${i}(${read(key)})`)};
  };`;
  const names = copies.map((_, i) => `copy${i}`);
  return new Function("generic", ...names, body)(canonicalCopy, ...copies) as Copy;
}

/**
 * Compiles the canonical serializer of values that conform to `schema`. The result is identical to
 * `stableStringify(value)` for every value the schema accepts (callers validate first).
 */
export function compileCanonicalJson(schema: object): (value: unknown) => string {
  const copy = compileCopy(schema as SchemaNode);
  return (value) => JSON.stringify(copy(value)) ?? "null";
}

// ── numbers a double cannot hold ────────────────────────────────────────────────────────────────────────────────

/** What `JSON.rawJSON` makes: a frozen object without prototype whose JSON is `rawJSON`, as it is. */
export interface RawJson {
  readonly rawJSON: string;
}

// JSON.rawJSON and JSON.isRawJSON (Node 24; not in the TypeScript lib this project targets)
const nativeJson = JSON as JSON & {
  rawJSON(text: string): RawJson;
  isRawJSON(value: unknown): value is RawJson;
};

/** A raw JSON value of `text` (`JSON.rawJSON`), which must be one JSON number, string, boolean or null. */
export function rawJson(text: string): RawJson {
  return nativeJson.rawJSON(text);
}

/** Whether `value` is a raw JSON value (`JSON.rawJSON`): JSON.stringify writes its text, not an object. */
export function isRawJson(value: unknown): value is RawJson {
  return nativeJson.isRawJSON(value);
}

const isNumberChar = (code: number): boolean => (code >= 48 && code <= 57) || code === 46; // 0-9 .

// what may stand before a JSON number (its minus sign aside) and after it: never a quote, which makes the run of
// digits part of a string (an id of 19 digits kept as a string, as JSON APIs do, is no number to look at)
const beforeNumber = new Set([0x3a, 0x2c, 0x5b, 0x20, 0x09, 0x0a, 0x0d]); // : , [ and white space
const afterNumber = new Set([0x2c, 0x5d, 0x7d, 0x20, 0x09, 0x0a, 0x0d, 0x65, 0x45]); // , ] } white space e E

/** Whether the run of digits and points `text[start, end)` may be a JSON number: not inside a string's quotes. */
function numberBounds(text: string, start: number, end: number): boolean {
  let before = start - 1;
  if (text.charCodeAt(before) === 0x2d) before--; // -
  return (
    (before < 0 || beforeNumber.has(text.charCodeAt(before))) &&
    (end >= text.length || afterNumber.has(text.charCodeAt(end)))
  );
}

/**
 * Whether JSON text may hold a number a double cannot hold: 16 or more digits (and a decimal point) in a row, not
 * between quotes. A double round-trips every number of 15 significant digits and fewer (within its range): a number
 * beyond ±2^53, or with more significant digits than a double keeps, is written with at least 16. Only every 16th
 * character is looked at, and the run around it when it is a digit or a point: a run of 16 always holds one of them.
 * `npm run bench:json-numbers`: 0.075 µs a bench:bulk document against JSON.parse's 1.35 (docs/benchmarks.md, stop
 * 33). Numbers whose exponent puts them beyond a double's range (`1e400`, `1e-400`: text no JSON writer of doubles
 * makes, and PostgreSQL's jsonb prints numbers without one) are not looked for. Give it flat text, not a
 * concatenation just made (`"[" + text + "]"`): V8 reads such a rope's characters one at a time, slowly.
 */
export function mayHoldInexactNumber(text: string): boolean {
  const length = text.length;
  for (let at = 15; at < length; at += 16) {
    if (!isNumberChar(text.charCodeAt(at))) continue;
    let start = at;
    while (start > 0 && isNumberChar(text.charCodeAt(start - 1))) start--;
    let end = at + 1;
    while (end < length && isNumberChar(text.charCodeAt(end))) end++;
    if (end - start >= 16 && numberBounds(text, start, end)) return true;
    // the run's end is not a number character: the next look is past it
    at += Math.floor((end - 1 - at) / 16) * 16;
  }
  return false;
}

const exponentMark = /[eE]/;

/**
 * A JSON number's text as a decimal in one form (`-0.<digits>e<exponent>`, the digits without leading or trailing
 * zeros; "0" for zero, whatever its sign), so that two texts of the same number compare equal: `1.50` and `15e-1`.
 */
function decimalOf(text: string): string {
  const negative = text.charCodeAt(0) === 45; // -
  const mark = text.search(exponentMark);
  const mantissa = text.slice(negative ? 1 : 0, mark === -1 ? text.length : mark);
  const point = mantissa.indexOf(".");
  const whole = point === -1 ? mantissa.length : point;
  const digits = point === -1 ? mantissa : mantissa.slice(0, point) + mantissa.slice(point + 1);
  let first = 0;
  while (first < digits.length && digits.charCodeAt(first) === 48) first++;
  let last = digits.length;
  while (last > first && digits.charCodeAt(last - 1) === 48) last--;
  if (first === last) return "0";
  const exponent = whole - first + (mark === -1 ? 0 : Number(text.slice(mark + 1)));
  return `${negative ? "-" : ""}0.${digits.slice(first, last)}e${exponent}`;
}

/**
 * Whether the double `value` that JSON.parse made of the number text `source` is another number than the text's:
 * the double's shortest text (what JSON.stringify writes) is another decimal, or the text is beyond a double's range.
 * `0.1` is the double 0.1 (whose text is `0.1`); `12345678901234567890` is not 12345678901234567000, nor
 * `1.0000000000000000001` the double 1.
 */
function inexactNumber(source: string, value: number): boolean {
  // at most 15 digits and no exponent: a double round-trips it
  if (source.length < 16 && !exponentMark.test(source)) return false;
  if (!Number.isFinite(value)) return true;
  return decimalOf(source) !== decimalOf(String(value));
}

/** JSON.parse's reviver for parseJsonExact: a number a double cannot hold becomes its text, as a raw JSON value. */
function keepExactNumbers(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value !== "number") return value;
  const source = context?.source;
  return source !== undefined && inexactNumber(source, value) ? nativeJson.rawJSON(source) : value;
}

/**
 * JSON.parse, but a number a double cannot hold exactly (an integer beyond ±2^53 other than the double JSON.parse
 * makes of it, a decimal with more significant digits than a double keeps, a number beyond a double's range) becomes
 * a raw JSON value of its text (`JSON.rawJSON`), which JSON.stringify writes back as it was: a JSON column's value
 * reaches a JSON column of the target, and the canonical JSON and its content hash, with the number as the source had
 * it. Text without 16 digits in a row outside strings (nearly all) is parsed by JSON.parse alone: a reviver, called
 * for every value, makes a parse ~5 times dearer (`npm run bench:json-numbers`: 6.8 µs a bench:bulk document against
 * 1.35), and is only paid where such a number is.
 */
export function parseJsonExact(text: string): unknown {
  return mayHoldInexactNumber(text) && holdsInexactNumber(text) ? JSON.parse(text, keepExactNumbers) : JSON.parse(text);
}

/**
 * A run of 16 or more digits and points (group 2), with its sign (1) and exponent (3): a candidate number
 * mayHoldInexactNumber saw.
 */
const longNumber = /(-?)([0-9.]{16,})([eE][+-]?[0-9]+)?/g;

/**
 * Whether text that mayHoldInexactNumber flagged does hold a number a double cannot hold: each long run of digits
 * outside strings is checked as the number it is. Most long numbers are doubles written in full (`0.30000000000000004`,
 * `52.85333333333334`: exact), and a whole chunk staged with one would otherwise go through the reviver for nothing
 * (bench:json-numbers: a document with one, 3.6 µs, against the reviver's 6.8 and JSON.parse's 1.4).
 */
function holdsInexactNumber(text: string): boolean {
  for (const match of text.matchAll(longNumber)) {
    const start = match.index + (match[1] as string).length;
    if (!numberBounds(text, start, start + (match[2] as string).length)) continue;
    if (inexactNumber(match[0], Number(match[0]))) return true;
  }
  return false;
}

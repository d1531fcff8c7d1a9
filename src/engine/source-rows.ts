/**
 * A chunk's source rows as they travel from extract to transform, and as they are staged: decoded rows (JSON text
 * when staged), or the source's own text (`Connection.readEncoded`: a COPY stream's lines, say), staged as it is and
 * decoded with the source driver's `decode` only where the chunk is transformed — on a transform thread, when the
 * engine has them. The source text is most often several times cheaper to stage than the JSON of its rows, and the
 * thread that transforms it is then the only one to pay for its decoding.
 */

import type { Driver, EncodedBatch } from "../connectors/types.ts";
import type { Row } from "../core/binding.ts";
import { utf8 } from "../core/bytes.ts";
import { parseJsonExact } from "../core/canonical-json.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { StagedValue } from "../store/types.ts";

export type SourceRows = { rows: Row[] } | Pick<EncodedBatch, "encoding" | "text" | "count">;

/**
 * Staged source text starts with this character, which JSON text never does, then the row count, the same character,
 * the encoding, a newline and the text.
 */
const encodedMark = "\u0001";

export function rowCount(data: SourceRows): number {
  return "rows" in data ? data.rows.length : data.count;
}

/** Joins consecutive encoded batches of one read into one chunk (their texts concatenate, by the connector contract). */
export function joinEncoded(batches: readonly Pick<EncodedBatch, "encoding" | "text" | "count">[]): SourceRows {
  const first = batches[0];
  if (first === undefined) return { rows: [] };
  if (batches.length === 1) return { encoding: first.encoding, text: first.text, count: first.count };
  let count = 0;
  let bytes = false;
  for (const batch of batches) {
    if (batch.encoding !== first.encoding)
      throw new FrancaError(ErrorCode.Internal, "the batches of one read came in different encodings");
    count += batch.count;
    if (typeof batch.text !== "string") bytes = true;
  }
  const text = bytes
    ? Buffer.concat(batches.map((batch) => (typeof batch.text === "string" ? Buffer.from(batch.text) : batch.text)))
    : batches.map((batch) => batch.text).join("");
  return { encoding: first.encoding, text, count };
}

/**
 * Values of decoded rows that JSON would change (a connector's binary columns: Buffers from pg and mysql2,
 * Uint8Arrays from node:sqlite; BigInts; Dates; NaN, the infinities and -0), at any depth (pg's `bytea[]`), staged as
 * an object with one tagged key, `{"\u0000buffer": base64}` and the like, and made again when the rows are read back.
 * Plain JSON would stage a Buffer as `{"type":"Buffer","data":[…]}` and a Uint8Array as `{"0":…,"1":…}`, NaN as null,
 * and throw on a BigInt, so that a chunk mapped from its staged rows (a resumed run, a replay, a chunk mapped on a
 * transform thread, every chunk of the distributed executor) would not see what the first mapping saw. Rows rarely
 * hold them: only a chunk whose rows do is staged with tags (`withTags`), marked by a leading `\u0002`, and only such
 * a chunk is searched for tags when read back, so that plain data is never taken for a tag.
 */
const taggedMark = "\u0002";
const tag = "\u0000";
const tagOf = (value: unknown): string | undefined => {
  // NaN and the infinities become null in JSON, -0 becomes 0 (a float column read as a value: pg, node:sqlite)
  if (typeof value === "number") return Number.isFinite(value) && (value !== 0 || 1 / value > 0) ? undefined : "number";
  if (typeof value === "bigint") return "bigint";
  if (value === null || typeof value !== "object") return undefined;
  if (value instanceof Uint8Array) return Buffer.isBuffer(value) ? "buffer" : "bytes";
  if (value instanceof Date) return "date";
  return undefined;
};

/** The tagged object that stands for a value JSON would change. */
function toTag(value: unknown, kind: string): Record<string, unknown> {
  switch (kind) {
    case "bigint":
      return { [`${tag}bigint`]: String(value) };
    case "number":
      return { [`${tag}number`]: Object.is(value, -0) ? "-0" : String(value) };
    case "date":
      return { [`${tag}date`]: Number.isNaN((value as Date).getTime()) ? null : (value as Date).toISOString() };
    default: {
      const bytes = value as Uint8Array;
      return { [`${tag}${kind}`]: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") };
    }
  }
}

/**
 * `value` with every value JSON would change replaced by its tagged object, at any depth: the same value when it holds
 * none (so this one walk is also the check whether a chunk needs tags), else a copy of the parts that do. A copy,
 * then JSON.stringify's own fast path, rather than a replacer called for every value: rows with one binary column
 * staged at 1.9–2.0 µs a row, against 3.3–3.5 with the replacer and 1.0 for the JSON alone.
 */
function withTags(value: unknown): unknown {
  const kind = tagOf(value);
  if (kind !== undefined) return toTag(value, kind);
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const next = withTags(value[i]);
      if (next !== value[i]) {
        copy ??= value.slice();
        copy[i] = next;
      }
    }
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    const next = withTags(item);
    if (next === item) continue;
    copy ??= { ...(value as Record<string, unknown>) };
    // (an own "__proto__", which JSON.parse makes, is assigned as the data it is: the own property shadows the setter)
    copy[key] = next;
  }
  return copy ?? value;
}

/** The value a tagged object stands for; undefined when `name` is no tag of ours. */
function fromTag(name: string, item: unknown): unknown {
  switch (name.slice(1)) {
    case "bigint":
      return BigInt(item as string);
    case "number":
      return Number(item as string);
    case "buffer":
      return Buffer.from(item as string, "base64");
    case "bytes": {
      const bytes = Buffer.from(item as string, "base64");
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    case "date":
      return new Date(item === null ? Number.NaN : (item as string));
    default:
      return undefined;
  }
}

/**
 * Parsed rows with their tagged objects made values again, in place. A walk of the parsed rows rather than a
 * JSON.parse reviver: the reviver, called for every value, read back rows with one binary column at 12 µs a row
 * against 1.4 for the JSON alone.
 */
function untag(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = untag(value[i]);
    return value;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 1 && (keys[0] as string).startsWith(tag)) {
    const back = fromTag(keys[0] as string, record[keys[0] as string]);
    if (back !== undefined) return back;
  }
  for (const key of keys) {
    const item = record[key];
    const next = untag(item);
    if (next === item) continue;
    record[key] = next; // an own "__proto__" too: the own property shadows the setter
  }
  return record;
}

/** The staged form of a chunk's source rows: text, or a header and the bytes the source gave (not copied). */
export function encodeSourceRows(data: SourceRows): StagedValue {
  if ("rows" in data) {
    const tagged = withTags(data.rows);
    return tagged === data.rows ? JSON.stringify(data.rows) : taggedMark + JSON.stringify(tagged);
  }
  const header = `${encodedMark}${data.count}${encodedMark}${data.encoding}\n`;
  return typeof data.text === "string" ? header + data.text : [header, data.text];
}

/**
 * The encoding of a chunk of decoded rows given as their staged text (`encodeSourceRows`: JSON, tagged where need be),
 * which any thread can decode without the source's driver: what a transform thread is sent for a source whose rows
 * come decoded (MariaDB/MySQL, PostgreSQL without COPY, SQLite, APIs), so that the thread maps them, not the engine's.
 * The engine's thread makes that text anyway, to stage the chunk.
 */
export const stagedRowsEncoding = "franca/staged-rows";

/**
 * What to hand a transform thread for a chunk staged as `staged`: decoded rows as their staged text (which a thread
 * can take, where it cannot take live rows), anything else as it is.
 */
export function forThreads(data: SourceRows, staged: StagedValue): SourceRows {
  if (!("rows" in data) || typeof staged !== "string") return data;
  return stagedRows(staged, data.rows.length);
}

/** `count` decoded rows as their staged text (`stagedRowsEncoding`). */
const stagedRows = (text: string, count: number): SourceRows => ({ encoding: stagedRowsEncoding, text, count });

/**
 * A chunk read back from its staged text for the transform (a resumed run's): with transform threads, decoded rows
 * stay their staged text, counted by the chunk's record in the store (`records`), for a thread to parse, as a chunk
 * fresh from the source would go (`forThreads`); otherwise as `decodeSourceRows` gives it.
 */
export function stagedForTransform(staged: string, records: number | undefined, threads: boolean): SourceRows {
  if (threads && records !== undefined && !staged.startsWith(encodedMark)) return stagedRows(staged, records);
  return decodeSourceRows(staged);
}

/** The staged form back; JSON rows are parsed, source text is kept for its driver to decode (see `rowsOf`). */
export function decodeSourceRows(staged: string): SourceRows {
  // parseJsonExact: a number a double cannot hold (a JSON column's, read as JSON.rawJSON) comes back as it went
  if (staged.startsWith(taggedMark)) return { rows: untag(parseJsonExact(staged.slice(1))) as Row[] };
  if (!staged.startsWith(encodedMark)) return { rows: parseJsonExact(staged) as Row[] };
  const mark = staged.indexOf(encodedMark, 1);
  const newline = staged.indexOf("\n", mark);
  return {
    count: Number(staged.slice(1, mark)),
    encoding: staged.slice(mark + 1, newline),
    text: staged.slice(newline + 1),
  };
}

/** The rows themselves (the first `limit`, when given), decoding source text with the source system's driver. */
export function rowsOf(data: SourceRows, driver: Driver, system: string, limit?: number): Row[] {
  if ("rows" in data) return limit === undefined ? data.rows : data.rows.slice(0, limit);
  if (data.encoding === stagedRowsEncoding) return rowsOf(decodeSourceRows(utf8(data.text)), driver, system, limit);
  if (driver.decode === undefined) {
    throw new FrancaError(ErrorCode.Internal, `the driver of '${system}' staged rows it cannot decode`, { system });
  }
  return driver.decode(data.encoding, data.text, limit);
}

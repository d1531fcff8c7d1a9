/**
 * A chunk's source rows as they travel from extract to transform, and as they are staged: decoded rows (JSON text
 * when staged), or the source's own text (`Connection.readEncoded`: a COPY stream's lines, say), staged as it is and
 * decoded with the source driver's `decode` only where the chunk is transformed — on a transform thread, when the
 * engine has them. The source text is most often several times cheaper to stage than the JSON of its rows, and the
 * thread that transforms it is then the only one to pay for its decoding.
 */
import type { Driver, EncodedBatch } from "../connectors/types.ts";
import type { Row } from "../core/binding.ts";
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

/** The staged form of a chunk's source rows: text, or a header and the bytes the source gave (not copied). */
export function encodeSourceRows(data: SourceRows): StagedValue {
  if ("rows" in data) return JSON.stringify(data.rows);
  const header = `${encodedMark}${data.count}${encodedMark}${data.encoding}\n`;
  return typeof data.text === "string" ? header + data.text : [header, data.text];
}

/** The staged form back; JSON rows are parsed, source text is kept for its driver to decode (see `rowsOf`). */
export function decodeSourceRows(staged: string): SourceRows {
  if (!staged.startsWith(encodedMark)) return { rows: JSON.parse(staged) as Row[] };
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
  if (driver.decode === undefined) {
    throw new FrancaError(ErrorCode.Internal, `the driver of '${system}' staged rows it cannot decode`, { system });
  }
  return driver.decode(data.encoding, data.text, limit);
}

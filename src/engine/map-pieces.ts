/**
 * A chunk of source text decoded and mapped a piece at a time (transform threads): the source driver cuts the text
 * after `pieceRows` rows (`Driver.cut`), each piece is decoded and mapped before the next is decoded, so that, for
 * mappings that build new objects, the decoded rows of one piece only are alive at once, not the whole chunk's.
 *
 * Mappings that wait (a lookup, other asynchronous work) are mapped all at once instead: a chunk's calls then go out
 * together (DataLoader batches the calls of one turn) rather than one piece's round trip after another. A piece whose
 * mappings waited has the rest of its chunk mapped in one piece; the caller keeps, per flow, whether they wait, and
 * passes `pieceRows` 0 for the flow's later chunks.
 */
import type { Driver } from "../connectors/types.ts";
import type { ChunkMapper } from "./map-chunk.ts";
import { rowsOf, type SourceRows, stagedRowsEncoding } from "./source-rows.ts";

/** Rows decoded and mapped at a time. */
export const pieceRows = 100;

export async function mapPieces(
  mapper: ChunkMapper,
  driver: Pick<Driver, "decode" | "cut">,
  source: { encoding: string; text: string | Uint8Array },
  rows: number,
  onPiece?: () => void | Promise<void>,
): Promise<void> {
  const decode = driver.decode as NonNullable<Driver["decode"]>;
  let rest: string | Uint8Array = source.text;
  while (rest.length > 0) {
    let piece: string | Uint8Array = rest;
    let after: string | Uint8Array = "";
    if (rows > 0 && driver.cut !== undefined && !mapper.waited) {
      [piece, after] = driver.cut(source.encoding, rest, rows);
      // a cut that leaves no rows in the piece, or no fewer after it, would never end: the rest is one piece
      if (piece.length === 0 || after.length >= rest.length) {
        piece = rest;
        after = "";
      }
    }
    await mapper.add(decode(source.encoding, piece));
    await onPiece?.();
    rest = after;
  }
}

/**
 * A chunk's source rows mapped with `mapper`: source text in pieces (above) unless `whole` (its flow's mappings were
 * seen to wait) or its driver cannot cut it; decoded rows, and their staged text, whole. `onPiece` runs after each
 * piece is mapped (once, when the chunk is one piece).
 */
export async function mapSource(
  mapper: ChunkMapper,
  driver: Driver,
  system: string,
  data: SourceRows,
  whole: boolean,
  onPiece?: () => void | Promise<void>,
): Promise<void> {
  if ("rows" in data || data.encoding === stagedRowsEncoding || driver.decode === undefined) {
    await mapper.add(rowsOf(data, driver, system));
    await onPiece?.();
    return;
  }
  await mapPieces(mapper, driver, data, whole ? 0 : pieceRows, onPiece);
}

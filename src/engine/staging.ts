/**
 * How a chunk's canonical records are staged: one JSON text per chunk,
 * `{ keys, hashes, sources, cursors, payloads }` (parallel arrays; `sources` null when every record's source id is
 * its key, as it is when the source's key is the entity's). The payloads part is each record's canonical JSON one
 * after the other, which the transform already made to compute the content hash, so staging costs no second
 * serialization of the records.
 */
import { LineBuffer } from "../connectors/line-buffer.ts";
import { utf8 } from "../core/bytes.ts";

export interface CanonicalRecord {
  key: string;
  hash: string;
  sourceId: string;
  cursor?: unknown;
  payload: Record<string, unknown>;
  /** The payload's canonical JSON, when still at hand (not kept after staging is read back). */
  json?: string;
}

interface StagedChunk {
  keys: string[];
  hashes: string[];
  sources: string[] | null;
  cursors: unknown[] | null;
  payloads: Record<string, unknown>[];
}

/** The per-record parts of a chunk's canonical records other than payloads: what the load and the ledger need. */
export interface RecordColumns {
  keys: string[];
  hashes: string[];
  /** null: every record's source id is its key. */
  sourceIds: string[] | null;
}

export function recordColumns(records: readonly CanonicalRecord[]): RecordColumns {
  const count = records.length;
  const keys = new Array<string>(count);
  const hashes = new Array<string>(count);
  let sourceIds: string[] | null = null;
  for (let i = 0; i < count; i++) {
    const record = records[i] as CanonicalRecord;
    keys[i] = record.key;
    hashes[i] = record.hash;
    if (sourceIds === null && record.sourceId !== record.key) sourceIds = keys.slice(0, i);
    sourceIds?.push(record.sourceId);
  }
  return { keys, hashes, sourceIds };
}

/**
 * The staged text of a chunk's canonical records (their columns given when already made), as UTF-8 in a buffer of
 * its own (a transform thread transfers it). Each payload's JSON is written straight into the buffer: joining them
 * into one string and encoding that measured 0.65 µs a record, against 0.22 µs (bench/bulk's records).
 */
export function encodeCanonical(
  records: readonly CanonicalRecord[],
  columns: RecordColumns = recordColumns(records),
): Uint8Array {
  const count = records.length;
  let cursors: unknown[] | null = null;
  for (let i = 0; i < count; i++) {
    const cursor = (records[i] as CanonicalRecord).cursor;
    if (cursor === undefined) continue;
    cursors ??= new Array<unknown>(count).fill(null);
    cursors[i] = cursor;
  }
  const { keys, hashes, sourceIds } = columns;
  const out = new LineBuffer();
  out.write(
    `{"keys":${JSON.stringify(keys)},"hashes":${JSON.stringify(hashes)},"sources":${JSON.stringify(sourceIds)},"cursors":${JSON.stringify(cursors)},"payloads":[`,
  );
  for (let i = 0; i < count; i++) {
    const record = records[i] as CanonicalRecord;
    if (i > 0) out.char(0x2c); // ,
    out.write(record.json ?? JSON.stringify(record.payload));
  }
  out.write("]}");
  return out.bytes();
}

export function decodeCanonical(staged: string | Uint8Array): CanonicalRecord[] {
  const chunk = JSON.parse(utf8(staged)) as StagedChunk;
  return chunk.keys.map((key, i) => {
    const cursor = chunk.cursors?.[i];
    return {
      key,
      hash: chunk.hashes[i] as string,
      sourceId: (chunk.sources === null ? key : chunk.sources[i]) as string,
      ...(cursor === null || cursor === undefined ? {} : { cursor }),
      payload: chunk.payloads[i] as Record<string, unknown>,
    };
  });
}

/**
 * How a chunk's canonical records are staged: one JSON text per chunk, an array of
 * `[key, hash, sourceId, cursor, payload]`. It is assembled around each record's canonical JSON, which the
 * transform already made to compute the content hash, so staging costs no second serialization.
 */

export interface CanonicalRecord {
  key: string;
  hash: string;
  sourceId: string;
  cursor?: unknown;
  payload: Record<string, unknown>;
  /** The payload's canonical JSON, when still at hand (not kept after staging is read back). */
  json?: string;
}

export function encodeCanonical(records: readonly CanonicalRecord[]): string {
  const parts = new Array<string>(records.length);
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as CanonicalRecord;
    const cursor = record.cursor === undefined ? "null" : JSON.stringify(record.cursor);
    parts[i] =
      `[${JSON.stringify(record.key)},"${record.hash}",${JSON.stringify(record.sourceId)},${cursor},${record.json ?? JSON.stringify(record.payload)}]`;
  }
  return `[${parts.join(",")}]`;
}

export function decodeCanonical(text: string): CanonicalRecord[] {
  const rows = JSON.parse(text) as [string, string, string, unknown, Record<string, unknown>][];
  return rows.map(([key, hash, sourceId, cursor, payload]) => ({
    key,
    hash,
    sourceId,
    ...(cursor === null ? {} : { cursor }),
    payload,
  }));
}

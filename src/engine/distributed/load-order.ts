/**
 * The order of a key's loads across workers: the distributed form of the in-process executor's key locks
 * (key-locks.ts). A load job of chunk N into a target waits while an earlier chunk of its run that may share a key
 * with it is still to be loaded into that target, so that when a key comes twice in one run (a row updated during
 * the extraction and read again, two source rows with one canonical key), its later version is written last.
 *
 * The store keeps a row per chunk and target from the chunk's extraction to the end of its load job
 * (`pending_loads`), with a digest of the chunk's keys once it is transformed: a load reads only the pending loads
 * before its chunk (the few in flight), not every chunk of the run. The digest is a 32-bit hash per key: two keys
 * with the same hash make a load wait that need not (a chunk of 1,000 keys meets another's by chance about once in
 * 4,000 pairs), never one that must wait go on. An earlier chunk not transformed yet (its keys unknown) is waited for.
 */

/**
 * FNV-1a over the key's UTF-16 code units, 32 bits. Hand-written: five lines, no dependency, and the same on every
 * worker whatever its platform (node:crypto's hashes cost ~1 µs a call, for a digest that only has to be cheap).
 */
function digestOf(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The digest of a chunk's keys as the store keeps it: a 32-bit hash per key, little-endian. */
export function keyDigests(keys: readonly string[]): Uint8Array {
  const bytes = Buffer.alloc(keys.length * 4);
  for (let i = 0; i < keys.length; i++) bytes.writeUInt32LE(digestOf(keys[i] as string), i * 4);
  return bytes;
}

/** The hashes of a chunk's keys as a set, to test other chunks' digests against. */
export function keyDigestSet(keys: readonly string[]): Set<number> {
  const set = new Set<number>();
  for (const key of keys) set.add(digestOf(key));
  return set;
}

/** Whether a chunk whose digest is `theirs` may share a key with the chunk whose hashes are `mine`. */
function mayShareKey(mine: ReadonlySet<number>, theirs: Uint8Array): boolean {
  const view = Buffer.from(theirs.buffer, theirs.byteOffset, theirs.byteLength);
  for (let offset = 0; offset + 4 <= view.length; offset += 4) if (mine.has(view.readUInt32LE(offset))) return true;
  return false;
}

/** A pending load of an earlier chunk: its digest, null while the chunk is not transformed. */
export interface PendingLoad {
  seq: number;
  digests: Uint8Array | null;
}

/** The first of the earlier pending loads that a load of a chunk with hashes `mine` must wait for, if any. */
export function blockingLoad(mine: ReadonlySet<number>, earlier: readonly PendingLoad[]): PendingLoad | undefined {
  if (mine.size === 0) return undefined;
  return earlier.find((load) => load.digests === null || mayShareKey(mine, load.digests));
}

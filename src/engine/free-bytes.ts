import { transferables } from "./threads/protocol.ts";

/**
 * Frees the memory of a byte array at once, or of the byte arrays directly in an object (a driver's prepared rows),
 * when the array is the whole of its buffer (as the bytes a transform thread transferred, or a chunk of source text,
 * are): `ArrayBuffer.prototype.transfer(0)` detaches the buffer and releases its memory, which the collector would
 * free only at its next full collection. V8 starts a full collection whenever the memory held outside its heap has
 * grown enough: on the engine's thread, a run's byte arrays (source text, staged text, prepared rows: about 1.1 KB a
 * row of bench:bulk's) made it start one every ~9 chunks, about three quarters of which these frees avoid
 * (docs/benchmarks.md, stop 14). The caller must own the bytes: nothing may read them afterwards.
 */
export function freeBytes(bytes: unknown): void {
  // the same buffers a thread may move rather than copy: those of typed arrays that own their whole buffer
  for (const buffer of transferables(bytes)) buffer.transfer(0);
}

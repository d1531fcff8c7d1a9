/**
 * Byte arrays, as the engine and the store both handle them (no I/O): which buffer a typed array owns whole, freeing
 * it at once, and UTF-8 bytes read as text without a copy first.
 */

/**
 * The buffer of `bytes` when `bytes` is a typed array that is the whole of it (one that can be moved to another thread,
 * or freed, without touching anyone else's bytes); undefined otherwise (a pooled Buffer shares its buffer).
 */
export function wholeBuffer(bytes: unknown): ArrayBuffer | undefined {
  if (!ArrayBuffer.isView(bytes)) return undefined;
  const buffer = bytes.buffer;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength
    ? buffer
    : undefined;
}

/**
 * Frees the memory of a typed array that is the whole of its buffer at once (`ArrayBuffer.prototype.transfer(0)`
 * detaches the buffer), rather than at the collector's next full collection. The caller must own the bytes: nothing
 * may read them afterwards.
 */
export function releaseBytes(bytes: unknown): void {
  wholeBuffer(bytes)?.transfer(0);
}

/** UTF-8 bytes as text (text as it is), read in place: no copy of the bytes first. */
export function utf8(text: string | Uint8Array): string {
  return typeof text === "string" ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString("utf8");
}

/**
 * The parts one after the other in a buffer of their own (not from Buffer's pool), which can therefore be moved to
 * another thread or freed (`wholeBuffer`).
 */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const joined = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return joined;
}

/**
 * Encoded reads whose rows are lines: one row per line, each ending with a newline that no row holds inside it
 * (PostgreSQL's COPY text escapes it as `\n`; JSON escapes every control character). Cutting such text and decoding
 * its first lines needs nothing but the newlines, whatever the row format: `Driver.cut` and the text a `decode` reads.
 */

const newline = 0x0a;

/**
 * The text of rows given as text or as its UTF-8 bytes, cut after its first `rows` lines: [their text, the rest's
 * text], in the form given (strings, or views of the same bytes); `what` names the text in the error a row cut short
 * raises. Pure: transform threads run it (`Driver.cut`).
 */
export function cutLines(
  text: string | Uint8Array,
  rows: number,
  what: string,
): [string | Uint8Array, string | Uint8Array] {
  // bytes as a Buffer (a view, no copy): Buffer's indexOf found bench/bulk's newlines in 0.023 µs a row, a plain
  // Uint8Array's in 0.110 (docs/benchmarks.md, stop 13)
  const lines =
    typeof text === "string" || Buffer.isBuffer(text)
      ? text
      : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  let end = 0;
  for (let n = 0; n < rows && end < lines.length; n++) {
    const at = typeof lines === "string" ? lines.indexOf("\n", end) : lines.indexOf(newline, end);
    if (at === -1) throw new Error(`${what} ended in the middle of a row (${lines.length - end} bytes or characters)`);
    end = at + 1;
  }
  return typeof lines === "string"
    ? [lines.slice(0, end), lines.slice(end)]
    : [lines.subarray(0, end), lines.subarray(end)];
}

/** The text of the first `limit` lines of `bytes` (all of it without a limit), decoded from UTF-8. */
export function linesText(bytes: Uint8Array, limit: number | undefined): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (limit === undefined) return buffer.toString("utf8");
  let end = 0;
  for (let line = 0; line < limit && end < buffer.length; line++) {
    const at = buffer.indexOf(newline, end);
    if (at === -1) return buffer.toString("utf8");
    end = at + 1;
  }
  return buffer.toString("utf8", 0, end);
}

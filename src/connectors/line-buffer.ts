/**
 * Text lines written straight into one growing buffer as UTF-8, each followed by a newline: how the database
 * connectors encode rows for their bulk paths (PostgreSQL COPY, MariaDB LOAD DATA), and the engine a chunk's staged
 * canonical records (`write`: text without a newline). Writing each line into the buffer measured 0.35 µs a 330-byte
 * row, against 0.7 µs for joining the lines and encoding the result. The buffer is reused from one encoding to the
 * next (kept when it is not huge), so an encoding runs start to end without awaiting; `bytes` copies out what was
 * written.
 */
let scratch = Buffer.allocUnsafe(64 * 1024);
const keptScratch = 16 * 1024 * 1024;

export class LineBuffer {
  #buffer = scratch;
  #length = 0;

  /** Bytes written so far: where the next line starts. */
  get length(): number {
    return this.#length;
  }

  /** Appends `line` and a newline. */
  push(line: string): void {
    this.write(line);
    this.#buffer[this.#length++] = 10;
  }

  /** Appends `text` (and room for one byte more: a newline, a separator). */
  write(text: string): void {
    // At most 3 bytes of UTF-8 per UTF-16 unit, and one byte.
    const most = this.#length + text.length * 3 + 1;
    if (most > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.#buffer.length, most));
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    this.#length += this.#buffer.write(text, this.#length);
  }

  /** Appends one ASCII character (after `write`, which left room for it). */
  char(code: number): void {
    if (this.#length >= this.#buffer.length) this.write("");
    this.#buffer[this.#length++] = code;
  }

  /**
   * What was written, in a buffer of its own of the exact size (not zeroed first, nor from Buffer's pool): a view
   * into the shared buffer would carry all of it across threads. The buffer goes back for the next encoding.
   */
  bytes(): Uint8Array {
    const own = Buffer.allocUnsafeSlow(this.#length);
    this.#buffer.copy(own, 0, 0, this.#length);
    if (this.#buffer.length <= keptScratch) scratch = this.#buffer;
    return new Uint8Array(own.buffer, own.byteOffset, this.#length);
  }
}

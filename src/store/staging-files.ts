import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { StagedValue } from "./types.ts";

export type Stage = "extracted" | "canonical";

/** A staged value as the parts it is made of, in order. */
function stagedParts(data: StagedValue): readonly (string | Uint8Array)[] {
  return typeof data === "string" || ArrayBuffer.isView(data) ? [data as string | Uint8Array] : data;
}

/** A staged value as one text (a store that keeps text: PostgreSQL's `staged` table). */
export function stagedText(data: StagedValue): string {
  if (typeof data === "string") return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8");
  // bytes joined before they are decoded: a part may end inside a character
  const bytes = stagedParts(data).map((part) => (typeof part === "string" ? Buffer.from(part, "utf8") : part));
  return Buffer.concat(bytes).toString("utf8");
}

interface Segment {
  fd: number;
  /** Bytes in the file: where the next chunk is appended. */
  size: number;
  /** chunk → where its latest copy is; built by scanning the headers when first needed. */
  index?: Map<number, { offset: number; length: number }>;
}

const headerBytes = 8;

/**
 * Staged chunks of the embedded store: one append-only segment file per run and stage under `<store>.staging/`,
 * each chunk appended as `[seq u32][length u32][JSON text]`.
 *
 * Why not a table: a chunk's staged output is one value written once and read only on resume or replay, which
 * SQLite would write twice (WAL, then checkpoint). Why not a file per chunk: creating files costs about a
 * millisecond each on common filesystems, an append costs a copy.
 *
 * Crash safety: the store records a chunk only after its append returned, so only complete appends are ever
 * looked up; a torn append at the end of a segment (a crash mid-write) is ignored, and a chunk staged again
 * (redone after a crash or a transient failure) is appended anew: the latest copy wins. With `fsync`, each append
 * is flushed to disk before the chunk is recorded (the store's `synchronous: "full"`).
 */
export class StagingFiles {
  readonly dir: string;
  readonly #fsync: boolean;
  readonly #segments = new Map<string, Segment>();

  constructor(dir: string, options: { fsync?: boolean } = {}) {
    this.dir = dir;
    this.#fsync = options.fsync === true;
  }

  #path(runId: number, stage: Stage): string {
    return join(this.dir, `${runId}.${stage}`);
  }

  #segment(runId: number, stage: Stage, create: boolean): Segment | undefined {
    const name = `${runId}.${stage}`;
    let segment = this.#segments.get(name);
    if (segment !== undefined) return segment;
    const path = this.#path(runId, stage);
    if (!create && !existsSync(path)) return undefined;
    mkdirSync(this.dir, { recursive: true });
    const fd = openSync(path, "a+");
    segment = { fd, size: fstatSync(fd).size };
    this.#segments.set(name, segment);
    return segment;
  }

  write(runId: number, seq: number, stage: Stage, data: StagedValue): void {
    const segment = this.#segment(runId, stage, true) as Segment;
    const parts = stagedParts(data);
    const sizes = parts.map((part) => (typeof part === "string" ? Buffer.byteLength(part) : part.byteLength));
    const length = sizes.reduce((sum, size) => sum + size, 0);
    const header = Buffer.allocUnsafe(headerBytes);
    header.writeUInt32LE(seq, 0);
    header.writeUInt32LE(length, 4);
    writeSync(segment.fd, header, 0, headerBytes, segment.size);
    let at = segment.size + headerBytes;
    for (const [index, part] of parts.entries()) {
      // text goes to the file as it is: no intermediate Buffer of the chunk (a copy, and memory to collect)
      const size = sizes[index] as number;
      let written = typeof part === "string" ? writeSync(segment.fd, part, at, "utf8") : 0;
      if (written < size) {
        const rest = typeof part === "string" ? Buffer.from(part, "utf8") : part;
        while (written < size) written += writeSync(segment.fd, rest, written, size - written, at + written);
      }
      at += size;
    }
    if (this.#fsync) fsyncSync(segment.fd);
    segment.index?.set(seq, { offset: segment.size + headerBytes, length });
    segment.size += headerBytes + length;
  }

  #scan(segment: Segment): Map<number, { offset: number; length: number }> {
    const index = new Map<number, { offset: number; length: number }>();
    const header = Buffer.alloc(headerBytes);
    let at = 0;
    while (at + headerBytes <= segment.size) {
      readSync(segment.fd, header, 0, headerBytes, at);
      const length = header.readUInt32LE(4);
      if (at + headerBytes + length > segment.size) break; // a torn append: never recorded, ignored
      index.set(header.readUInt32LE(0), { offset: at + headerBytes, length });
      at += headerBytes + length;
    }
    return index;
  }

  read(runId: number, seq: number, stage: Stage): string | undefined {
    const segment = this.#segment(runId, stage, false);
    if (segment === undefined) return undefined;
    segment.index ??= this.#scan(segment);
    const entry = segment.index.get(seq);
    if (entry === undefined) return undefined;
    const buffer = Buffer.allocUnsafe(entry.length);
    let read = 0;
    while (read < entry.length) read += readSync(segment.fd, buffer, read, entry.length - read, entry.offset + read);
    return buffer.toString("utf8");
  }

  /** Removes a run's staged chunks (a run that succeeded needs them no more). */
  discard(runId: number): void {
    for (const stage of ["extracted", "canonical"] as const) {
      const name = `${runId}.${stage}`;
      const segment = this.#segments.get(name);
      if (segment !== undefined) {
        closeSync(segment.fd);
        this.#segments.delete(name);
      }
      rmSync(this.#path(runId, stage), { force: true });
    }
  }

  close(): void {
    for (const segment of this.#segments.values()) closeSync(segment.fd);
    this.#segments.clear();
  }
}

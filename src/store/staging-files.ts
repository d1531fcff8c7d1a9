import {
  closeSync,
  existsSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  writeSync,
  writev,
} from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { releaseBytes, utf8 } from "../core/bytes.ts";
import type { StagedValue } from "./types.ts";

export type Stage = "extracted" | "canonical";

/** A staged value as the parts it is made of, in order. */
function stagedParts(data: StagedValue): readonly (string | Uint8Array)[] {
  return typeof data === "string" || ArrayBuffer.isView(data) ? [data as string | Uint8Array] : data;
}

/** A staged value as one text (a store that keeps text: PostgreSQL's `staged` table). */
export function stagedText(data: StagedValue): string {
  if (typeof data === "string") return data;
  if (ArrayBuffer.isView(data)) return utf8(data);
  // bytes joined before they are decoded: a part may end inside a character
  const bytes = stagedParts(data).map((part) => (typeof part === "string" ? Buffer.from(part, "utf8") : part));
  return Buffer.concat(bytes).toString("utf8");
}

interface Segment {
  fd: number;
  /** Bytes of complete appends in the file: where the next chunk is appended. */
  size: number;
  /**
   * The file may hold bytes past `size` (a torn append, found when the segment was opened, or one that failed here):
   * cut off before the next append, so that nothing stale is left after it.
   */
  ragged: boolean;
  /** chunk → where its latest copy is; built by scanning the headers when the segment is opened. */
  index: Map<number, { offset: number; length: number }>;
  /** The last asynchronous append asked for (`append`): the next one starts when it is done. */
  tail: Promise<void>;
  /** Asynchronous appends asked for and not done yet. */
  pending: number;
}

const headerBytes = 8;

/**
 * Chunks per segment file. A run's chunks are appended to one file per stage and run of this many consecutive chunks,
 * so that the files of chunks the run needs no more (`release`) can go while it runs: a long run's staging then takes
 * the disk of the chunks in flight and of those kept for replay, not of the whole run (~680 MB a 1,000,000 rows of
 * bench:bulk's, both stages).
 */
const defaultChunksPerSegment = 16;

/**
 * Segment files kept open at once. A run whose chunks keep their staging (records to replay) leaves a segment per 16
 * chunks behind it; the oldest idle ones are closed (and opened again if read), so that a long run does not hold a
 * file descriptor for each.
 */
const maxOpenSegments = 64;

const writevAsync = promisify(writev);
const fsyncAsync = promisify(fsync);

/** What is left of `buffers` once their first `skip` bytes are written (views, no copy). */
export function unwritten(buffers: readonly Uint8Array[], skip: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.byteLength) skip -= buffer.byteLength;
    else {
      rest.push(skip === 0 ? buffer : buffer.subarray(skip));
      skip = 0;
    }
  }
  return rest;
}

/** The 8-byte header of a chunk: its seq and its length in bytes. */
function headerOf(seq: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(headerBytes);
  header.writeUInt32LE(seq, 0);
  header.writeUInt32LE(length, 4);
  return header;
}

/**
 * Staged chunks of the embedded store: append-only segment files under `<store>.staging/`, one per run, stage and
 * `chunksPerSegment` consecutive chunks (`<run>.<stage>.<n>` holds chunks n·16 to n·16 + 15), each chunk appended as
 * `[seq u32][length u32][JSON text]`. A segment's files are removed once every chunk in it was released (`release`:
 * loaded everywhere, nothing to replay), and all of a run's at once by `discard`. (Stores of earlier versions kept one
 * file per run and stage, `<run>.<stage>`: still read, never appended to.)
 *
 * Why not a table: a chunk's staged output is one value written once and read only on resume or replay, which
 * SQLite would write twice (WAL, then checkpoint). Why not a file per chunk: creating files costs about a
 * millisecond each on common filesystems, an append costs a copy.
 *
 * Crash safety: the store records a chunk only after its append returned, so only complete appends are ever
 * looked up; a torn append at the end of a segment (a crash mid-write) is ignored by reads and cut off before the
 * segment's next append, so that the appends after it start where the last complete one ended, and a chunk staged
 * again (redone after a crash or a transient failure) is appended anew: the latest copy wins. With `fsync`, each
 * append is flushed to disk before the chunk is recorded (the store's `synchronous: "full"`).
 *
 * Two ways to append, not to be mixed on one instance: `write`, synchronous (the store's own thread), and `append`,
 * whose file writes run on libuv's thread pool, so that the engine's thread does not wait on the disk (when the
 * kernel holds back a writer that dirtied too many pages, a synchronous append stopped the engine's thread: 2.0 s of
 * a 15 s bench:bulk run's samples were in it, 4.8 s of a 27 s MariaDB one). A segment's appends run one after
 * another, each at the end of the last that completed, as the synchronous ones do; `discardAfterAppends` and
 * `closeAfterAppends` wait for them, refusing appends asked for while they wait, before they close the files.
 */
export class StagingFiles {
  readonly dir: string;
  readonly #fsync: boolean;
  readonly #chunksPerSegment: number;
  /** Open segments by file name, oldest first. */
  readonly #segments = new Map<string, Segment>();
  /** Chunks released in segments not removed yet, by run and segment number (`<run>.<n>`). */
  readonly #released = new Map<string, Set<number>>();
  /** Runs whose segments are being discarded or closed: no append may start on them. */
  readonly #closing = new Set<number | "all">();

  constructor(dir: string, options: { fsync?: boolean; chunksPerSegment?: number } = {}) {
    this.dir = dir;
    this.#fsync = options.fsync === true;
    this.#chunksPerSegment = options.chunksPerSegment ?? defaultChunksPerSegment;
  }

  /** The segment a chunk is appended to. */
  #partOf(seq: number): number {
    return Math.floor(seq / this.#chunksPerSegment);
  }

  /** A segment's file name: `<run>.<stage>.<n>`, or (`part` undefined) an earlier version's one file of the run. */
  #name(runId: number, stage: Stage, part: number | undefined): string {
    return part === undefined ? `${runId}.${stage}` : `${runId}.${stage}.${part}`;
  }

  #segment(runId: number, stage: Stage, part: number | undefined, create: boolean): Segment | undefined {
    const name = this.#name(runId, stage, part);
    let segment = this.#segments.get(name);
    if (segment !== undefined) return segment;
    const path = join(this.dir, name);
    if (!create && !existsSync(path)) return undefined;
    this.#closeIdle();
    mkdirSync(this.dir, { recursive: true });
    // not opened for appending: on Linux every write of an O_APPEND file goes to its end, whatever the position given
    const fd = openSync(path, existsSync(path) ? "r+" : "w+");
    const bytes = fstatSync(fd).size;
    const { index, end } = scan(fd, bytes);
    segment = { fd, size: end, ragged: end < bytes, index, tail: Promise.resolve(), pending: 0 };
    this.#segments.set(name, segment);
    return segment;
  }

  /** Before a segment is opened: closes the oldest with no append pending while maxOpenSegments or more are open. */
  #closeIdle(): void {
    for (const [name, segment] of this.#segments) {
      if (this.#segments.size < maxOpenSegments) return;
      if (segment.pending > 0) continue;
      closeSync(segment.fd);
      this.#segments.delete(name);
    }
  }

  /** Cuts off any bytes past a segment's complete appends, before an append. */
  #trim(segment: Segment): void {
    if (!segment.ragged) return;
    ftruncateSync(segment.fd, segment.size);
    segment.ragged = false;
  }

  #appended(segment: Segment, seq: number, length: number): void {
    segment.index.set(seq, { offset: segment.size + headerBytes, length });
    segment.size += headerBytes + length;
  }

  /** Appends a chunk at once, on this thread. */
  write(runId: number, seq: number, stage: Stage, data: StagedValue): void {
    const segment = this.#segment(runId, stage, this.#partOf(seq), true) as Segment;
    if (segment.pending > 0)
      throw new Error("staging files: a synchronous write while asynchronous appends are pending");
    this.#trim(segment);
    const parts = stagedParts(data);
    const sizes = parts.map((part) => (typeof part === "string" ? Buffer.byteLength(part) : part.byteLength));
    const length = sizes.reduce((sum, size) => sum + size, 0);
    try {
      writeSync(segment.fd, headerOf(seq, length), 0, headerBytes, segment.size);
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
    } catch (error) {
      segment.ragged = true;
      throw error;
    }
    this.#appended(segment, seq, length);
  }

  /**
   * Appends a chunk with the file writes on libuv's thread pool; resolves once it is in the file (flushed, with
   * `fsync`). The caller must not change or free `data`'s bytes before then.
   */
  append(runId: number, seq: number, stage: Stage, data: StagedValue): Promise<void> {
    if (this.#closing.has(runId) || this.#closing.has("all"))
      return Promise.reject(new Error(`staging files: run ${runId}'s segments are being closed`));
    const segment = this.#segment(runId, stage, this.#partOf(seq), true) as Segment;
    segment.pending++;
    const done = segment.tail.then(async () => {
      this.#trim(segment);
      // text encoded once, here: its length is the bytes' (the buffer is ours: freed once written)
      const parts = stagedParts(data).map((part) =>
        typeof part === "string" ? { bytes: Buffer.from(part, "utf8"), ours: true } : { bytes: part, ours: false },
      );
      let length = 0;
      for (const { bytes } of parts) length += bytes.byteLength;
      // header and parts in one call (one job of the thread pool), continued if the system wrote less
      const buffers: Uint8Array[] = [headerOf(seq, length), ...parts.map(({ bytes }) => bytes)];
      try {
        for (let written = 0; written < headerBytes + length; ) {
          const { bytesWritten } = await writevAsync(segment.fd, unwritten(buffers, written), segment.size + written);
          written += bytesWritten;
        }
        if (this.#fsync) await fsyncAsync(segment.fd);
      } catch (error) {
        segment.ragged = true;
        throw error;
      } finally {
        for (const { bytes, ours } of parts) if (ours) releaseBytes(bytes);
      }
      this.#appended(segment, seq, length);
    });
    // a failed append is its caller's failure; the next one starts where the last complete one ended
    segment.tail = done.then(
      () => {
        segment.pending--;
      },
      () => {
        segment.pending--;
      },
    );
    return done;
  }

  read(runId: number, seq: number, stage: Stage): string | undefined {
    // its segment, else the one file of a run staged by an earlier version
    for (const part of [this.#partOf(seq), undefined]) {
      const segment = this.#segment(runId, stage, part, false);
      const entry = segment?.index.get(seq);
      if (segment === undefined || entry === undefined) continue;
      const buffer = Buffer.allocUnsafe(entry.length);
      let read = 0;
      while (read < entry.length) read += readSync(segment.fd, buffer, read, entry.length - read, entry.offset + read);
      return buffer.toString("utf8");
    }
    return undefined;
  }

  /**
   * The run needs chunk `seq`'s staged output no more (loaded everywhere, nothing to replay). Once every chunk of its
   * segment is released, the segment's files go (after the appends to them are done); until then the chunk stays
   * readable. Releases are not remembered across instances: a segment released in part by an earlier process goes
   * with the run's other files, at `discard`.
   */
  async release(runId: number, seq: number): Promise<void> {
    const part = this.#partOf(seq);
    const key = `${runId}.${part}`;
    let released = this.#released.get(key);
    if (released === undefined) {
      released = new Set();
      this.#released.set(key, released);
    }
    released.add(seq);
    if (released.size < this.#chunksPerSegment) return;
    this.#released.delete(key);
    for (const stage of ["extracted", "canonical"] as const) {
      const name = this.#name(runId, stage, part);
      const segment = this.#segments.get(name);
      if (segment !== undefined) {
        // every append asked for, also while this waits (none should be: each of its chunks was released)
        while (segment.pending > 0) await segment.tail;
        // unless closed meanwhile (discarded, or idle): its file goes all the same
        if (this.#segments.get(name) === segment) {
          closeSync(segment.fd);
          this.#segments.delete(name);
        }
      }
      // on libuv's thread pool: the engine's thread does not wait on the filesystem
      await rm(join(this.dir, name), { force: true });
    }
  }

  /** The segments of `runId` (every run's: undefined) that are open. */
  #open(runId?: number): Segment[] {
    return [...this.#segments.entries()]
      .filter(([name]) => runId === undefined || name.startsWith(`${runId}.`))
      .map(([, segment]) => segment);
  }

  /** `discard`, once the run's appends asked for so far are done (appends asked for meanwhile are refused). */
  async discardAfterAppends(runId: number): Promise<void> {
    this.#closing.add(runId);
    try {
      await Promise.all(this.#open(runId).map((segment) => segment.tail));
      this.discard(runId);
    } finally {
      this.#closing.delete(runId);
    }
  }

  /** `close`, once every append asked for so far is done; later ones are refused. */
  async closeAfterAppends(): Promise<void> {
    this.#closing.add("all");
    await Promise.all(this.#open().map((segment) => segment.tail));
    this.close();
  }

  /** Removes a run's staged chunks (a run that succeeded needs them no more). */
  discard(runId: number): void {
    for (const segment of this.#open(runId)) closeSync(segment.fd);
    for (const name of [...this.#segments.keys()]) if (name.startsWith(`${runId}.`)) this.#segments.delete(name);
    for (const key of [...this.#released.keys()]) if (key.startsWith(`${runId}.`)) this.#released.delete(key);
    if (!existsSync(this.dir)) return;
    const files = new RegExp(`^${runId}\\.(?:extracted|canonical)(?:\\.\\d+)?$`);
    for (const name of readdirSync(this.dir)) if (files.test(name)) rmSync(join(this.dir, name), { force: true });
  }

  close(): void {
    for (const segment of this.#segments.values()) closeSync(segment.fd);
    this.#segments.clear();
  }
}

/** The complete appends of a segment file of `size` bytes, and where the last of them ends. */
function scan(fd: number, size: number): { index: Map<number, { offset: number; length: number }>; end: number } {
  const index = new Map<number, { offset: number; length: number }>();
  const header = Buffer.alloc(headerBytes);
  let at = 0;
  while (at + headerBytes <= size) {
    readSync(fd, header, 0, headerBytes, at);
    const length = header.readUInt32LE(4);
    if (at + headerBytes + length > size) break; // a torn append: never recorded
    index.set(header.readUInt32LE(0), { offset: at + headerBytes, length });
    at += headerBytes + length;
  }
  return { index, end: at };
}

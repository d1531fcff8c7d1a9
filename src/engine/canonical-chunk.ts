import { ErrorCode, FrancaError, type FrancaErrorJson } from "../core/errors.ts";
import { freeBytes } from "./free-bytes.ts";
import { type CanonicalRecord, decodeCanonical, recordColumns } from "./staging.ts";

/** A target mapping's failure on a transform thread, for the load to report: the record's index, and the error. */
export type MappingFailure = FrancaErrorJson & { index: number };

/** One target's rows of a chunk, mapped (fromCanonical) and encoded for its driver (`Driver.prepare`) on a thread. */
export interface PreparedTarget {
  /** What the driver's `prepare` returned, for `write` (see `WriteRequest.prepared`). */
  data: unknown;
  /** Record index → the index of its row in `data`; -1 where the target's mapping failed (see `failures`). */
  rowOf: Int32Array;
  failures: MappingFailure[];
  /**
   * The target's mapping returned a promise for some record. The load then maps the records again itself (it needs
   * rows it can read at once on its slow paths) and does not use `data`.
   */
  async: boolean;
}

/**
 * A transformed chunk as the load stage takes it: per record its key, content hash and source id; the canonical
 * records themselves (payloads, cursors) only when asked for, decoded then from the staged text when the chunk was
 * transformed on another thread or is read back from the store; and, per target, the rows a transform thread
 * already prepared for the target's driver.
 *
 * A chunk from a transform thread holds their bytes until the run is done with them: a target's prepared rows until
 * its load no longer writes them (`freePrepared`), the staged text until every load let go of the chunk (`hold`,
 * `letGo`).
 */
export class CanonicalChunk {
  readonly keys: readonly string[];
  readonly hashes: readonly string[];
  readonly #prepared: Map<string, PreparedTarget>;
  readonly #sourceIds: readonly string[] | null;
  #records: CanonicalRecord[] | undefined;
  #staged: string | Uint8Array | undefined;
  /** Loads that were handed the chunk and have not let go of it yet. */
  #holders = 0;

  private constructor(
    keys: readonly string[],
    hashes: readonly string[],
    sourceIds: readonly string[] | null,
    records: CanonicalRecord[] | undefined,
    staged: string | Uint8Array | undefined,
    prepared: ReadonlyMap<string, PreparedTarget>,
  ) {
    this.keys = keys;
    this.hashes = hashes;
    this.#sourceIds = sourceIds;
    this.#records = records;
    this.#staged = staged;
    this.#prepared = new Map(prepared);
  }

  /** From canonical records in memory (transformed on this thread). */
  static of(records: CanonicalRecord[]): CanonicalChunk {
    const { keys, hashes, sourceIds } = recordColumns(records);
    return new CanonicalChunk(keys, hashes, sourceIds, records, undefined, new Map());
  }

  /** From the staged text of the chunk (encodeCanonical); its records are decoded at once. */
  static staged(text: string): CanonicalChunk {
    return CanonicalChunk.of(decodeCanonical(text));
  }

  /**
   * From what a transform thread sent: keys, hashes and source ids (null: the same as the keys), the staged text as
   * UTF-8 (decoded only if a record is asked for), and the targets' prepared rows.
   */
  static transferred(
    keys: readonly string[],
    hashes: readonly string[],
    sourceIds: readonly string[] | null,
    staged: Uint8Array,
    prepared: ReadonlyMap<string, PreparedTarget>,
  ): CanonicalChunk {
    return new CanonicalChunk(keys, hashes, sourceIds, undefined, staged, prepared);
  }

  /** The rows a transform thread prepared for `target`'s driver, while they are kept. */
  prepared(target: string): PreparedTarget | undefined {
    return this.#prepared.get(target);
  }

  /**
   * The load to `target` is done with its prepared rows (no write that reads them is still running): their bytes are
   * freed. A later load to the target would map the records again.
   */
  freePrepared(target: string): void {
    const prepared = this.#prepared.get(target);
    if (prepared === undefined) return;
    this.#prepared.delete(target);
    freeBytes(prepared.data);
  }

  /** The chunk is handed to `count` more loads. */
  hold(count: number): void {
    this.#holders += count;
  }

  /** One load that was handed the chunk is done with it: the last one frees the staged text's bytes. */
  letGo(): void {
    if (this.#holders === 0) return;
    this.#holders--;
    if (this.#holders > 0) return;
    // prepared rows are not freed here: a write given up at its deadline may still be sending them (load.ts)
    freeBytes(this.#staged);
    this.#staged = undefined;
  }

  get count(): number {
    return this.keys.length;
  }

  sourceId(index: number): string {
    return (this.#sourceIds ?? this.keys)[index] as string;
  }

  /** The whole canonical record (payload, cursor), decoded from the staged text at the first call if need be. */
  record(index: number): CanonicalRecord {
    if (this.#records === undefined) {
      // neither records nor staged text: every load let go of the chunk
      const staged = this.#staged;
      if (staged === undefined)
        throw new FrancaError(ErrorCode.Internal, "a record of a chunk was asked for after every load let go of it");
      this.#records = decodeCanonical(staged);
      this.#staged = undefined;
    }
    return this.#records[index] as CanonicalRecord;
  }
}

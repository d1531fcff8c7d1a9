import type { FrancaErrorJson } from "../core/errors.ts";
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
 */
export class CanonicalChunk {
  readonly keys: readonly string[];
  readonly hashes: readonly string[];
  readonly prepared: ReadonlyMap<string, PreparedTarget>;
  readonly #sourceIds: readonly string[] | null;
  #records: CanonicalRecord[] | undefined;
  #staged: string | Uint8Array | undefined;

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
    this.prepared = prepared;
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

  get count(): number {
    return this.keys.length;
  }

  sourceId(index: number): string {
    return (this.#sourceIds ?? this.keys)[index] as string;
  }

  /** The whole canonical record (payload, cursor), decoded from the staged text at the first call if need be. */
  record(index: number): CanonicalRecord {
    if (this.#records === undefined) {
      const staged = this.#staged as string | Uint8Array;
      this.#records = decodeCanonical(
        typeof staged === "string"
          ? staged
          : Buffer.from(staged.buffer, staged.byteOffset, staged.byteLength).toString("utf8"),
      );
      this.#staged = undefined;
    }
    return this.#records[index] as CanonicalRecord;
  }
}

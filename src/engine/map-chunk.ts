import type { Binding, MapContext, Row } from "../core/binding.ts";
import type { CompiledEntity } from "../core/compiled-entity.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { keyOf } from "../core/key.ts";
import type { RecordOutcome } from "../core/record.ts";
import { mapAll } from "./map-all.ts";
import type { CanonicalRecord } from "./staging.ts";

/** A record of a chunk that could not become a canonical record: where it was in the chunk, and its outcome. */
export interface ChunkProblem {
  /** Its row's index in the chunk. */
  index: number;
  outcome: RecordOutcome;
}

export interface MappedChunk {
  /** The chunk's canonical records, one per key (of two rows with the same key, the later wins), with their JSON. */
  records: CanonicalRecord[];
  /** The rows that failed, in row order. */
  problems: ChunkProblem[];
}

/** A thrown mapping error becomes a record problem: FrancaErrors keep code and class, anything else is MAPPING_FAILED. */
export function mappingProblem(error: unknown, what: string): FrancaError {
  if (error instanceof FrancaError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const path = (error as { path?: unknown })?.path;
  return new FrancaError(ErrorCode.MappingFailed, `${what} threw: ${message}`, {
    ...(typeof path === "string" ? { path } : {}),
    cause: error,
  });
}

/**
 * Maps a chunk's rows to canonical records: toCanonical (sync or async, lookups allowed), schema validation, key,
 * canonical JSON and content hash. A row that fails becomes a problem, with its field path; a lookup's system found
 * down (SYSTEM_DOWN) stops the chunk. Pure apart from the mapping's own lookups: no store, no budget, no logging —
 * it runs on the main thread and on transform threads alike (the caller charges the problems: transform.ts).
 */
export async function mapChunk(
  binding: Binding,
  compiled: CompiledEntity,
  mapContext: MapContext,
  seq: number,
  rows: readonly Row[],
): Promise<MappedChunk> {
  const mapper = new ChunkMapper(binding, compiled, mapContext, seq);
  await mapper.add(rows);
  return mapper.mapped;
}

/**
 * mapChunk a piece of the chunk at a time: `add` maps the chunk's next rows, so that a caller can decode the chunk's
 * source text piece by piece and let each piece's rows go before it decodes the next (transform threads). The
 * outcome is mapChunk's on all the rows: row indexes count from the chunk's first row, and of two rows with the same
 * key, in whichever pieces, the later wins — unless the earlier's record was taken already (`takeRecords`), which
 * `repeatedTaken` then tells.
 */
export class ChunkMapper {
  /** The outcome so far: every record since the last `takeRecords`, every problem. */
  readonly mapped: MappedChunk = { records: [], problems: [] };
  /** Some mapping so far returned a promise (it called a lookup, or did other asynchronous work). */
  waited = false;
  /**
   * A record's key repeated the key of a record already taken (`takeRecords`): the later should have replaced it,
   * which it cannot once taken. The caller maps the chunk again whole.
   */
  repeatedTaken = false;
  readonly #binding: Binding;
  readonly #compiled: CompiledEntity;
  readonly #mapContext: MapContext;
  readonly #seq: number;
  readonly #sourceIdOf: (row: Row) => string;
  readonly #indexOfKey = new Map<string, number>();
  /** Rows mapped so far: the index of the next piece's first row in the chunk. */
  #offset = 0;
  /** Records taken so far (`takeRecords`): the chunk index of `mapped.records[0]`. */
  #taken = 0;

  constructor(binding: Binding, compiled: CompiledEntity, mapContext: MapContext, seq: number) {
    this.#binding = binding;
    this.#compiled = compiled;
    this.#mapContext = mapContext;
    this.#seq = seq;
    this.#sourceIdOf = keyOf(binding.key);
  }

  /** Maps the chunk's next rows. */
  async add(rows: readonly Row[]): Promise<void> {
    const binding = this.#binding;
    const compiled = this.#compiled;
    const seq = this.#seq;
    const offset = this.#offset;
    this.#offset += rows.length;
    const count = rows.length;
    const {
      values: mapped,
      thrown,
      waited,
    } = await mapAll(rows, (row) => {
      if (typeof row.$error === "string") {
        const line = row.$line;
        throw new FrancaError(
          ErrorCode.SourceRecordInvalid,
          `${binding.system.name} could not read the record${line === undefined ? "" : ` at line ${String(line)}`}: ${row.$error}`,
        );
      }
      return binding.toCanonical(row, this.#mapContext);
    });
    if (waited) this.waited = true;

    const { records, problems } = this.mapped;
    const indexOfKey = this.#indexOfKey;
    const cursorField = binding.cursor;
    for (let i = 0; i < count; i++) {
      const row = rows[i] as Row;
      const index = offset + i;
      let sourceId: string;
      try {
        sourceId = this.#sourceIdOf(row);
      } catch {
        sourceId = `${seq}:${index}`;
      }
      let problem: FrancaError | undefined;
      let key: string | undefined;
      const payload = mapped[i];
      if (thrown.has(i)) {
        problem = mappingProblem(thrown.get(i), `${binding.name}.toCanonical`);
      } else if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        problem = new FrancaError(
          ErrorCode.MappingFailed,
          `${binding.name}.toCanonical returned ${payload === null ? "null" : typeof payload}, not an object`,
          { path: "/" },
        );
      } else {
        problem = compiled.validate(payload);
        if (problem === undefined) {
          try {
            key = compiled.key(payload as Record<string, unknown>);
          } catch (error) {
            problem = mappingProblem(error, "key");
          }
        }
      }
      let fingerprint: { json: string; hash: string } | undefined;
      if (problem === undefined && key !== undefined) {
        try {
          fingerprint = compiled.fingerprint(payload);
        } catch (error) {
          // a value JSON cannot hold in a field the schema leaves open (Type.Unknown(): a BigInt, say)
          problem = mappingProblem(error, "the canonical JSON");
        }
      }
      if (problem !== undefined || key === undefined || fingerprint === undefined) {
        const error = problem as FrancaError;
        if (error.code === ErrorCode.SystemDown) throw error;
        // The ledger files a record under its canonical key whenever one can be made (a record that failed
        // validation elsewhere usually has one), else under its source id.
        let ledgerKey = key ?? sourceId;
        if (key === undefined && error.code === ErrorCode.ValidationFailed) {
          try {
            ledgerKey = compiled.key(payload as Record<string, unknown>);
          } catch {
            // no usable key fields: the source id it is
          }
        }
        problems.push({
          index,
          outcome: {
            key: ledgerKey,
            target: null,
            status: error.transient ? "failed" : "quarantined",
            chunk: seq,
            attempts: 1,
            code: error.code,
            errorClass: error.errorClass,
            message: error.message,
            ...(error.path === undefined ? {} : { path: error.path }),
            sourceId,
          },
        });
        continue;
      }
      const { json, hash } = fingerprint;
      // a plain literal, no spread: this runs once per record
      const record: CanonicalRecord = { key, hash, sourceId, payload: payload as Record<string, unknown>, json };
      if (cursorField !== undefined) record.cursor = row[cursorField];
      const earlier = indexOfKey.get(key);
      if (earlier === undefined) {
        indexOfKey.set(key, this.#taken + records.length);
        records.push(record);
      } else if (earlier >= this.#taken) {
        records[earlier - this.#taken] = record;
      } else {
        this.repeatedTaken = true;
      }
    }
  }

  /**
   * The records mapped since the last call, handed over and no longer kept here (a transform thread streams a chunk:
   * `streamJob` in threads/thread.ts). Their indexes in the chunk follow on from the last call's.
   */
  takeRecords(): CanonicalRecord[] {
    const taken = this.mapped.records;
    this.mapped.records = [];
    this.#taken += taken.length;
    return taken;
  }
}

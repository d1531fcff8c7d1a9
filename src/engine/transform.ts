import type { Row } from "../core/binding.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { keyOf } from "../core/key.ts";
import type { RecordOutcome } from "../core/record.ts";
import { forChunk } from "./chunk-order.ts";
import type { RunContext } from "./context.ts";
import { mapAll } from "./map-all.ts";
import { type CanonicalRecord, encodeCanonical } from "./staging.ts";

export interface TransformResult {
  records: CanonicalRecord[];
  problems: RecordOutcome[];
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
 * canonical JSON and content hash. A record that fails is kept as a problem with its field path and the run goes on;
 * the failure budget is checked at every problem, so a run stops at the very record that crosses it.
 * Two rows with the same canonical key in one chunk: the later one wins (it is the newer state in source order).
 */
export async function transformChunk(ctx: RunContext, seq: number, rows: readonly Row[]): Promise<TransformResult> {
  const binding = ctx.source.binding;
  const mapContext = ctx.mapContext(binding.name);
  const sourceIdOf = keyOf(binding.key);
  const count = rows.length;
  const { values: mapped, thrown } = await forChunk(seq, () =>
    mapAll(rows, (row) => {
      if (typeof row.$error === "string") {
        const line = row.$line;
        throw new FrancaError(
          ErrorCode.SourceRecordInvalid,
          `${binding.system.name} could not read the record${line === undefined ? "" : ` at line ${String(line)}`}: ${row.$error}`,
        );
      }
      return binding.toCanonical(row, mapContext);
    }),
  );

  const { compiled, budget } = ctx;
  const records: CanonicalRecord[] = [];
  const indexOfKey = new Map<string, number>();
  const problems: RecordOutcome[] = [];
  const cursorField = binding.cursor;
  // Good records are counted into the budget as they pass, so a ratio is judged on every record seen so far.
  let goodSinceLastProblem = 0;
  for (let i = 0; i < count; i++) {
    const row = rows[i] as Row;
    let sourceId: string;
    try {
      sourceId = sourceIdOf(row);
    } catch {
      sourceId = `${seq}:${i}`;
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
        {
          path: "/",
        },
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
    if (problem !== undefined || key === undefined) {
      const error = problem as FrancaError;
      if (error.code === ErrorCode.SystemDown) throw error;
      // The ledger files a record under its canonical key whenever one can be made (a record that failed validation
      // elsewhere usually has one), else under its source id.
      let ledgerKey = sourceId;
      if (error.code === ErrorCode.ValidationFailed) {
        try {
          ledgerKey = compiled.key(payload as Record<string, unknown>);
        } catch {
          // no usable key fields: the source id it is
        }
      }
      problems.push({
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
      });
      ctx.logger.warn(
        {
          stage: "transform",
          key: ledgerKey,
          sourceId,
          chunk: seq,
          code: error.code,
          path: error.path,
          err: error.message,
        },
        error.transient ? "record failed" : "record quarantined",
      );
      budget.processedOk(goodSinceLastProblem);
      goodSinceLastProblem = 0;
      const stop = budget.problem(true);
      if (stop !== undefined) {
        // The chunk is not staged (a resume transforms it again), but its problems so far are in the ledger.
        await ctx.store.saveOutcomes(ctx.run.id, problems);
        ctx.progress.quarantined += problems.filter((item) => item.status === "quarantined").length;
        ctx.progress.failed += problems.filter((item) => item.status === "failed").length;
        throw stop;
      }
      continue;
    }
    goodSinceLastProblem++;
    const { json, hash } = compiled.fingerprint(payload);
    // a plain literal, no spread: this runs once per record
    const record: CanonicalRecord = { key, hash, sourceId, payload: payload as Record<string, unknown>, json };
    if (cursorField !== undefined) record.cursor = row[cursorField];
    const earlier = indexOfKey.get(key);
    if (earlier === undefined) {
      indexOfKey.set(key, records.length);
      records.push(record);
    } else {
      records[earlier] = record;
    }
  }
  budget.processedOk(goodSinceLastProblem);
  return { records, problems };
}

/** Transforms and stages one chunk: canonical records and problems are persisted in one transaction. */
export async function transformAndStage(
  ctx: RunContext,
  seq: number,
  rows: readonly Row[],
): Promise<CanonicalRecord[]> {
  const { records, problems } = await transformChunk(ctx, seq, rows);
  await ctx.store.stage(ctx.run.id, seq, "canonical", encodeCanonical(records));
  await ctx.store.saveCanonical(ctx.run.id, seq, records.length, problems, Date.now());
  for (const record of records) record.json = undefined;
  ctx.progress.transformed += rows.length;
  for (const problem of problems) {
    if (problem.status === "failed") ctx.progress.failed++;
    else ctx.progress.quarantined++;
  }
  ctx.notify();
  return records;
}

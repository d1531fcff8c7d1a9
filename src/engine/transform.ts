import type { Driver } from "../connectors/types.ts";
import type { RecordOutcome } from "../core/record.ts";
import { CanonicalChunk } from "./canonical-chunk.ts";
import { forChunk } from "./chunk-order.ts";
import type { RunContext } from "./context.ts";
import type { FailureBudget } from "./failure-budget.ts";
import { type ChunkProblem, mapChunk } from "./map-chunk.ts";
import { rowCount, rowsOf, type SourceRows } from "./source-rows.ts";
import { encodeCanonical } from "./staging.ts";

export { mappingProblem } from "./map-chunk.ts";

/** A chunk transformed: what load takes, its staged text, and the records that could not go on. */
export interface TransformResult {
  chunk: CanonicalChunk;
  /** The canonical records' staged form (encodeCanonical): text, or as UTF-8 (from a transform thread). */
  staged: string | Uint8Array;
  problems: RecordOutcome[];
}

/**
 * Transforms a chunk somewhere else than on this thread (a transform thread). Returns undefined when it cannot take
 * the chunk now, and its promise resolves undefined when it could not finish it (a thread died): either way the
 * engine transforms the chunk itself. It rejects only with the chunk's own failure (a lookup's system down).
 */
export type RemoteTransform = (seq: number, data: SourceRows) => Promise<RemoteResult | undefined> | undefined;

export interface RemoteResult {
  chunk: CanonicalChunk;
  staged: Uint8Array;
  problems: ChunkProblem[];
}

/**
 * Charges a chunk's problems to the run's failure budget in row order, as if each record were judged as it passed
 * (good records count into a ratio as they pass), and logs each. When the budget is crossed, the problems up to that
 * record are recorded in the ledger (the chunk is not staged: a resume transforms it again) and the run stops.
 */
async function chargeProblems(
  ctx: RunContext,
  seq: number,
  count: number,
  problems: readonly ChunkProblem[],
  ledgerBudget?: () => Promise<FailureBudget>,
): Promise<RecordOutcome[]> {
  const budget = problems.length > 0 && ledgerBudget !== undefined ? await ledgerBudget() : ctx.budget;
  const outcomes: RecordOutcome[] = [];
  let next = 0; // the first row not yet counted
  for (const { index, outcome } of problems) {
    outcomes.push(outcome);
    ctx.logger.warn(
      {
        stage: "transform",
        key: outcome.key,
        sourceId: outcome.sourceId,
        chunk: seq,
        code: outcome.code,
        path: outcome.path,
        err: outcome.message,
      },
      outcome.status === "failed" ? "record failed" : "record quarantined",
    );
    budget.processedOk(index - next);
    next = index + 1;
    const stop = budget.problem(true);
    if (stop !== undefined) {
      await ctx.store.saveOutcomes(ctx.run.id, outcomes);
      for (const item of outcomes) {
        if (item.status === "quarantined") ctx.progress.quarantined++;
        else ctx.progress.failed++;
      }
      throw stop;
    }
  }
  budget.processedOk(count - next);
  return outcomes;
}

/**
 * Maps a chunk's rows to canonical records on this thread (see map-chunk.ts) and charges its problems to the run's
 * failure budget, so a run stops at the very record that crosses it. `ledgerBudget`: when the chunk has problems,
 * they are charged to the budget it gives instead of the context's (the distributed executor's, counted from the
 * ledger: every worker's problems).
 */
export async function transformChunk(
  ctx: RunContext,
  seq: number,
  data: SourceRows,
  ledgerBudget?: () => Promise<FailureBudget>,
): Promise<TransformResult> {
  const { binding } = ctx.source;
  const rows = rowsOf(data, binding.system.driver as Driver, binding.system.name);
  const mapped = await forChunk(seq, () => mapChunk(binding, ctx.compiled, ctx.mapContext(binding.name), seq, rows));
  const problems = await chargeProblems(ctx, seq, rows.length, mapped.problems, ledgerBudget);
  const staged = encodeCanonical(mapped.records);
  for (const record of mapped.records) record.json = undefined;
  return { chunk: CanonicalChunk.of(mapped.records), staged, problems };
}

/** The same, with the mapping done by `remote` (a transform thread) when it takes the chunk. */
async function transformSomewhere(
  ctx: RunContext,
  seq: number,
  data: SourceRows,
  remote: RemoteTransform | undefined,
): Promise<TransformResult> {
  const done = await remote?.(seq, data);
  if (done === undefined) return transformChunk(ctx, seq, data);
  const problems = await chargeProblems(ctx, seq, rowCount(data), done.problems);
  ctx.progress.threaded += rowCount(data);
  return { chunk: done.chunk, staged: done.staged, problems };
}

/**
 * Transforms and stages one chunk: canonical records and problems are persisted in one transaction. With `remote`,
 * the chunk is mapped there (a transform thread) rather than on this thread. `again`: the chunk was extracted by an
 * earlier execution of the run, whose transform of it may have stopped before staging it (Store.saveCanonical).
 * Returns the chunk and how many of its records are problems.
 */
export async function transformAndStage(
  ctx: RunContext,
  seq: number,
  data: SourceRows,
  remote: RemoteTransform | undefined,
  again: boolean,
): Promise<{ chunk: CanonicalChunk; problems: number }> {
  const { chunk, staged, problems } = await transformSomewhere(ctx, seq, data, remote);
  await ctx.store.stage(ctx.run.id, seq, "canonical", staged);
  await ctx.store.saveCanonical(ctx.run.id, seq, chunk.count, problems, Date.now(), again);
  ctx.progress.transformed += rowCount(data);
  for (const problem of problems) {
    if (problem.status === "failed") ctx.progress.failed++;
    else ctx.progress.quarantined++;
  }
  ctx.notify();
  return { chunk, problems: problems.length };
}

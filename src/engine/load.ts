import type { ItemResult, WriteItem } from "../connectors/types.ts";
import type { Row } from "../core/binding.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { digest } from "../core/hash.ts";
import type { RecordOutcome } from "../core/record.ts";
import type { LoadResult } from "../store/types.ts";
import { forChunk } from "./chunk-order.ts";
import type { Endpoint, RunContext } from "./context.ts";
import { mapAll } from "./map-all.ts";
import { AttemptsError } from "./policy.ts";
import type { CanonicalRecord } from "./staging.ts";
import { mappingProblem } from "./transform.ts";

/** The idempotency key of a record for a target: the same content written twice to the same target carries it. */
export function idempotencyKey(target: string, key: string, hash: string): string {
  return digest(target, key, hash);
}

interface Pending {
  record: CanonicalRecord;
  item: WriteItem;
}

/** A write item whose idempotency key is computed only if the connector reads it (APIs do, databases do not). */
class LazyItem implements WriteItem {
  readonly key: string;
  readonly row: Row;
  readonly hash: string;
  readonly #target: string;
  #idempotencyKey: string | undefined;

  constructor(target: string, key: string, row: Row, hash: string) {
    this.#target = target;
    this.key = key;
    this.row = row;
    this.hash = hash;
  }

  get idempotencyKey(): string {
    this.#idempotencyKey ??= idempotencyKey(this.#target, this.key, this.hash);
    return this.#idempotencyKey;
  }
}

/**
 * Loads one chunk into one target and records the outcome of each record:
 * - unchanged (its content hash is the one last loaded there) — not sent;
 * - loaded — written, idempotently (upsert by key, idempotency key per target, record and content);
 * - quarantined — refused by the target for this record (permanent), with its reason;
 * - failed — the target could not take it after the system's retries (transient): the run stops, resume retries.
 * A batch the target refused as a whole is split in halves until the refused records are isolated.
 */
export function writeChunk(
  ctx: RunContext,
  target: Endpoint,
  seq: number,
  records: readonly CanonicalRecord[],
): Promise<WrittenChunk> {
  // the target's calls wait at its gates in chunk order (chunk-order.ts), in both executors
  return forChunk(seq, () => writeRecords(ctx, target, seq, records));
}

async function writeRecords(
  ctx: RunContext,
  target: Endpoint,
  seq: number,
  records: readonly CanonicalRecord[],
): Promise<WrittenChunk> {
  const { binding, connection, policy } = target;
  const name = binding.name;
  const log = ctx.logger.child({ stage: "load", target: name, system: binding.system.name });
  const result: LoadResult = {
    loaded: [],
    unchanged: [],
    problems: [],
    attempts: 0,
    ...(connection.complete === undefined ? {} : { deferHashes: true }),
  };
  const previous = await ctx.store.getHashes(
    name,
    records.map((record) => record.key),
  );
  const mapContext = ctx.mapContext(name);
  const wantsEnvelope = binding.fromCanonical.length > 2;
  const sourceSystem = ctx.source.binding.system.name;
  const toSend: CanonicalRecord[] = [];
  for (const record of records) {
    const before = previous.get(record.key);
    if (before !== undefined && before.hash === record.hash) {
      // Already there. If this very run put it there (a resumed chunk), it counts as loaded, not unchanged.
      if (before.runId === ctx.run.id) result.loaded.push({ key: record.key, hash: record.hash });
      else result.unchanged.push(record.key);
      continue;
    }
    toSend.push(record);
  }
  const { values: rows, thrown } = await mapAll(toSend, (record) =>
    // the envelope is built only for mappings that ask for it (a third parameter): it costs an object per record
    wantsEnvelope
      ? binding.fromCanonical(record.payload, mapContext, {
          key: record.key,
          payload: record.payload,
          hash: record.hash,
          source: {
            system: sourceSystem,
            id: record.sourceId,
            ...(record.cursor === undefined ? {} : { cursor: record.cursor }),
          },
          lineage: { run: ctx.run.id, chunk: seq },
        })
      : binding.fromCanonical(record.payload, mapContext, undefined as never),
  );

  /** A record-level refusal is quarantined (permanent) or failed (transient); a system failure always fails. */
  const problem = (record: CanonicalRecord, error: FrancaError, attempts: number, systemLevel = false): void => {
    const outcome: RecordOutcome = {
      key: record.key,
      target: name,
      status: systemLevel || error.transient ? "failed" : "quarantined",
      chunk: seq,
      attempts,
      code: error.code,
      errorClass: error.errorClass,
      message: error.message,
      ...(error.path === undefined ? {} : { path: error.path }),
      sourceId: record.sourceId,
    };
    result.problems.push(outcome);
    log.warn(
      { key: record.key, chunk: seq, code: error.code, path: error.path, err: error.message },
      `record ${outcome.status}`,
    );
  };

  const pending: Pending[] = [];
  for (let i = 0; i < toSend.length; i++) {
    const record = toSend[i] as CanonicalRecord;
    if (thrown.has(i)) {
      problem(record, mappingProblem(thrown.get(i), `${name}.fromCanonical`), 1);
      continue;
    }
    const row = rows[i];
    if (row === null || typeof row !== "object") {
      problem(
        record,
        new FrancaError(ErrorCode.MappingFailed, `${name}.fromCanonical returned ${typeof row}, not a row`),
        1,
      );
      continue;
    }
    pending.push({ record, item: new LazyItem(name, record.key, row as Row, record.hash) });
  }

  let systemFailure: FrancaError | undefined;
  const write = async (batch: readonly Pending[]): Promise<void> => {
    let results: ItemResult[];
    let attempts: number;
    try {
      const call = await policy.execute(
        (signal) =>
          (connection.write as NonNullable<typeof connection.write>)({
            options: binding.options,
            key: binding.key,
            target: name,
            run: ctx.run.id,
            chunk: seq,
            items: batch.map((entry) => entry.item),
            signal,
          }),
        ctx.signal,
      );
      results = call.value;
      attempts = call.attempts;
    } catch (raw) {
      const error = raw instanceof AttemptsError ? raw.error : mappingProblem(raw, `${name}.write`);
      const made = raw instanceof AttemptsError ? raw.attempts : 1;
      result.attempts = Math.max(result.attempts, made);
      if (!error.transient && error.code === ErrorCode.TargetRejected && batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        await write(batch.slice(0, half));
        await write(batch.slice(half));
        return;
      }
      if (!error.transient && error.code === ErrorCode.TargetRejected) {
        problem((batch[0] as Pending).record, error, made);
        return;
      }
      // The system, not the records: every record of the batch failed, and the run stops (resumable).
      systemFailure ??= error;
      for (const entry of batch) problem(entry.record, error, made, true);
      return;
    }
    result.attempts = Math.max(result.attempts, attempts);
    if (results.length !== batch.length) {
      throw new FrancaError(
        ErrorCode.Internal,
        `${binding.system.type} connector returned ${results.length} results for ${batch.length} rows`,
      );
    }
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i] as Pending;
      const outcome = results[i] as ItemResult;
      if (outcome.ok) {
        const loaded: LoadResult["loaded"][number] = { key: entry.record.key, hash: entry.record.hash };
        if (outcome.targetId !== undefined) loaded.targetId = outcome.targetId;
        result.loaded.push(loaded);
      } else {
        problem(entry.record, outcome.error, attempts);
      }
    }
  };

  if (pending.length > 0) {
    const size = Math.max(1, connection.maxWriteBatch?.(binding.options) ?? pending.length);
    const batches: Pending[][] = [];
    for (let i = 0; i < pending.length; i += size) batches.push(pending.slice(i, i + size));
    // Batches of one chunk go out together; the system's concurrency gate decides how many are in flight.
    await Promise.all(batches.map((batch) => write(batch)));
  }
  if (result.attempts === 0) result.attempts = 1;
  return systemFailure === undefined ? { result } : { result, systemFailure };
}

/** A chunk written to one target: the outcome to record, and the system failure that must stop the run, if any. */
export interface WrittenChunk {
  result: LoadResult;
  systemFailure?: FrancaError;
}

/** Counts a written chunk's problems against the run's failure budget: the error to stop the run with, if crossed. */
export function chargeBudget(ctx: RunContext, written: WrittenChunk): FrancaError | undefined {
  if (written.systemFailure !== undefined) return written.systemFailure;
  for (let i = 0; i < written.result.problems.length; i++) {
    const stop = ctx.budget.problem(false);
    if (stop !== undefined) return stop;
  }
  return undefined;
}

/** The in-process executor's load of one chunk into one target: write it, record the outcome, count it. */
export async function loadChunk(
  ctx: RunContext,
  target: Endpoint,
  seq: number,
  records: readonly CanonicalRecord[],
): Promise<void> {
  const written = await writeChunk(ctx, target, seq, records);
  const { result } = written;
  const name = target.binding.name;
  await ctx.store.saveLoad(ctx.run.id, seq, name, result, Date.now());
  const progress = ctx.progress.targets[name];
  if (progress !== undefined) {
    progress.loaded += result.loaded.length;
    progress.unchanged += result.unchanged.length;
    for (const item of result.problems) {
      if (item.status === "failed") progress.failed++;
      else progress.quarantined++;
    }
  }
  ctx.notify();
  const stop = chargeBudget(ctx, written);
  if (stop !== undefined) throw stop;
}

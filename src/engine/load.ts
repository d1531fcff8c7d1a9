import type { Driver, ItemResult, WriteItem } from "../connectors/types.ts";
import type { Binding, Row } from "../core/binding.ts";
import { ErrorCode, FrancaError, toFrancaError } from "../core/errors.ts";
import { digest } from "../core/hash.ts";
import type { RecordOutcome } from "../core/record.ts";
import { loadHash, targetMappingDigest } from "../core/target-mapping.ts";
import { unchangedCount } from "../store/rows.ts";
import type { LoadedHash, LoadResult, RunRecord } from "../store/types.ts";
import type { CanonicalChunk } from "./canonical-chunk.ts";
import { forChunk } from "./chunk-order.ts";
import type { Endpoint, RunContext } from "./context.ts";
import { InFlight } from "./in-flight.ts";
import { mapAll } from "./map-all.ts";
import { mappingProblem } from "./map-chunk.ts";
import { AttemptsError } from "./policy.ts";
import { type Lineage, mapToTarget, targetRowProblem } from "./target-rows.ts";

/**
 * Whose idempotency keys a write's records carry: the target's; a run that resends (`StartOptions.resend`, kept in
 * its stats: `resend` is its id) gives its records keys of their own, else an API that remembers keys would take the
 * writes for replays of the last ones and keep nothing of them.
 */
export interface IdempotencyScope {
  target: string;
  resend?: number;
}

/** The idempotency key of a record in a scope: the same content written twice to the same target carries it. */
export function idempotencyKey(scope: IdempotencyScope, key: string, hash: string): string {
  return scope.resend === undefined
    ? digest(scope.target, key, hash)
    : digest(scope.target, key, hash, `resend ${scope.resend}`);
}

/** Maps a chunk's records to a target's rows on this thread, on demand (a prepared write's slow paths). */
interface RowSource {
  row(index: number): Row;
}

/**
 * A write item whose idempotency key is computed only if the connector reads it (APIs do, databases do not), and
 * whose row, for a write of prepared rows, is mapped only if the connector reads it (on its slow paths). One object
 * per record: a chunk's items live as long as its write, long enough to outlive young-generation collections.
 */
class LazyItem implements WriteItem {
  readonly key: string;
  readonly hash: string;
  readonly #scope: IdempotencyScope;
  #row: Row | undefined;
  readonly #source: RowSource | undefined;
  readonly #index: number;
  #idempotencyKey: string | undefined;

  constructor(
    scope: IdempotencyScope,
    key: string,
    hash: string,
    row: Row | undefined,
    source?: RowSource,
    index = -1,
  ) {
    this.#scope = scope;
    this.key = key;
    this.hash = hash;
    this.#row = row;
    this.#source = source;
    this.#index = index;
  }

  get row(): Row {
    this.#row ??= (this.#source as RowSource).row(this.#index);
    return this.#row;
  }

  get idempotencyKey(): string {
    this.#idempotencyKey ??= idempotencyKey(this.#scope, this.key, this.hash);
    return this.#idempotencyKey;
  }
}

const noHashes: ReadonlyMap<string, LoadedHash> = new Map();
const hashesAtStart = new WeakMap<RunContext, Map<string, Promise<boolean>>>();

/**
 * Whether any record had been loaded to `target` when this execution of the run first loaded a chunk there. When
 * none had (a first load, a bulk load into a new target), no chunk's records can be unchanged but for records this
 * run loaded itself, which are sent again (the idempotent write leaves them as they are) and count as loaded either
 * way: the chunks skip looking up their keys' previous hashes. Asked once per execution and target, before its first
 * chunk's outcome is recorded (the store answers calls in order).
 */
function loadedBefore(ctx: RunContext, target: string): Promise<boolean> {
  let targets = hashesAtStart.get(ctx);
  if (targets === undefined) {
    targets = new Map();
    hashesAtStart.set(ctx, targets);
  }
  let known = targets.get(target);
  if (known === undefined) {
    const asked = ctx.store.hasHashes(target);
    // a failed answer is not kept: the next chunk (a retried job, in a distributed worker) asks again
    asked.catch(() => targets.delete(target));
    known = asked;
    targets.set(target, known);
  }
  return known;
}

const originsOf = new WeakMap<RunContext, Map<number, Promise<number>>>();

/**
 * The run whose extraction a run's records come from: itself, or for a replay the run it replays (followed through
 * replays of replays). Run ids grow with time, so the larger origin holds the later data. Asked once per run id and
 * execution (a replay's chunks ask about the few runs that last loaded their keys).
 */
function originOf(ctx: RunContext, runId: number): Promise<number> {
  let known = originsOf.get(ctx);
  if (known === undefined) {
    known = new Map();
    originsOf.set(ctx, known);
  }
  let origin = known.get(runId);
  if (origin === undefined) {
    const from = (run: RunRecord | undefined): number | Promise<number> =>
      run === undefined
        ? runId
        : run.kind === "replay" && run.parentId !== undefined
          ? originOf(ctx, run.parentId)
          : run.id;
    origin = runId === ctx.run.id ? Promise.resolve(from(ctx.run)) : ctx.store.getRun(runId).then(from);
    const cache = known;
    origin.catch(() => cache.delete(runId));
    known.set(runId, origin);
  }
  return origin;
}

/**
 * For a replay into a target that keeps one version per key: the runs among `loadedBy` (the runs that last loaded the
 * chunk's keys there) whose records are later than the replay's, so that a replay of an old run never puts its older
 * version of a record over the one a later run loaded since. Undefined for any other run or target.
 */
async function laterRuns(
  ctx: RunContext,
  binding: Binding,
  loadedBy: ReadonlyMap<string, LoadedHash>,
): Promise<Set<number> | undefined> {
  if (ctx.run.kind !== "replay" || loadedBy.size === 0 || !keepsLast(binding)) return undefined;
  const own = await originOf(ctx, ctx.run.id);
  const later = new Set<number>();
  for (const runId of new Set([...loadedBy.values()].map((loaded) => loaded.runId))) {
    if (runId !== ctx.run.id && (await originOf(ctx, runId)) > own) later.add(runId);
  }
  return later;
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
  chunk: CanonicalChunk,
  again = false,
): Promise<WrittenChunk> {
  // the target's calls wait at its gates in chunk order (chunk-order.ts), in both executors
  return forChunk(seq, () => writeRecords(ctx, target, seq, chunk, again));
}

/**
 * Whether the target keeps one version of a record, the last written: its driver writes to what it holds under the
 * binding's key (`Driver.replacesByKey`: an upsert, a PUT), and that key has as many fields as the entity's key (a
 * heuristic: a key of more, `["id", "valid_from"]`, likely keeps a row per version, as a file or an API that creates a
 * record per request does, and there every version is written, as an uninterrupted run writes it; a key of as many
 * on other fields, `email` for an entity keyed by `id`, is taken to keep one).
 */
function keepsLast(binding: Binding): boolean {
  const driver = binding.system.driver as Driver;
  return (
    driver.replacesByKey?.(binding.options, binding.key) === true && binding.key.length === binding.entity.key.length
  );
}

/**
 * `again`: the chunk may be loaded after later chunks of its run were (a chunk a resumed or continued run loads, or
 * transforms, again). In a target that keeps a record's last version (`keepsLast`), a key that a later chunk of the
 * run loaded there, or found unchanged (`Store.laterInTarget`), keeps that later version: the chunk's own is neither
 * sent nor recorded, only counted with the unchanged (`superseded`), so that loading the chunk again does not put an
 * older version back. The key locks (in-process) and pending loads (distributed) keep that order within one
 * execution; across executions only the ledger knows it.
 */
async function writeRecords(
  ctx: RunContext,
  target: Endpoint,
  seq: number,
  chunk: CanonicalChunk,
  again: boolean,
): Promise<WrittenChunk> {
  const { binding, connection, policy } = target;
  const name = binding.name;
  const log = ctx.logger.child({ stage: "load", target: name, system: binding.system.name });
  const result: LoadResult = {
    loaded: [],
    hashes: [],
    unchanged: [],
    problems: [],
    attempts: 0,
    ...(connection.complete === undefined ? {} : { deferHashes: true }),
  };
  const { keys } = chunk;
  // each record's content hash as filed for this target: with the target's mapping digest (core/target-mapping.ts)
  const mapping = targetMappingDigest(binding);
  const hashes = chunk.hashes.map((hash) => loadHash(hash, mapping));
  const previous = (await loadedBefore(ctx, name)) ? await ctx.store.getHashes(name, keys) : noHashes;
  const mapContext = ctx.mapContext(name);
  const lineage: Lineage = { sourceSystem: ctx.source.binding.system.name, run: ctx.run.id, chunk: seq };
  const mapRecord = (index: number) => mapToTarget(binding, chunk.record(index), mapContext, lineage);
  const toSend: number[] = [];
  const resend = ctx.run.stats.resend === true ? ctx.run.id : undefined;
  const scope: IdempotencyScope = resend === undefined ? { target: name } : { target: name, resend };
  const later = again && keepsLast(binding) ? await ctx.store.laterInTarget(ctx.run.id, name, seq, keys) : undefined;
  const laterLoads = await laterRuns(ctx, binding, previous);
  let kept = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (later?.has(key) === true) {
      result.superseded = (result.superseded ?? 0) + 1;
      continue;
    }
    const hash = hashes[i] as string;
    const before = previous.get(key);
    if (laterLoads !== undefined && before !== undefined && laterLoads.has(before.runId)) {
      // a replay's record that a later run loaded a later version of: the target keeps that one
      result.unchanged.push(key);
      kept++;
      continue;
    }
    // A hash filed before targets filed their mapping's digest (no "."): the content alone is compared, so that an
    // upgrade does not send every record again.
    const same = before !== undefined && (before.hash === hash || before.hash === chunk.hashes[i]);
    // A run that resends (StartOptions.resend) skips only what it loaded itself (a resumed chunk).
    if (same && (resend === undefined || before.runId === ctx.run.id)) {
      // Already there. If this very run put it there (a resumed chunk), it counts as loaded, not unchanged.
      if (before.runId === ctx.run.id) {
        result.loaded.push(key);
        result.hashes.push(hash);
        if (result.targetIds !== undefined) result.targetIds.push(null);
      } else result.unchanged.push(key);
      continue;
    }
    toSend.push(i);
  }
  if (kept > 0) {
    log.info(
      { chunk: seq, records: kept },
      "records a later run loaded a later version of: not sent again by this replay (recorded unchanged)",
    );
  }
  if (result.superseded !== undefined) {
    log.info(
      { chunk: seq, records: result.superseded },
      "records whose key a later chunk of this run has in the target: not sent again",
    );
  }

  /** A record-level refusal is quarantined (permanent) or failed (transient); a system failure always fails. */
  /**
   * `batch`: the batch's, not the record's (its system failed, or the run's stop cut it): failed whatever its class,
   * and logged once for the batch by the caller, not once per record.
   */
  const problem = (index: number, error: FrancaError, attempts: number, batch = false): void => {
    const key = keys[index] as string;
    const outcome: RecordOutcome = {
      key,
      target: name,
      status: batch || error.transient ? "failed" : "quarantined",
      chunk: seq,
      attempts,
      code: error.code,
      errorClass: error.errorClass,
      message: error.message,
      ...(error.path === undefined ? {} : { path: error.path }),
      sourceId: chunk.sourceId(index),
    };
    result.problems.push(outcome);
    if (!batch)
      log.warn({ key, chunk: seq, code: error.code, path: error.path, err: error.message }, `record ${outcome.status}`);
  };

  // The records to write, in parallel arrays (no object per record but its item): their index in the chunk, their
  // item, and (for prepared rows) their row's index in the prepared data.
  const indexes: number[] = [];
  const items: WriteItem[] = [];
  const preparedAt: number[] = [];
  const prepared = chunk.prepared(name);
  const usePrepared = prepared !== undefined && !prepared.async;
  if (usePrepared) {
    // Rows a transform thread mapped and encoded already: sent as they are; mapped again here only if the
    // connector asks for a row (its slow paths), which the thread's mapping showed to be synchronous.
    const failures = new Map(prepared.failures.map((failure) => [failure.index, failure]));
    const source: RowSource = {
      row(index) {
        const value = mapRecord(index);
        if (value === null || typeof value !== "object" || typeof (value as { then?: unknown }).then === "function")
          throw new FrancaError(ErrorCode.Internal, `${name}.fromCanonical did not map record ${keys[index]} again`);
        return value as Row;
      },
    };
    for (const index of toSend) {
      const row = prepared.rowOf[index] as number;
      if (row < 0) {
        const failure = failures.get(index);
        const error =
          failure === undefined
            ? new FrancaError(ErrorCode.MappingFailed, `${name}.fromCanonical failed`)
            : FrancaError.fromJSON(failure);
        problem(index, error, 1);
        continue;
      }
      indexes.push(index);
      items.push(new LazyItem(scope, keys[index] as string, hashes[index] as string, undefined, source, index));
      preparedAt.push(row);
    }
  } else {
    const { values: rows, thrown } = await mapAll(toSend, mapRecord);
    for (let i = 0; i < toSend.length; i++) {
      const index = toSend[i] as number;
      const row = rows[i];
      const error = targetRowProblem(name, thrown.has(i), thrown.get(i), row);
      if (error !== undefined) {
        problem(index, error, 1);
        continue;
      }
      indexes.push(index);
      items.push(new LazyItem(scope, keys[index] as string, hashes[index] as string, row as Row));
    }
  }

  let systemFailure: FrancaError | undefined;
  /** The run was taken over while a write was in flight: nothing of the chunk is recorded here. */
  let lost = false;
  let interruptedCount = 0;
  // the writes that send the prepared rows, counted until each has ended (a write given up at its deadline runs on)
  const writing = new InFlight();
  /** Writes the records `from` to `to` (exclusive) of the arrays above in one call. */
  const write = async (from: number, to: number): Promise<void> => {
    let results: ItemResult[];
    let attempts: number;
    const whole = from === 0 && to === items.length;
    try {
      const call = await policy.execute(
        (signal) =>
          writing.track(
            (connection.write as NonNullable<typeof connection.write>)({
              options: binding.options,
              key: binding.key,
              target: name,
              run: ctx.run.id,
              chunk: seq,
              items: whole ? items : items.slice(from, to),
              ...(usePrepared
                ? { prepared: { data: prepared.data, rows: whole ? preparedAt : preparedAt.slice(from, to) } }
                : {}),
              signal,
            }),
          ),
        ctx.signal,
      );
      results = call.value;
      attempts = call.attempts;
    } catch (raw) {
      // Stopped, not failed: the run's stop cut the call (a cancel, or another target's or stage's failure, the
      // signal's reason, not this system's doing). Its records are failed as interrupted (transient: the resume
      // writes them again), not as this system's failure; the batches of the chunk that ended before are loaded, so
      // that the resume does not send them again (an API that only creates would create them twice).
      if (ctx.signal.aborted) {
        // taken over by another process: this one records nothing of the chunk (the new owner's ledger stands)
        if (toFrancaError(ctx.signal.reason).code === ErrorCode.RunLocked) {
          lost = true;
          return;
        }
        const interrupted = writeInterrupted(ctx.signal.reason);
        for (let i = from; i < to; i++) problem(indexes[i] as number, interrupted, 1, true);
        interruptedCount += to - from;
        return;
      }
      const error = raw instanceof AttemptsError ? raw.error : mappingProblem(raw, `${name}.write`);
      const made = raw instanceof AttemptsError ? raw.attempts : 1;
      result.attempts = Math.max(result.attempts, made);
      if (!error.transient && error.code === ErrorCode.TargetRejected && to - from > 1) {
        const half = from + Math.ceil((to - from) / 2);
        await write(from, half);
        await write(half, to);
        return;
      }
      if (!error.transient && error.code === ErrorCode.TargetRejected) {
        problem(indexes[from] as number, error, made);
        return;
      }
      // The system, not the records: every record of the batch failed, and the run stops (resumable).
      systemFailure ??= error;
      for (let i = from; i < to; i++) problem(indexes[i] as number, error, made, true);
      log.warn(
        { chunk: seq, records: to - from, code: error.code, err: error.message },
        `${binding.system.name} failed a write of ${to - from} records: each recorded failed`,
      );
      return;
    }
    result.attempts = Math.max(result.attempts, attempts);
    if (results.length !== to - from) {
      throw new FrancaError(
        ErrorCode.Internal,
        `${binding.system.type} connector returned ${results.length} results for ${to - from} rows`,
      );
    }
    for (let i = from; i < to; i++) {
      const outcome = results[i - from] as ItemResult;
      if (outcome.ok) {
        if (outcome.targetId !== undefined && result.targetIds === undefined)
          result.targetIds = new Array<string | null>(result.loaded.length).fill(null);
        const item = items[i] as WriteItem;
        result.loaded.push(item.key);
        result.hashes.push(item.hash);
        result.targetIds?.push(outcome.targetId ?? null);
      } else {
        problem(indexes[i] as number, outcome.error, attempts);
      }
    }
  };

  if (items.length > 0) {
    const size = Math.max(1, connection.maxWriteBatch?.(binding.options) ?? items.length);
    const calls: Promise<void>[] = [];
    // Batches of one chunk go out together; the system's concurrency gate decides how many are in flight.
    for (let from = 0; from < items.length; from += size) calls.push(write(from, Math.min(items.length, from + size)));
    await Promise.all(calls);
  }
  if (lost) throw toFrancaError(ctx.signal.reason);
  // one line for the chunk's interrupted records, not one each
  if (interruptedCount > 0)
    log.info({ chunk: seq, records: interruptedCount }, "writes cut by the run's stop: recorded interrupted");
  // The prepared rows are written: their bytes are freed once no write is still sending them. Not after a write that
  // failed: one aborted mid-COPY may leave its bytes queued on a socket that is closing (the collector frees those).
  if (prepared !== undefined)
    writing.whenIdle((failed) => {
      if (!failed) chunk.freePrepared(name);
    });
  if (result.attempts === 0) result.attempts = 1;
  return systemFailure === undefined ? { result } : { result, systemFailure };
}

/** The problem of a record whose write the run's stop (`reason`) cut short: interrupted, not failed by its system. */
function writeInterrupted(reason: unknown): FrancaError {
  const stop = toFrancaError(reason);
  const why =
    stop.code === ErrorCode.RunCancelled
      ? "the run was cancelled"
      : `the run stopped (${stop.code}${stop.system === undefined ? "" : ` at ${stop.system}`})`;
  return new FrancaError(
    ErrorCode.WriteInterrupted,
    `not written: ${why} while its write was in flight; a resume writes it again`,
    {
      errorClass: "transient",
    },
  );
}

/** A chunk written to one target: the outcome to record, and the system failure that must stop the run, if any. */
export interface WrittenChunk {
  result: LoadResult;
  systemFailure?: FrancaError;
}

/** Counts a written chunk's problems against the run's failure budget: the error to stop the run with, if crossed. */
function chargeBudget(ctx: RunContext, written: WrittenChunk): FrancaError | undefined {
  if (written.systemFailure !== undefined) return written.systemFailure;
  for (let i = 0; i < written.result.problems.length; i++) {
    const stop = ctx.budget.problem(false);
    if (stop !== undefined) return stop;
  }
  return undefined;
}

/**
 * The in-process executor's load of one chunk into one target: write it, record the outcome, count it. Returns how
 * many of its records were quarantined or failed there.
 */
export async function loadChunk(
  ctx: RunContext,
  target: Endpoint,
  seq: number,
  chunk: CanonicalChunk,
  again = false,
): Promise<number> {
  const written = await writeChunk(ctx, target, seq, chunk, again);
  const { result } = written;
  const name = target.binding.name;
  await ctx.store.saveLoad(ctx.run.id, seq, name, result, Date.now());
  const progress = ctx.progress.targets[name];
  if (progress !== undefined) {
    progress.loaded += result.loaded.length;
    progress.unchanged += unchangedCount(result);
    for (const item of result.problems) {
      if (item.status === "failed") progress.failed++;
      else progress.quarantined++;
    }
  }
  ctx.notify();
  const stop = chargeBudget(ctx, written);
  if (stop !== undefined) throw stop;
  return result.problems.length;
}

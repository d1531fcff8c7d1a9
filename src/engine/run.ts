import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { Driver } from "../connectors/types.ts";
import { ErrorCode, ExitCode, FrancaError, toFrancaError } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import type { AnyLookup } from "../core/lookup.ts";
import type { RunStatus } from "../core/record.ts";
import type { System } from "../core/system.ts";
import type { LookupCacheStore, MemoryLookupCache } from "../store/lookup-cache.ts";
import type { ChunkState, RunCounts, RunError, RunRecord, Store } from "../store/types.ts";
import { CanonicalChunk } from "./canonical-chunk.ts";
import { Channel } from "./channel.ts";
import { classify } from "./classify.ts";
import type { ConnectionPool } from "./connections.ts";
import type { Endpoint, RunContext, RunProgress, SystemPause } from "./context.ts";
import { advancedCursor, chunkDone } from "./cursor.ts";
import {
  comparedDriftStats,
  compareProfiles,
  type Drift,
  type DriftStats,
  describeDrift,
  joinDrift,
  nextProfile,
  splitDriftStats,
  untold,
} from "./drift.ts";
import { type DriftState, driftState, type ExtractedChunk, extract, seesWholeSource } from "./extract.ts";
import { spentOf } from "./failure-budget.ts";
import { freeBytes } from "./free-bytes.ts";
import { KeyLocks } from "./key-locks.ts";
import { loadChunk } from "./load.ts";
import type { LookupRuntime, LookupStats } from "./lookups.ts";
import { AttemptsError, addedStats, noCalls, type PolicyStats, type SystemPolicy, statsSince } from "./policy.ts";
import { releaseQuietly, stagedUnlessDone } from "./release-staged.ts";
import { createRunContext } from "./run-context.ts";
import { Sequencer } from "./sequencer.ts";
import { encodeSourceRows, forThreads, rowCount, stagedForTransform } from "./source-rows.ts";
import type { TransformThreads } from "./threads/pool.ts";
import { transformAndStage } from "./transform.ts";
import { yieldToEventLoop } from "./yield.ts";

/** What a run needs from the engine that started it. */
export interface RunEnvironment {
  store: Store;
  logger: Logger;
  owner: string;
  connections: ConnectionPool;
  policyOf(systemName: string): SystemPolicy;
  lookupsByName: ReadonlyMap<string, AnyLookup>;
  systemsByName: ReadonlyMap<string, System>;
  heartbeatMs: number;
  lookupCache?: LookupCacheStore;
  sharedLookupCache?: MemoryLookupCache;
  /** Systems whose calls are held back right now (an open circuit, a 429), until when and why. */
  pausedSystems?(): ReadonlyMap<string, SystemPause>;
  /** Transform threads, when the engine has them: chunks are mapped there rather than on this thread. */
  threads?: TransformThreads;
}

export interface RunOptions {
  /** Cancels the run: it stops, keeps what is durable and ends 'cancelled' (resumable). */
  signal?: AbortSignal;
  onProgress?: (progress: RunProgress) => void;
}

export interface RunSummary {
  run: RunRecord;
  counts: RunCounts;
  exitCode: number;
}

interface LoadItem {
  seq: number;
  chunk?: CanonicalChunk;
}

const channelCapacity = 2;

export function exitCodeOf(status: RunStatus): number {
  if (status === "succeeded") return ExitCode.Succeeded;
  if (status === "partial") return ExitCode.Partial;
  return ExitCode.Failed;
}

function statusOf(counts: RunCounts): RunStatus {
  let quarantined = counts.quarantined;
  let failed = counts.failed;
  for (const target of Object.values(counts.targets)) {
    quarantined += target.quarantined;
    failed += target.failed;
  }
  if (failed > 0) return "failed";
  return quarantined > 0 ? "partial" : "succeeded";
}

/** A run's error as its record keeps it: code, message, class, and the system or setting at fault when known. */
export function runError(error: FrancaError): RunError {
  return {
    code: error.code,
    message: error.message,
    errorClass: error.errorClass,
    ...(error.system === undefined ? {} : { system: error.system }),
    ...(error.setting === undefined ? {} : { setting: error.setting }),
  };
}

/**
 * Publishes a target's staged output. No call timeout (a large file takes a while); transient failures are retried
 * with the system's backoff.
 */
async function completeTarget(
  target: Endpoint,
  runId: number,
  chunks: readonly number[],
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  const complete = target.connection.complete;
  if (complete === undefined) return;
  let delayed = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      await complete.call(target.connection, {
        options: target.binding.options,
        target: target.binding.name,
        run: runId,
        chunks,
        signal,
      });
      return;
    } catch (raw) {
      const error = classify(raw, target.binding.system.name);
      const delay = error.transient ? target.policy.retryDelay(attempt, error, delayed) : undefined;
      if (delay === undefined || signal.aborted) throw error;
      logger.warn({ target: target.binding.name, attempt, err: error.message }, "publishing failed; retrying");
      delayed += delay;
      await sleep(delay, undefined, { signal });
    }
  }
}

/**
 * Executes (or continues) a run: extract → transform → load as concurrent stages joined by bounded channels, each
 * stage persisting its output chunk by chunk before the next takes it. On return the run is finished in the store
 * (status, counts, error) and the flow's cursor has moved as far as every record before it is final.
 */
export async function executeRun(
  env: RunEnvironment,
  flow: Flow,
  run: RunRecord,
  options: RunOptions = {},
): Promise<RunSummary> {
  const { store } = env;
  const logger = env.logger.child({ run: run.id, flow: flow.name });
  const started = Date.now();
  const control = new AbortController();
  let firstError: FrancaError | undefined;
  let cancelled = false;
  const channels: { abort(error: unknown): void }[] = [];
  const fail = (error: FrancaError) => {
    if (firstError !== undefined) return;
    firstError = error;
    control.abort(error);
    for (const channel of channels) channel.abort(error);
  };
  const onCancel = () => {
    cancelled = true;
    fail(new FrancaError(ErrorCode.RunCancelled, "the run was cancelled"));
  };
  if (options.signal?.aborted) onCancel();
  options.signal?.addEventListener("abort", onCancel, { once: true });

  // The systems this run's calls wait for now (breaker open, 429 hold), on its record while they do: `franca runs
  // show` of a run that seems stuck, from another terminal, says which system it waits for and until when.
  let pausedShown = "{}";
  let pausedWrite: Promise<void> = Promise.resolve();
  const heartbeat = setInterval(() => {
    ctx.notify(); // progress stays current while a stage waits (a paused system)
    store.heartbeat(run.id, env.owner, Date.now()).then(
      (owned) => {
        if (!owned) fail(new FrancaError(ErrorCode.RunLocked, `run ${run.id} was taken over by another process`));
        // only while it is the run's owner: a process that lost the run writes nothing over the new owner's stats
        else if (!control.signal.aborted) recordPaused();
      },
      (error: unknown) => logger.warn({ err: toFrancaError(error).message }, "heartbeat failed"),
    );
  }, env.heartbeatMs);
  const recordPaused = () => {
    const paused = Object.fromEntries(
      [...(env.pausedSystems?.() ?? [])].filter(([name]) => ctx.policiesAtStart.has(name)),
    );
    const shown = JSON.stringify(paused);
    if (shown === pausedShown) return;
    pausedShown = shown;
    const stats = shown === "{}" ? run.stats : { ...run.stats, pausedNow: paused };
    pausedWrite = pausedWrite
      .then(() => store.updateStats(run.id, stats))
      .catch((error: unknown) => logger.warn({ err: toFrancaError(error).message }, "could not record the pause"));
  };
  heartbeat.unref();
  const deadline =
    flow.deadlineMs === undefined
      ? undefined
      : setTimeout(() => logger.warn({ deadlineMs: flow.deadlineMs }, "run is past its deadline"), flow.deadlineMs);
  deadline?.unref();

  const states = await store.chunkStates(run.id);
  const already = await store.counts(run.id);
  const ctx = createRunContext(env, flow, run, already, {
    spent: spentOf(states, run.targets),
    signal: control.signal,
    fail,
    logger,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  });
  const { progress, targets } = ctx;

  // --- the plan: what this (possibly resumed) run still has to do
  const notTransformed = states.filter((chunk) => !chunk.transformed).map((chunk) => chunk.seq);
  const recordsOf = new Map(states.map((chunk) => [chunk.seq, chunk.records]));
  const last = states.at(-1);
  const startSeq = last === undefined ? 0 : last.seq + 1;
  const from = last === undefined ? run.cursorFrom : last.position;
  const drift = await driftState(store, run);
  if (states.length > 0 || run.extractDone) {
    logger.info(
      { chunks: states.length, toTransform: notTransformed.length, extractDone: run.extractDone },
      "resuming run",
    );
  } else {
    logger.info({ from: run.cursorFrom ?? null, targets: run.targets }, "run started");
  }

  const toTransform = new Channel<ExtractedChunk>(channelCapacity);
  channels.push(toTransform);
  const toLoad = new Map<string, Channel<LoadItem>>();
  const sequencers = new Map<string, Sequencer<CanonicalChunk | undefined>>();
  for (const target of targets) {
    const channel = new Channel<LoadItem>(channelCapacity);
    channels.push(channel);
    toLoad.set(target.binding.name, channel);
    const pending = states
      .filter((chunk) => chunk.transformed && !chunk.loaded[target.binding.name])
      .map((chunk) => chunk.seq);
    const sequencer = new Sequencer<CanonicalChunk | undefined>(
      [...pending, ...notTransformed],
      startSeq,
      (seq, chunk) => channel.send(chunk === undefined ? { seq } : { seq, chunk }),
    );
    sequencers.set(target.binding.name, sequencer);
    channels.push(sequencer);
  }

  /**
   * A chunk's staged output, for its transform or a load planned from the chunk states read at the start; undefined
   * when that was done meanwhile and the chunk released (`done`, of the chunk's state now), by an earlier owner of the
   * run that had not noticed yet that this process took it over (its next heartbeat stops it).
   */
  const stagedUnlessDoneElsewhere = async (
    seq: number,
    stage: "extracted" | "canonical",
    done: (chunk: ChunkState) => boolean,
  ): Promise<string | undefined> => {
    const staged = await stagedUnlessDone(
      await store.readStaged(run.id, seq, stage),
      async () => {
        const now = (await store.chunkStates(run.id)).find((chunk) => chunk.seq === seq);
        return now !== undefined && done(now);
      },
      () => new FrancaError(ErrorCode.StoreError, `run ${run.id} chunk ${seq} has no staged ${stage} output`),
    );
    if (staged === undefined) logger.warn({ chunk: seq, stage }, "chunk done meanwhile by another process: not again");
    return staged;
  };

  const guard = async (stage: string, work: () => Promise<void>): Promise<void> => {
    try {
      await work();
    } catch (error) {
      if (control.signal.aborted && firstError !== undefined) return;
      const failure = error instanceof AttemptsError ? error.error : toFrancaError(error);
      logger.error({ stage, err: failure.toJSON() }, `${stage} stopped the run`);
      fail(failure);
    }
  };

  // Chunks transformed here with no problem, and how many targets have still to load them without one: the last
  // such load releases the chunk's staged output (no resume or replay will read it), so that the staging of a long
  // run does not grow with it. A chunk whose canonical records were read back from staging (a resumed run's chunk
  // transformed by an earlier process) keeps it until the run's end. A run that is stopping releases nothing: it may
  // have lost its ownership to another process, which plans from what is staged.
  const cleanLoadsLeft = new Map<number, number>();
  const loadedClean = async (seq: number, problems: number): Promise<void> => {
    const left = cleanLoadsLeft.get(seq);
    if (left === undefined) return;
    if (problems > 0) {
      cleanLoadsLeft.delete(seq);
      return;
    }
    if (left > 1) {
      cleanLoadsLeft.set(seq, left - 1);
      return;
    }
    cleanLoadsLeft.delete(seq);
    if (control.signal.aborted) return;
    await releaseQuietly(logger, run.id, seq, () => store.releaseStaged(run.id, seq));
  };

  const remote = env.threads?.remote(ctx);
  const extractTask = guard("extract", async () => {
    try {
      for (const seq of notTransformed) await toTransform.send({ seq });
      if (!run.extractDone) {
        await extract(ctx, startSeq, from, drift, async ({ seq, data, position }) => {
          const staged = encodeSourceRows(data);
          await store.stage(run.id, seq, "extracted", staged);
          await store.saveExtracted(run.id, seq, position, rowCount(data), Date.now());
          progress.chunks++;
          progress.extracted += rowCount(data);
          ctx.notify();
          // with transform threads, decoded rows go on as their staged text, which a thread can take
          await toTransform.send({ seq, data: remote === undefined ? data : forThreads(data, staged) });
        });
        if (control.signal.aborted) return;
        await store.markExtractDone(run.id);
        progress.extractDone = true;
        ctx.notify();
      }
    } finally {
      toTransform.close();
    }
  });

  const transformTask = guard("transform", async () => {
    const feeders = targets.map((target) =>
      guard("load", async () => {
        const name = target.binding.name;
        const sequencer = sequencers.get(name) as Sequencer<CanonicalChunk | undefined>;
        const pending = states.filter((chunk) => chunk.transformed && !chunk.loaded[name]);
        await Promise.all(pending.map((chunk) => sequencer.offer(chunk.seq, undefined)));
      }),
    );
    // With transform threads, and a source whose chunks they can take (its own text, or decoded rows as their staged
    // text), two chunks per thread are in hand at once (one mapped, the next waiting for it).
    const threaded =
      remote !== undefined &&
      (ctx.source.connection.readEncoded === undefined ||
        (ctx.source.binding.system.driver as Driver).decode !== undefined);
    const concurrency = Math.max(flow.transformConcurrency, threaded ? 2 * (env.threads?.count ?? 0) : 0);
    const workers = Array.from({ length: concurrency }, () =>
      guard("transform", async () => {
        for (;;) {
          const next = await toTransform.receive();
          if (next.done) return;
          const { seq } = next.value;
          // a resumed run's chunk, read back: decoded rows go to the threads as their staged text, like fresh ones
          let data = next.value.data;
          if (data === undefined) {
            const staged = await stagedUnlessDoneElsewhere(seq, "extracted", (chunk) => chunk.transformed);
            if (staged === undefined) {
              // transformed meanwhile by another process: each target's load takes it from its canonical records
              await Promise.all([...sequencers.values()].map((sequencer) => sequencer.offer(seq, undefined)));
              continue;
            }
            data = stagedForTransform(staged, recordsOf.get(seq), remote !== undefined);
          }
          const { chunk, problems } = await transformAndStage(ctx, seq, data, remote, seq < startSeq);
          if (problems === 0 && sequencers.size > 0) cleanLoadsLeft.set(seq, sequencers.size);
          // the chunk's source text is staged and transformed: its bytes are freed (the engine owns a read's bytes)
          if (!("rows" in data)) freeBytes(data.text);
          // every target's load is handed the chunk; the last to let go frees its staged bytes
          chunk.hold(sequencers.size);
          await Promise.all([...sequencers.values()].map((sequencer) => sequencer.offer(seq, chunk)));
          await yieldToEventLoop();
        }
      }),
    );
    await Promise.all([...feeders, ...workers]);
    for (const channel of toLoad.values()) channel.close();
  });

  const loadTasks = targets.map((target) =>
    guard("load", async () => {
      const name = target.binding.name;
      const channel = toLoad.get(name) as Channel<LoadItem>;
      const locks = new KeyLocks();
      const running = new Set<Promise<void>>();
      for (;;) {
        const next = await channel.receive();
        if (next.done) break;
        const { seq } = next.value;
        let chunk = next.value.chunk;
        if (chunk === undefined) {
          const staged = await stagedUnlessDoneElsewhere(seq, "canonical", (state) => state.loaded[name] === true);
          if (staged === undefined) continue;
          chunk = CanonicalChunk.staged(staged);
        }
        const lock = locks.register(chunk.keys);
        while (running.size >= flow.loadConcurrency) await Promise.race(running);
        const task: Promise<void> = lock.ready
          .then(async () => {
            if (control.signal.aborted) return;
            // a chunk of an earlier execution of the run (seq < startSeq) may be loaded after later chunks were
            await loadedClean(seq, await loadChunk(ctx, target, seq, chunk, seq < startSeq));
          })
          .then(yieldToEventLoop)
          .catch((error: unknown) => {
            if (!(control.signal.aborted && firstError !== undefined)) {
              const failure = error instanceof AttemptsError ? error.error : toFrancaError(error);
              logger.error({ stage: "load", target: name, chunk: seq, err: failure.toJSON() }, "load stopped the run");
              fail(failure);
            }
          })
          .finally(() => {
            chunk.letGo();
            lock.release();
            running.delete(task);
          });
        running.add(task);
      }
      await Promise.all(running);
    }),
  );

  await Promise.all([extractTask, transformTask, ...loadTasks]);

  clearInterval(heartbeat);
  // a pause's record written before the run's end, not over it
  await pausedWrite;
  if (deadline !== undefined) clearTimeout(deadline);
  options.signal?.removeEventListener("abort", onCancel);
  const finalStates = await store.chunkStates(run.id);
  // read to its end, the source gives the flow its next profile (all of it: seesWholeSource)
  const readToEnd = progress.extractDone && Object.keys(drift.current).length > 0;
  const wholeSource = readToEnd && seesWholeSource(ctx, run, startSeq === 0 && !run.extractDone);
  const processedNow = progress.transformed - (already.canonical + already.quarantined + already.failed);
  return finishRecord(env, flow, run, finalStates, ctx, {
    logger,
    owner: env.owner,
    drift,
    readToEnd,
    wholeSource,
    durationMs: Date.now() - started,
    processed: processedNow,
    ...(firstError === undefined ? {} : { error: firstError }),
    cancelled,
  });
}

export interface FinishOptions {
  logger: Logger;
  /** The run's owner: this process (in-process executor) or the queue (distributed). */
  owner?: string;
  drift?: DriftState;
  /** The run's extraction read the source to its end and saw rows: the fields it saw give the flow its next profile. */
  readToEnd: boolean;
  /**
   * What the run saw (`drift.current`) holds every field of the source: every row carries every field, or it read the
   * source from its start, not from a cursor. Missing fields are then judged, and a field it did not see leaves the
   * profile.
   */
  wholeSource: boolean;
  durationMs?: number;
  processed?: number;
  /** What stopped the run, if something did. */
  error?: FrancaError;
  cancelled?: boolean;
}

/**
 * Ends a run in the store: publishes the staged output of targets that publish at the end (files) once every chunk
 * is final there, derives the status from the ledger's counts, moves the flow's cursor over the unbroken prefix of
 * final chunks, reports source drift, and records stats. Shared by both executors.
 */
export async function finishRecord(
  env: RunEnvironment,
  flow: Flow,
  run: RunRecord,
  finalStates: readonly ChunkState[],
  ctx: RunContext & { lookups: LookupRuntime },
  options: FinishOptions,
): Promise<RunSummary> {
  const { store } = env;
  const { logger } = options;
  let firstError = options.error;
  if (firstError === undefined) {
    for (const target of ctx.targets) {
      if (target.connection.complete === undefined) continue;
      if (!finalStates.every((chunk) => chunkDone(chunk, [target.binding.name]))) continue;
      try {
        await completeTarget(
          target,
          run.id,
          finalStates.map((chunk) => chunk.seq),
          ctx.signal,
          logger,
        );
        await store.commitHashes(run.id, target.binding.name);
      } catch (error) {
        firstError = toFrancaError(error);
      }
    }
  }
  const counts = await store.counts(run.id);
  const status: RunStatus =
    firstError === undefined ? statusOf(counts) : options.cancelled === true ? "cancelled" : "failed";
  const cursor =
    run.kind === "flow" && flow.from.cursor !== undefined ? advancedCursor(finalStates, run.targets) : undefined;
  const drift = options.drift;
  // What only the whole extraction shows (every chunk was compared as it came: extract.ts): fields missing from a
  // source whose rows do not each carry every field. It was loaded: logged and recorded, and, under the policy 'fail'
  // and not accepted, not made the flow's profile (the next run tells it again).
  let late: Drift | undefined;
  if (drift !== undefined && options.readToEnd && drift.previous !== undefined && flow.drift !== "ignore") {
    const whole = compareProfiles(drift.previous, drift.current, options.wholeSource);
    late = whole === undefined ? undefined : untold(whole, drift.drift);
    if (late !== undefined) {
      drift.drift = joinDrift(drift.drift, late);
      logger.warn(
        { drift: late },
        `source drift in ${flow.from.name}, at the end of its extraction: ${describeDrift(late)}`,
      );
    }
  }
  // a resumed run's figures are those of all its executions: the earlier ones' as recorded, plus this one's
  const earlierSystems = (run.stats.systems ?? {}) as Record<string, Partial<PolicyStats>>;
  const systems: Record<string, PolicyStats> = {};
  const flowSystems = new Set([ctx.source, ...ctx.targets].map((endpoint) => endpoint.binding.system.name));
  for (const name of new Set([...Object.keys(earlierSystems), ...ctx.policiesAtStart.keys()])) {
    const start = ctx.policiesAtStart.get(name);
    const now = start === undefined ? noCalls : statsSince(env.policyOf(name).stats, start);
    // a system only lookups call is shown when a run's execution called it
    if (flowSystems.has(name) || now.attempts > 0 || earlierSystems[name] !== undefined)
      systems[name] = addedStats(earlierSystems[name], now);
  }
  // this execution's time: from its claim when it continues the run (the earlier executions' is in the stats)
  const executionStart = typeof run.stats.resumedAt === "number" ? run.stats.resumedAt : run.startedAt;
  const durationMs = options.durationMs ?? Date.now() - executionStart;
  const {
    sourceProfile: _profile,
    wholeSource: _whole,
    fullExtraction: _full,
    resumedAt: _resumed,
    ...rest
  } = run.stats;
  const { drift: earlier, others: kept } = splitDriftStats(rest);
  // what this execution found of the source's fields, with what earlier ones found, and the part that stopped it
  // (comparedDriftStats); an execution that did not compare leaves the record as it was, but for what the end showed
  const stopped =
    firstError?.code === ErrorCode.SourceDrift
      ? (firstError.details as { stopped?: Drift } | undefined)?.stopped
      : undefined;
  const driftStats: DriftStats =
    drift?.checked === true
      ? comparedDriftStats(earlier, Number(run.stats.resumes ?? 0), drift.drift, stopped)
      : { ...earlier, ...(drift?.drift === undefined ? {} : { drift: drift.drift }) };
  const stats: Record<string, unknown> = {
    ...kept,
    durationMs: Number(run.stats.durationMs ?? 0) + durationMs,
    ...(options.processed === undefined
      ? {}
      : { recordsPerSecond: durationMs === 0 ? 0 : Math.round((options.processed / durationMs) * 1000) }),
    lookups: ctx.lookups.stats((run.stats.lookups ?? {}) as Record<string, Partial<LookupStats>>),
    systems,
    // records this process mapped on its transform threads (a resumed run adds the earlier processes' share)
    ...(ctx.progress.threaded === 0 && run.stats.threaded === undefined
      ? {}
      : { threaded: Number(run.stats.threaded ?? 0) + ctx.progress.threaded }),
    ...driftStats,
  };
  // a resumed run keeps what its earlier executions warned of
  const warnings = new Set([...((run.stats.warnings as string[] | undefined) ?? []), ...ctx.warnings]);
  if (warnings.size > 0) stats.warnings = [...warnings];
  const adopt = late === undefined || flow.drift !== "fail" || drift?.accepted === true;
  const profile =
    drift !== undefined && options.readToEnd && adopt && Object.keys(drift.current).length > 0
      ? nextProfile(drift.previous, drift.current, options.wholeSource)
      : undefined;
  try {
    await store.finishRun(
      run.id,
      options.owner ?? env.owner,
      {
        status,
        ...(firstError === undefined ? {} : { error: runError(firstError) }),
        stats,
        ...(cursor === undefined ? {} : { cursor }),
        ...(profile === undefined ? {} : { profile }),
      },
      Date.now(),
    );
  } catch (error) {
    logger.error({ err: toFrancaError(error).message }, "could not record the end of the run");
    throw error;
  }
  // A run that succeeded has nothing to resume or replay: its staged chunks go. Others keep them for resume/replay.
  if (status === "succeeded") await store.discardStaged(run.id);
  const finished = (await store.getRun(run.id)) as RunRecord;
  const level = status === "succeeded" ? "info" : status === "partial" ? "warn" : "error";
  logger[level](
    { status, counts, durationMs, ...(firstError === undefined ? {} : { err: firstError.toJSON() }) },
    `run ${status}`,
  );
  return { run: finished, counts, exitCode: exitCodeOf(status) };
}

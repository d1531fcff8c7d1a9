/**
 * A worker of the distributed executor: takes chunk-stage jobs from the queue and does them with the same stage code
 * as the in-process executor. Each job does its work, then records its output and sends the next stage's jobs in ONE
 * PostgreSQL transaction: a worker that dies at any point leaves either nothing of the job (it is redone,
 * idempotently, by another worker once its heartbeat is missed) or all of it. A transform completes itself in that
 * transaction; an extraction or a load is completed when it returns, after what follows its commit, which a retry
 * that finds its output recorded does again.
 *
 *   extract(run)          reads the source; per chunk: stage + record + send transform(run, seq)      [one tx a chunk]
 *   transform(run, seq)   maps, validates, hashes; stage + record + send load(run, seq, t) per target + complete
 *   load(run, seq, t)     writes the target; records the outcomes; then charges the budget, releases the chunk and
 *                         sends finish(run) when the run is done
 *   finish(run)           publishes file targets, moves the cursor, ends the run
 *   dead (pg-boss's)      a job given up on: ends its run failed (JOB_GIVEN_UP), resumable
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import { changedShapeError } from "../../core/entity-shape.ts";
import { ErrorCode, FrancaError, toFrancaError } from "../../core/errors.ts";
import type { Flow } from "../../core/flow.ts";
import type { Hub } from "../../core/hub.ts";
import type { PostgresStore } from "../../store/postgres/store.ts";
import type { RunRecord } from "../../store/types.ts";
import { CanonicalChunk } from "../canonical-chunk.ts";
import type { Endpoint, RunContext } from "../context.ts";
import { advancedCursor } from "../cursor.ts";
import { comparedDriftStats, type Drift, splitDriftStats } from "../drift.ts";
import { type DriftState, driftState, extract, seesWholeSource } from "../extract.ts";
import { FailureBudget, hasLimit } from "../failure-budget.ts";
import { writeChunk } from "../load.ts";
import type { LookupRuntime } from "../lookups.ts";
import { processOwner } from "../owner.ts";
import { AttemptsError } from "../policy.ts";
import { releaseQuietly, stagedUnlessDone } from "../release-staged.ts";
import { finishRecord, type RunEnvironment, runError } from "../run.ts";
import { createRunContext, executedBefore } from "../run-context.ts";
import { decodeSourceRows, encodeSourceRows, rowCount } from "../source-rows.ts";
import { transformChunk } from "../transform.ts";
import { givenUpMessage, lastAttemptMessage } from "./given-up.ts";
import { blockingLoad, keyDigestSet, keyDigests } from "./load-order.ts";
import { queueOwner } from "./owner.ts";
import {
  type ExtractJob,
  type FinishJob,
  type JobData,
  jobExists,
  jobKey,
  type LoadJob,
  liveFor,
  liveJobs,
  queuedChunkJobs,
  queues,
  type TransformJob,
} from "./queue.ts";

export { queueOwner };

interface Job<T> {
  id: string;
  name: string;
  data: T;
  retryCount?: number;
  retryLimit?: number;
}

interface RunState {
  /** The run's record as read at the start of its latest job here. */
  run: RunRecord;
  flow: Flow;
  ctx: RunContext & { lookups: LookupRuntime };
  control: AbortController;
  active: number;
  lastUsed: number;
  /** This worker has warned that the run is past its flow's `deadlineMs`. */
  pastDeadline?: boolean;
}

export interface WorkerOptions {
  hub: Hub;
  env: RunEnvironment & { store: PostgresStore };
  boss: PgBoss;
  /** Jobs this worker runs at once, per queue (transform and load); extract and finish run one at a time. Default 8. */
  jobs?: number;
  logger: Logger;
}

/** One attempt of a job: pg-boss may hand a job whose heartbeat lapsed to this process again, as its next attempt. */
const attemptOf = (job: Job<unknown>): string => `${job.id}:${(job as { retryCount?: number }).retryCount ?? 0}`;

/** Chunk jobs of a run that may wait for a worker before its extraction waits too. */
export const queuedChunksAhead = 4;
/** How long a load job waits in its slot for an earlier chunk that may share keys (load-order.ts) before it is handed back. */
const loadOrderWaitMs = 5_000;
/** When a load job handed back for an earlier chunk is taken again: seconds (pg-boss's `startAfter`). */
const loadOrderRetrySeconds = 1;

/** The run's figures and status from its ledger, the same way the in-process executor ends a run. */
export class DistributedWorker {
  readonly #options: WorkerOptions;
  readonly #store: PostgresStore;
  readonly #boss: PgBoss;
  readonly #runs = new Map<number, RunState>();
  /** The run state each job in flight counts itself in (`active`): the one it got, whatever #runs holds by its end. */
  readonly #jobStates = new Map<string, RunState>();
  readonly #log: Logger;
  #heartbeat: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #stopped = false;
  /** Aborted when the worker stops: an extraction in flight stops at its next chunk and is handed back. */
  readonly #stopping = new AbortController();

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.#store = options.env.store;
    this.#boss = options.boss;
    // the process, not the owner its runs are recorded under (the queue, the same for every worker)
    this.#log = options.logger.child({ worker: processOwner() });
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  async start(): Promise<void> {
    const jobs = this.#options.jobs ?? 8;
    // a NOTIFY wakes only pollers that are asleep: one busy when a job was sent must look again as soon as it is free,
    // not after pg-boss's 30 s notify backstop (which left jobs waiting while workers idled); and while the queue has
    // a backlog it fetches again at once
    const common = {
      batchSize: 1,
      includeMetadata: true,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: 0.5,
      burstWhenReadyExceeds: 1,
    } as const;
    await this.#boss.work<ExtractJob>(queues.extract, { ...common, localConcurrency: 1 }, (batch) =>
      this.#handle(batch, (job) => this.#extract(job)),
    );
    await this.#boss.work<TransformJob>(queues.transform, { ...common, localConcurrency: jobs }, (batch) =>
      this.#handle(batch, (job) => this.#transform(job)),
    );
    await this.#boss.work<LoadJob>(queues.load, { ...common, localConcurrency: jobs }, (batch) =>
      this.#handle(batch, (job) => this.#load(job)),
    );
    await this.#boss.work<FinishJob>(queues.finish, { ...common, localConcurrency: 1 }, (batch) =>
      this.#handle(batch, (job) => this.#finish(job)),
    );
    await this.#boss.work<JobData>(queues.dead, { ...common, localConcurrency: 1 }, async (batch) => {
      for (const job of batch) await this.#dead(job);
    });
    this.#heartbeat = setInterval(() => void this.#beat(), this.#options.env.heartbeatMs);
    this.#heartbeat.unref();
  }

  /**
   * Stops taking jobs. `graceful`: the jobs in flight finish first (pg-boss waits for them); otherwise they are
   * handed back at once (failed, retried by another worker).
   */
  async stop(graceful = true): Promise<void> {
    this.#stopped = true;
    this.#log.info({ graceful, inFlight: this.#inFlight }, "worker stopping");
    // an extraction would read on to the source's end (and, waiting for its chunks to be taken, never end with no
    // other worker): it hands its job back at its next chunk, resumed from there by the next worker
    this.#stopping.abort(new FrancaError(ErrorCode.RunCancelled, "the worker is stopping"));
    // every queue stops fetching at once: one after the other, the others would take new jobs while the first waited
    // for its jobs in flight
    await Promise.all(
      [queues.extract, queues.transform, queues.load, queues.finish, queues.dead].map((name) =>
        this.#boss.offWork(name, { wait: graceful } as never),
      ),
    );
    if (!graceful)
      for (const state of this.#runs.values())
        state.control.abort(new FrancaError(ErrorCode.RunCancelled, "the worker is stopping"));
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    await this.#beat();
    this.#runs.clear();
  }

  /** Hands the jobs in flight back to the queue at once: they fail here and are retried by any worker. */
  handBack(): void {
    this.#stopped = true;
    for (const state of this.#runs.values())
      state.control.abort(new FrancaError(ErrorCode.RunCancelled, "the worker is stopping"));
  }

  /**
   * Runs that have a job here record that they are alive; contexts of runs idle here for a minute are let go. A run
   * that has ended meanwhile (cancelled, or failed by a job elsewhere) has its jobs here stopped now rather than at
   * their end (an extraction would otherwise read on to the source's end); a later job of it, the run continued, gets
   * a context of its own.
   */
  async #beat(): Promise<void> {
    const now = Date.now();
    for (const [id, state] of this.#runs) {
      if (state.active > 0) {
        this.#watchDeadline(state, now);
        const owned = await this.#store.heartbeat(id, queueOwner, now).catch((error: unknown) => {
          this.#log.warn({ run: id, err: toFrancaError(error).message }, "heartbeat failed");
          return true;
        });
        // not a run marked abandoned (a worker's registry entry read as stale): its jobs here go on, and take it up
        if (!owned && (await this.#ended(id))) {
          this.#stopJobs(id, "ended");
          this.#runs.delete(id);
        }
      } else if (now - state.lastUsed > 60_000) {
        this.#runs.delete(id);
      }
    }
  }

  /**
   * Runs a job's work. A transient failure with retries left is thrown: pg-boss retries the job with backoff. Any
   * other failure ends the run (failed, resumable): the job completes, and the run's other jobs find it ended.
   */
  async #handle<T extends { run: number }>(batch: Job<T>[], work: (job: Job<T>) => Promise<void>): Promise<void> {
    const job = batch[0] as Job<T>;
    this.#inFlight++;
    this.#log.debug({ job: job.name, data: job.data, retry: job.retryCount ?? 0 }, "job started");
    try {
      await work(job);
      this.#log.debug({ job: job.name, data: job.data }, "job done");
    } catch (raw) {
      const error = raw instanceof AttemptsError ? raw.error : toFrancaError(raw);
      const retriesLeft = (job.retryCount ?? 0) < (job.retryLimit ?? 0);
      // a worker stopping (gracefully: its jobs in flight finish) hands a transient failure back to the queue all the
      // same, for another worker (or this one, started again) to retry, rather than fail the run. A system down longer
      // than a run may pause (SYSTEM_DOWN: the job waited out its breaker already) stops the run, resumable, as it does
      // in one process: retried, each attempt would wait the same again, for many minutes with nothing to show
      if (error.transient && retriesLeft && (error.code !== ErrorCode.SystemDown || this.#stopped)) {
        this.#log.warn(
          { run: job.data.run, job: job.name, err: error.message, retry: (job.retryCount ?? 0) + 1 },
          "job failed; pg-boss will retry it",
        );
        throw error;
      }
      if (this.#stopped && error.code === ErrorCode.RunCancelled) throw error; // handed back: another worker takes it
      if (error.code === ErrorCode.RunCancelled || (await this.#ended(job.data.run))) {
        // Stopped because its run ended, or failed after that: the job completes, in a transaction that keeps the run
        // from being continued meanwhile. A run continued already gets the job sent again there (a plan of the
        // continued run, which found it live, queued it no second time).
        const ended = await this.#completeStopped(job);
        this.#log.info(
          { run: job.data.run, job: job.name, err: error.message },
          ended ? "job stopped: its run ended" : "job stopped, and sent again: its run was continued",
        );
        return;
      }
      this.#log.error(
        {
          run: job.data.run,
          flow: this.#runs.get(job.data.run)?.ctx.flow.name,
          job: job.name,
          ...(error.system === undefined ? {} : { system: error.system }),
          err: error.toJSON(),
        },
        "job failed; the run stops",
      );
      // an end that could not be recorded is thrown: pg-boss retries the job (and, its attempts run out, gives it up,
      // which ends the run), rather than complete it with its work undone and the run running
      await this.#failRun(job.data.run, error);
    } finally {
      this.#inFlight--;
      const state = this.#jobStates.get(attemptOf(job));
      this.#jobStates.delete(attemptOf(job));
      if (state !== undefined) {
        state.active--;
        state.lastUsed = Date.now();
      }
    }
  }

  /**
   * Warns, once per worker, when a run it works on is past its flow's `deadlineMs`, counted from the run's start (a
   * continued run's first start; the in-process executor counts from when its process took the run up): no one
   * process sees a distributed run whole, so each that works on it says so.
   */
  #watchDeadline(state: RunState, now: number): void {
    const deadlineMs = state.flow.deadlineMs;
    if (deadlineMs === undefined || state.pastDeadline === true || now - state.run.startedAt <= deadlineMs) return;
    state.pastDeadline = true;
    state.ctx.logger.warn({ deadlineMs }, "run is past its deadline");
  }

  /** Stops the jobs of a run that ended elsewhere (cancelled, or failed by a job of another worker) that run here. */
  #stopJobs(id: number, status: string): void {
    const state = this.#runs.get(id);
    if (state === undefined || state.control.signal.aborted) return;
    state.control.abort(new FrancaError(ErrorCode.RunCancelled, `run ${id} ended (${status}): its jobs here stop`));
  }

  /**
   * Whether the run has ended for good (not running, not failed as abandoned); false when that cannot be told: the
   * failure is then the run's, as before.
   */
  async #ended(id: number): Promise<boolean> {
    return this.#store.runEnded(id).catch(() => false);
  }

  /**
   * Completes a job stopped because its run ended, in a transaction that reads the run's row locked against a claim:
   * when the run was continued meanwhile (a plan that found this job live did not queue it again), the job is sent
   * again in the same transaction, fresh (no retry counted, no backoff). Returns whether the run was still ended.
   */
  async #completeStopped<T extends JobData>(job: Job<T>): Promise<boolean> {
    return this.#store.withTransaction(async (tx) => {
      const ended = await tx.runEnded(job.data.run);
      await this.#boss.complete(job.name, job.id, null, { db: tx } as never);
      if (!ended) await this.#boss.send(job.name, job.data, { db: tx, singletonKey: jobKey(job.data) } as never);
      return ended;
    });
  }

  /**
   * The run a job belongs to, ready to work on (undefined when there is no such run). A run abandoned while no worker
   * was alive is taken up again; a run that has ended throws RUN_CANCELLED, which #handle completes the job for.
   */
  async #runState(id: number, attempt: string): Promise<RunState | undefined> {
    let run = await this.#store.getRun(id);
    if (run === undefined) return undefined;
    if (run.status === "failed" && run.error?.code === ErrorCode.RunAbandoned) {
      try {
        run = await this.#store.claimRun(id, queueOwner, Date.now(), { onlyAbandoned: true });
        this.#log.info({ run: id }, "continuing a run abandoned while no worker was alive");
      } catch {
        // taken up by another worker meanwhile (then running), superseded, or ended meanwhile (a job given up on)
        run = (await this.#store.getRun(id)) ?? run;
      }
    }
    if (run.status !== "running") {
      // Its jobs still running here stop too (an extraction would otherwise read on to the source's end). This one
      // ends as they do (#handle): completed while the run is still ended, else sent again for the run continued.
      this.#stopJobs(id, run.status);
      this.#runs.delete(id);
      throw new FrancaError(ErrorCode.RunCancelled, `run ${id} has ended (${run.status})`);
    }
    let state = this.#runs.get(id);
    if (state === undefined || state.run.status !== "running" || state.control.signal.aborted) {
      const flow = this.#options.hub.flows.get(run.flow);
      if (flow === undefined)
        throw new FrancaError(
          ErrorCode.ConfigUnknownReference,
          `run ${id} belongs to flow '${run.flow}', which this worker's configuration lacks`,
        );
      // a run staged under a shape of the entity that this worker's breaks (a deploy changed the schema under a run
      // going on, or abandoned): its staged records would be loaded unchecked. The run ends failed, naming the change.
      const changed = changedShapeError(
        run,
        flow.entity,
        `this worker's configuration would load them unchecked. Start a fresh run instead: 'franca run ${flow.name} --fresh'`,
      );
      if (changed !== undefined) {
        await this.#failRun(id, changed);
        throw new FrancaError(ErrorCode.RunCancelled, `run ${id} has ended (failed: ${changed.code})`);
      }
      const control = new AbortController();
      const already = await this.#store.counts(id);
      const ctx = createRunContext(this.#options.env, flow, run, already, {
        signal: control.signal,
        // logged there; the job whose mapping or load called this goes on to its own end
        fail: (error) => void this.#failRun(id, error).catch(() => {}),
        logger: this.#options.logger.child({ run: id, flow: flow.name }),
      });
      state = { run, flow, ctx, control, active: 0, lastUsed: Date.now() };
      this.#runs.set(id, state);
    }
    state.run = run;
    state.active++;
    state.lastUsed = Date.now();
    this.#jobStates.set(attempt, state);
    return state;
  }

  #endpoint(state: RunState, target: string): Endpoint {
    const endpoint = state.ctx.targets.find((item) => item.binding.name === target);
    if (endpoint === undefined)
      throw new FrancaError(
        ErrorCode.ConfigInvalid,
        `run ${state.run.id} loads target '${target}', which is no longer in flow '${state.flow.name}'`,
      );
    return endpoint;
  }

  async #extract(job: Job<ExtractJob>): Promise<void> {
    const state = await this.#runState(job.data.run, attemptOf(job));
    if (state === undefined) return;
    const { run, ctx } = state;
    const fresh = await this.#store.getRun(run.id);
    if (fresh?.extractDone === true) return this.#checkFinish(run.id, run.targets);
    const chunks = await this.#store.chunkStates(run.id);
    const last = chunks.at(-1);
    const drift = await driftState(this.#store, run);
    // what this extraction found of the source's fields, once it compared them, on the run's record
    const withFinding = (stats: Record<string, unknown>) => {
      if (drift.checked !== true) return stats;
      const { drift: earlier, others } = splitDriftStats(stats);
      return { ...others, ...comparedDriftStats(earlier, Number(stats.resumes ?? 0), drift.drift) };
    };
    // the finding last written to the run's record by this attempt (`null`: none yet)
    let recorded: Drift | undefined | null = null;
    const extraction = extract(
      ctx,
      last === undefined ? 0 : last.seq + 1,
      last === undefined ? run.cursorFrom : last.position,
      drift,
      async ({ seq, data, position }) => {
        await this.#waitForTakers(run.id, ctx.signal);
        await this.#store.withTransaction(async (tx) => {
          await tx.stage(run.id, seq, "extracted", encodeSourceRows(data));
          await tx.saveExtracted(run.id, seq, position, rowCount(data), Date.now());
          await tx.expectLoads(run.id, seq, run.targets);
          await this.#boss.send(queues.transform, { run: run.id, seq }, {
            db: tx,
            singletonKey: jobKey({ run: run.id, seq }),
          } as never);
          // the finding on the run's record with the chunk that showed it: the run may end before the extraction
          if (drift.checked === true && drift.drift !== recorded) {
            await tx.updateStats(run.id, withFinding(((await tx.getRun(run.id)) as RunRecord).stats));
            recorded = drift.drift;
          }
        });
      },
    );
    await extraction;
    if (ctx.signal.aborted) throw ctx.signal.reason;
    // not completed in this transaction but when the job returns: a retry after a death past the commit finds the
    // extraction done and sends the finish job, should every load have ended before it (above)
    await this.#store.withTransaction(async (tx) => {
      const stats = {
        ...withFinding(((await tx.getRun(run.id)) as RunRecord).stats),
        sourceProfile: drift.current,
        // the fields seen are all the source's (finishRecord's `wholeSource`)
        wholeSource: seesWholeSource(ctx, run, last === undefined),
      };
      await tx.updateStats(run.id, stats);
      await tx.markExtractDone(run.id);
    });
    await this.#checkFinish(run.id, run.targets);
  }

  /**
   * Holds the extraction back while `queuedChunksAhead` of the run's chunk jobs wait for a worker: it then runs only
   * as far ahead of the loads as the workers take its chunks, however many workers there are. Without it a run's
   * whole source was extracted and transformed first (a 48-chunk run: every chunk staged in the first ~2.5 s), which
   * took the CPU the first loads needed and kept everything staged in the store until loaded. Measured (bench:scale,
   * 4 workers, 24,000 records): the API reached ~60 calls in flight after ~0.5–0.7 s instead of ~1.5 s.
   */
  async #waitForTakers(runId: number, signal: AbortSignal): Promise<void> {
    const stopping = this.#stopping.signal;
    const either = AbortSignal.any([signal, stopping]);
    for (let pause = 10; ; pause = Math.min(100, pause * 2)) {
      // a worker stopping hands its extraction back here, before the next chunk is staged: the next worker resumes it
      if (stopping.aborted) throw stopping.reason;
      if ((await queuedChunkJobs(this.#boss, this.#store.schema, runId)) < queuedChunksAhead) return;
      await sleep(pause, undefined, { signal: either }).catch((error: unknown) => {
        throw stopping.aborted ? stopping.reason : error;
      });
    }
  }

  async #transform(job: Job<TransformJob>): Promise<void> {
    const state = await this.#runState(job.data.run, attemptOf(job));
    if (state === undefined) return;
    const { run } = state;
    const { seq } = job.data;
    const chunk = await this.#store.chunkState(run.id, seq);
    if (chunk === undefined || chunk.transformed) return; // done by an earlier attempt (its loads were sent with it)
    // gone when another execution of this job (one pg-boss took for lost) transformed, loaded and released it meanwhile
    const staged = await stagedUnlessDone(
      await this.#store.readStaged(run.id, seq, "extracted"),
      async () => (await this.#store.chunkState(run.id, seq))?.transformed === true,
      () => new FrancaError(ErrorCode.StoreError, `run ${run.id} chunk ${seq} has no staged rows`),
    );
    if (staged === undefined) return;
    const {
      chunk: transformed,
      staged: canonical,
      problems,
    } = await transformChunk(state.ctx, seq, decodeSourceRows(staged), this.#ledgerBudget(state));
    const transformedAt = Date.now();
    await this.#store.withTransaction(async (tx) => {
      await tx.stage(run.id, seq, "canonical", canonical);
      await tx.saveCanonical(run.id, seq, transformed.count, problems, transformedAt, executedBefore(run));
      await tx.savePendingKeys(run.id, seq, run.targets, keyDigests(transformed.keys));
      for (const target of run.targets) {
        await this.#boss.send(queues.load, { run: run.id, seq, target, transformedAt }, {
          db: tx,
          singletonKey: jobKey({ run: run.id, seq, target }),
        } as never);
      }
      await this.#boss.complete(queues.transform, job.id, null, { db: tx } as never);
    });
  }

  async #load(job: Job<LoadJob>): Promise<void> {
    const state = await this.#runState(job.data.run, attemptOf(job));
    if (state === undefined) return;
    const { run, ctx } = state;
    const { seq, target } = job.data;
    const chunk = await this.#store.chunkState(run.id, seq);
    // A chunk some of whose records failed in the transform (transiently) is loaded all the same: its other records
    // go on, as in-process, and a resume transforms it again. Its load job is sent only once its records are staged.
    if (chunk === undefined) return;
    // loaded by an earlier attempt of this job, whose worker died (or whose store failed) after the commit: what was
    // to follow the commit is done now, or the run would wait for a finish job that no one sends; and the chunk is
    // not written again (with records that failed, it does not read as loaded: its load is recorded all the same, no
    // longer pending, and a later chunk may have written a newer version of one of its keys since)
    if (chunk.loaded[target] === true || (await this.#store.loadRecorded(run.id, seq, target)))
      return this.#afterLoad(state, seq, true);
    // sent by an earlier transform of the chunk, which a continued run is transforming again (or has): the new
    // transform's load jobs load it; this one leaves it, and its pending load, alone
    const { transformedAt } = job.data;
    if (transformedAt !== undefined && chunk.transformedAt !== transformedAt) return;
    // gone when another execution of this job (one pg-boss took for lost) loaded and released it meanwhile
    const staged = await stagedUnlessDone(
      await this.#store.readStaged(run.id, seq, "canonical"),
      async () => (await this.#store.chunkState(run.id, seq))?.loaded[target] === true,
      () => new FrancaError(ErrorCode.StoreError, `run ${run.id} chunk ${seq} has no canonical records`),
    );
    if (staged === undefined) return;
    const records = CanonicalChunk.staged(staged);
    if (!(await this.#awaitEarlierLoads(state, seq, target, records.keys))) {
      // still waiting: handed back to the queue for later, in one transaction, so that the slot goes to other jobs
      // (the earlier chunk's load among them, when every slot was taken by loads that wait for it)
      await this.#store.withTransaction(async (tx) => {
        await this.#boss.complete(queues.load, job.id, null, { db: tx } as never);
        await this.#boss.send(queues.load, job.data, {
          db: tx,
          singletonKey: jobKey(job.data),
          startAfter: loadOrderRetrySeconds,
        } as never);
      });
      return;
    }
    // a run executed before (resumed, or continued after its workers died): a later chunk may have loaded a newer
    // version of one of the chunk's keys (`writeChunk`'s `again`)
    const written = await writeChunk(ctx, this.#endpoint(state, target), seq, records, executedBefore(state.run));
    // Stopped meanwhile (this worker handing its jobs back, the run ended or taken over): nothing is recorded, the
    // job goes back to the queue (or is completed for a run that ended: #handle) and the chunk is written again by
    // whoever takes it, rather than its interrupted records ending the load (writeChunk records them for a run that
    // stops in one process, whose resume writes them again).
    if (ctx.signal.aborted) throw toFrancaError(ctx.signal.reason);
    // Recorded only while the chunk's transform is still this job's (checked again, its row locked until the commit):
    // a continued run may have reopened the chunk, or transformed it again, while this load wrote.
    const current = (tx: PostgresStore) =>
      transformedAt === undefined ? Promise.resolve(true) : tx.stillTransformedAt(run.id, seq, transformedAt);
    // The job is not completed in this transaction, but when it returns (pg-boss's own completion): a worker that dies
    // after the commit, or a store that fails in what follows it, leaves the job to be retried, and the retry, finding
    // the chunk loaded, does what follows (above). A stale job is completed with the commit: nothing follows it. A load
    // whose system failed records its failed records (with their reason) and stays pending: the job is thrown, for the
    // queue to retry with backoff.
    const recorded = await this.#store.withTransaction(async (tx) => {
      if (!(await current(tx))) {
        await this.#boss.complete(queues.load, job.id, null, { db: tx } as never);
        return false;
      }
      await tx.saveLoad(run.id, seq, target, written.result, Date.now());
      if (written.systemFailure === undefined) await tx.loadDone(run.id, seq, target);
      return true;
    });
    if (!recorded) return;
    if (written.systemFailure !== undefined) throw written.systemFailure;
    await this.#afterLoad(state, seq, written.result.problems.length > 0);
  }

  /**
   * What follows a load's commit: the failure budget charged when the load had problems (`problems`; a retry that
   * finds the chunk loaded cannot tell, and asks), the chunk's staged output released once every target has it
   * cleanly, and the run's finish job sent when nothing is left to do.
   */
  async #afterLoad(state: RunState, seq: number, problems: boolean): Promise<void> {
    const { run } = state;
    // the ledger now holds this load's problems, and those of every job committed before it, on any worker
    if (problems) {
      const stop = (await this.#ledgerBudget(state)?.())?.check();
      if (stop !== undefined) throw stop;
    }
    await this.#releaseIfClean(run.id, seq, run.targets);
    await this.#checkFinish(run.id, run.targets);
  }

  /**
   * When the flow's failure policy sets a limit: what gives a job that has problems to charge the run's failure budget
   * as the ledger has it now (`PostgresStore.budgetSpent`: the problems every worker's jobs committed so far). Counted
   * by each worker from its own jobs, a run on several workers went past its limit by up to as many times. A job does
   * not see the problems of jobs that commit while it runs. Read only by jobs with problems: the read sums the run's
   * chunks, and a job without problems cannot cross a limit.
   */
  #ledgerBudget(state: RunState): (() => Promise<FailureBudget>) | undefined {
    const { flow, run } = state;
    if (!hasLimit(flow.failure)) return undefined;
    return async () => new FailureBudget(flow.failure, await this.#store.budgetSpent(run.id));
  }

  /**
   * Waits while an earlier chunk of the run that may share a key with this one is still to be loaded into `target`
   * (load-order.ts): polled, at most `loadOrderWaitMs`. Returns whether the load may go on; false when it waited that
   * long in vain, and the job is to be handed back. A chunk whose load failed with a system failure stays pending
   * while its job is retried, so that a later version of its keys waits for it; one whose load job ended (loaded,
   * records quarantined or failed) does not.
   */
  async #awaitEarlierLoads(state: RunState, seq: number, target: string, keys: readonly string[]): Promise<boolean> {
    const mine = keyDigestSet(keys);
    if (mine.size === 0) return true;
    const deadline = Date.now() + loadOrderWaitMs;
    for (let pause = 10, said = false; ; pause = Math.min(100, pause * 2)) {
      const blocking = blockingLoad(mine, await this.#store.pendingLoadsBefore(state.run.id, target, seq));
      if (blocking === undefined) return true;
      const fields = { seq, target, after: blocking.seq };
      if (Date.now() >= deadline) {
        state.ctx.logger.info(fields, "load handed back: an earlier chunk that may share keys is not loaded yet");
        return false;
      }
      if (!said) {
        said = true;
        state.ctx.logger.debug(
          { ...fields, transformed: blocking.digests !== null },
          "load waits for an earlier chunk that may share keys",
        );
      }
      const { signal } = state.ctx;
      // stopped (the run ended, the worker hands its jobs back): the run's reason, as every other wait of a job
      await sleep(pause, undefined, { signal }).catch((error: unknown) => {
        throw signal.aborted ? signal.reason : error;
      });
    }
  }

  /**
   * After a load's commit: a chunk now loaded into every target with no problem has its staged output released, so
   * that a run's staging in the store does not grow with the run. Of two loads of a chunk committing at once, the later
   * one's check sees both; a release done twice is harmless.
   */
  async #releaseIfClean(id: number, seq: number, targets: readonly string[]): Promise<void> {
    await releaseQuietly(this.#log, id, seq, async () => {
      if (await this.#store.chunkLoadedClean(id, seq, targets)) await this.#store.releaseStaged(id, seq);
    });
  }

  /**
   * After a commit: when the run has nothing left to do, its finish job is sent. Two loads that end together may both
   * send one (pg-boss's standard queues keep both): the finish records the same end twice, or finds the run ended.
   */
  async #checkFinish(id: number, targets: readonly string[]): Promise<void> {
    if (!(await this.#store.runComplete(id, targets))) return;
    await this.#boss.send(queues.finish, { run: id }, { singletonKey: jobKey({ run: id }) } as never);
  }

  async #finish(job: Job<FinishJob>): Promise<void> {
    const state = await this.#runState(job.data.run, attemptOf(job));
    if (state === undefined) return;
    const { run, flow, ctx } = state;
    // Two loads that end together may each send a finish job: the first to take the lock finishes the run (a file
    // target is published once), holding it to its end; the other then finds the run ended. A plan of the run
    // continued holds it too, until what it reopened reads as open.
    await this.#store.withTransaction(async (tx) => {
      await tx.lockFinish(run.id);
      // not complete yet, or finished meanwhile by the holder of the lock: a later commit sends it again if need be
      if (!(await this.#store.runComplete(run.id, run.targets))) return;
      const fresh = (await this.#store.getRun(run.id)) as RunRecord;
      const chunks = await this.#store.chunkStates(run.id);
      const previous = await this.#store.getProfile(fresh.flow);
      const current = (fresh.stats.sourceProfile ?? {}) as Record<string, string>;
      const drift: DriftState = {
        current,
        ...(previous === undefined ? {} : { previous }),
        ...(fresh.stats.drift === undefined ? {} : { drift: fresh.stats.drift as NonNullable<DriftState["drift"]> }),
        ...(fresh.stats.acceptDrift === true ? { accepted: true } : {}),
      };
      await finishRecord(this.#options.env, flow, fresh, chunks, ctx, {
        logger: this.#log.child({ run: run.id }),
        owner: queueOwner,
        drift,
        // the extraction job wrote its profile at its end
        readToEnd: Object.keys(current).length > 0,
        // `fullExtraction`: as an earlier version's extraction job wrote it
        wholeSource:
          (fresh.stats.wholeSource === true || fresh.stats.fullExtraction === true) && Object.keys(current).length > 0,
      });
      this.#runs.delete(run.id);
    });
  }

  /**
   * Ends a run as failed (resumable), once: the cursor moves over its unbroken prefix of final chunks. Under the run's
   * finish lock, and only while it is running: a finish job that ended it meanwhile keeps its end. A store that fails
   * to record it is logged and thrown (this worker's jobs of the run stop all the same).
   */
  async #failRun(id: number, error: FrancaError): Promise<void> {
    await this.#endFailed(id, error).catch((failure: unknown) => {
      this.#log.warn({ run: id, err: toFrancaError(failure).message }, "could not record the end of the run");
      this.#stopRun(id, error);
      throw failure;
    });
  }

  /** #failRun, unless `unless` (asked under the lock) holds; whether it ended the run. A store's failure is thrown. */
  async #endFailed(id: number, error: FrancaError, unless?: (tx: PostgresStore) => Promise<boolean>): Promise<boolean> {
    let flowName: string | undefined;
    const ended = await this.#store.endRunning(id, queueOwner, Date.now(), unless, (run, chunks) => {
      flowName = run.flow;
      const flow = this.#options.hub.flows.get(run.flow);
      const cursor =
        run.kind === "flow" && flow?.from.cursor !== undefined ? advancedCursor(chunks, run.targets) : undefined;
      // a drift that stops the run (the policy 'fail') is on its record, as in-process: with the run's stats as read
      // under its finish lock, and what its earlier executions found (keptFinding)
      const details =
        error.code === ErrorCode.SourceDrift ? (error.details as { drift?: Drift; stopped?: Drift }) : undefined;
      const { drift: earlier, others } = splitDriftStats(run.stats);
      const execution = Number(run.stats.resumes ?? 0);
      return {
        status: "failed",
        error: runError(error),
        ...(cursor === undefined ? {} : { cursor }),
        ...(details?.drift === undefined
          ? {}
          : { stats: { ...others, ...comparedDriftStats(earlier, execution, details.drift, details.stopped) } }),
      };
    });
    if (ended) {
      this.#log.error(
        { run: id, flow: flowName, code: error.code, ...(error.system === undefined ? {} : { system: error.system }) },
        `run failed (resumable): ${error.message}`,
      );
      this.#stopRun(id, error);
    }
    return ended;
  }

  /** This worker's jobs of the run stop (`error`), and its context of the run goes. */
  #stopRun(id: number, error: FrancaError): void {
    this.#runs.get(id)?.control.abort(error);
    this.#runs.delete(id);
  }

  /**
   * Whether the work of a job given up on (queue `name`, its data) is no longer to do, or a live job of the same key
   * does it: when the run ended, when a plan of the run continued sent the job again, when another execution of it did
   * the work. Asked in `tx`, which holds the run's finish lock (a connection of the pool's, asked for while it is held,
   * could wait on transactions that wait for that lock). `deadLetter`: the id of the job given up on's dead letter,
   * which a plan of the run continued deletes (its work sent again) in a transaction that holds the same lock: a worker
   * that took the dead letter before, and waited for the lock, finds it gone.
   */
  async #notToDo(tx: PostgresStore, name: string, data: JobData, deadLetter: string): Promise<boolean> {
    if (!(await jobExists(tx, tx.schema, queues.dead, deadLetter))) return true;
    // endRunning read the run as running, or abandoned while no worker was alive (to be taken up again)
    const run = (await tx.getRun(data.run)) as RunRecord;
    const chunk = data.seq === undefined ? undefined : await tx.chunkState(run.id, data.seq);
    const transformedAt = chunk?.transformedAt;
    if (liveFor(await liveJobs(tx, tx.schema, run.id), name, data, transformedAt)) return true;
    if (data.seq === undefined) return name === queues.extract && run.extractDone;
    if (chunk === undefined) return true;
    // transformed, also with records that failed (its chunk then reads as not transformed, to be transformed again)
    if (data.target === undefined) return transformedAt !== undefined;
    // a load of an earlier transform of the chunk: the current transform's loads do the work
    const of = (data as LoadJob).transformedAt;
    if (of !== undefined && of !== transformedAt) return true;
    // loaded, or recorded with records that failed (not loaded then, but its work done all the same)
    return chunk.loaded[data.target] === true || (await tx.loadRecorded(run.id, data.seq, data.target));
  }

  /**
   * A job pg-boss gave up on, moved to the dead-letter queue: its attempts ran out without its handler ending them (each
   * attempt's worker died, or stopped beating its heartbeat). Its run cannot end without it, so it ends failed here
   * (resumable: a continued run sends the job again), rather than stay 'running' with nothing to do it.
   */
  async #dead(job: Job<JobData> & { sourceName?: string | null; sourceOutput?: unknown }): Promise<void> {
    const { run, seq, target } = job.data;
    const what = [job.sourceName ?? "a job", seq === undefined ? "" : `of chunk ${seq}`, target ?? ""]
      .filter((part) => part !== "")
      .join(" ");
    const last = lastAttemptMessage(job.sourceOutput);
    this.#log.error({ run, job: job.sourceName, data: job.data, last }, "job given up by the queue");
    // Asked under the run's finish lock: a plan of the run continued, which sends the job again, is not half done. A
    // store's failure is thrown, for pg-boss to retry this job.
    const ended = await this.#endFailed(run, new FrancaError(ErrorCode.JobGivenUp, givenUpMessage(what, last)), (tx) =>
      this.#notToDo(tx, job.sourceName ?? "", job.data, job.id),
    );
    if (ended) return;
    // Its work was done: by its last attempt, which died after its commit and before what follows it (the finish job
    // sent when nothing is left), or by a job of the same key still live. What follows is done here.
    const current = await this.#store.getRun(run);
    if (current === undefined || (await this.#store.runEnded(run))) {
      this.#log.info({ run, job: job.sourceName, data: job.data }, "job given up on not needed: its run has ended");
      return;
    }
    this.#log.info({ run, job: job.sourceName, data: job.data }, "job given up on not needed: its run has its work");
    if (seq !== undefined) await this.#releaseIfClean(run, seq, current.targets);
    if (current.status === "running") await this.#checkFinish(run, current.targets);
    // marked abandoned (no worker was alive): a finish job takes it up again, and ends it if nothing is left
    else await this.#boss.send(queues.finish, { run }, { singletonKey: jobKey({ run }) } as never);
  }
}

/**
 * The distributed executor's side of an Engine: the job queue, the PostgreSQL-held gates of every system, planning a
 * run's jobs, waiting for a run, and (in `franca worker`, `franca serve`, or while waiting when no worker is alive)
 * a worker in this process.
 */
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import type { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import type { Hub } from "../../core/hub.ts";
import type { Limits } from "../../core/system.ts";
import type { PostgresStore } from "../../store/postgres/store.ts";
import type { RunRecord } from "../../store/types.ts";
import type { RunProgress } from "../context.ts";
import { chunkDone } from "../cursor.ts";
import { type ConcurrencyGate, localConcurrencyGate, nestedGates, type RateGate } from "../gates.ts";
import type { RunEnvironment } from "../run.ts";
import { advisoryConcurrencyGate, LockSession, lockSpace, tableRateGate } from "./gates.ts";
import { dropDeadJobs, type JobData, jobKey, liveFor, liveJobs, mergeLive, queues, startQueue } from "./queue.ts";
import { DistributedWorker } from "./worker.ts";

export const workerInstanceName = "franca-worker";

export class Cluster {
  readonly boss: PgBoss;
  readonly #store: PostgresStore;
  readonly #gatePool: pg.Pool;
  readonly #locks: LockSession;
  readonly #logger: Logger;
  #worker: DistributedWorker | undefined;

  private constructor(boss: PgBoss, store: PostgresStore, url: string, logger: Logger) {
    this.boss = boss;
    this.#store = store;
    // the rate rows are booked with short statements; the caps' locks are held on one session of their own
    this.#gatePool = new pg.Pool({
      connectionString: url,
      application_name: "franca-gates",
      max: 2,
      allowExitOnIdle: true,
    });
    this.#gatePool.on("error", () => {});
    this.#locks = new LockSession(url);
    this.#logger = logger;
  }

  static async open(
    url: string,
    store: PostgresStore,
    logger: Logger,
    options: { worker?: boolean } = {},
  ): Promise<Cluster> {
    const boss = await startQueue(
      url,
      store.schema,
      options.worker === true ? { instanceName: workerInstanceName } : {},
    );
    return new Cluster(boss, store, url, logger);
  }

  /**
   * A system's gates, held across every process: its `concurrency` by advisory locks, its `rateLimit` by a row; and
   * `processConcurrency`, this process's own share, by a local gate in front.
   */
  gatesOf(system: string, limits: Limits): { concurrency?: ConcurrencyGate; rate?: RateGate } {
    const global =
      limits.concurrency === undefined
        ? undefined
        : advisoryConcurrencyGate(this.#locks, lockSpace(this.#store.schema, system), limits.concurrency);
    const local = limits.processConcurrency === undefined ? undefined : localConcurrencyGate(limits.processConcurrency);
    const concurrency = global !== undefined && local !== undefined ? nestedGates(local, global) : (global ?? local);
    const rate =
      limits.rateLimit === undefined
        ? undefined
        : tableRateGate(this.#gatePool, this.#store.schema, system, limits.rateLimit.requests, limits.rateLimit.perMs);
    return { ...(concurrency === undefined ? {} : { concurrency }), ...(rate === undefined ? {} : { rate }) };
  }

  /**
   * Enqueues what a run still has to do, from its chunk states: extraction (if not done), the transform of chunks not
   * transformed, the loads not done, or its finish; except what a job queued, retrying or running does already (a run
   * continued while jobs of its earlier execution are still live): planning twice queues nothing twice.
   *
   * The loads a job sent here will do are made pending first (`expectLoads`; their keys unknown, so later loads of
   * the target wait for them), and the chunks to transform again are reopened (`reopenChunks`: their earlier
   * transforms and loads void): a continued run whose chunks already have a load recorded must not read as complete
   * (`runComplete`) once the first of the jobs sent again is done.
   */
  async plan(run: RunRecord): Promise<void> {
    // One transaction, holding the run's finish lock: a finish job waits until what the plan reopens and makes pending
    // reads as open, and a plan cut short leaves nothing half done. The live jobs are read before the chunks, so that
    // a chunk a live job transforms meanwhile is seen live, not reopened; and again after them, so that the load jobs
    // of a transform that committed in between (the chunk reads as transformed) are seen live, not sent twice (two
    // loads of one chunk at once: the first one's end would let a later chunk write a key's newer version before the
    // second wrote its older one).
    await this.#store.withTransaction(async (tx) => {
      await tx.lockFinish(run.id);
      const live = await liveJobs(this.boss.getDb(), this.#store.schema, run.id);
      const chunks = await tx.chunkStates(run.id);
      mergeLive(live, await liveJobs(this.boss.getDb(), this.#store.schema, run.id));
      // jobs of the run given up on before: what they were to do is sent again below, and they must not end it failed
      // once it is continued (a worker reads the dead-letter queue under the run's finish lock, which this plan holds)
      await dropDeadJobs(tx, this.#store.schema, run.id);
      // `transformedAt`: the chunk's transform, for a load (a live load job of an earlier one does not count)
      const send = async (name: string, data: JobData, pending: readonly string[] = [], transformedAt?: number) => {
        if (liveFor(live, name, data, transformedAt)) return;
        if (data.seq !== undefined && pending.length > 0) await tx.expectLoads(run.id, data.seq, pending);
        await this.boss.send(name, data, { db: tx, singletonKey: jobKey(data) } as never);
      };
      if (!run.extractDone) await send(queues.extract, { run: run.id });
      // chunks transformed before with records that failed: their transform and loads are void from now on (the
      // transform would void them at its commit), so that the run does not read as complete on its loads of then
      await tx.reopenChunks(
        run.id,
        chunks
          .filter((chunk) => !chunk.transformed && !liveFor(live, queues.transform, { run: run.id, seq: chunk.seq }))
          .map((chunk) => chunk.seq),
      );
      for (const chunk of chunks) {
        if (!chunk.transformed) {
          await send(queues.transform, { run: run.id, seq: chunk.seq }, run.targets);
          continue;
        }
        for (const target of run.targets) {
          if (chunk.loaded[target] !== true)
            await send(queues.load, { run: run.id, seq: chunk.seq, target }, [target], chunk.transformedAt);
        }
      }
      if (run.extractDone && chunks.every((chunk) => chunkDone(chunk, run.targets)))
        await send(queues.finish, { run: run.id });
    });
  }

  /** True when a worker process (`franca worker`, `franca serve`) other than this one is alive, or this one works. */
  async workerAlive(includingThis = false): Promise<boolean> {
    if (includingThis && this.#worker !== undefined) return true;
    const instances = await this.boss.getInstances();
    return instances.some(
      (instance) => instance.live && instance.name === workerInstanceName && instance.pid !== process.pid,
    );
  }

  /** Starts working jobs in this process (idempotent). */
  async startWorker(
    hub: Hub,
    env: RunEnvironment & { store: PostgresStore },
    jobs?: number,
  ): Promise<DistributedWorker> {
    if (this.#worker === undefined) {
      this.#worker = new DistributedWorker({
        hub,
        env,
        boss: this.boss,
        logger: this.#logger,
        ...(jobs === undefined ? {} : { jobs }),
      });
      await this.#worker.start();
    }
    return this.#worker;
  }

  /** The worker in this process hands its jobs in flight back to the queue. */
  handBack(): void {
    this.#worker?.handBack();
  }

  async stopWorker(graceful = true): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.stop(graceful);
  }

  /** Waits until the run has ended, reporting its progress from the ledger every half second. */
  async waitFor(id: number, onProgress?: (progress: RunProgress) => void, signal?: AbortSignal): Promise<RunRecord> {
    for (;;) {
      const run = (await this.#store.getRun(id)) as RunRecord;
      if (onProgress !== undefined) {
        const counts = await this.#store.counts(id);
        onProgress({
          runId: id,
          flow: run.flow,
          startedAt: run.startedAt,
          chunks: counts.chunks,
          extracted: counts.extracted,
          transformed: counts.canonical + counts.quarantined + counts.failed,
          threaded: 0,
          quarantined: counts.quarantined,
          failed: counts.failed,
          extractDone: run.extractDone,
          targets: counts.targets,
          paused: {},
        });
      }
      if (run.status !== "running") return run;
      await sleep(500, undefined, signal === undefined ? {} : { signal });
    }
  }

  async close(): Promise<void> {
    await this.stopWorker(true);
    await this.boss.stop({ graceful: true, wait: true } as never);
    await this.#gatePool.end();
    await this.#locks.close();
  }
}

import type { Logger } from "pino";
import type { Health } from "../connectors/types.ts";
import { changedShapeError, entityShape } from "../core/entity-shape.ts";
import { configError, ErrorCode, FrancaError } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import { type ConfigIssue, configIssuesError, type Hub } from "../core/hub.ts";
import type { Lookup } from "../core/lookup.ts";
import { silentLogger } from "../observe/logger.ts";
import { type LookupCacheStore, MemoryLookupCache, redisLookupCache, storeLookupCache } from "../store/lookup-cache.ts";
import { openStore } from "../store/open.ts";
import type { PostgresStore } from "../store/postgres/store.ts";
import type { RunRecord, Store } from "../store/types.ts";
import { ConnectionPool } from "./connections.ts";
import type { SystemPause } from "./context.ts";
import type { Cluster } from "./distributed/cluster.ts";
import { queueOwner } from "./distributed/owner.ts";
import { isOwnerDead, processOwner } from "./owner.ts";
import { SystemPolicy } from "./policy.ts";
import { columnIssues, preflight, systemIssues } from "./preflight.ts";
import { prepareReplay, type ReplayPlan, type ReplaySelection, replayableOutcomes } from "./replay.ts";
import { executeRun, exitCodeOf, type RunOptions, type RunSummary } from "./run.ts";
import { TransformThreads } from "./threads/pool.ts";

export interface EngineOptions {
  hub: Hub;
  /** Directory of the configuration: relative paths (store, SQLite files, CSV files) resolve from here. */
  baseDir: string;
  /** An open store; default: the one the hub names (SQLite `.franca/franca.db`). */
  store?: Store;
  /** Where the engine logs (default: nowhere); every line it writes carries the hub's name (`hub`). */
  logger?: Logger;
  /**
   * `local` (default): runs execute in this process. `distributed`: each chunk-stage is a job on the PostgreSQL store's
   * queue, worked by any number of worker processes (`franca worker`); needs a `postgres://` store.
   */
  executor?: "local" | "distributed";
  /** This process is a worker (`franca worker`, `franca serve`): others see it alive and leave the jobs to it. */
  workerProcess?: boolean;
  /**
   * Transform threads (in-process executor): `module` is the module whose default export is this hub (the
   * configuration file), which each thread imports; `count` how many (default: the machine's cores less one, at
   * least 1, at most 4; 0: none). Chunks a source reads as its own text (PostgreSQL COPY) are then decoded, mapped,
   * validated, hashed and encoded for database targets on those threads, and a run uses every core. The `franca`
   * command passes its configuration file; without `threads`, every chunk is transformed on the engine's thread.
   */
  threads?: { module: string; count?: number };
}

export interface StartOptions extends RunOptions {
  /** What started the run: `cli`, `schedule`, `api`, `test`. */
  trigger?: string;
  /** Start a new run even when the flow's last run did not finish (that run stays as it is, superseded). */
  fresh?: boolean;
  /**
   * Read the source whole (an incremental one from its start) and send every record to the targets, even those whose
   * content and mapping are the ones last loaded there (a target restored from a backup, emptied, or changed by hand).
   * Starts a new run (as `fresh`); the run's stats say `resend: true`, and a resumed run goes on resending.
   */
  resend?: boolean;
  /**
   * Go on when the source's fields changed under a flow whose drift policy is `fail`: the change is logged and recorded
   * as under `warn`, and the fields as this run sees them give the flow its profile at its end (finishRecord). For this
   * start or continuation of the run: continued again without it, the run accepts nothing.
   */
  acceptDrift?: boolean;
}

export interface SystemHealth extends Health {
  system: string;
  type: string;
  owner?: string;
}

/**
 * The in-process executor and the library entry point: opens the store, holds one connection and one policy per
 * system for all the flows it runs, and starts, resumes and records runs.
 */
export class Engine {
  readonly hub: Hub;
  readonly store: Store;
  readonly logger: Logger;
  readonly baseDir: string;
  readonly owner = processOwner();
  readonly #connections: ConnectionPool;
  readonly #policies = new Map<string, SystemPolicy>();
  readonly #ownsStore: boolean;
  readonly #lookupCache: LookupCacheStore;
  readonly #sharedLookupCache = new MemoryLookupCache();
  readonly #paused = new Map<string, SystemPause>();
  readonly #cluster: Cluster | undefined;
  readonly #threads: TransformThreads | undefined;

  private constructor(
    options: EngineOptions,
    store: Store,
    ownsStore: boolean,
    lookupCache: LookupCacheStore,
    cluster: Cluster | undefined,
  ) {
    this.#cluster = cluster;
    this.hub = options.hub;
    this.baseDir = options.baseDir;
    this.store = store;
    this.#ownsStore = ownsStore;
    this.#lookupCache = lookupCache;
    this.logger = options.logger ?? silentLogger();
    this.#connections = new ConnectionPool({ baseDir: options.baseDir });
    const threads = options.threads;
    this.#threads =
      threads === undefined || threads.count === 0 || cluster !== undefined
        ? undefined
        : new TransformThreads({
            module: threads.module,
            ...(threads.count === undefined ? {} : { count: threads.count }),
            logger: this.logger,
            lookups: this.hub.lookups as ReadonlyMap<string, Lookup<unknown, unknown>>,
          });
  }

  /** The transform threads, started (undefined without them): resolves whether they can be used. */
  async threadsReady(): Promise<boolean> {
    return (await this.#threads?.ready()) ?? false;
  }

  static async open(given: EngineOptions): Promise<Engine> {
    // the engine's logger, and its cluster's: every line carries the hub's name
    const options = { ...given, logger: (given.logger ?? silentLogger()).child({ hub: given.hub.name }) };
    const store = options.store ?? (await openStore(options.hub.store, options.baseDir));
    try {
      let cluster: Cluster | undefined;
      if (options.executor === "distributed") {
        const url = options.hub.store;
        if (store.kind !== "postgres" || url === undefined || !/^postgres(ql)?:\/\//.test(url)) {
          throw configError(
            ErrorCode.ConfigInvalid,
            "store",
            "the distributed executor needs the hub's store to be a postgres:// URL",
          );
        }
        // loaded only here: pg-boss and the gates' pool are not for hubs that run in one process
        const { Cluster } = await import("./distributed/cluster.ts");
        cluster = await Cluster.open(url, store as PostgresStore, options.logger, {
          worker: options.workerProcess === true,
        });
      }
      const cache =
        options.hub.cache === undefined ? storeLookupCache(store) : await redisLookupCache(options.hub.cache);
      return new Engine(options, store, options.store === undefined, cache, cluster);
    } catch (error) {
      if (options.store === undefined) await store.close();
      throw error;
    }
  }

  get distributed(): boolean {
    return this.#cluster !== undefined;
  }

  /** Who owns the runs this engine starts: this process, or the queue (distributed: every worker shares them). */
  get #runOwner(): string {
    return this.#cluster === undefined ? this.owner : queueOwner;
  }

  policyOf(systemName: string): SystemPolicy {
    let policy = this.#policies.get(systemName);
    if (policy === undefined) {
      const system = this.hub.systems.get(systemName);
      if (system === undefined)
        throw new FrancaError(ErrorCode.ConfigUnknownReference, `unknown system '${systemName}'`);
      const log = this.logger.child({ system: systemName });
      policy = new SystemPolicy(systemName, system.limits, {
        ...(this.#cluster === undefined ? {} : this.#cluster.gatesOf(systemName, system.limits)),
        events: {
          onRetry: (error, attempt, delayMs) =>
            log.info({ code: error.code, attempt, delayMs: Math.round(delayMs), err: error.message }, "retrying call"),
          onPause: (_, until, reason) => {
            const held = this.#paused.get(systemName);
            if (held?.reason !== reason || held.until < Date.now())
              log.warn(
                { until: new Date(until).toISOString(), reason },
                reason === "breaker"
                  ? "circuit open: pausing calls to the system"
                  : "rate limited (429): holding every call to the system back",
              );
            this.#paused.set(systemName, { until, reason });
          },
          onResume: () => {
            if (this.#paused.delete(systemName)) log.info("calls to the system resumed");
          },
        },
      });
      this.#policies.set(systemName, policy);
    }
    return policy;
  }

  flow(name: string): Flow {
    const flow = this.hub.flows.get(name);
    if (flow === undefined) {
      const known = [...this.hub.flows.keys()].join(", ") || "none";
      throw new FrancaError(ErrorCode.Usage, `unknown flow '${name}' (flows: ${known})`);
    }
    return flow;
  }

  /** Local checks of every system a flow uses (files exist, URLs parse): a problem stops it before anything is written. */
  preflight(flow: Flow): void {
    preflight(flow, this.baseDir);
  }

  /**
   * Each flow's bindings against their systems (`columnIssues`): tables that cannot be read, key and cursor columns
   * they do not have. Only flows whose systems are all in `systems` (those that answer) are looked at.
   */
  async bindingIssues(systems: ReadonlySet<string>): Promise<ConfigIssue[]> {
    const flows = [...this.hub.flows.values()].filter((flow) =>
      [flow.from, ...flow.to].every((binding) => systems.has(binding.system.name)),
    );
    const found = await Promise.all(
      flows.map((flow) => columnIssues(flow, (system) => this.#connections.get(system), "report")),
    );
    return found.flat();
  }

  /**
   * A run's start: the tables it uses have the key and cursor columns its bindings name (`columnIssues`): the source
   * unless it only loads (a replay), and its targets (a resumed run's, those it started with).
   */
  async #checkColumns(flow: Flow, scope?: { source: boolean; targets?: readonly string[] }): Promise<void> {
    const issues = await columnIssues(flow, (system) => this.#connections.get(system), "skip", scope);
    if (issues.length > 0) throw configIssuesError(issues);
  }

  /** Local checks of every system of the hub, by system name (those with none left out). */
  systemIssues(): Map<string, ConfigIssue[]> {
    const found = new Map<string, ConfigIssue[]>();
    for (const system of this.hub.systems.values()) {
      const issues = systemIssues(system, this.baseDir);
      if (issues.length > 0) found.set(system.name, issues);
    }
    return found;
  }

  #environment() {
    return {
      store: this.store,
      logger: this.logger,
      owner: this.#runOwner,
      connections: this.#connections,
      policyOf: (name: string) => this.policyOf(name),
      lookupsByName: this.hub.lookups,
      systemsByName: this.hub.systems,
      heartbeatMs: this.hub.heartbeatMs,
      lookupCache: this.#lookupCache,
      sharedLookupCache: this.#sharedLookupCache,
      pausedSystems: () => this.#paused,
      ...(this.#threads === undefined ? {} : { threads: this.#threads }),
    };
  }

  /** Marks runs whose process died as failed (resumable), so that none stays 'running' without a live owner. */
  async reapAbandoned(): Promise<number[]> {
    const running = await this.store.listRuns({ status: "running", limit: 1000 });
    const dead = running
      .map((run) => run.owner)
      .filter((owner): owner is string => owner !== undefined && isOwnerDead(owner));
    // distributed: the queue owns its runs, and they are alive while a worker is (a chunk held by a worker that died
    // goes back to the queue by itself); with no worker alive they are marked abandoned, and the first worker to start
    // takes them up again
    const live = this.#cluster !== undefined && (await this.#cluster.workerAlive(true)) ? [queueOwner] : [];
    const now = Date.now();
    const reaped = await this.store.reapAbandoned(now - this.hub.staleAfterMs, dead, now, live);
    for (const id of reaped)
      this.logger.warn({ run: id }, "run abandoned by a process that died; marked failed, resumable");
    return reaped;
  }

  /**
   * Runs a flow. When the flow's last run did not finish (failed, cancelled, or its process died), that run is
   * continued from its last persisted chunk instead, unless `fresh` is set.
   */
  async run(flowName: string, options: StartOptions = {}): Promise<RunSummary> {
    const flow = this.flow(flowName);
    this.preflight(flow);
    await this.#checkColumns(flow);
    await this.reapAbandoned();
    const unfinished = await this.#unfinished(flow, options);
    if (unfinished !== undefined) return this.#resume(flow, unfinished, options);
    const run = await this.#startRun(flow, options.trigger, options.resend === true);
    return this.#execute(flow, await this.#accepting(run, options.acceptDrift), options);
  }

  /**
   * The run, told to accept a change of its source's fields when `acceptDrift` (in its stats, saved at once, for its
   * executions and the distributed executor's workers to read). An acceptance holds for the start or continuation that
   * gives it: continued without it, the run accepts nothing (a change met since was not seen by anyone).
   */
  async #accepting(run: RunRecord, acceptDrift: boolean | undefined): Promise<RunRecord> {
    const accepts = acceptDrift === true;
    if (accepts === (run.stats.acceptDrift === true)) return run;
    const { acceptDrift: _earlier, ...others } = run.stats;
    const stats = accepts ? { ...others, acceptDrift: true } : others;
    await this.store.updateStats(run.id, stats);
    return { ...run, stats };
  }

  /** The flow's unfinished run (failed or cancelled), which a start continues, unless `fresh` or `resend`. */
  async #unfinished(flow: Flow, options: { fresh?: boolean; resend?: boolean }): Promise<RunRecord | undefined> {
    if (options.fresh === true || options.resend === true) return undefined;
    const unfinished = await this.store.latestUnfinished(flow.name);
    if (unfinished !== undefined)
      this.logger.info({ run: unfinished.id, flow: flow.name }, "continuing the flow's unfinished run");
    return unfinished;
  }

  /**
   * Records a new run of a flow. Only an incremental source (its binding names a `cursor`) starts where the last run
   * ended, unless the run resends; any other is read whole every run, and what did not change is skipped by content
   * hash at load.
   */
  async #startRun(flow: Flow, trigger = "api", resend = false): Promise<RunRecord> {
    // a run that resends reads the source whole: what it sends again is what it reads
    const previousEnd = flow.from.cursor === undefined || resend ? undefined : await this.store.getCursor(flow.name);
    const source = this.#connections.get(flow.from.system);
    const cursorFrom =
      previousEnd === undefined || source.nextRunFrom === undefined ? previousEnd : source.nextRunFrom(previousEnd);
    return this.store.startRun({
      flow: flow.name,
      kind: "flow",
      trigger,
      targets: flow.to.map((target) => target.name),
      owner: this.#runOwner,
      now: Date.now(),
      ...(cursorFrom === undefined ? {} : { cursorFrom }),
      stats: { entity: entityShape(flow.entity), ...(resend ? { resend: true } : {}) },
    });
  }

  /**
   * Takes an unfinished run up to continue it in this process; not one whose records were staged under a shape of the
   * flow's entity that today's breaks (changedShapeError).
   */
  #claim(flow: Flow, run: RunRecord): Promise<RunRecord> {
    const changed = changedShapeError(
      run,
      flow.entity,
      `its staged records would be loaded unchecked. Start a fresh run instead: 'franca run ${flow.name} --fresh' (the flow's cursor has not moved past what run ${run.id} left unloaded)`,
    );
    if (changed !== undefined) throw changed;
    return this.store.claimRun(run.id, this.#runOwner, Date.now());
  }

  /** Continues a failed, cancelled or abandoned run from its last persisted chunk. */
  async resume(runId: number, options: RunOptions & Pick<StartOptions, "acceptDrift"> = {}): Promise<RunSummary> {
    await this.reapAbandoned();
    const run = await this.store.getRun(runId);
    if (run === undefined) throw new FrancaError(ErrorCode.RunNotFound, `run ${runId} does not exist`);
    const flow = this.hub.flows.get(run.flow);
    if (flow === undefined) {
      throw configError(
        ErrorCode.ConfigUnknownReference,
        `flows.${run.flow}`,
        `run ${runId} belongs to flow '${run.flow}', which is no longer configured`,
      );
    }
    this.preflight(flow);
    await this.#checkColumns(flow, { source: !run.extractDone, targets: run.targets });
    return this.#resume(flow, run, options);
  }

  /**
   * Runs again only the records of run `runId` that were quarantined or failed (or the keys given), from their
   * persisted stage, as a new run linked to it: after a fix in a mapping, a target or the data, exactly those records
   * go through again. The flow's cursor does not move.
   */
  async replay(
    runId: number,
    options: ReplaySelection & RunOptions & { trigger?: string } = {},
  ): Promise<RunSummary & { plan: ReplayPlan }> {
    await this.reapAbandoned();
    const parent = await this.store.getRun(runId);
    if (parent === undefined) throw new FrancaError(ErrorCode.RunNotFound, `run ${runId} does not exist`);
    if (parent.status === "running") {
      throw new FrancaError(ErrorCode.RunLocked, `run ${runId} is still running; replay it once it has ended`);
    }
    const flow = this.hub.flows.get(parent.flow);
    if (flow === undefined) {
      throw configError(
        ErrorCode.ConfigUnknownReference,
        `flows.${parent.flow}`,
        `run ${runId} belongs to flow '${parent.flow}', which is no longer configured`,
      );
    }
    this.preflight(flow);
    await this.#checkColumns(flow, { source: false, targets: parent.targets });
    const targets = parent.targets.filter((target) => flow.to.some((binding) => binding.name === target));
    const outcomes = await replayableOutcomes(this.store, parent, options, targets);
    // records refused by a target are loaded again from their staged canonical records, which must still fit the
    // entity (records that failed before load are transformed again, with today's mapping and schema)
    const reloads = outcomes.some((outcome) => outcome.target !== null && outcome.target !== "");
    const changed = reloads
      ? changedShapeError(
          parent,
          flow.entity,
          `the records its targets refused would be loaded again unchecked. Send them again from the source instead: 'franca run ${flow.name} --fresh --resend'`,
        )
      : undefined;
    if (changed !== undefined) throw changed;
    const replay = await this.store.startRun({
      flow: flow.name,
      kind: "replay",
      trigger: options.trigger ?? "api",
      targets,
      owner: this.#runOwner,
      now: Date.now(),
      parentId: parent.id,
      // a replay of a run that resent resends too: its records' older hashes describe a target it did not trust
      stats: { entity: entityShape(flow.entity), ...(parent.stats.resend === true ? { resend: true } : {}) },
    });
    let plan: ReplayPlan;
    try {
      plan = await prepareReplay(this.store, flow, parent, replay, outcomes, this.#cluster !== undefined);
    } catch (error) {
      const failure = error instanceof FrancaError ? error : new FrancaError(ErrorCode.Internal, String(error));
      await this.store.finishRun(
        replay.id,
        this.#runOwner,
        { status: "failed", error: { code: failure.code, message: failure.message } },
        Date.now(),
      );
      throw failure;
    }
    const prepared = (await this.store.getRun(replay.id)) as RunRecord;
    const summary = await this.#execute(flow, { ...prepared, stats: { ...prepared.stats, replay: plan } }, options);
    return { ...summary, plan };
  }

  async #resume(
    flow: Flow,
    run: RunRecord,
    options: RunOptions & Pick<StartOptions, "acceptDrift">,
  ): Promise<RunSummary> {
    const claimed = await this.#claim(flow, run);
    return this.#execute(flow, await this.#accepting(claimed, options.acceptDrift), options);
  }

  /**
   * Executes a run: in this process, or (distributed) by planning its jobs and waiting for the workers, working in
   * this process too when no worker is alive. A cancel while waiting ends the run 'cancelled': the workers' jobs of
   * it then find it ended and stop.
   */
  async #execute(flow: Flow, run: RunRecord, options: RunOptions): Promise<RunSummary> {
    const cluster = this.#cluster;
    if (cluster === undefined) return executeRun(this.#environment(), flow, run, options);
    if (Object.keys(run.stats).length > 0) await this.store.updateStats(run.id, run.stats);
    await cluster.plan(run);
    if (!(await cluster.workerAlive())) await cluster.startWorker(this.hub, this.#distributedEnvironment());
    let ended: RunRecord;
    try {
      ended = await cluster.waitFor(run.id, options.onProgress, options.signal);
    } catch (error) {
      if (options.signal?.aborted !== true) throw error;
      // unless a finish job ended it meanwhile (its end stands)
      await (this.store as PostgresStore).endRunning(run.id, queueOwner, Date.now(), undefined, () => ({
        status: "cancelled",
        error: { code: ErrorCode.RunCancelled, message: "the run was cancelled" },
      }));
      ended = (await this.store.getRun(run.id)) as RunRecord;
    }
    const counts = await this.store.counts(run.id);
    return { run: ended, counts, exitCode: exitCodeOf(ended.status) };
  }

  #distributedEnvironment() {
    return { ...this.#environment(), store: this.store as PostgresStore };
  }

  /**
   * Distributed: queues the flow's run for the workers, without waiting. As `run` does, it continues the flow's
   * unfinished run (failed or cancelled) unless `fresh` or `resend`, else it creates a new one.
   */
  async enqueue(
    flowName: string,
    options: Pick<StartOptions, "trigger" | "resend" | "fresh" | "acceptDrift"> = {},
  ): Promise<RunRecord> {
    const cluster = this.#cluster;
    if (cluster === undefined)
      throw new FrancaError(ErrorCode.Usage, "enqueue needs the distributed executor (a postgres:// store)");
    const flow = this.flow(flowName);
    this.preflight(flow);
    await this.#checkColumns(flow);
    await this.reapAbandoned();
    const unfinished = await this.#unfinished(flow, options);
    const run = await this.#accepting(
      unfinished === undefined
        ? await this.#startRun(flow, options.trigger, options.resend === true)
        : await this.#claim(flow, unfinished),
      options.acceptDrift,
    );
    await cluster.plan(run);
    return run;
  }

  /**
   * Distributed: works jobs in this process until `signal` aborts, then stops taking jobs and finishes the ones in
   * flight (graceful), or hands them back at once (`graceful: false`).
   */
  async work(options: {
    signal: AbortSignal;
    jobs?: number;
    graceful?: () => boolean;
    /** Aborted: the jobs in flight are handed back to the queue at once (a second SIGTERM). */
    handBack?: AbortSignal;
  }): Promise<void> {
    const cluster = this.#cluster;
    if (cluster === undefined)
      throw new FrancaError(ErrorCode.Usage, "a worker needs the distributed executor (a postgres:// store)");
    await cluster.startWorker(this.hub, this.#distributedEnvironment(), options.jobs);
    options.handBack?.addEventListener("abort", () => cluster.handBack(), { once: true });
    if (!options.signal.aborted)
      await new Promise<void>((resolve) => options.signal.addEventListener("abort", () => resolve(), { once: true }));
    await cluster.stopWorker(options.graceful?.() ?? true);
  }

  /** Health of every system (or those named): one call each, with the latency. */
  async health(names?: readonly string[]): Promise<SystemHealth[]> {
    const systems = [...this.hub.systems.values()].filter(
      (system) => names === undefined || names.includes(system.name),
    );
    return Promise.all(
      systems.map(async (system) => {
        const base = {
          system: system.name,
          type: system.type,
          ...(system.owner === undefined ? {} : { owner: system.owner }),
        };
        try {
          const health = await this.#connections
            .get(system)
            .health(AbortSignal.timeout(system.limits.timeoutMs ?? 10_000));
          return { ...base, ...health };
        } catch (error) {
          return { ...base, ok: false, latencyMs: 0, message: (error as Error).message };
        }
      }),
    );
  }

  /** Distributed: whether a `franca worker` (or a `serve`) is alive to take queued runs; false in one process. */
  async workerAlive(): Promise<boolean> {
    return (await this.#cluster?.workerAlive()) === true;
  }

  /** Closes the engine when the block that holds it ends: `await using franca = await Engine.open(…)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    await this.#threads?.close();
    await this.#cluster?.close();
    await this.#connections.closeAll();
    await this.#lookupCache.close();
    if (this.#ownsStore) await this.store.close();
  }
}

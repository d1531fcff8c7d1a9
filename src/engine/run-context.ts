import type { Logger } from "pino";
import type { MapContext } from "../core/binding.ts";
import { compileEntity } from "../core/compiled-entity.ts";
import { ErrorCode, FrancaError, toFrancaError } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import type { Lookup } from "../core/lookup.ts";
import type { RunCounts, RunRecord } from "../store/types.ts";
import type { Endpoint, RunContext, RunProgress } from "./context.ts";
import { FailureBudget } from "./failure-budget.ts";
import { LookupRuntime, undeclaredLookup } from "./lookups.ts";
import type { RunEnvironment } from "./run.ts";

export interface RunContextOptions {
  /** Aborted when the run must stop. */
  signal: AbortSignal;
  fail(error: FrancaError): void;
  logger: Logger;
  onProgress?: (progress: RunProgress) => void;
  /**
   * What the run has spent of its failure budget already (`spentOf` its chunks); none when left out (the distributed
   * worker, whose jobs charge their problems onto the ledger's count instead: `PostgresStore.budgetSpent`).
   */
  spent?: { processed: number; problems: number };
}

/**
 * The run was executed before (resumed, or continued after its process died): chunks of an earlier execution may be
 * done again (a transform that stopped before staging, a load of an older version of a key a later chunk loaded).
 */
export function executedBefore(run: RunRecord): boolean {
  return Number(run.stats.resumes ?? 0) > 0;
}

/**
 * What the stages of a run share: the source and targets with their connections and policies, the compiled entity,
 * the run's lookups and failure budget (counted from the ledger so far), its progress. Built once per run by the
 * in-process executor; by the distributed one once per run in each worker process, and kept there while the run has
 * jobs in it (`DistributedWorker`), so that its lookups' cache and its failure budget serve them all.
 */
export function createRunContext(
  env: RunEnvironment,
  flow: Flow,
  run: RunRecord,
  already: RunCounts,
  options: RunContextOptions,
): RunContext & { lookups: LookupRuntime; progress: RunProgress } {
  const { logger } = options;
  const targets: Endpoint[] = run.targets.map((name) => {
    const binding = flow.to.find((item) => item.name === name);
    if (binding === undefined) {
      throw new FrancaError(
        ErrorCode.ConfigInvalid,
        `run ${run.id} loads target '${name}', which is no longer in flow '${flow.name}'`,
        {
          setting: `flows.${flow.name}.to`,
        },
      );
    }
    return { binding, connection: env.connections.get(binding.system), policy: env.policyOf(binding.system.name) };
  });
  const source: Endpoint = {
    binding: flow.from,
    connection: env.connections.get(flow.from.system),
    policy: env.policyOf(flow.from.system.name),
  };

  const progress: RunProgress = {
    runId: run.id,
    flow: flow.name,
    startedAt: run.startedAt,
    chunks: already.chunks,
    extracted: already.extracted,
    transformed: already.canonical + already.quarantined + already.failed,
    threaded: 0,
    quarantined: already.quarantined,
    failed: already.failed,
    extractDone: run.extractDone,
    targets: Object.fromEntries(
      run.targets.map((name) => [
        name,
        { ...(already.targets[name] ?? { loaded: 0, unchanged: 0, quarantined: 0, failed: 0 }) },
      ]),
    ),
    paused: {},
  };

  const lookups = new LookupRuntime({
    policyOf: env.policyOf,
    clientOf: (name) => {
      const system = env.systemsByName.get(name);
      return system === undefined ? undefined : env.connections.get(system).client?.();
    },
    signal: options.signal,
    ...(env.lookupCache === undefined ? {} : { persistent: env.lookupCache }),
    ...(env.sharedLookupCache === undefined ? {} : { shared: env.sharedLookupCache }),
    onCacheError: (lookup, error) =>
      logger.warn({ lookup, err: toFrancaError(error).message }, "lookup cache unavailable; asking the system instead"),
  });
  const mapContexts = new Map<string, MapContext>();
  let lastNotify = 0;
  const ctx: RunContext = {
    run,
    flow,
    store: env.store,
    logger,
    signal: options.signal,
    compiled: compileEntity(flow.entity),
    source,
    targets,
    // the flow's systems, and every system a lookup of the hub calls (a mapping may call any of them)
    policiesAtStart: new Map(
      [
        ...[source, ...targets].map((endpoint) => endpoint.binding.system.name),
        ...[...env.lookupsByName.values()].map((item) => item.system.name),
      ].map((name) => [name, { ...env.policyOf(name).stats }]),
    ),
    lookups,
    budget: new FailureBudget(flow.failure, options.spent),
    progress,
    warnings: new Set(),
    mapContext(binding) {
      let context = mapContexts.get(binding);
      if (context === undefined) {
        context = {
          run: { id: run.id, flow: flow.name },
          binding,
          lookup: <K, V>(item: Lookup<K, V>, key: K): Promise<V> => {
            const undeclared = undeclaredLookup(env.lookupsByName, item);
            return undeclared === undefined ? lookups.call(item, key) : Promise.reject(undeclared);
          },
        };
        mapContexts.set(binding, context);
      }
      return context;
    },
    fail: options.fail,
    notify() {
      const now = Date.now();
      if (options.onProgress !== undefined && now - lastNotify >= 100) {
        lastNotify = now;
        progress.paused = Object.fromEntries(env.pausedSystems?.() ?? []);
        options.onProgress(progress);
      }
    },
  };

  return ctx;
}

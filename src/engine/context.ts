import type { Logger } from "pino";
import type { Connection } from "../connectors/types.ts";
import type { Binding, MapContext } from "../core/binding.ts";
import type { CompiledEntity } from "../core/compiled-entity.ts";
import type { FrancaError } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import type { RunRecord, Store } from "../store/types.ts";
import type { FailureBudget } from "./failure-budget.ts";
import type { LookupRuntime } from "./lookups.ts";
import type { PolicyStats, SystemPolicy } from "./policy.ts";

export interface Endpoint {
  binding: Binding;
  connection: Connection;
  policy: SystemPolicy;
}

export interface TargetProgress {
  loaded: number;
  unchanged: number;
  quarantined: number;
  failed: number;
}

/** Live figures of a run, updated as chunks are persisted; the ledger holds the durable ones. */
export interface RunProgress {
  runId: number;
  flow: string;
  startedAt: number;
  chunks: number;
  extracted: number;
  transformed: number;
  /** Of the records transformed by this process, those mapped on its transform threads. */
  threaded: number;
  quarantined: number;
  failed: number;
  extractDone: boolean;
  targets: Record<string, TargetProgress>;
  /** Systems whose calls are held back right now, until when and why. */
  paused: Record<string, SystemPause>;
}

/** Calls to a system held back until `until` (epoch ms): its circuit is open (next probe), or it answered 429. */
export interface SystemPause {
  until: number;
  reason: "breaker" | "rate-limited";
}

/** Everything the stages of one run share. */
export interface RunContext {
  readonly run: RunRecord;
  readonly flow: Flow;
  readonly store: Store;
  readonly logger: Logger;
  /** Aborted when the run must stop (failure policy, fatal error, cancel, lost ownership). */
  readonly signal: AbortSignal;
  readonly compiled: CompiledEntity;
  readonly source: Endpoint;
  readonly targets: readonly Endpoint[];
  /** Each system's policy figures when this context was made (by system name): the run's are counted from them. */
  readonly policiesAtStart: ReadonlyMap<string, PolicyStats>;
  readonly lookups: LookupRuntime;
  readonly budget: FailureBudget;
  readonly progress: RunProgress;
  /**
   * What the run's operator should know and fix, though it stopped nothing (a connector's `ReadRequest.warn`: a keyset
   * read without an index, say): each logged once, and kept in the run's stats by the in-process executor.
   */
  readonly warnings: Set<string>;
  mapContext(binding: string): MapContext;
  /** Stops the run with this error (the first one wins). */
  fail(error: FrancaError): void;
  /** Tells observers that progress changed. */
  notify(): void;
}

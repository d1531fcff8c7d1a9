import type { Binding } from "./binding.ts";
import type { Entity } from "./entity.ts";
import { keepUnknownSettings } from "./unknown-settings.ts";

/** When a run stops because too many records could not go on. Counted as quarantined + failed records. */
export interface FailurePolicy {
  /** Stop as soon as more than this many records are quarantined or failed. */
  maxFailed?: number;
  /** Stop as soon as the share of quarantined or failed records exceeds this (0..1)… */
  maxFailedRatio?: number;
  /** …once at least this many records have been processed (so that the first bad record is not 100 %). */
  minRecordsForRatio?: number;
}

/** What to do when the source's fields change: new, missing or retyped fields. */
export type DriftPolicy = "warn" | "fail" | "ignore";

export interface FlowSpec<E extends Entity> {
  from: Binding<E>;
  /** One or more targets. Adding a target never touches the source side. */
  to: Binding<E> | readonly Binding<E>[];
  /** Cron expression (croner syntax, seconds optional) for `franca serve`. */
  schedule?: string;
  /** Records per chunk: the unit of staging, retry and parallel work. Default 1,000. */
  chunkSize?: number;
  /** Chunks loaded at once per target (each still bounded by its system's concurrency). Default 4. */
  loadConcurrency?: number;
  /**
   * Chunks mapped at once. Default 2. Raise it when the mapping awaits lookups: one chunk's lookups then overlap
   * another's, up to the lookup systems' own concurrency.
   */
  transformConcurrency?: number;
  failure?: FailurePolicy;
  drift?: DriftPolicy;
  /** Warn (and notify) when a run takes longer than this. */
  deadlineMs?: number;
  description?: string;
}

export interface Flow<E extends Entity = Entity> {
  readonly kind: "flow";
  readonly name: string;
  readonly entity: E;
  readonly from: Binding<E>;
  readonly to: readonly Binding<E>[];
  readonly schedule?: string;
  readonly chunkSize: number;
  readonly loadConcurrency: number;
  readonly transformConcurrency: number;
  readonly failure: Readonly<FailurePolicy>;
  readonly drift: DriftPolicy;
  readonly deadlineMs?: number;
  readonly description?: string;
}

export const defaultChunkSize = 1000;

/** The settings `flow()` knows; the names of any others are kept for defineHub to report (unknown-settings.ts). */
export const flowSpecNames: ReadonlySet<string> = new Set([
  "from",
  "to",
  "schedule",
  "chunkSize",
  "loadConcurrency",
  "transformConcurrency",
  "failure",
  "drift",
  "deadlineMs",
  "description",
]);

export function flow<E extends Entity>(name: string, spec: FlowSpec<E>): Flow<E> {
  const to = Array.isArray(spec.to) ? [...(spec.to as readonly Binding<E>[])] : [spec.to as Binding<E>];
  const made = {
    kind: "flow" as const,
    name,
    entity: spec.from?.entity,
    from: spec.from,
    to: Object.freeze(to),
    ...(spec.schedule === undefined ? {} : { schedule: spec.schedule }),
    chunkSize: spec.chunkSize ?? defaultChunkSize,
    loadConcurrency: spec.loadConcurrency ?? 4,
    transformConcurrency: spec.transformConcurrency ?? 2,
    failure: Object.freeze({ ...(spec.failure ?? {}) }),
    drift: spec.drift ?? "warn",
    ...(spec.deadlineMs === undefined ? {} : { deadlineMs: spec.deadlineMs }),
    ...(spec.description === undefined ? {} : { description: spec.description }),
  };
  return Object.freeze(keepUnknownSettings(made, spec, flowSpecNames));
}

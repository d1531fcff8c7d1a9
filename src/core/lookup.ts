import type { ClientOf, System } from "./system.ts";
import { keepUnknownSettings } from "./unknown-settings.ts";

/**
 * A lookup is a named, cached enrichment call against a system: the tax rate of a region, the customer of an id.
 * Mappings call it through their context (`ctx.lookup(taxRate, "EU-DE")`); the engine caches it for the run,
 * shares one request among concurrent callers of the same key and batches keys when `getMany` is given.
 */
export interface LookupContext<C> {
  /** The system's client (HTTP requests, SQL queries) with the system's limits applied. */
  client: C;
  signal: AbortSignal;
}

export interface LookupSpec<K, V, S extends System> {
  system: S;
  get: (key: K, ctx: LookupContext<ClientOf<S>>) => Promise<V>;
  /** Fetch several keys in one call; returns values in the order of `keys` (undefined for a key not found). */
  getMany?: (keys: readonly K[], ctx: LookupContext<ClientOf<S>>) => Promise<readonly (V | undefined)[]>;
  /** Largest batch passed to getMany. */
  maxBatch?: number;
  /** Keep values across runs for this many milliseconds: in the store, or in Redis when the hub sets `cache`. */
  ttlMs?: number;
  /**
   * Also keep values in this process's memory across runs (for `ttlMs`, or the process's life without one): for
   * long-lived processes running many runs (`franca serve`, workers).
   */
  shared?: boolean;
  /** Cache key of a lookup key; default String(key), JSON for objects. */
  cacheKey?: (key: K) => string;
  description?: string;
}

export interface Lookup<K = unknown, V = unknown> {
  readonly kind: "lookup";
  readonly name: string;
  readonly system: System;
  readonly get: (key: K, ctx: LookupContext<unknown>) => Promise<V>;
  readonly getMany?: (keys: readonly K[], ctx: LookupContext<unknown>) => Promise<readonly (V | undefined)[]>;
  readonly maxBatch: number;
  readonly ttlMs?: number;
  readonly shared: boolean;
  readonly cacheKey: (key: K) => string;
  readonly description?: string;
}

/** Any lookup, whatever its key and value types (the key is in parameter position: `never` accepts them all). */
export type AnyLookup = Lookup<never, unknown>;

const defaultCacheKey = (key: unknown): string => (typeof key === "object" ? JSON.stringify(key) : String(key));

/** The settings `lookup()` knows; the names of any others are kept for defineHub to report (unknown-settings.ts). */
export const lookupSpecNames: ReadonlySet<string> = new Set([
  "system",
  "get",
  "getMany",
  "maxBatch",
  "ttlMs",
  "shared",
  "cacheKey",
  "description",
]);

export function lookup<K, V, S extends System>(name: string, spec: LookupSpec<K, V, S>): Lookup<K, V> {
  const made = {
    kind: "lookup" as const,
    name,
    system: spec.system,
    get: spec.get as Lookup<K, V>["get"],
    ...(spec.getMany === undefined ? {} : { getMany: spec.getMany as Lookup<K, V>["getMany"] }),
    maxBatch: spec.maxBatch ?? 100,
    ...(spec.ttlMs === undefined ? {} : { ttlMs: spec.ttlMs }),
    shared: spec.shared === true,
    cacheKey: spec.cacheKey ?? defaultCacheKey,
    ...(spec.description === undefined ? {} : { description: spec.description }),
  };
  return Object.freeze(keepUnknownSettings(made, spec, lookupSpecNames));
}

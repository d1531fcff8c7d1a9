import DataLoader from "dataloader";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { Lookup } from "../core/lookup.ts";
import { ownString } from "../core/own-string.ts";
import type { LookupCacheStore, MemoryLookupCache } from "../store/lookup-cache.ts";
import { AttemptsError, type SystemPolicy } from "./policy.ts";

export interface LookupStats {
  calls: number;
  /** Calls answered by the run's cache (or joining a request already in flight for the key). */
  hits: number;
  /** Keys the run's cache did not have. */
  misses: number;
  /** Of the misses, keys found in the cross-run cache (shared memory, the store or Redis): no request made. */
  cacheHits: number;
  /** Calls to the system: one per get, one per getMany batch. */
  requests: number;
  /** getMany calls (each for several keys). */
  batches: number;
  errors: number;
}

/**
 * A Map kept to `max` entries, least recently used out first: the run's cache stays bounded whatever the run's size.
 * It keeps its own copy of each key (ownString): a key cut from a chunk's text would keep that text alive.
 */
class BoundedCache<V> {
  readonly #max: number;
  readonly #map = new Map<string, { key: string; value: V }>();
  hits = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get(key: string): V | undefined {
    const entry = this.#map.get(key);
    if (entry === undefined) return undefined;
    this.hits++;
    // most recently used: to the end of the Map's order, under the key it keeps (not the caller's)
    this.#map.delete(key);
    this.#map.set(entry.key, entry);
    return entry.value;
  }

  set(key: string, value: V): this {
    this.#map.delete(key);
    // a hub in plain JavaScript may give a cacheKey that is not a string: kept as it is, as DataLoader asks for it
    const owned = typeof key === "string" ? ownString(key) : key;
    this.#map.set(owned, { key: owned, value });
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
    return this;
  }

  delete(key: string): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }
}

/**
 * The error of a mapping that calls a lookup its hub does not declare (a lookup object made elsewhere: it has no
 * cache or statistics of the run), or undefined when the hub declares this very object.
 */
export function undeclaredLookup(
  declared: ReadonlyMap<string, unknown>,
  lookup: { readonly name: string },
): FrancaError | undefined {
  if (declared.get(lookup.name) === lookup) return undefined;
  return new FrancaError(
    ErrorCode.ConfigUnknownReference,
    `lookup '${lookup.name}' is not declared in the hub's lookups`,
    {
      setting: "lookups",
    },
  );
}

/** HTTP statuses that refuse a request for what it asked (a key the system does not know), not the system's state. */
const keyStatuses = new Set([400, 404, 409, 422]);

/** A getMany failure that may be one key's doing: permanent, with a status of keyStatuses. */
function aboutAKey(error: unknown): boolean {
  const cause = error instanceof AttemptsError ? error.error : error;
  return cause instanceof FrancaError && !cause.transient && keyStatuses.has(Number(cause.status));
}

export interface LookupRuntimeOptions {
  policyOf(systemName: string): SystemPolicy;
  clientOf(systemName: string): unknown;
  signal: AbortSignal;
  /** Most values kept per lookup within a run. Default 100,000. */
  maxEntries?: number;
  /** Where lookups with `ttlMs` keep values across runs. */
  persistent?: LookupCacheStore;
  /** This process's memory, for lookups marked `shared`. */
  shared?: MemoryLookupCache;
  /** Told when a cross-run cache fails (the lookup then asks the system: a cache is never a reason to fail). */
  onCacheError?(lookup: string, error: unknown): void;
}

/**
 * The lookups of one run: each lookup gets a DataLoader, which gives the run-scoped cache, single flight (callers of
 * a key already being fetched share its promise) and batching of keys requested in the same tick into getMany.
 * Every call to the system goes through the system's policy (concurrency, rate limit, retry, breaker).
 */
export class LookupRuntime {
  readonly #options: LookupRuntimeOptions;
  readonly #loaders = new Map<
    string,
    { loader: DataLoader<unknown, unknown, string>; cache: BoundedCache<Promise<unknown>> }
  >();
  readonly #stats = new Map<string, LookupStats>();

  constructor(options: LookupRuntimeOptions) {
    this.#options = options;
  }

  #statsOf(name: string): LookupStats {
    let stats = this.#stats.get(name);
    if (stats === undefined) {
      stats = { calls: 0, hits: 0, misses: 0, cacheHits: 0, requests: 0, batches: 0, errors: 0 };
      this.#stats.set(name, stats);
    }
    return stats;
  }

  #loaderOf(lookup: Lookup) {
    let entry = this.#loaders.get(lookup.name);
    if (entry !== undefined) return entry;
    const stats = this.#statsOf(lookup.name);
    const policy = this.#options.policyOf(lookup.system.name);
    const client = this.#options.clientOf(lookup.system.name);
    const signal = this.#options.signal;
    const fail = (error: unknown, key: unknown): FrancaError => {
      const cause = error instanceof AttemptsError ? error.error : error;
      const classified = cause instanceof FrancaError ? cause : undefined;
      // A system that is down is the run's problem, not this record's: passed on as it is, so the run stops.
      if (classified?.code === ErrorCode.SystemDown) return classified;
      return new FrancaError(
        ErrorCode.LookupFailed,
        `lookup '${lookup.name}' failed for ${JSON.stringify(key)}: ${(cause as Error).message}`,
        { errorClass: classified?.errorClass ?? "permanent", system: lookup.system.name, cause },
      );
    };
    const { persistent, shared } = this.#options;
    const ttlMs = lookup.ttlMs;
    const cacheError = (error: unknown) => this.#options.onCacheError?.(lookup.name, error);
    /**
     * One getMany batch. A batch the system refuses as a request about its keys (HTTP 400, 404, 409 or 422: an
     * unknown key among many, say) is split in halves, each asked again, down to the keys it fails for alone: one bad
     * key fails its own records only, at the cost of about two requests per halving. Any other failure fails the
     * whole batch as it is: a transient one (the policy's retries spent), a system down, a refused login, a getMany
     * that throws or answers too few values — smaller batches would not fare better, and a system that refuses
     * everything would take two requests per key.
     */
    const fetchMany = async (
      getMany: NonNullable<Lookup["getMany"]>,
      keys: readonly unknown[],
    ): Promise<(unknown | Error)[]> => {
      stats.requests++;
      stats.batches++;
      try {
        const { value } = await policy.execute((callSignal) => getMany(keys, { client, signal: callSignal }), signal);
        if (value.length !== keys.length) {
          throw new Error(`getMany returned ${value.length} values for ${keys.length} keys`);
        }
        return [...value];
      } catch (error) {
        if (keys.length > 1 && aboutAKey(error) && !signal.aborted) {
          const half = Math.ceil(keys.length / 2);
          const [first, second] = await Promise.all([
            fetchMany(getMany, keys.slice(0, half)),
            fetchMany(getMany, keys.slice(half)),
          ]);
          return [...first, ...second];
        }
        stats.errors += keys.length;
        return keys.map((key) => fail(error, key));
      }
    };
    /** Fetches keys from the system, one get each or getMany batches; failures become Errors in place. */
    const fetch = async (keys: readonly unknown[]): Promise<(unknown | Error)[]> => {
      const getMany = lookup.getMany;
      if (getMany !== undefined) return fetchMany(getMany, keys);
      return Promise.all(
        keys.map(async (key) => {
          stats.requests++;
          try {
            const { value } = await policy.execute(
              (callSignal) => lookup.get(key, { client, signal: callSignal }),
              signal,
            );
            return value;
          } catch (error) {
            stats.errors++;
            return fail(error, key);
          }
        }),
      );
    };
    const batchLoad = async (keys: readonly unknown[]): Promise<(unknown | Error)[]> => {
      stats.misses += keys.length;
      const results = new Array<unknown | Error>(keys.length);
      const cacheKeys = keys.map((key) => lookup.cacheKey(key));
      let missing = keys.map((_, index) => index);
      const take = (found: Map<string, unknown>) => {
        missing = missing.filter((index) => {
          const name = cacheKeys[index] as string;
          if (!found.has(name)) return true;
          results[index] = found.get(name);
          stats.cacheHits++;
          return false;
        });
      };
      if (lookup.shared && shared !== undefined)
        take(
          shared.get(
            lookup.name,
            missing.map((index) => cacheKeys[index] as string),
          ),
        );
      if (ttlMs !== undefined && persistent !== undefined && missing.length > 0) {
        try {
          const found = await persistent.get(
            lookup.name,
            missing.map((index) => cacheKeys[index] as string),
          );
          take(found);
          if (lookup.shared && shared !== undefined)
            shared.set(
              lookup.name,
              [...found].map(([key, value]) => ({ key, value })),
              ttlMs,
            );
        } catch (error) {
          cacheError(error);
        }
      }
      if (missing.length === 0) return results;
      const fetched = await fetch(missing.map((index) => keys[index]));
      const keep: { key: string; value: unknown }[] = [];
      missing.forEach((index, at) => {
        const value = fetched[at];
        results[index] = value;
        if (!(value instanceof Error)) keep.push({ key: cacheKeys[index] as string, value });
      });
      if (keep.length > 0 && lookup.shared && shared !== undefined)
        shared.set(lookup.name, keep, ttlMs ?? Number.MAX_SAFE_INTEGER);
      if (keep.length > 0 && ttlMs !== undefined && persistent !== undefined) {
        try {
          await persistent.set(lookup.name, keep, ttlMs);
        } catch (error) {
          cacheError(error);
        }
      }
      return results;
    };
    const cache = new BoundedCache<Promise<unknown>>(this.#options.maxEntries ?? 100_000);
    // Keys asked in the same tick are gathered even without getMany: one cross-run cache lookup for all of them, then
    // one get per key still missing.
    const loader = new DataLoader<unknown, unknown, string>(batchLoad, {
      batch: true,
      maxBatchSize: lookup.getMany === undefined ? 1000 : lookup.maxBatch,
      cacheKeyFn: (key) => lookup.cacheKey(key),
      cacheMap: cache,
    });
    entry = { loader, cache };
    this.#loaders.set(lookup.name, entry);
    return entry;
  }

  async call<K, V>(lookup: Lookup<K, V>, key: K): Promise<V> {
    const { loader, cache } = this.#loaderOf(lookup as Lookup);
    const stats = this.#statsOf(lookup.name);
    stats.calls++;
    try {
      return (await loader.load(key)) as V;
    } catch (error) {
      // A transient failure is not remembered: the next record that needs the key tries again.
      if (error instanceof FrancaError && error.transient) loader.clear(key);
      throw error;
    } finally {
      stats.hits = cache.hits;
    }
  }

  /**
   * Each lookup's figures in this run, added to `earlier` (a resumed run's earlier executions, as recorded), with
   * the hit rate of the sums.
   */
  stats(earlier: Record<string, Partial<LookupStats>> = {}): Record<string, LookupStats & { hitRate: number }> {
    const out: Record<string, LookupStats & { hitRate: number }> = {};
    for (const name of new Set([...Object.keys(earlier), ...this.#stats.keys()])) {
      const before = earlier[name] ?? {};
      const now = this.#stats.get(name);
      const plus = (field: keyof LookupStats): number => Number(before[field] ?? 0) + (now?.[field] ?? 0);
      const stats: LookupStats = {
        calls: plus("calls"),
        hits: plus("hits"),
        misses: plus("misses"),
        cacheHits: plus("cacheHits"),
        requests: plus("requests"),
        batches: plus("batches"),
        errors: plus("errors"),
      };
      out[name] = { ...stats, hitRate: stats.calls === 0 ? 0 : stats.hits / stats.calls };
    }
    return out;
  }
}

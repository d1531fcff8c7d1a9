/**
 * Gates hold a system's limits: how many calls may be in flight, and how many may start per interval. The local
 * gates below hold them within one process; the distributed executor swaps in gates backed by PostgreSQL so that
 * the limits hold across every worker process.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { bulkhead } from "cockatiel";

export interface ConcurrencyGate {
  /** Runs `fn` once a slot is free; the slot is held for exactly the duration of `fn`. */
  run<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T>;
  readonly inFlight: number;
}

export interface RateGate {
  /** Resolves when the next call may start. */
  take(signal: AbortSignal): Promise<void>;
}

export const unlimitedConcurrency: ConcurrencyGate = {
  run: (fn) => fn(),
  inFlight: 0,
};

export const unlimitedRate: RateGate = {
  take: async () => {},
};

/** In-process concurrency cap: cockatiel's bulkhead with an unbounded queue (callers wait, none are refused). */
export function localConcurrencyGate(limit: number): ConcurrencyGate {
  const policy = bulkhead(limit, Number.POSITIVE_INFINITY);
  let inFlight = 0;
  return {
    run: (fn, signal) =>
      policy.execute(async () => {
        inFlight++;
        try {
          return await fn();
        } finally {
          inFlight--;
        }
      }, signal),
    get inFlight() {
      return inFlight;
    },
  };
}

/**
 * In-process token bucket: `requests` starts per `perMs`, no bursts beyond that. Hand-written because cockatiel
 * has no rate limiter and the rate-limit libraries on npm are either unmaintained or callback-based; the whole
 * algorithm is the dozen lines below. Starts are spaced evenly (one every perMs/requests), which keeps a server
 * that counts requests per second under its limit in every window, not only on average.
 */
export function localRateGate(requests: number, perMs: number): RateGate {
  const interval = perMs / requests;
  let next = 0;
  return {
    async take(signal) {
      const now = performance.now();
      const start = Math.max(now, next);
      next = start + interval;
      const wait = start - now;
      if (wait > 0) await sleep(wait, undefined, { signal });
    },
  };
}

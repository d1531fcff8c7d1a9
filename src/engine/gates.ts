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

/** Two caps at once: a slot of `outer` (this process's share), then one of `inner` (held across processes). */
export function nestedGates(outer: ConcurrencyGate, inner: ConcurrencyGate): ConcurrencyGate {
  return {
    run: (fn, signal) => outer.run(() => inner.run(fn, signal), signal),
    get inFlight() {
      return inner.inFlight;
    },
  };
}

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
 * In-process rate limit: `requests` starts per `perMs`, evenly spaced (one every perMs/requests), so that a server
 * counting requests per window sees at most `requests` in any window, not only on average. Hand-written because
 * cockatiel has no rate limiter and the npm ones are unmaintained or callback-based.
 *
 * Callers are chained: each waits for the actual start of the one before it plus the interval. Reserving slots in
 * advance would let a caller that woke late (event-loop lag) start closer than the interval to the one after it.
 * Starts are spaced 2 % wider than the limit: what the server counts is arrivals, and network jitter (a first
 * request that also opens the connection) can bring two arrivals closer than their starts; the slack (20 ms a
 * second) keeps one request too many out of any server window, for 2 % of throughput.
 */
export const rateSlack = 1.02;

export function localRateGate(requests: number, perMs: number): RateGate {
  const interval = (perMs / requests) * rateSlack;
  let last = Number.NEGATIVE_INFINITY;
  let tail: Promise<void> = Promise.resolve();
  return {
    take(signal) {
      const turn = tail.then(async () => {
        const wait = last + interval - performance.now();
        if (wait > 0) await sleep(wait, undefined, { signal });
        last = performance.now();
      });
      // an aborted caller gives its turn to the next one instead of stopping the chain
      tail = turn.catch(() => {});
      return turn;
    },
  };
}

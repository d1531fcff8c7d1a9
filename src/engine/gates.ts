/**
 * Gates hold a system's limits: how many calls may be in flight, and how many may start per interval. The local
 * gates below hold them within one process; the distributed executor swaps in gates backed by PostgreSQL so that
 * the limits hold across every worker process.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { chunkOrder } from "./chunk-order.ts";
import { whenAborted } from "./when-aborted.ts";

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

/** A caller waiting for a slot; `wake` is cleared when it gives up. */
interface Waiter {
  wake: (() => void) | undefined;
}

/** Callers waiting for a slot for the same chunk, in arrival order; those before `head` were served. */
interface Waiting {
  order: number;
  queue: Waiter[];
  head: number;
}

/**
 * In-process concurrency cap with an unbounded queue (callers wait, none are refused), served earliest chunk first
 * (`chunkOrder`), first come first served within a chunk. Hand-written because cockatiel's bulkhead serves its queue
 * strictly first come first served: with four chunks mapped at once, the first chunk's lookups (and its retries,
 * which rejoin at the tail) waited behind all of the others', so every chunk finished at about the same time.
 * Few chunks wait at once (the transform and load concurrency), so the groups are a short sorted array.
 */
export function localConcurrencyGate(limit: number): ConcurrencyGate {
  let inFlight = 0;
  const groups: Waiting[] = [];
  const next = (): (() => void) | undefined => {
    while (groups.length > 0) {
      const group = groups[0] as Waiting;
      const wake = (group.queue[group.head] as Waiter).wake;
      group.head++;
      if (group.head >= group.queue.length) groups.shift();
      else if (group.head >= 1024 && group.head * 2 >= group.queue.length) {
        // a group that never drains (calls keep coming for it) does not keep every served caller
        group.queue.splice(0, group.head);
        group.head = 0;
      }
      if (wake !== undefined) return wake;
    }
    return undefined;
  };
  const release = () => {
    inFlight--;
    const wake = next();
    if (wake !== undefined) {
      inFlight++;
      wake();
    }
  };
  const wait = (signal: AbortSignal): Promise<void> => {
    const order = chunkOrder();
    let at = groups.length;
    while (at > 0 && (groups[at - 1] as Waiting).order > order) at--;
    let group = groups[at - 1];
    if (group === undefined || group.order !== order) {
      group = { order, queue: [], head: 0 };
      groups.splice(at, 0, group);
    }
    const queue = group.queue;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { wake: undefined };
      const forget = whenAborted(signal, () => {
        // the slot it would have taken goes to the next caller
        waiter.wake = undefined;
        reject(signal.reason);
      });
      waiter.wake = () => {
        forget();
        resolve();
      };
      queue.push(waiter);
    });
  };
  return {
    async run(fn, signal) {
      signal.throwIfAborted();
      // a free slot means nobody waits: release hands each freed slot to a waiter before anyone else can take it
      if (inFlight < limit) inFlight++;
      else await wait(signal);
      try {
        return await fn();
      } finally {
        release();
      }
    },
    get inFlight() {
      return inFlight;
    },
  };
}

/**
 * In-process rate limit: at most `requests` starts in any window of `perMs` (a sliding window over the starts
 * themselves), so that a server counting requests per window, fixed or sliding, sees at most `requests` in any of
 * its windows, not only on average. Hand-written because cockatiel has no rate limiter and the npm ones are
 * unmaintained or callback-based.
 *
 * Callers are chained (first come, first served); each waits until the start `requests` places before it is a
 * window old, then records its own actual start. A caller that woke late (event-loop lag) costs nothing: the next
 * one may follow it at once, as long as the window allows, where even spacing would push every later start back.
 * The window is 2 % longer than the limit: what the server counts is arrivals, and network jitter (a first request
 * that also opens the connection) can bring arrivals closer than their starts; the slack (20 ms a second) keeps one
 * request too many out of any server window, for 2 % of throughput. Above 1,000 requests per window the ring keeps
 * the last 1,000 starts over a proportionally shorter window: never looser than the limit.
 */
export const rateSlack = 1.02;

export function localRateGate(requests: number, perMs: number): RateGate {
  const size = Math.max(1, Math.min(Math.floor(requests), 1000));
  const window = ((perMs * size) / requests) * rateSlack;
  // starts[next] is the oldest of the last `size` starts (ring buffer)
  const starts = new Array<number>(size).fill(Number.NEGATIVE_INFINITY);
  let next = 0;
  let tail: Promise<void> = Promise.resolve();
  return {
    take(signal) {
      const turn = tail.then(async () => {
        // timers may fire a fraction of a millisecond early (whole milliseconds, the loop's cached clock): wait again
        for (let wait = (starts[next] as number) + window - performance.now(); wait > 0; ) {
          await sleep(Math.ceil(wait), undefined, { signal });
          wait = (starts[next] as number) + window - performance.now();
        }
        starts[next] = performance.now();
        next = (next + 1) % size;
      });
      // an aborted caller gives its turn to the next one instead of stopping the chain
      tail = turn.catch(() => {});
      return turn;
    },
  };
}

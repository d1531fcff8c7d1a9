import { setTimeout as sleep } from "node:timers/promises";
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
} from "cockatiel";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { Limits } from "../core/system.ts";
import { classify } from "./classify.ts";
import {
  type ConcurrencyGate,
  localConcurrencyGate,
  localRateGate,
  type RateGate,
  unlimitedConcurrency,
  unlimitedRate,
} from "./gates.ts";
import { withTimeout } from "./timeout.ts";

/** Defaults for a system that declares no limits of its own. */
export const defaultLimits = {
  timeoutMs: 30_000,
  retry: { maxAttempts: 5, initialDelayMs: 200, maxDelayMs: 15_000, maxTotalDelayMs: 60_000 },
  breaker: { consecutiveFailures: 10, halfOpenAfterMs: 5_000 },
  /** How long a run waits for an open breaker to close before it fails (resumable) with SYSTEM_UNAVAILABLE. */
  maxPauseMs: 120_000,
} as const;

export interface PolicyStats {
  calls: number;
  attempts: number;
  retries: number;
  transientErrors: number;
  permanentErrors: number;
  breakerOpens: number;
  /** 429 answers: each held back every call to the system for as long as it asked (`Retry-After`). */
  rateLimited: number;
  /**
   * Wall time the system was paused: while at least one call waited for its open breaker or a 429's hold (the union
   * of those waits, not their sum: a hundred calls waiting the same second count one second). Never more than the
   * time the calls took.
   */
  pausedMs: number;
  maxInFlight: number;
}

/**
 * A policy's figures since `start` (a copy taken earlier): a system's policy serves every run of the engine, so a
 * run's own are the difference over its time (other runs' calls to the system in that time included). `maxInFlight`
 * is a high-water mark, not a count: the engine's, as it stands.
 */
export function statsSince(now: PolicyStats, start: PolicyStats): PolicyStats {
  return fieldwise(now, start, (a, b) => a - b, now.maxInFlight);
}

/** The figures that count (all but `maxInFlight`, a high-water mark). */
const countFields = [
  "calls",
  "attempts",
  "retries",
  "transientErrors",
  "permanentErrors",
  "breakerOpens",
  "rateLimited",
  "pausedMs",
] as const satisfies readonly (keyof PolicyStats)[];

/** A system's figures before its first call. */
export const noCalls: PolicyStats = Object.freeze({
  calls: 0,
  attempts: 0,
  retries: 0,
  transientErrors: 0,
  permanentErrors: 0,
  breakerOpens: 0,
  rateLimited: 0,
  pausedMs: 0,
  maxInFlight: 0,
});

/**
 * The figures of a run's executions added up (a resumed run's earlier ones, as recorded, and this one's): counts and
 * paused time summed, `maxInFlight` the higher. A field the earlier record lacks (a Franca before it) counts 0.
 */
export function addedStats(earlier: Partial<PolicyStats> | undefined, now: PolicyStats): PolicyStats {
  if (earlier === undefined) return now;
  return fieldwise(now, earlier, (a, b) => a + b, Math.max(Number(earlier.maxInFlight ?? 0), now.maxInFlight));
}

/** The counts of `a` and `b` put together by `op`, field by field (a field `b` lacks counts 0), with `maxInFlight`. */
function fieldwise(
  a: PolicyStats,
  b: Partial<PolicyStats>,
  op: (a: number, b: number) => number,
  maxInFlight: number,
): PolicyStats {
  const out = { ...noCalls, maxInFlight };
  for (const field of countFields) out[field] = op(a[field], Number(b[field] ?? 0));
  return out;
}

export interface CallResult<T> {
  value: T;
  attempts: number;
}

export interface PolicyEvents {
  onRetry?(error: FrancaError, attempt: number, delayMs: number): void;
  /** Calls to the system are held back until `untilMs`: its breaker is open, or it answered 429 (`rate-limited`). */
  onPause?(system: string, untilMs: number, reason: "breaker" | "rate-limited"): void;
  onResume?(system: string): void;
}

/** Thrown out of `execute` with the number of attempts made, so the ledger can record them. */
export class AttemptsError extends Error {
  readonly error: FrancaError;
  readonly attempts: number;
  constructor(error: FrancaError, attempts: number) {
    super(error.message);
    this.error = error;
    this.attempts = attempts;
  }
}

/**
 * The resilience policy of one system, shared by every flow and lookup in the process that calls it:
 *
 *   retry (backoff with full jitter, Retry-After honoured, capped attempts and total delay)
 *     └ 429 hold (a 429 holds back every call to the system, not only the refused one, for its Retry-After)
 *       └ circuit breaker (opens after N consecutive transient failures, 429s excepted; while open, callers wait, not
 *         fail, and failures that open it or fail a probe do not count as the record's attempts)
 *           └ concurrency gate (calls in flight) └ rate gate (starts per interval) └ timeout └ the call
 *
 * A 429 says "slow down", not "this record is bad": it spends none of the record's attempts. The refused call and
 * every other call wait until the time it asked for (Retry-After; without one, the backoff, doubling with each 429
 * in a row), so a system that limits more tightly than its declared `rateLimit` (or declares none) is not hammered
 * by the calls still in flight. A call held back by 429s for longer than the allowed pause fails (transient,
 * SYSTEM_RATE_LIMITED).
 *
 * Permanent errors are never retried and do not count against the breaker: a rejected record says nothing about
 * the system's health.
 */
export class SystemPolicy {
  readonly system: string;
  readonly stats: PolicyStats = { ...noCalls };
  readonly #concurrency: ConcurrencyGate;
  readonly #rate: RateGate;
  readonly #breaker: CircuitBreakerPolicy;
  readonly #timeoutMs: number;
  readonly #retry: Required<NonNullable<Limits["retry"]>>;
  readonly #halfOpenAfterMs: number;
  readonly #maxPauseMs: number;
  readonly #events: PolicyEvents;
  #openedAt = 0;
  /** Until when a 429 holds back every call (epoch ms), and how many 429s came in a row (for the backoff). */
  #heldUntil = 0;
  #limitedInARow = 0;
  /** Calls waiting now for the breaker or a hold, and since when at least one has (for `pausedMs`). */
  #waiting = 0;
  #waitingSince = 0;

  constructor(
    system: string,
    limits: Limits,
    options: { concurrency?: ConcurrencyGate; rate?: RateGate; events?: PolicyEvents; maxPauseMs?: number } = {},
  ) {
    this.system = system;
    // in one process, the cap is the smaller of the system's and this process's own
    const caps = [limits.concurrency, limits.processConcurrency].filter((cap): cap is number => cap !== undefined);
    this.#concurrency =
      options.concurrency ?? (caps.length === 0 ? unlimitedConcurrency : localConcurrencyGate(Math.min(...caps)));
    this.#rate =
      options.rate ??
      (limits.rateLimit === undefined
        ? unlimitedRate
        : localRateGate(limits.rateLimit.requests, limits.rateLimit.perMs));
    this.#timeoutMs = limits.timeoutMs ?? defaultLimits.timeoutMs;
    this.#retry = { ...defaultLimits.retry, ...limits.retry };
    this.#halfOpenAfterMs = limits.breaker?.halfOpenAfterMs ?? defaultLimits.breaker.halfOpenAfterMs;
    this.#maxPauseMs = options.maxPauseMs ?? defaultLimits.maxPauseMs;
    this.#events = options.events ?? {};
    // A 429 says "slow down", not "down": it is waited out per Retry-After and does not count toward the breaker.
    this.#breaker = circuitBreaker(
      handleWhen((error) => {
        const classified = classify(error, system);
        return classified.transient && classified.code !== ErrorCode.SystemRateLimited;
      }),
      {
        halfOpenAfter: this.#halfOpenAfterMs,
        breaker: new ConsecutiveBreaker(
          limits.breaker?.consecutiveFailures ?? defaultLimits.breaker.consecutiveFailures,
        ),
      },
    );
    this.#breaker.onBreak(() => {
      this.stats.breakerOpens++;
      this.#openedAt = Date.now();
    });
  }

  get breakerState(): "closed" | "open" | "half-open" {
    const state = this.#breaker.state;
    return state === CircuitState.Closed ? "closed" : state === CircuitState.HalfOpen ? "half-open" : "open";
  }

  get inFlight(): number {
    return this.#concurrency.inFlight;
  }

  /**
   * One attempt: breaker, gates, timeout, the call; no retry. Streams (reads) use this per request and retry by
   * resuming from their last position instead.
   */
  attempt<T>(fn: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
    // held back by a 429 before taking a slot: a held call keeps no slot (on PostgreSQL, one other workers could use)
    if (this.#heldUntil > Date.now()) return this.#waitForHold(signal).then(() => this.attempt(fn, signal));
    return this.#breaker.execute(
      () =>
        this.#concurrency.run(async () => {
          await this.#rate.take(signal);
          // a 429 that came while this call waited at the gates holds it back too
          if (this.#heldUntil > Date.now()) await this.#waitForHold(signal);
          this.stats.attempts++;
          this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.#concurrency.inFlight);
          try {
            const value = await withTimeout(fn, this.#timeoutMs, signal, this.system);
            this.#limitedInARow = 0;
            return value;
          } catch (error) {
            // held before this call's slot goes to the next caller, which must not go out meanwhile
            const classified = classify(error, this.system);
            if (classified.code === ErrorCode.SystemRateLimited) this.#rateLimitedBy(classified);
            throw error;
          }
        }, signal),
      signal,
    );
  }

  /** Waits until a 429's hold has passed (it may be moved on meanwhile, by another 429). */
  async #waitForHold(signal: AbortSignal): Promise<void> {
    await this.#paused(async () => {
      for (let wait = this.#heldUntil - Date.now(); wait > 0; wait = this.#heldUntil - Date.now())
        await sleep(wait, undefined, { signal });
    });
  }

  /**
   * Runs `wait`, a call waiting for the system to come back (breaker, hold), and counts the wall time the system
   * is paused: from the moment the first call starts waiting until the last one waiting is done, however many wait.
   */
  async #paused(wait: () => Promise<void>): Promise<void> {
    if (this.#waiting++ === 0) this.#waitingSince = Date.now();
    try {
      await wait();
    } finally {
      if (--this.#waiting === 0) this.stats.pausedMs += Date.now() - this.#waitingSince;
    }
  }

  /**
   * A 429 from the system: every call waits until the time it asked for (Retry-After), or without one for the
   * backoff of the 429s in a row.
   */
  #rateLimitedBy(error: FrancaError): void {
    this.stats.rateLimited++;
    const now = Date.now();
    // the 429s of calls that were already in flight when a hold began are the same round, not 429s in a row
    if (now >= this.#heldUntil) this.#limitedInARow++;
    const backoff = Math.min(this.#retry.maxDelayMs, this.#retry.initialDelayMs * 2 ** (this.#limitedInARow - 1));
    // "Retry-After: 0" would let every call try again at once, as often as the system refuses: the backoff then
    const wait = error.retryAfterMs !== undefined && error.retryAfterMs > 0 ? error.retryAfterMs : backoff;
    const until = now + wait;
    if (until > this.#heldUntil) {
      this.#heldUntil = until;
      this.#events.onPause?.(this.system, until, "rate-limited");
    }
  }

  /** Waits while the breaker is open; fails the call when it stays open longer than the allowed pause. */
  async waitForBreaker(signal: AbortSignal, pausedSince: number): Promise<void> {
    const pausedFor = Date.now() - pausedSince;
    if (pausedFor > this.#maxPauseMs) {
      throw new FrancaError(
        ErrorCode.SystemDown,
        `${this.system} kept failing: its circuit stayed open for ${Math.round(pausedFor / 1000)} s`,
        { errorClass: "transient", system: this.system },
      );
    }
    const wait = Math.max(50, this.#openedAt + this.#halfOpenAfterMs - Date.now());
    this.#events.onPause?.(this.system, Date.now() + wait, "breaker");
    await this.#paused(() => sleep(wait, undefined, { signal }));
  }

  /**
   * The backoff before attempt `attempt + 1`: exponential with full jitter, never shorter than the Retry-After the
   * system asked for. Undefined when the attempts or the total delay allowed are used up.
   */
  retryDelay(attempt: number, error: FrancaError, delayedSoFar: number): number | undefined {
    const ceiling = Math.min(this.#retry.maxDelayMs, this.#retry.initialDelayMs * 2 ** (attempt - 1));
    const delay = Math.max(Math.random() * ceiling, error.retryAfterMs ?? 0);
    if (attempt >= this.#retry.maxAttempts || delayedSoFar + delay > this.#retry.maxTotalDelayMs) return undefined;
    return delay;
  }

  /** Counts a transient error seen outside `execute` (a read stream), for the stats. */
  noteTransient(error: FrancaError, attempt: number, delayMs: number): void {
    this.stats.transientErrors++;
    this.stats.retries++;
    this.#events.onRetry?.(error, attempt, delayMs);
  }

  /**
   * Runs `fn` under the system's policy. Resolves with the value and the number of attempts; rejects with an
   * AttemptsError carrying the classified error and the attempts made.
   */
  async execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<CallResult<T>> {
    this.stats.calls++;
    let attempts = 0;
    let delayed = 0;
    let pausedSince: number | undefined;
    for (;;) {
      if (signal.aborted)
        throw new AttemptsError(classify(signal.reason ?? new Error("aborted"), this.system), attempts);
      try {
        attempts++;
        const value = await this.attempt(fn, signal);
        if (pausedSince !== undefined) this.#events.onResume?.(this.system);
        return { value, attempts };
      } catch (raw) {
        if (raw instanceof BrokenCircuitError) {
          // An open breaker is the system's state, not this record's failure: wait, do not spend an attempt.
          attempts--;
          pausedSince ??= Date.now();
          try {
            await this.waitForBreaker(signal, pausedSince);
          } catch (error) {
            throw new AttemptsError(classify(error, this.system), attempts);
          }
          continue;
        }
        const error = classify(raw, this.system);
        if (signal.aborted) throw new AttemptsError(error, attempts);
        if (!error.transient) {
          this.stats.permanentErrors++;
          throw new AttemptsError(error, attempts);
        }
        if (error.code === ErrorCode.SystemRateLimited) {
          // not this record's attempt: it and every other call wait out the hold (attempt() waits for it)
          attempts--;
          pausedSince ??= Date.now();
          const wait = Math.max(0, this.#heldUntil - Date.now());
          if (Date.now() + wait - pausedSince > this.#maxPauseMs) {
            this.stats.transientErrors++;
            throw new AttemptsError(error, Math.max(1, attempts));
          }
          this.#events.onRetry?.(error, attempts + 1, wait);
          continue;
        }
        if (this.breakerState !== "closed") {
          // This failure opened the breaker, or was a probe while it was half-open: the system is down, which is
          // not this record's fault. It waits with the others instead of spending an attempt.
          this.stats.transientErrors++;
          attempts--;
          pausedSince ??= Date.now();
          try {
            await this.waitForBreaker(signal, pausedSince);
          } catch (waitError) {
            throw new AttemptsError(classify(waitError, this.system), Math.max(1, attempts));
          }
          continue;
        }
        const delay = this.retryDelay(attempts, error, delayed);
        if (delay === undefined) {
          this.stats.transientErrors++;
          throw new AttemptsError(error, attempts);
        }
        this.noteTransient(error, attempts, delay);
        delayed += delay;
        try {
          await sleep(delay, undefined, { signal });
        } catch {
          throw new AttemptsError(error, attempts);
        }
      }
    }
  }
}

/**
 * A system's limits held by PostgreSQL, so that they hold across every worker process, on any machine:
 *
 * - concurrency: N slots per system, each a PostgreSQL advisory lock held by the process whose call uses it, on a
 *   connection of its own. A worker that dies loses that connection, and the server releases its locks at once: no
 *   lease to expire, no slot lost. (pg-boss's group concurrency is a soft limit: it admitted 6 calls for a cap of 4
 *   when measured.)
 * - rate: one row per system holding when the next call may start, advanced atomically by each caller, on the
 *   server's clock (workers on several machines need not agree on the time).
 */
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { connectionLost } from "../../connectors/postgres/errors.ts";
import { type ConcurrencyGate, type RateGate, rateSlack } from "../gates.ts";

/** The advisory-lock namespace of a system: 32 bits of a hash of the store schema and the system's name. */
export function lockSpace(schema: string, system: string): number {
  return createHash("sha256").update(`franca\u0000${schema}\u0000${system}`).digest().readInt32BE(0);
}

/**
 * The one connection on which this process holds its advisory locks: the slots of every system's cap. Statements run
 * one after the other (a session's locks are its own, so which statement took which slot must be known exactly).
 * When the connection is lost the server has released its locks: `generation` moves on, and the slots held under an
 * older generation are gone (calls in flight on them finish; new calls take slots again on a new connection).
 */
export class LockSession {
  readonly #url: string;
  #client: Promise<pg.Client> | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #generation = 0;
  #closed = false;

  constructor(url: string) {
    this.#url = url;
  }

  get generation(): number {
    return this.#generation;
  }

  #connect(): Promise<pg.Client> {
    if (this.#client === undefined) {
      const client = new pg.Client({ connectionString: this.#url, application_name: "franca-gates" });
      const lost = () => {
        if (this.#client === connecting) {
          this.#client = undefined;
          this.#generation++;
        }
      };
      client.on("error", lost);
      client.on("end", lost);
      const connecting = client.connect().then(
        () => client,
        (error: unknown) => {
          lost();
          throw error;
        },
      );
      this.#client = connecting;
    }
    return this.#client;
  }

  /**
   * Runs `work` with the session's connection to itself: after everything given before it has finished, and before
   * anything given after it starts. `generation` is the connection's (see above).
   */
  exclusive<T>(work: (client: pg.Client, generation: number) => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.#closed) throw new Error("the lock session is closed");
      const generation = this.#generation;
      return work(await this.#connect(), generation);
    };
    const result = this.#chain.then(run, run);
    this.#chain = result.catch(() => {});
    return result;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    this.#generation++;
    if (client !== undefined) await (await client.catch(() => undefined))?.end();
  }
}

interface HeldSlot {
  slot: number;
  generation: number;
  /** When this process took the slot from the server. */
  since: number;
  linger?: NodeJS.Timeout;
}

export interface AdvisoryGateOptions {
  /** How long this process may pass a slot from one of its calls to the next before giving it back. Default 1 s. */
  turnMs?: number;
  /** How long a slot no call of this process wants is kept for the next one. Default 5 ms. */
  lingerMs?: number;
}

/**
 * Holds a system's concurrency cap across processes: `limit` slots, each a PostgreSQL advisory lock (space, slot)
 * held on this process's lock session. A call takes a slot this process already holds and no call uses, or locks a
 * free one (one statement trying the slots in turn from a random one, skipping those this session holds: a session
 * can take its own lock twice). When it ends, the slot goes to the next call of this process if one comes within
 * `lingerMs` and the slot's turn (`turnMs` since it was locked) is not over; otherwise it is unlocked, for any process
 * to take. So a busy process pays the server round trips once per slot and turn, not twice per call, and a process
 * that dies loses its session, whose locks the server releases at once: no lease to expire, no slot lost.
 * When every slot is taken, a caller tries again after a short, growing pause (2 → 50 ms), or takes a slot another
 * call of this process hands it. Hand-written: no library holds a cap across processes with locks that the server
 * frees when a holder dies.
 */
export function advisoryConcurrencyGate(
  session: LockSession,
  space: number,
  limit: number,
  options: AdvisoryGateOptions = {},
): ConcurrencyGate {
  const turnMs = options.turnMs ?? 1000;
  const lingerMs = options.lingerMs ?? 5;
  const maxPauseMs = 50;
  const restMs = maxPauseMs + 20;
  let inFlight = 0;
  /** Slots this session holds (in use or idle), with the generation they were taken in. */
  const held = new Map<number, number>();
  const idle: HeldSlot[] = [];
  const waiters: Array<(slot: HeldSlot) => void> = [];
  /** Slots this process gave back at a turn's end while another process was waiting: not taken again until then. */
  const resting = new Map<number, number>();
  /**
   * The session generation in which this process took the shared "a caller here is waiting" lock (space, -1), if it
   * holds it: a lost connection releases that lock with the others, so it is held only while the generation is the
   * same (and a caller still waiting says so again on the new connection). Callers waiting here.
   */
  let demandGeneration: number | undefined;
  let waiting = 0;
  const demandHeld = () => demandGeneration === session.generation;

  const live = (slot: HeldSlot) => slot.generation === session.generation;
  /**
   * Gives a slot back. At a turn's end it also asks whether a caller of another process is waiting (it holds the
   * shared lock (space, -1), which an exclusive try then cannot take); if one is, this process rests the slot for
   * `restMs`, longer than a waiting caller's longest pause, so that the waiting one takes it rather than this process
   * at once again. Without waiters elsewhere nothing rests: the cap costs nothing when it is not contended.
   */
  const unlock = (slot: HeldSlot, turnEnded = false) => {
    if (!live(slot)) {
      if (held.get(slot.slot) === slot.generation) held.delete(slot.slot);
      return;
    }
    void session
      .exclusive(async (client) => {
        try {
          if (!turnEnded) {
            await client.query("SELECT pg_advisory_unlock($1::int, $2::int)", [space, slot.slot]);
            return;
          }
          const { rows } = await client.query<{ contended: boolean }>(
            `SELECT pg_advisory_unlock($1::int, $2::int) AND NOT CASE WHEN pg_try_advisory_lock($1::int, -1)
               THEN pg_advisory_unlock($1::int, -1) ELSE false END AS contended`,
            [space, slot.slot],
          );
          if (rows[0]?.contended === true) resting.set(slot.slot, Date.now() + restMs);
        } finally {
          // a failed unlock means a lost connection: the server released the lock with it
          if (held.get(slot.slot) === slot.generation) held.delete(slot.slot);
        }
      })
      .catch(() => {});
  };
  /** Says (once per process) that a caller here waits for a slot, or (when none waits any more) that none does. */
  const signalDemand = () =>
    void session
      .exclusive(async (client, generation) => {
        const held = demandGeneration === generation;
        if (waiting > 0 && !held) {
          const { rows } = await client.query<{ ok: boolean }>(
            "SELECT pg_try_advisory_lock_shared($1::int, -1) AS ok",
            [space],
          );
          demandGeneration = rows[0]?.ok === true ? generation : undefined;
        } else if (waiting === 0 && held) {
          demandGeneration = undefined;
          await client.query("SELECT pg_advisory_unlock_shared($1::int, -1)", [space]);
        }
      })
      .catch(() => {
        demandGeneration = undefined; // a lost connection took the lock with it
      });
  // One statement at a time on the session, reading and updating `held` within it: the session can take its own
  // lock twice, so the slots it holds (in use, idle, being unlocked, resting) must be skipped, and known exactly.
  // A connection lost under the statement (the server ended it) holds no slot: the next try takes one anew.
  const tryLock = (): Promise<HeldSlot | undefined> =>
    tryLockOnce().catch((error: unknown) => {
      if (connectionLost(error)) return undefined;
      throw error;
    });
  const tryLockOnce = (): Promise<HeldSlot | undefined> =>
    session.exclusive(async (client, generation) => {
      for (const [slot, at] of held) if (at !== generation) held.delete(slot);
      const now = Date.now();
      for (const [slot, until] of resting) if (until <= now) resting.delete(slot);
      const offset = Math.floor(Math.random() * limit);
      // CASE, not AND: the skip test must come first, or the server might lock a slot twice and then filter it out
      const { rows } = await client.query<{ slot: number }>(
        `SELECT ((s + $3) % $2)::int AS slot FROM generate_series(0, $2 - 1) AS s
         WHERE CASE WHEN ((s + $3) % $2)::int = ANY($4::int[]) THEN false
                    ELSE pg_try_advisory_lock($1::int, ((s + $3) % $2)::int) END
         LIMIT 1`,
        [space, limit, offset, [...held.keys(), ...resting.keys()]],
      );
      const slot = rows[0]?.slot;
      if (slot === undefined) return undefined;
      held.set(slot, generation);
      return { slot, generation, since: Date.now() };
    });
  const takeIdle = (): HeldSlot | undefined => {
    for (let slot = idle.pop(); slot !== undefined; slot = idle.pop()) {
      clearTimeout(slot.linger);
      if (live(slot)) return slot;
      unlock(slot);
    }
    return undefined;
  };
  const acquire = async (signal: AbortSignal): Promise<HeldSlot> => {
    const ready = takeIdle() ?? (await tryLock());
    if (ready !== undefined) return ready;
    // every slot is taken: try again after a pause, unless a call of this process hands one over first
    let handed: HeldSlot | undefined;
    let wake = () => {};
    const handedOver = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const handOver = (slot: HeldSlot) => {
      handed = slot;
      wake();
    };
    waiters.push(handOver);
    waiting++;
    try {
      for (let pause = 2; ; pause = Math.min(maxPauseMs, pause * 2)) {
        // a caller that has waited through the short pauses says so: a slot only just being unlocked elsewhere
        // (a momentary wait) must not make the other processes rest theirs
        if (pause >= maxPauseMs && !demandHeld()) signalDemand();
        const nap = sleep(pause, undefined, { signal });
        nap.catch(() => {});
        await Promise.race([nap, handedOver]);
        if (handed !== undefined) return handed;
        const slot = takeIdle() ?? (await tryLock());
        if (handed !== undefined) {
          // handed over while this one was locking another: keep one, put the other back
          if (slot !== undefined) release(slot);
          return handed;
        }
        if (slot !== undefined) return slot;
      }
    } catch (error) {
      if (handed !== undefined) release(handed);
      throw error;
    } finally {
      const at = waiters.indexOf(handOver);
      if (at >= 0) waiters.splice(at, 1);
      waiting--;
      if (waiting === 0) signalDemand();
    }
  };
  const release = (slot: HeldSlot) => {
    if (!live(slot)) {
      unlock(slot);
      return;
    }
    if (Date.now() - slot.since >= turnMs) {
      unlock(slot, true);
      return;
    }
    const waiter = waiters.shift();
    if (waiter !== undefined) {
      waiter(slot);
      return;
    }
    slot.linger = setTimeout(() => {
      const at = idle.indexOf(slot);
      if (at >= 0) {
        idle.splice(at, 1);
        unlock(slot);
      }
    }, lingerMs);
    idle.push(slot);
  };
  return {
    get inFlight() {
      return inFlight;
    },
    async run(fn, signal) {
      const slot = await acquire(signal);
      inFlight++;
      try {
        return await fn();
      } finally {
        inFlight--;
        release(slot);
      }
    },
  };
}

/** Holds a system's rate limit across processes: each caller books the next start on the server, then waits for it. */
export function tableRateGate(
  pool: pg.Pool,
  schema: string,
  system: string,
  requests: number,
  perMs: number,
): RateGate {
  const interval = Math.max(1, Math.round((perMs / requests) * rateSlack));
  const table = `"${schema}".system_rates`;
  const sql = `WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now)
    INSERT INTO ${table} (system, next_at) SELECT $1, now + $2 FROM clock
    ON CONFLICT (system) DO UPDATE SET next_at = GREATEST(${table}.next_at, (SELECT now FROM clock)) + $2
    RETURNING next_at - $2 - (SELECT now FROM clock) AS wait`;
  return {
    async take(signal) {
      const { rows } = await pool.query<{ wait: string }>(sql, [system, interval]);
      const wait = Number(rows[0]?.wait ?? 0);
      if (wait > 0) await sleep(wait, undefined, { signal });
    },
  };
}

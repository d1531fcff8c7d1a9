/**
 * A system's limits held by PostgreSQL, so that they hold across every worker process, on any machine:
 *
 * - concurrency: N slots per system, each a PostgreSQL advisory lock held by the connection of the call using it.
 *   A worker that dies loses its connections, and the server releases their locks at once: no lease to expire, no
 *   slot lost. (pg-boss's group concurrency is a soft limit: it admitted 6 calls for a cap of 4 when measured.)
 * - rate: one row per system holding when the next call may start, advanced atomically by each caller, on the
 *   server's clock (workers on several machines need not agree on the time).
 */
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { type ConcurrencyGate, type RateGate, rateSlack } from "../gates.ts";

/** The advisory-lock namespace of a system: 32 bits of a hash of the store schema and the system's name. */
export function lockSpace(schema: string, system: string): number {
  return createHash("sha256").update(`franca\u0000${schema}\u0000${system}`).digest().readInt32BE(0);
}

/**
 * Holds a system's concurrency cap across processes. Each call takes a connection from `pool`, locks a free slot
 * (one statement trying the slots in turn, from a random one), runs, unlocks and gives the connection back. When all
 * slots are taken it gives the connection back and tries again after a short, growing pause (2 → 50 ms).
 */
export function advisoryConcurrencyGate(pool: pg.Pool, space: number, limit: number): ConcurrencyGate {
  let inFlight = 0;
  /** A connection holding one of the slots, or undefined (and the connection is back in the pool) when all are taken. */
  const tryLock = async (): Promise<{ client: pg.PoolClient; slot: number } | undefined> => {
    const client = await pool.connect();
    try {
      const offset = Math.floor(Math.random() * limit);
      const { rows } = await client.query<{ slot: number }>(
        `SELECT ((s + $3) % $2)::int AS slot FROM generate_series(0, $2 - 1) AS s
         WHERE pg_try_advisory_lock($1::int, ((s + $3) % $2)::int) LIMIT 1`,
        [space, limit, offset],
      );
      const slot = rows[0]?.slot;
      if (slot !== undefined) return { client, slot };
      client.release();
      return undefined;
    } catch (error) {
      client.release(true);
      throw error;
    }
  };
  return {
    get inFlight() {
      return inFlight;
    },
    async run(fn, signal) {
      let held = await tryLock();
      // a caller waiting for a slot holds no connection: only the calls in flight do (at most `limit` across all)
      for (let pause = 2; held === undefined; pause = Math.min(50, pause * 2)) {
        await sleep(pause, undefined, { signal });
        held = await tryLock();
      }
      const { client, slot } = held;
      let broken = false;
      inFlight++;
      try {
        return await fn();
      } finally {
        inFlight--;
        // a connection that cannot unlock is closed instead: the server then releases its locks
        await client.query("SELECT pg_advisory_unlock($1::int, $2::int)", [space, slot]).catch(() => {
          broken = true;
        });
        client.release(broken);
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

/**
 * The PostgreSQL-held concurrency cap of the distributed executor, with two lock sessions standing for two worker
 * processes: the cap holds across them and is reached, a busy process gives its slots back when their turn ends,
 * slots come back when a session's connection dies, and no lock is left behind when calls stop.
 */
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import {
  type AdvisoryGateOptions,
  advisoryConcurrencyGate,
  LockSession,
  lockSpace,
} from "../../src/engine/distributed/gates.ts";
import type { ConcurrencyGate } from "../../src/engine/gates.ts";
import { until } from "../support/poll.ts";

const url = "postgres://postgres@127.0.0.1:5432/test";

/** One statement on a connection of its own, as an onlooker (or an administrator) would run it. */
async function asAdmin<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

async function advisoryLocksHeld(space: number): Promise<number> {
  const rows = await asAdmin<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid::int = $1 AND granted",
    [space],
  );
  return rows[0]?.n ?? 0;
}

/** The sessions holding the shared "a caller here is waiting" lock (space, -1) of a gate. */
async function demandHolders(space: number): Promise<number[]> {
  const rows = await asAdmin<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid::int = $1 AND objid::bigint = 4294967295
       AND mode = 'ShareLock' AND granted`,
    [space],
  );
  return rows.map((row) => row.pid);
}

/** Kills a lock session's connection on the server, as a network failure or a restart would. */
async function terminate(session: LockSession): Promise<void> {
  const pid = await session.exclusive(
    async (client) => (await client.query("SELECT pg_backend_pid() AS pid")).rows[0].pid,
  );
  await asAdmin("SELECT pg_terminate_backend($1)", [pid]);
}

/** Two processes' lock sessions on a fresh lock space, each with its gate of `limit` slots; closed after the test. */
function twoProcesses(t: TestContext, limit: number, options: AdvisoryGateOptions = {}) {
  const space = lockSpace(`gates-${Math.random()}`, "api");
  const sessions = [new LockSession(url), new LockSession(url)] as const;
  t.after(() => Promise.all(sessions.map((session) => session.close())));
  const gates = sessions.map((session) => advisoryConcurrencyGate(session, space, limit, options));
  return { space, sessions, gates: gates as [ConcurrencyGate, ConcurrencyGate] };
}

/** Counts the calls running at once across every gate it wraps. */
function meter() {
  let now = 0;
  let max = 0;
  return {
    get max() {
      return max;
    },
    call: (ms: number) => async () => {
      now++;
      max = Math.max(max, now);
      try {
        await sleep(ms);
      } finally {
        now--;
      }
    },
  };
}

describe("advisory concurrency gate", () => {
  const signal = new AbortController().signal;

  it("holds a cap of 3 across two processes, and reaches it; leaves no lock behind", async (t) => {
    const { space, gates } = twoProcesses(t, 3);
    const m = meter();
    await Promise.all(gates.flatMap((gate) => Array.from({ length: 40 }, () => gate.run(m.call(5), signal))));
    assert.equal(m.max, 3);
    await until(async () => (await advisoryLocksHeld(space)) === 0, "every slot unlocked once the calls stopped");
  });

  it("a busy process gives its slots back when their turn ends: another process gets a call in meanwhile", async (t) => {
    const {
      gates: [busyGate, otherGate],
    } = twoProcesses(t, 1, { turnMs: 50 });
    const m = meter();
    let busyCalls = 0;
    let busyDone = false;
    let otherDone = false;
    // four callers in the busy process keep the one slot wanted until the other process has had its call (or, should
    // it never get one, for 2,000 calls of 5 ms: ~10 s); at the end of a turn (50 ms) the busy process sees that
    // another process waits and leaves the slot alone long enough for that one to take it
    const busyWork = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!otherDone && busyCalls < 2000) {
          await busyGate.run(m.call(5), signal);
          busyCalls++;
        }
      }),
    ).then(() => {
      busyDone = true;
    });
    await until(async () => busyCalls > 0, "the busy process had the slot");
    const before = busyCalls;
    await otherGate.run(m.call(1), signal);
    otherDone = true;
    const meanwhile = busyCalls - before;
    assert.equal(busyDone, false, "the other process had its call while the busy one still wanted the slot");
    await busyWork;
    // a turn is ~10 of the busy process's calls (fewer on a slow machine): the other got in within a few turns, by
    // count, not by the clock
    assert.ok(meanwhile < 100, `the busy process made ${meanwhile} calls while the other waited for one`);
    assert.equal(m.max, 1);
  });

  it("slots come back when a process's lock session dies, and the cap still holds", async (t) => {
    const space = lockSpace(`gates-${Math.random()}`, "api");
    const session = new LockSession(url);
    t.after(() => session.close());
    const gate = advisoryConcurrencyGate(session, space, 2);
    const m = meter();
    await Promise.all(Array.from({ length: 6 }, () => gate.run(m.call(5), signal)));
    const before = session.generation;
    await terminate(session);
    await until(async () => session.generation > before, "the session noticed its connection was lost");
    await Promise.all(Array.from({ length: 10 }, () => gate.run(m.call(5), signal)));
    assert.equal(m.max, 2);
    await until(async () => (await advisoryLocksHeld(space)) === 0, "every slot unlocked");
  });

  it("a process still waiting says so again when its lock session was lost (the server dropped its demand lock)", async (t) => {
    const {
      space,
      sessions: [, waiter],
      gates: [holderGate, waiterGate],
    } = twoProcesses(t, 1);
    let free = () => {};
    const holding = holderGate.run(() => new Promise<void>((resolve) => (free = resolve)), signal);
    await until(async () => (await advisoryLocksHeld(space)) === 1, "the holder took the one slot");
    const waiting = waiterGate.run(async () => "ran", signal);
    await until(async () => (await demandHolders(space)).length === 1, "the waiting process said it waits");
    const [first] = await demandHolders(space);
    await terminate(waiter);
    await until(async () => {
      const holders = await demandHolders(space);
      return holders.length === 1 && holders[0] !== first;
    }, "the waiting process said so again on its new connection");
    free();
    await holding;
    assert.equal(await waiting, "ran");
    await until(async () => (await advisoryLocksHeld(space)) === 0, "every lock released once the calls stopped");
  });
});

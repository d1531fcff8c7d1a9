/**
 * A PostgreSQL → MariaDB run killed with SIGKILL in the middle of its writes, and continued after each kill, ends
 * with every row once in MariaDB, identical to the source's. The target's triggers sleep a millisecond a row, so
 * that each chunk's statement (LOAD DATA for a chunk of new keys, else INSERT … ON DUPLICATE KEY UPDATE, in a
 * transaction per chunk) takes a while and the test can kill the child while one runs; they also record, in
 * `writes`, each row a committed statement inserted or updated.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type mysql2 from "mysql2/promise";
import pg from "pg";
import { tempDir } from "../support/fixtures.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";
import { pgCrashHub, pgCrashSourceSql, pgCrashUrl } from "../support/pg-crash-hub.ts";
import { assertContinuedLedger, ledgerOf, progressOf, startCrashChild, storeFileOf } from "../support/pg-crash-runs.ts";
import { until } from "../support/poll.ts";

// the target's database, made before the file's tests and dropped after them
const target = mysqlTestDatabase("franca_mariacrash");
const { database } = target;
const schema = `franca_mariacrash_${target.suffix}`;
const rows = 4000; // 17 chunks: 50, 100, 200, then 250 each

let pgDb: pg.Client;
let maria: mysql2.Connection;

/** A session of the child's on MariaDB: what it runs now (`info`, null between statements). */
interface Session {
  command: string;
  info: string | null;
}

/** The MariaDB sessions on the test's database but the test's own: the child's, or the killed child's left over. */
async function childSessions(): Promise<Session[]> {
  const [found] = await maria.query(
    "SELECT COMMAND AS command, INFO AS info FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
    [database],
  );
  return found as Session[];
}

/** Whether the child is writing a chunk right now: a LOAD DATA or an INSERT into `dst` running. */
async function writingNow(): Promise<boolean> {
  return (await childSessions()).some(
    (session) => session.command === "Query" && /^\s*(LOAD DATA|INSERT INTO `?dst)/i.test(session.info ?? ""),
  );
}

/** The loads the run in `dir` has recorded so far (0 before its store exists), and whether it is running. */
function loadsOf(dir: string): { loads: number; running: boolean } {
  try {
    return progressOf(storeFileOf(dir)) ?? { loads: 0, running: false };
  } catch {
    return { loads: 0, running: false }; // the store is being created
  }
}

/**
 * Starts the child and SIGKILLs it in the middle of a chunk's write statement once the run has recorded `killAfter`
 * loads (`loads`: as many as it had recorded just before the kill); without `killAfter`, lets it end. The child is
 * killed too when the test fails meanwhile.
 */
async function runUntil(
  dir: string,
  killAfter: number | undefined,
): Promise<{ killed: boolean; code: number | null; loads?: number }> {
  const started = startCrashChild(dir, schema, { maria: database });
  const { process: process_, exited } = started;
  try {
    while (!started.ended() && killAfter !== undefined) {
      if (await writingNow()) {
        const { loads, running } = loadsOf(dir);
        if (running && loads >= killAfter) {
          process_.kill("SIGKILL");
          await exited;
          return { killed: true, code: null, loads };
        }
      }
      await sleep(2);
    }
    return { killed: false, code: await exited };
  } finally {
    if (!started.ended()) {
      process_.kill("SIGKILL");
      await exited;
    }
  }
}

/** How many audit rows `writes` holds per id: each a row a committed statement inserted or updated. */
async function writeCounts(): Promise<Map<string, number>> {
  const [found] = await maria.query("SELECT CAST(id AS CHAR) AS id, count(*) AS n FROM writes GROUP BY id");
  return new Map((found as { id: string; n: number | string }[]).map(({ id, n }) => [id, Number(n)]));
}

/** Every column of MariaDB's `dst`, as sourceRows gives PostgreSQL's `src`. */
async function targetRows(): Promise<unknown[]> {
  const [found] = await maria.query(
    `SELECT CAST(id AS CHAR) AS id, name, CAST(amount AS CHAR) AS amount,
            DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') AS at, doc, tags FROM dst ORDER BY id`,
  );
  // mysql2 parses the JSON columns itself (MariaDB's JSON is LONGTEXT, marked as JSON in the column metadata)
  return found as unknown[];
}

/** Every column of `src` as plain values: ids and amounts as text, the time in UTC to the microsecond, JSON parsed. */
async function sourceRows(): Promise<unknown[]> {
  const { rows: found } = await pgDb.query(
    `SELECT id::text, name, amount::text, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS at,
            doc::text AS doc, to_json(tags)::text AS tags FROM ${schema}.src ORDER BY id`,
  );
  return found.map((row) => ({
    ...row,
    doc: row.doc === null ? null : JSON.parse(row.doc),
    tags: row.tags === null ? null : JSON.parse(row.tags),
  }));
}

before(async () => {
  pgDb = new pg.Client({ connectionString: pgCrashUrl });
  await pgDb.connect();
  for (const sql of pgCrashSourceSql(schema, rows)) await pgDb.query(sql);
});

after(async () => {
  // guarded: a `before` that failed midway leaves its error to be seen, not this hook's
  if (maria !== undefined) await maria.end();
  if (pgDb !== undefined) {
    await pgDb.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pgDb.end();
  }
});

/**
 * The target table `dst` in the file's database, its triggers, and their audit `writes`; `maria` the test's own
 * connection to that database. Made in the test: the database is made by mysqlTestDatabase's hook, which the
 * file's own hooks do not wait for.
 */
async function createTarget(): Promise<void> {
  maria = await target.rawConnection();
  await maria.query(`CREATE TABLE dst (id BIGINT PRIMARY KEY, name TEXT NOT NULL, amount DECIMAL(14,4),
                       updated_at DATETIME(6) NOT NULL, doc JSON, tags JSON) ENGINE=InnoDB`);
  await maria.query("CREATE TABLE writes (id BIGINT NOT NULL) ENGINE=InnoDB");
  for (const event of ["INSERT", "UPDATE"]) {
    await maria.query(`CREATE TRIGGER audit_${event.toLowerCase()} AFTER ${event} ON dst FOR EACH ROW
                         BEGIN DO SLEEP(0.001); INSERT INTO writes VALUES (NEW.id); END`);
  }
}

describe("mysql crash recovery", () => {
  it("a PG → MariaDB run killed with SIGKILL in the middle of its writes ends, once continued, with every row once and identical", async () => {
    using tmp = tempDir();
    await createTarget();
    const kills = 4;
    /**
     * How many times each id had been committed anew, at a kill, without its load recorded: each time, the run
     * writes it once more.
     */
    const unrecorded = new Map<string, number>();
    let writesBefore = new Map<string, number>();
    let rolledBack = 0;
    for (let kill = 0; kill < kills; kill++) {
      // two more loads recorded by each child first, counted from what the run has recorded so far
      const killAfter = loadsOf(tmp.dir).loads + 2;
      const outcome = await runUntil(tmp.dir, killAfter);
      assert.ok(outcome.killed, `the run ended (exit code ${outcome.code}) before its kill after ${killAfter} loads`);
      // The server rolls the killed child's transaction back once its statement ends and it finds the client gone.
      await until(async () => (await childSessions()).length === 0, "the killed child's sessions ended");
      const { loaded } = ledgerOf(storeFileOf(tmp.dir));
      const [present] = await maria.query("SELECT CAST(id AS CHAR) AS id FROM dst");
      const ids = new Set((present as { id: string }[]).map((row) => row.id));
      // A load is recorded after its commit: the ledger never has a row as loaded that the target lacks.
      assert.deepEqual(
        [...loaded].filter((id) => !ids.has(id)),
        [],
      );
      // A kill in the middle of a statement leaves nothing of its chunk (no load recorded after the kill's, nothing
      // committed without one); one that came just after the statement ended may find the chunk committed, its load
      // not recorded. Such a chunk counts once more only when this child wrote it again: a chunk left so by an earlier
      // kill, whose write again was rolled back, was not written again.
      const committed = [...ids].filter((id) => !loaded.has(id));
      if (committed.length === 0 && loadsOf(tmp.dir).loads === outcome.loads) rolledBack++;
      const writes = await writeCounts();
      for (const id of committed) {
        if ((writes.get(id) ?? 0) > (writesBefore.get(id) ?? 0)) unrecorded.set(id, (unrecorded.get(id) ?? 0) + 1);
      }
      writesBefore = writes;
    }
    assert.ok(rolledBack > 0, "some kill landed in the middle of a write, which was rolled back");
    const last = await runUntil(tmp.dir, undefined);
    assert.equal(last.code, 0, "the continued run succeeded");

    // The target: every row exactly once, every value identical to the source's.
    const source = await sourceRows();
    assert.equal(source.length, rows);
    assert.deepEqual(await targetRows(), source);
    // Every row written once (a write rolled back by a kill leaves no audit row), and once more for each time its
    // chunk was committed but not recorded at a kill. No other chunk was written twice.
    const writes = await writeCounts();
    assert.deepEqual(
      (source as { id: string }[]).map(({ id }) => ({ id, n: writes.get(id) })),
      (source as { id: string }[]).map(({ id }) => ({ id, n: 1 + (unrecorded.get(id) ?? 0) })),
    );
    assert.equal(writes.size, rows);

    // The ledger: one run, continued after each crash, whose counts equal the target's.
    await assertContinuedLedger(pgCrashHub(schema, { maria: database }), tmp.dir, kills, rows);
  });
});

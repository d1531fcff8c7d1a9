import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { tempDir } from "../support/fixtures.ts";
import { type PgCrashTarget, pgCrashApps, pgCrashHub, pgCrashSetupSql, pgCrashUrl } from "../support/pg-crash-hub.ts";
import {
  assertContinuedLedger,
  ledgerOf,
  type Progress,
  progressOf,
  startCrashChild,
  storeFileOf,
} from "../support/pg-crash-runs.ts";

const schema = `franca_pgcrash_${randomBytes(5).toString("hex")}`;
const apps = pgCrashApps(schema);
const rows = 5000; // 20 chunks of 250 in one go; more, smaller ones here (each resume starts slow again)

let db: pg.Client;
/** The test's own connection, which locks the gate's row (see pg-crash-hub.ts) to hold up the targets' commits. */
let gate: pg.Client;

/**
 * Where a kill lands: after at least `loads` persisted loads, in the middle of a chunk's COPY into the target, or in
 * the commit of a chunk's write (held up by the gate), which the server completes once the child is gone. The commit
 * is a COMMIT statement's, or (a COPY straight into the table, its own transaction) the COPY statement's own end.
 */
interface Kill {
  loads: number;
  at: "copy" | "commit";
}

/** How a chunk's rows are COPYed into a target: into the connection's staging table, or straight into the table. */
const copyOf = (table: PgCrashTarget): string =>
  table === "dst" ? "COPY pg_temp.franca_copy_" : `COPY "${schema}"."${table}" (`;

/**
 * Whether the child's target connection is, right now, running a statement that starts with `sql`: waiting on a lock
 * (`locked` true: the gate, in its commit), or not (`locked` false: the COPY still taking rows).
 */
async function runningNow(sql: string, locked: boolean): Promise<boolean> {
  const { rows: found } = await db.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = $1 AND state = 'active' AND starts_with(query, $2)
        AND (wait_event_type IS NOT DISTINCT FROM 'Lock') = $3`,
    [apps.target, sql, locked],
  );
  return found[0].n > 0;
}

/** Whether the child's write into `table` is, right now, in its commit, held up at the gate. */
async function committingNow(table: PgCrashTarget): Promise<boolean> {
  return (await runningNow("COMMIT", true)) || (await runningNow(copyOf(table), true));
}

/**
 * Where the killed child's write was left, as the server sees it once the child is gone: its backend ended (the COPY
 * or a transaction not committed yet, rolled back) or waiting on the gate in its commit (a COMMIT, or a COPY of its
 * own transaction at its end; either completes once the gate goes). Asked while the test holds the gate, so that no
 * commit can complete meanwhile.
 */
async function whereKilled(): Promise<"copy" | "commit"> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { rows: left } = await db.query(
      `SELECT query, state, wait_event_type, (starts_with(query, 'COMMIT') OR starts_with(query, 'COPY'))
              AND wait_event_type = 'Lock' AS waiting
         FROM pg_stat_activity WHERE application_name = $1`,
      [apps.target],
    );
    if (left.length === 0) return "copy";
    if (left.some((row) => row.waiting === true)) return "commit";
    // a backend that neither ends nor waits at the gate: say what it does rather than wait for ever
    if (Date.now() > deadline) throw new Error(`the killed child's session stays: ${JSON.stringify(left)}`);
    await sleep(2);
  }
}

/**
 * Starts the child writing into `table` and SIGKILLs it where `kill` says; without `kill`, lets it end. Once the run
 * has made `kill.loads` loads, the test holds the gate (pg-crash-hub.ts): from then on no commit into the target
 * completes, so that where the kill lands is known for sure (`landed`), even when a COPY ended just before it.
 */
async function runUntil(
  dir: string,
  table: PgCrashTarget,
  kill: Kill | undefined,
): Promise<{ killed: boolean; code: number | null; landed?: "copy" | "commit" }> {
  const started = startCrashChild(dir, schema, table);
  const { process: process_, exited } = started;
  const storeFile = storeFileOf(dir);
  let gated = false;
  const killNow = async () => {
    process_.kill("SIGKILL");
    await exited;
    return { killed: true, code: null, landed: await whereKilled() };
  };
  try {
    while (!started.ended() && kill !== undefined) {
      if (gated) {
        // loads go one at a time (pg-crash-hub.ts): the chunk copying now is the only write in flight
        if (kill.at === "commit") {
          if (await committingNow(table)) return await killNow();
        } else if (await runningNow(copyOf(table), false)) return await killNow();
        else if (await committingNow(table)) {
          // the COPY ended before the kill and its commit waits on the gate: let it through, for the next COPY
          await gate.query("ROLLBACK");
          gated = false;
        }
      } else if (await runningNow(copyOf(table), false)) {
        let progress: Progress | undefined;
        try {
          progress = progressOf(storeFile);
        } catch {
          // the store is being created
        }
        if (progress?.running === true && progress.loads >= kill.loads) {
          await gate.query("BEGIN");
          await gate.query(`SELECT FROM ${schema}.gate FOR UPDATE`);
          gated = true;
          continue;
        }
      }
      await sleep(2);
    }
    return { killed: false, code: await exited };
  } finally {
    // The commit held up goes on, for a client that is gone (the server notices only when it answers).
    if (gated) await gate.query("ROLLBACK");
  }
}

/**
 * Waits until the killed children's connections are gone from the server: nothing of theirs runs on (a commit held
 * up, a COPY read held by back-pressure). The server notices a closed socket on its own.
 */
async function childGone(): Promise<void> {
  for (;;) {
    const { rows: left } = await db.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name IN ($1, $2)",
      [apps.source, apps.target],
    );
    if (left[0].n === 0) return;
    await sleep(20);
  }
}

/** Every column as PostgreSQL's own text, so that source and target compare exactly. */
const asText = (table: string) =>
  db.query(
    `SELECT id::text, name::text, amount::text, updated_at::text, doc::text, tags::text FROM ${schema}.${table} ORDER BY id`,
  );

before(async () => {
  db = new pg.Client({ connectionString: pgCrashUrl });
  await db.connect();
  gate = new pg.Client({ connectionString: pgCrashUrl });
  await gate.connect();
  // a commit held up at the gate completes for a child killed meanwhile only if the server does not check the client's
  // connection while it runs (0, PostgreSQL's default)
  // (the setting is PostgreSQL 14's: an older server never checks)
  const { rows: interval } = await db.query(
    "SELECT current_setting('client_connection_check_interval', true) AS value",
  );
  assert.ok([null, "0"].includes(interval[0].value), `client_connection_check_interval is ${interval[0].value}`);
  for (const sql of pgCrashSetupSql(schema, rows)) await db.query(sql);
});

after(async () => {
  await gate.end();
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

/**
 * Runs the flow into `table`, killed as `plan` says and continued after each kill, to its end; then the target holds
 * every row once, identical to the source's, each written once more only for each time its chunk had been committed
 * but its load not recorded at a kill, and the ledger has one run whose counts equal the target's.
 */
async function killedAndContinued(table: PgCrashTarget, plan: readonly Kill[]): Promise<void> {
  using tmp = tempDir();
  /** How many times each id had been committed, at a kill, without its load recorded: the run writes it again. */
  const unrecorded = new Map<string, number>();
  const landings: string[] = [];
  for (const kill of plan) {
    const outcome = await runUntil(tmp.dir, table, kill);
    assert.ok(outcome.killed, `the run ended (exit code ${outcome.code}) before its kill after ${kill.loads} loads`);
    // a kill meant for a commit waiting at the gate lands there; one meant for a COPY may find it just ended
    if (kill.at === "commit") assert.equal(outcome.landed, "commit");
    landings.push(outcome.landed as string);
    await childGone();
    const { loaded, loading } = ledgerOf(storeFileOf(tmp.dir));
    const { rows: present } = await db.query(`SELECT id::text FROM ${schema}.${table}`);
    const ids = new Set(present.map((row) => row.id as string));
    // A load is recorded after its commit: the ledger never has a row as loaded that the target lacks.
    assert.deepEqual(
      [...loaded].filter((id) => !ids.has(id)),
      [],
    );
    const committed = [...ids].filter((id) => !loaded.has(id));
    // a kill meant for a COPY lands in its commit when the COPY ended just before it: the gate held that commit too
    if (outcome.landed === "commit") {
      assert.ok(loading !== undefined && loading > 0, "a chunk was being loaded");
      assert.equal(committed.length, loading, "the chunk killed in its commit was committed, its load not recorded");
    } else {
      assert.deepEqual(committed, [], "a chunk killed in the middle of its COPY left nothing in the target");
    }
    for (const id of committed) unrecorded.set(id, (unrecorded.get(id) ?? 0) + 1);
  }
  assert.ok(landings.includes("copy"), `some kill landed in a COPY: ${landings.join(", ")}`);
  const last = await runUntil(tmp.dir, table, undefined);
  assert.equal(last.code, 0, "the continued run succeeded");
  await childGone();

  // The target: every row exactly once, every value identical to the source's.
  const source = (await asText("src")).rows;
  const target = await asText(table);
  assert.equal(target.rows.length, rows);
  assert.deepEqual(target.rows, source);
  // Every row written once (a write rolled back by a kill leaves no audit row), and once more for each time its chunk
  // was committed but not recorded at a kill: the continued run wrote that chunk again, idempotently. No other chunk
  // was written twice.
  const { rows: writes } = await db.query(
    `SELECT id::text, count(*)::int AS n FROM ${schema}.writes WHERE target = $1 GROUP BY id ORDER BY id`,
    [table],
  );
  assert.deepEqual(
    writes,
    source.map(({ id }) => ({ id, n: 1 + (unrecorded.get(id) ?? 0) })),
  );

  // The ledger: one run, continued after each crash, whose counts equal the target's.
  await assertContinuedLedger(pgCrashHub(schema, table), tmp.dir, plan.length, rows);
}

describe("postgres crash recovery", () => {
  it("a PG → PG run killed with SIGKILL in the middle of COPY writes, or in their COMMIT, ends, once continued, with every row once and identical", () =>
    // Into `dst`, whose audit trigger keeps the direct COPY off: each chunk is COPYed into the staging table, then
    // upserted.
    killedAndContinued("dst", [
      { loads: 0, at: "copy" },
      { loads: 3, at: "commit" },
      { loads: 7, at: "copy" },
      { loads: 12, at: "commit" },
      { loads: 16, at: "copy" },
    ]));

  it("a PG → PG run killed with SIGKILL in the middle of a direct COPY into the target, or in its commit, ends, once continued, with every row once and identical", () =>
    // Into `dst_direct`: each chunk of new keys is COPYed straight into the table (the kills at "copy" land only in
    // such a COPY); a chunk committed but not recorded at a kill is found there, and upserted.
    killedAndContinued("dst_direct", [
      { loads: 2, at: "copy" },
      { loads: 6, at: "commit" },
      { loads: 11, at: "copy" },
      { loads: 15, at: "commit" },
    ]));
});

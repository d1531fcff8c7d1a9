import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Engine } from "../../src/engine/engine.ts";
import { continuedRun, tempDir } from "../support/fixtures.ts";
import { pgCrashApps, pgCrashHub, pgCrashSetupSql, pgCrashUrl } from "../support/pg-crash-hub.ts";

const child = fileURLToPath(new URL("../support/pg-crash-child.ts", import.meta.url));
const schema = `franca_pgcrash_${randomBytes(5).toString("hex")}`;
const apps = pgCrashApps(schema);
const rows = 5000; // 20 chunks of 250 in one go; more, smaller ones here (each resume starts slow again)

let db: pg.Client;

interface Progress {
  loads: number;
  running: boolean;
}

/** Reads the store the child writes, from a separate connection, as an operator's dashboard would. */
function progressOf(storeFile: string): Progress | undefined {
  const store = new DatabaseSync(storeFile, { readOnly: true, timeout: 1000 });
  try {
    const run = store.prepare("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1").get() as
      | { id: number; status: string }
      | undefined;
    if (run === undefined) return undefined;
    const loads = (
      store.prepare("SELECT count(*) AS n FROM chunk_loads WHERE run_id = ? AND failed = 0").get(run.id) as {
        n: number;
      }
    ).n;
    return { loads, running: run.status === "running" };
  } finally {
    store.close();
  }
}

/** Whether the child's target connection is, right now, copying a chunk into its staging table. */
async function copyingNow(): Promise<boolean> {
  const { rows: found } = await db.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = $1 AND state = 'active' AND query LIKE 'COPY pg\\_temp.franca\\_copy\\_%'`,
    [apps.target],
  );
  return found[0].n > 0;
}

/** Starts the child and SIGKILLs it when it is copying rows into the target after `loads` persisted loads. */
async function runUntil(dir: string, loads: number | undefined): Promise<{ killed: boolean; code: number | null }> {
  const process_: ChildProcess = spawn(process.execPath, [child], {
    env: { ...process.env, FRANCA_CRASH_DIR: dir, FRANCA_CRASH_SCHEMA: schema, FRANCA_LOG_LEVEL: "silent" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => process_.on("exit", (code) => resolve(code)));
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  const storeFile = join(dir, ".franca", "franca.db");
  while (!ended && loads !== undefined) {
    if (await copyingNow()) {
      let progress: Progress | undefined;
      try {
        progress = progressOf(storeFile);
      } catch {
        // the store is being created
      }
      if (progress?.running === true && progress.loads >= loads && (await copyingNow())) {
        process_.kill("SIGKILL");
        await exited;
        return { killed: true, code: null };
      }
    }
    await sleep(2);
  }
  return { killed: false, code: await exited };
}

/** Every column as PostgreSQL's own text, so that source and target compare exactly. */
const asText = (table: string) =>
  db.query(
    `SELECT id::text, name::text, amount::text, updated_at::text, doc::text, tags::text FROM ${schema}.${table} ORDER BY id`,
  );

before(async () => {
  db = new pg.Client({ connectionString: pgCrashUrl });
  await db.connect();
  for (const sql of pgCrashSetupSql(schema, rows)) await db.query(sql);
});

after(async () => {
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

describe("postgres crash recovery", () => {
  it("a PG → PG run killed with SIGKILL in the middle of COPY writes ends, once continued, with every row once and identical", async () => {
    using tmp = tempDir();
    let kills = 0;
    for (const loads of [0, 3, 7, 12, 16]) {
      const outcome = await runUntil(tmp.dir, loads);
      if (outcome.killed) kills++;
      else assert.equal(outcome.code, 0, `the run ended on its own before the kill after ${loads} loads`);
    }
    const last = await runUntil(tmp.dir, undefined);
    assert.equal(last.code, 0, "the continued run succeeded");
    assert.ok(kills >= 4, `the child was killed ${kills} times`);

    // The killed children's connections are gone from the server: nothing of theirs runs on (a COPY read held by
    // back-pressure included). The server notices a closed socket on its own; wait for it.
    for (;;) {
      const { rows: left } = await db.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name IN ($1, $2)",
        [apps.source, apps.target],
      );
      if (left[0].n === 0) break;
      await sleep(20);
    }

    // The target: every row exactly once, every value identical to the source's.
    const target = await asText("dst");
    assert.equal(target.rows.length, rows);
    assert.equal(new Set(target.rows.map((row) => row.id)).size, rows);
    assert.deepEqual(target.rows, (await asText("src")).rows);
    // Chunks committed in the target but not yet recorded by the engine were written again, idempotently.
    const { rows: writes } = await db.query(`SELECT count(*)::int AS n FROM ${schema}.writes`);
    assert.ok(writes[0].n >= rows);

    // The ledger: one run, continued after each crash, whose counts equal the target's.
    await using engine = await Engine.open({ hub: pgCrashHub(schema), baseDir: tmp.dir });
    const run = await continuedRun(engine.store, "items", kills);
    const counts = await engine.store.counts(run.id);
    assert.equal(counts.extracted, rows);
    assert.equal(counts.targets["erp.Item"]?.loaded, rows);
    assert.equal(counts.targets["erp.Item"]?.failed, 0);
    assert.equal(counts.targets["erp.Item"]?.quarantined, 0);
    const ledger = await engine.store.records(run.id, { status: "loaded", limit: rows + 10 });
    assert.equal(ledger.length, rows);
    assert.deepEqual(await engine.store.getCursor("items"), run.cursorTo);
  });
});

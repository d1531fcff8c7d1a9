import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Engine } from "../../src/engine/engine.ts";
import { crashHub } from "../support/crash-hub.ts";
import { continuedRun, createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";

const child = fileURLToPath(new URL("../support/crash-child.ts", import.meta.url));
const rows = 5000; // 20 chunks of 250

interface Progress {
  chunks: number;
  loads: number;
  extractDone: number;
  running: number;
  /** Process id of the run's owner. */
  pid: number;
}

/** Reads the store the child writes, from a separate connection, as an operator's dashboard would. */
function progressOf(storeFile: string): Progress {
  const db = new DatabaseSync(storeFile, { readOnly: true, timeout: 1000 });
  try {
    const run = db.prepare("SELECT id, extract_done, status, owner FROM runs ORDER BY id DESC LIMIT 1").get() as
      | { id: number; extract_done: number; status: string; owner: string | null }
      | undefined;
    if (run === undefined) return { chunks: 0, loads: 0, extractDone: 0, running: 0, pid: 0 };
    const chunks = (db.prepare("SELECT count(*) AS n FROM chunks WHERE run_id = ?").get(run.id) as { n: number }).n;
    const loads = (
      db.prepare("SELECT count(*) AS n FROM chunk_loads WHERE run_id = ? AND failed = 0").get(run.id) as { n: number }
    ).n;
    const pid = Number((run.owner ?? "").split(":")[1] ?? 0);
    return { chunks, loads, extractDone: run.extract_done, running: run.status === "running" ? 1 : 0, pid };
  } finally {
    db.close();
  }
}

/** Starts the child and SIGKILLs it as soon as `when` holds; resolves with how it ended. */
async function runUntil(
  dir: string,
  when: (progress: Progress) => boolean,
): Promise<{ killed: boolean; code: number | null }> {
  const process_: ChildProcess = spawn(process.execPath, [child], {
    env: { ...process.env, FRANCA_CRASH_DIR: dir, FRANCA_LOG_LEVEL: "silent" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => process_.on("exit", (code) => resolve(code)));
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  const storeFile = join(dir, ".franca", "franca.db");
  while (!ended) {
    let progress: Progress | undefined;
    try {
      progress = progressOf(storeFile);
    } catch {
      // the store does not exist yet, or is being created
    }
    // a kill point applies to this child's run only: after a kill, the dead child's run still reads as running
    // until the next child has taken it over
    if (progress !== undefined && progress.pid === process_.pid && when(progress)) {
      process_.kill("SIGKILL");
      await exited;
      return { killed: true, code: null };
    }
    await sleep(3);
  }
  return { killed: false, code: await exited };
}

describe("crash recovery", () => {
  it("a run killed with SIGKILL at several points ends, once continued, with every record exactly once", async () => {
    using tmp = tempDir();
    createCustomerSource(join(tmp.dir, "crm.db"), { rows });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    // every write that reached the target, to show that records were written again after crashes, idempotently
    target.exec("CREATE TABLE writes (code TEXT)");
    target.exec("CREATE TRIGGER audit_insert AFTER INSERT ON clients BEGIN INSERT INTO writes VALUES (new.code); END");
    target.exec("CREATE TRIGGER audit_update AFTER UPDATE ON clients BEGIN INSERT INTO writes VALUES (new.code); END");

    const killPoints: { name: string; when: (p: Progress) => boolean }[] = [
      { name: "during extraction", when: (p) => p.chunks >= 2 && p.running === 1 },
      { name: "in the middle of loading", when: (p) => p.loads >= 5 && p.running === 1 },
      { name: "later in loading", when: (p) => p.loads >= 11 && p.running === 1 },
      { name: "after extraction finished", when: (p) => p.extractDone === 1 && p.loads >= 14 && p.running === 1 },
      { name: "near the end", when: (p) => p.loads >= 19 && p.running === 1 },
    ];
    let kills = 0;
    for (const point of killPoints) {
      const outcome = await runUntil(tmp.dir, point.when);
      if (outcome.killed) kills++;
      else assert.equal(outcome.code, 0, `the run ended on its own before the kill point '${point.name}'`);
    }
    const last = await runUntil(tmp.dir, () => false);
    assert.equal(last.code, 0, "the continued run succeeded");
    assert.ok(kills >= 4, `the child was killed ${kills} times`);

    // the target: every record exactly once
    const codes = target
      .prepare("SELECT code FROM clients")
      .all()
      .map((row) => Number(row.code));
    assert.equal(codes.length, rows);
    assert.equal(new Set(codes).size, rows);
    const writes = (target.prepare("SELECT count(*) AS n FROM writes").get() as { n: number }).n;
    assert.ok(writes >= rows);

    // the ledger: one run, continued after each crash, whose counts equal the target's
    await using engine = await Engine.open({ hub: crashHub(tmp.dir), baseDir: tmp.dir });
    const run = await continuedRun(engine.store, "customers", kills);
    const counts = await engine.store.counts(run.id);
    assert.equal(counts.extracted, rows);
    assert.equal(counts.canonical, rows);
    assert.equal(counts.targets["erp.Customer"]?.loaded, rows);
    assert.equal(counts.targets["erp.Customer"]?.failed, 0);
    const ledger = await engine.store.records(run.id, { status: "loaded", limit: rows + 10 });
    assert.equal(ledger.length, rows);
    assert.deepEqual(await engine.store.getCursor("customers"), run.cursorTo);
  });
});

/**
 * The crash tests of a PostgreSQL source: their child process (pg-crash-child.ts), what they read of the store it
 * writes (a SQLite file), from connections of their own, as an operator's dashboard would, and what they check of it
 * once the run has ended.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import type { Hub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { continuedRun } from "./fixtures.ts";
import type { MariaCrashTarget, PgCrashTarget } from "./pg-crash-hub.ts";

const child = fileURLToPath(new URL("./pg-crash-child.ts", import.meta.url));

/** A child process running (or continuing) the flow once: `exited` resolves to its exit code, `ended` tells. */
export interface CrashChild {
  process: ChildProcess;
  exited: Promise<number | null>;
  ended(): boolean;
}

/** Starts the child: the flow `items` of `pgCrashHub(schema, target)`, its store in `dir`. */
export function startCrashChild(dir: string, schema: string, target: PgCrashTarget | MariaCrashTarget): CrashChild {
  const process_ = spawn(process.execPath, [child], {
    env: {
      ...process.env,
      FRANCA_CRASH_DIR: dir,
      FRANCA_CRASH_SCHEMA: schema,
      ...(typeof target === "string" ? { FRANCA_CRASH_TABLE: target } : { FRANCA_CRASH_MARIA: target.maria }),
      FRANCA_LOG_LEVEL: "silent",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  let ended = false;
  const exited = new Promise<number | null>((resolve) =>
    process_.on("exit", (code) => {
      ended = true;
      resolve(code);
    }),
  );
  return { process: process_, exited, ended: () => ended };
}

export const storeFileOf = (dir: string): string => join(dir, ".franca", "franca.db");

export interface Progress {
  loads: number;
  running: boolean;
}

/** The latest run's loads recorded so far, and whether it is running; undefined before the first run. */
export function progressOf(storeFile: string): Progress | undefined {
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

/**
 * What the ledger has of the flow's run: the keys it has as loaded, and how many records the chunk being loaded (the
 * first with no load recorded: one chunk is loaded at a time, in order) holds.
 */
export function ledgerOf(storeFile: string): { loaded: Set<string>; loading: number | undefined } {
  const store = new DatabaseSync(storeFile, { readOnly: true, timeout: 1000 });
  try {
    // CAST: the store keeps decimal integer keys as integers (store/sqlite/ledger-key.ts)
    const loaded = store.prepare("SELECT CAST(key AS TEXT) AS key FROM outcomes WHERE status = 'loaded'").all() as {
      key: string;
    }[];
    const loading = store
      .prepare(
        `SELECT records FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM chunk_loads l WHERE l.run_id = c.run_id AND l.seq = c.seq)
          ORDER BY seq LIMIT 1`,
      )
      .get() as { records: number } | undefined;
    return { loaded: new Set(loaded.map((row) => row.key)), loading: loading?.records };
  } finally {
    store.close();
  }
}

/**
 * The ledger of flow `items` once its run, killed `kills` times and continued after each, has ended: one run, whose
 * counts are `rows` extracted and loaded into `erp.Item`, none failed or quarantined, a loaded outcome per row, and
 * the flow's cursor at the run's end.
 */
export async function assertContinuedLedger(hub: Hub, dir: string, kills: number, rows: number): Promise<void> {
  await using engine = await Engine.open({ hub, baseDir: dir });
  const run = await continuedRun(engine.store, "items", kills);
  const counts = await engine.store.counts(run.id);
  assert.equal(counts.extracted, rows);
  assert.equal(counts.targets["erp.Item"]?.loaded, rows);
  assert.equal(counts.targets["erp.Item"]?.failed, 0);
  assert.equal(counts.targets["erp.Item"]?.quarantined, 0);
  const ledger = await engine.store.records(run.id, { status: "loaded", limit: rows + 10 });
  assert.equal(ledger.length, rows);
  assert.deepEqual(await engine.store.getCursor("items"), run.cursorTo);
}

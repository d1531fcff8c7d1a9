import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { RecordOutcome } from "../../core/record.ts";
import {
  type ChunkLoadRow,
  type ChunkRow,
  chunkStatesFromRows,
  loadOutcomeUpdate,
  type OutcomeRow,
  outcomeFromRow,
  outcomeValues,
  type ProblemCountRow,
  problemCount,
  problemOutcomeWhere,
  type RunRow,
  runFromRow,
  unchangedCount,
  unstagedOutcomesDelete,
  unstagedProblemsSql,
  voidChunksSql,
} from "../rows.ts";
import { refuseNewerSchema } from "../schema-version.ts";
import { StagingFiles } from "../staging-files.ts";
import type {
  ChunkState,
  FinishRun,
  LoadedHash,
  LoadResult,
  NewRun,
  RecordQuery,
  RunCounts,
  RunRecord,
  StagedValue,
  Store,
} from "../types.ts";
import { keyText, ledgerKey, ledgerKeyJson, ledgerKeysJson } from "./ledger-key.ts";
import { latestVersion, migrations } from "./migrations.ts";

/** Where a store file keeps its staged chunks: `<file>.staging/` (a temporary directory for an in-memory store). */
export function stagingDir(file: string): string {
  return file === ":memory:" ? mkdtempSync(join(tmpdir(), "franca-staging-")) : `${file}.staging`;
}

/**
 * A chunk's load result as saveLoad's statements take it: its per-record columns as JSON texts, which SQLite reads
 * with json_each, and its hashes as one run of bytes when they can be (`hashColumns`). Made on the caller's thread
 * (ThreadedSqliteStore): the store's thread then receives a few strings and bytes instead of two strings a record
 * (cloned one by one), and has less to allocate and collect.
 */
export interface EncodedLoad {
  /** The loaded keys (`detailed`: [key, target id, deferred hash] triples), or none. */
  loaded?: string;
  detailed: boolean;
  loadedCount: number;
  /** [key, hash] pairs to make current now (not deferred), or none. */
  hashes?: string;
  /**
   * Instead of `hashes` when every hash has the same length in ASCII (content hashes do) and `loaded` is keys (not
   * detailed): the hashes one after the other, the i-th for the i-th key of `loaded`, each `width` bytes.
   */
  hashRun?: { bytes: Uint8Array; width: number };
  unchanged?: string;
  unchangedCount: number;
  problems: RecordOutcome[];
  attempts: number;
}

/** SQLite's larger of a nullable column and a value (its max() of a NULL is NULL), for loadOutcomeUpdate. */
const greatest = (column: string, value: string): string => `max(coalesce(${column}, -1), ${value})`;

// A chunk's loaded and unchanged records carry no error: one set-based statement per chunk instead of a call per
// record. The common case (no target ids, hashes current at once) passes keys only, which SQLite parses fastest.
// ?1 run, ?2 target, ?3 status, ?4 seq (also loaded_seq), ?5 attempts, ?6 the keys. An outcome of an earlier chunk
// than the one recorded does not replace it (loadOutcomeUpdate).
const upsertKeys = `INSERT INTO outcomes (run_id, key, target, status, seq, attempts, loaded_seq)
  SELECT ?1, value, ?2, ?3, ?4, ?5, ?4 FROM json_each(?6) WHERE true
  ON CONFLICT (run_id, key, target) DO UPDATE SET ${loadOutcomeUpdate("outcomes", false, greatest)}`;
const upsertDetailed = `INSERT INTO outcomes (run_id, key, target, status, seq, attempts, target_id, hash, loaded_seq)
  SELECT ?1, value ->> 0, ?2, ?3, ?4, ?5, value ->> 1, value ->> 2, ?4 FROM json_each(?6) WHERE true
  ON CONFLICT (run_id, key, target) DO UPDATE SET ${loadOutcomeUpdate("outcomes", true, greatest)}`;

/**
 * The hashes to make current, as saveEncodedLoad reads them. Hashes of one width in ASCII go as one run of bytes that
 * SQLite slices by the key's index: `[key, hash]` pairs as JSON cost an array a record to build and stringify, and
 * SQLite a JSON parse and two extractions a record (`npm run bench:ledger`, 1,000,000 records, two pairs alternated:
 * 1.63 and 1.80 CPU-s against 2.00 and 2.18).
 */
function hashColumns(
  loaded: readonly string[],
  hashes: readonly string[],
  detailed: boolean,
): Pick<EncodedLoad, "hashes" | "hashRun"> {
  const width = hashes[0]?.length ?? 0;
  // `loaded` of a detailed load is triples, not keys: the hashes are sliced by the index of a key in a list of keys
  let same = !detailed && width > 0 && hashes.length === loaded.length;
  for (let i = 1; same && i < hashes.length; i++) same = (hashes[i] as string).length === width;
  if (same) {
    const text = hashes.join("");
    // one byte a character in UTF-8 exactly when every character is ASCII
    if (Buffer.byteLength(text) === text.length) {
      // a buffer of its own (not a view into Buffer's pool, which would be copied whole to the store's thread)
      const bytes = Buffer.allocUnsafeSlow(text.length);
      bytes.write(text, "latin1");
      return { hashRun: { bytes: new Uint8Array(bytes.buffer, 0, text.length), width } };
    }
  }
  return { hashes: JSON.stringify(loaded.map((key, i) => [ledgerKeyJson(key), hashes[i]])) };
}

export function encodeLoad(result: LoadResult): EncodedLoad {
  const { loaded, hashes, targetIds, unchanged } = result;
  const defer = result.deferHashes === true;
  const detailed = defer || targetIds?.some((id) => id !== null) === true;
  const some = loaded.length > 0;
  return {
    ...(some
      ? {
          loaded: detailed
            ? JSON.stringify(
                loaded.map((key, i) => [ledgerKeyJson(key), targetIds?.[i] ?? null, defer ? hashes[i] : null]),
              )
            : ledgerKeysJson(loaded),
        }
      : {}),
    detailed,
    loadedCount: loaded.length,
    ...(some && !defer ? hashColumns(loaded, hashes, detailed) : {}),
    ...(unchanged.length > 0 ? { unchanged: ledgerKeysJson(unchanged) } : {}),
    unchangedCount: unchangedCount(result),
    problems: result.problems,
    attempts: result.attempts,
  };
}

export interface SqliteStoreOptions {
  /**
   * `normal` (default) survives any process crash (kill -9): WAL commits are atomic, and fsync happens at
   * checkpoints. `full` also survives power loss at the cost of one fsync per chunk transaction.
   */
  synchronous?: "normal" | "full";
}

/**
 * The embedded store: one SQLite file (WAL mode). node:sqlite is synchronous, so every method is one short
 * transaction of about a chunk, and the event loop keeps serving network calls between them.
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly location: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #staging: StagingFiles;

  constructor(file: string, options: SqliteStoreOptions = {}) {
    this.location = file;
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    this.#staging = new StagingFiles(stagingDir(file), { fsync: options.synchronous === "full" });
    this.#db = new DatabaseSync(file, { timeout: 10_000 });
    // wal_autocheckpoint: a checkpoint every 4,000 pages (16 MB of WAL) rather than SQLite's 1,000. The ledger's
    // B-trees take a chunk's keys at a few places, so the same pages are written again chunk after chunk; checkpointed
    // less often, each is copied to the database file fewer times: ~10 % less CPU per record (bench:ledger,
    // docs/benchmarks.md). Readers are unaffected; a crash replays at most 16 MB. cache_size: 4 MB of pages.
    // 16 MB held ~14 MB more (10,000,000 rows PostgreSQL → PostgreSQL: peak 296 MB against 282) for no CPU
    // beyond the spread (the store's thread there 22.4 CPU-s against 23.1; PostgreSQL → MariaDB 21.0–21.2
    // against 20.4–20.6).
    this.#db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"};
      PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -4096; PRAGMA wal_autocheckpoint = 4000;`);
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #all<T>(sql: string, ...params: unknown[]): T[] {
    return this.#prepare(sql).all(...(params as SQLInputValue[])) as T[];
  }

  #get<T>(sql: string, ...params: unknown[]): T | undefined {
    return this.#prepare(sql).get(...(params as SQLInputValue[])) as T | undefined;
  }

  #run(sql: string, ...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint } {
    return this.#prepare(sql).run(...(params as SQLInputValue[]));
  }

  /** Runs `work` in one write transaction (BEGIN IMMEDIATE: takes the write lock up front, no upgrade deadlock). */
  #transaction<T>(work: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /**
   * Applies the migrations the file lacks, all in one write transaction: processes opening it at once apply each
   * migration once (the others wait on the lock, then find them applied). A file written by a newer Franca (a
   * version this code does not know) is refused: since version 2 keeps keys differently (ledger-key.ts), an older
   * writer would file them apart from a newer one's.
   */
  async migrate(): Promise<void> {
    this.#transaction(() => {
      this.#db.exec(
        "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
      );
      const applied = new Set(
        this.#all<{ version: number }>("SELECT version FROM migrations").map((row) => row.version),
      );
      refuseNewerSchema(this.location, applied, latestVersion);
      for (const migration of migrations) {
        if (applied.has(migration.version)) continue;
        this.#db.exec(migration.sql);
        this.#run(
          "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
          migration.version,
          migration.name,
          Date.now(),
        );
      }
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    this.#staging.close();
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
  }

  #runOrThrow(id: number): RunRecord {
    const row = this.#get<RunRow>("SELECT * FROM runs WHERE id = ?", id);
    if (row === undefined) throw new FrancaError(ErrorCode.RunNotFound, `run ${id} does not exist`);
    return runFromRow(row);
  }

  #assertFlowFree(flow: string, except?: number): void {
    const running = this.#get<{ id: number; owner: string }>(
      "SELECT id, owner FROM runs WHERE flow = ? AND status = 'running' AND id IS NOT ? LIMIT 1",
      flow,
      except ?? null,
    );
    if (running !== undefined) {
      throw new FrancaError(
        ErrorCode.RunLocked,
        `flow '${flow}' already has run ${running.id} in progress (owner ${running.owner}); wait for it or resume it when it stops`,
      );
    }
  }

  async startRun(run: NewRun): Promise<RunRecord> {
    return this.#transaction(() => {
      this.#assertFlowFree(run.flow);
      const result = this.#run(
        `INSERT INTO runs (flow, kind, trigger, status, parent_id, targets, started_at, heartbeat_at, owner, cursor_from, stats)
         VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)`,
        run.flow,
        run.kind,
        run.trigger,
        run.parentId ?? null,
        JSON.stringify(run.targets),
        run.now,
        run.now,
        run.owner,
        run.cursorFrom === undefined ? null : JSON.stringify(run.cursorFrom),
        JSON.stringify(run.stats ?? {}),
      );
      return this.#runOrThrow(Number(result.lastInsertRowid));
    });
  }

  async claimRun(id: number, owner: string, now: number): Promise<RunRecord> {
    return this.#transaction(() => {
      const run = this.#runOrThrow(id);
      if (run.status === "running") {
        throw new FrancaError(
          ErrorCode.RunLocked,
          `run ${id} is running (owner ${run.owner ?? "unknown"}): wait for it to end; if its process died, it is marked abandoned once its heartbeat is older than staleAfterMs, and can be resumed then`,
        );
      }
      if (run.status !== "failed" && run.status !== "cancelled") {
        throw new FrancaError(
          ErrorCode.RunNotResumable,
          `run ${id} has status ${run.status}: only failed or cancelled runs resume`,
        );
      }
      this.#assertFlowFree(run.flow, id);
      if (run.kind === "flow") {
        const newer = this.#get<{ id: number }>(
          "SELECT id FROM runs WHERE flow = ? AND kind = 'flow' AND id > ? ORDER BY id LIMIT 1",
          run.flow,
          id,
        );
        if (newer !== undefined) {
          throw new FrancaError(
            ErrorCode.RunNotResumable,
            `run ${id} was superseded by run ${newer.id} of the same flow, which read its data again; resuming it could load older data over newer`,
          );
        }
      }
      // `resumedAt`: where this execution's time starts (finishRecord), not the run's first start
      const stats = { ...run.stats, resumes: Number(run.stats.resumes ?? 0) + 1, resumedAt: now };
      this.#run(
        "UPDATE runs SET status = 'running', owner = ?, heartbeat_at = ?, ended_at = NULL, error = NULL, stats = ? WHERE id = ?",
        owner,
        now,
        JSON.stringify(stats),
        id,
      );
      return this.#runOrThrow(id);
    });
  }

  async heartbeat(id: number, owner: string, now: number): Promise<boolean> {
    const result = this.#run(
      "UPDATE runs SET heartbeat_at = ? WHERE id = ? AND owner = ? AND status = 'running'",
      now,
      id,
      owner,
    );
    return Number(result.changes) === 1;
  }

  async reapAbandoned(
    staleBefore: number,
    deadOwners: readonly string[],
    now: number,
    liveOwners: readonly string[] = [],
  ): Promise<number[]> {
    const dead = new Set(deadOwners);
    const live = new Set(liveOwners);
    return this.#transaction(() => {
      const running = this.#all<{ id: number; owner: string | null; heartbeat_at: number | null }>(
        "SELECT id, owner, heartbeat_at FROM runs WHERE status = 'running'",
      );
      const reaped: number[] = [];
      for (const run of running) {
        const stale = (run.heartbeat_at ?? 0) < staleBefore && !(run.owner !== null && live.has(run.owner));
        if (!stale && !(run.owner !== null && dead.has(run.owner))) continue;
        const error = {
          code: ErrorCode.RunAbandoned,
          message: `the process running it (${run.owner ?? "unknown"}) stopped without finishing; last heartbeat ${
            run.heartbeat_at === null ? "never" : new Date(run.heartbeat_at).toISOString()
          }. Resume it with 'franca resume ${run.id}'.`,
        };
        this.#run(
          "UPDATE runs SET status = 'failed', ended_at = ?, error = ? WHERE id = ? AND status = 'running'",
          now,
          JSON.stringify(error),
          run.id,
        );
        reaped.push(run.id);
      }
      return reaped;
    });
  }

  async markExtractDone(id: number): Promise<void> {
    this.#run("UPDATE runs SET extract_done = 1 WHERE id = ?", id);
  }

  async updateStats(id: number, stats: Record<string, unknown>): Promise<void> {
    this.#run("UPDATE runs SET stats = ? WHERE id = ?", JSON.stringify(stats), id);
  }

  async finishRun(id: number, owner: string, finish: FinishRun, now: number): Promise<void> {
    this.#transaction(() => {
      const run = this.#runOrThrow(id);
      if (run.owner !== owner) {
        throw new FrancaError(ErrorCode.RunLocked, `run ${id} was taken over by ${run.owner ?? "another process"}`);
      }
      this.#run(
        "UPDATE runs SET status = ?, ended_at = ?, error = ?, stats = ?, cursor_to = ? WHERE id = ?",
        finish.status,
        now,
        finish.error === undefined ? null : JSON.stringify(finish.error),
        JSON.stringify(finish.stats ?? run.stats),
        finish.cursor === undefined ? null : JSON.stringify(finish.cursor),
        id,
      );
      if (finish.cursor !== undefined) {
        this.#run(
          `INSERT INTO cursors (flow, position, run_id, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (flow) DO UPDATE SET position = excluded.position, run_id = excluded.run_id, updated_at = excluded.updated_at`,
          run.flow,
          JSON.stringify(finish.cursor),
          id,
          now,
        );
      }
      if (finish.profile !== undefined) {
        this.#run(
          "INSERT INTO profiles (flow, profile, run_id) VALUES (?, ?, ?) ON CONFLICT (flow) DO UPDATE SET profile = excluded.profile, run_id = excluded.run_id",
          run.flow,
          JSON.stringify(finish.profile),
          id,
        );
      }
    });
  }

  async getRun(id: number): Promise<RunRecord | undefined> {
    const row = this.#get<RunRow>("SELECT * FROM runs WHERE id = ?", id);
    return row === undefined ? undefined : runFromRow(row);
  }

  async listRuns(
    filter: { flow?: string; limit?: number; status?: string; parentId?: number } = {},
  ): Promise<RunRecord[]> {
    return this.#all<RunRow>(
      `SELECT * FROM runs WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR parent_id = ?3)
       ORDER BY id DESC LIMIT ?4`,
      filter.flow ?? null,
      filter.status ?? null,
      filter.parentId ?? null,
      filter.limit ?? 20,
    ).map(runFromRow);
  }

  async latestUnfinished(flow: string): Promise<RunRecord | undefined> {
    const row = this.#get<RunRow>("SELECT * FROM runs WHERE flow = ? AND kind = 'flow' ORDER BY id DESC LIMIT 1", flow);
    if (row === undefined) return undefined;
    const run = runFromRow(row);
    return run.status === "failed" || run.status === "cancelled" ? run : undefined;
  }

  async stage(runId: number, seq: number, stage: "extracted" | "canonical", data: StagedValue): Promise<void> {
    this.#staging.write(runId, seq, stage, data);
  }

  async readStaged(runId: number, seq: number, stage: "extracted" | "canonical"): Promise<string | undefined> {
    return this.#staging.read(runId, seq, stage);
  }

  async discardStaged(runId: number): Promise<void> {
    this.#staging.discard(runId);
  }

  async releaseStaged(runId: number, seq: number): Promise<void> {
    await this.#staging.release(runId, seq);
  }

  async saveExtracted(runId: number, seq: number, position: unknown, records: number, now: number): Promise<void> {
    this.#transaction(() => {
      this.#run(
        "INSERT INTO chunks (run_id, seq, position, records, extracted_at) VALUES (?, ?, ?, ?, ?)",
        runId,
        seq,
        position === undefined ? null : JSON.stringify(position),
        records,
        now,
      );
    });
  }

  async saveCanonical(
    runId: number,
    seq: number,
    canonical: number,
    problems: readonly RecordOutcome[],
    now: number,
    again = false,
  ): Promise<void> {
    let failed = 0;
    for (const problem of problems) if (problem.status === "failed") failed++;
    this.#transaction(() => {
      const previous = this.#get<{ canonical: number | null }>(
        "SELECT canonical FROM chunks WHERE run_id = ? AND seq = ?",
        runId,
        seq,
      );
      if (previous?.canonical !== null && previous?.canonical !== undefined) {
        // transformed again (a resume after transient failures): its earlier outcomes and loads are void
        for (const statement of voidChunksSql("", "?1", "seq = ?2")) this.#run(statement, runId, seq);
      } else if (again) {
        // a transform that stopped before it staged (the failure budget crossed) left its problems so far: void too
        this.#run(unstagedOutcomesDelete("", "?", "?", " INDEXED BY outcomes_problems"), runId, seq);
      }
      this.#insertOutcomes(runId, problems);
      this.#run(
        "UPDATE chunks SET canonical = ?, quarantined = ?, failed = ?, transformed_at = ? WHERE run_id = ? AND seq = ?",
        canonical,
        problems.length - failed,
        failed,
        now,
        runId,
        seq,
      );
    });
  }

  async saveOutcomes(runId: number, outcomes: readonly RecordOutcome[]): Promise<void> {
    this.#transaction(() => this.#insertOutcomes(runId, outcomes));
  }

  #insertOutcomes(runId: number, outcomes: readonly RecordOutcome[]): void {
    if (outcomes.length === 0) return;
    const sql = `INSERT INTO outcomes (run_id, key, target, status, seq, attempts, code, error_class, message, path, target_id, source_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (run_id, key, target) DO UPDATE SET status = excluded.status, seq = excluded.seq, attempts = excluded.attempts,
        code = excluded.code, error_class = excluded.error_class, message = excluded.message, path = excluded.path,
        target_id = excluded.target_id, source_id = excluded.source_id
      WHERE ${problemOutcomeWhere("outcomes")}`;
    for (const outcome of outcomes) {
      const values = outcomeValues(runId, outcome);
      values[1] = ledgerKey(outcome.key);
      this.#run(sql, ...values);
    }
  }

  async saveLoad(runId: number, seq: number, target: string, result: LoadResult, now: number): Promise<void> {
    return this.saveEncodedLoad(runId, seq, target, encodeLoad(result), now);
  }

  /** saveLoad of a result encoded by `encodeLoad` (on the caller's thread: see ThreadedSqliteStore). */
  async saveEncodedLoad(runId: number, seq: number, target: string, load: EncodedLoad, now: number): Promise<void> {
    this.#transaction(() => {
      if (load.loaded !== undefined) {
        const sql = load.detailed ? upsertDetailed : upsertKeys;
        this.#run(sql, runId, target, "loaded", seq, load.attempts, load.loaded);
      }
      if (load.hashRun !== undefined) {
        // the i-th key's hash is bytes [i·width, (i+1)·width) of the run (json_each's key is the index)
        this.#run(
          `INSERT INTO target_hashes (target, key, hash, run_id)
           SELECT ?1, value, CAST(substr(?2, key * ?3 + 1, ?3) AS TEXT), ?4 FROM json_each(?5) WHERE true
           ON CONFLICT (target, key) DO UPDATE SET hash = excluded.hash, run_id = excluded.run_id`,
          target,
          load.hashRun.bytes,
          load.hashRun.width,
          runId,
          load.loaded as string,
        );
      }
      if (load.hashes !== undefined) {
        this.#run(
          `INSERT INTO target_hashes (target, key, hash, run_id) SELECT ?, value ->> 0, value ->> 1, ? FROM json_each(?) WHERE true
           ON CONFLICT (target, key) DO UPDATE SET hash = excluded.hash, run_id = excluded.run_id`,
          target,
          runId,
          load.hashes,
        );
      }
      if (load.unchanged !== undefined) {
        this.#run(upsertKeys, runId, target, "unchanged", seq, load.attempts, load.unchanged);
      }
      this.#insertOutcomes(runId, load.problems);
      let quarantined = 0;
      let failed = 0;
      for (const problem of load.problems) {
        if (problem.status === "failed") failed++;
        else quarantined++;
      }
      this.#run(
        `INSERT INTO chunk_loads (run_id, target, seq, loaded, unchanged, quarantined, failed, attempts, loaded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (run_id, target, seq) DO UPDATE SET loaded = excluded.loaded, unchanged = excluded.unchanged,
           quarantined = excluded.quarantined, failed = excluded.failed, attempts = chunk_loads.attempts + excluded.attempts,
           loaded_at = excluded.loaded_at`,
        runId,
        target,
        seq,
        load.loadedCount,
        load.unchangedCount,
        quarantined,
        failed,
        load.attempts,
        now,
      );
    });
  }

  async commitHashes(runId: number, target: string): Promise<void> {
    this.#transaction(() => {
      this.#run(
        `INSERT INTO target_hashes (target, key, hash, run_id)
         SELECT target, key, hash, run_id FROM outcomes WHERE run_id = ? AND target = ? AND status = 'loaded' AND hash IS NOT NULL
         ON CONFLICT (target, key) DO UPDATE SET hash = excluded.hash, run_id = excluded.run_id`,
        runId,
        target,
      );
    });
  }

  async chunkStates(runId: number): Promise<ChunkState[]> {
    const chunks = this.#all<ChunkRow>(
      "SELECT seq, position, records, canonical, quarantined, failed, transformed_at FROM chunks WHERE run_id = ? ORDER BY seq",
      runId,
    );
    const loads = this.#all<ChunkLoadRow>(
      "SELECT seq, target, quarantined, failed FROM chunk_loads WHERE run_id = ?",
      runId,
    );
    return chunkStatesFromRows(chunks, loads);
  }

  async getCursor(flow: string): Promise<unknown | undefined> {
    const row = this.#get<{ position: string }>("SELECT position FROM cursors WHERE flow = ?", flow);
    return row === undefined ? undefined : JSON.parse(row.position);
  }

  async getProfile(flow: string): Promise<Record<string, string> | undefined> {
    const row = this.#get<{ profile: string }>("SELECT profile FROM profiles WHERE flow = ?", flow);
    return row === undefined ? undefined : JSON.parse(row.profile);
  }

  async getHashes(target: string, keys: readonly string[]): Promise<Map<string, LoadedHash>> {
    const found = new Map<string, LoadedHash>();
    if (keys.length === 0) return found;
    // json_each drives the join (CROSS JOIN fixes the order), so each key is one primary-key probe
    const rows = this.#all<{ key: string; hash: string; run_id: number }>(
      `SELECT ${keyText("h.key")}, h.hash, h.run_id FROM json_each(?) AS k CROSS JOIN target_hashes AS h
       WHERE h.target = ? AND h.key = k.value`,
      ledgerKeysJson(keys),
      target,
    );
    for (const row of rows) found.set(row.key, { hash: row.hash, runId: row.run_id });
    return found;
  }

  async hasHashes(target: string): Promise<boolean> {
    return this.#get("SELECT 1 AS found FROM target_hashes WHERE target = ? LIMIT 1", target) !== undefined;
  }

  async laterInTarget(runId: number, target: string, seq: number, keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    // one primary-key probe (run_id, key, target) per key, as getHashes
    const rows = this.#all<{ key: string }>(
      `SELECT ${keyText("o.key")} FROM json_each(?) AS k CROSS JOIN outcomes AS o
       WHERE o.run_id = ? AND o.key = k.value AND o.target = ? AND o.loaded_seq > ?`,
      ledgerKeysJson(keys),
      runId,
      target,
      seq,
    );
    return new Set(rows.map((row) => row.key));
  }

  async cacheGet(lookup: string, keys: readonly string[], now: number): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>();
    if (keys.length === 0) return found;
    const rows = this.#all<{ key: string; value: string }>(
      `SELECT c.key, c.value FROM json_each(?) AS k CROSS JOIN lookup_cache AS c
       WHERE c.lookup = ? AND c.key = k.value AND c.expires_at > ?`,
      JSON.stringify(keys),
      lookup,
      now,
    );
    for (const row of rows) found.set(row.key, JSON.parse(row.value));
    return found;
  }

  async cacheSet(
    lookup: string,
    entries: readonly { key: string; value: unknown }[],
    expiresAt: number,
    now: number,
  ): Promise<void> {
    if (entries.length === 0) return;
    this.#transaction(() => {
      this.#run(
        `INSERT INTO lookup_cache (lookup, key, value, expires_at) SELECT ?, value ->> 0, value ->> 1, ? FROM json_each(?) WHERE true
         ON CONFLICT (lookup, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
        lookup,
        expiresAt,
        JSON.stringify(entries.map((entry) => [entry.key, JSON.stringify(entry.value ?? null)])),
      );
      this.#run("DELETE FROM lookup_cache WHERE lookup = ? AND expires_at <= ?", lookup, now);
    });
  }

  async counts(runId: number): Promise<RunCounts> {
    const totals = this.#get<{
      chunks: number;
      extracted: number | null;
      canonical: number | null;
      quarantined: number | null;
      failed: number | null;
    }>(
      `SELECT count(*) AS chunks, sum(records) AS extracted, sum(canonical) AS canonical, sum(quarantined) AS quarantined,
         sum(failed) AS failed FROM chunks WHERE run_id = ?`,
      runId,
    );
    const targets: RunCounts["targets"] = {};
    const run = this.#get<{ targets: string }>("SELECT targets FROM runs WHERE id = ?", runId);
    for (const name of run === undefined ? [] : (JSON.parse(run.targets) as string[])) {
      targets[name] = { loaded: 0, unchanged: 0, quarantined: 0, failed: 0 };
    }
    for (const row of this.#all<{
      target: string;
      loaded: number;
      unchanged: number;
      quarantined: number;
      failed: number;
    }>(
      `SELECT target, sum(loaded) AS loaded, sum(unchanged) AS unchanged, sum(quarantined) AS quarantined, sum(failed) AS failed
       FROM chunk_loads WHERE run_id = ? GROUP BY target`,
      runId,
    )) {
      targets[row.target] = {
        loaded: row.loaded,
        unchanged: row.unchanged,
        quarantined: row.quarantined,
        failed: row.failed,
      };
    }
    const unstaged = this.#all<ProblemCountRow>(unstagedProblemsSql("outcomes", "chunks", "?"), runId);
    return {
      chunks: totals?.chunks ?? 0,
      extracted: totals?.extracted ?? 0,
      canonical: totals?.canonical ?? 0,
      quarantined: (totals?.quarantined ?? 0) + problemCount(unstaged, "quarantined"),
      failed: (totals?.failed ?? 0) + problemCount(unstaged, "failed"),
      targets,
    };
  }

  async records(runId: number, query: RecordQuery = {}): Promise<RecordOutcome[]> {
    const target = query.target === undefined ? null : query.target;
    const key = query.key === undefined ? null : ledgerKey(query.key);
    return this.#all<OutcomeRow>(
      `SELECT ${keyText("key")}, target, status, seq, attempts, code, error_class, message, path, target_id, source_id
       FROM outcomes WHERE run_id = ? AND (? IS NULL OR status = ?) AND (? IS NULL OR key = ?) AND (? IS NULL OR target = ?)
       ORDER BY seq, key, target LIMIT ? OFFSET ?`,
      runId,
      query.status ?? null,
      query.status ?? null,
      key,
      key,
      target,
      target,
      query.limit ?? 1000,
      query.offset ?? 0,
    ).map(outcomeFromRow);
  }
}

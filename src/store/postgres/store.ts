import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { isTransient, sqlState } from "../../connectors/postgres/errors.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { RecordOutcome } from "../../core/record.ts";
import { redactSecrets } from "../../core/redact.ts";
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
import { stagedText } from "../staging-files.ts";
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
import { latestVersion, migrations } from "./migrations.ts";

export interface PostgresStoreOptions {
  /**
   * Schema holding the store's tables, created by `migrate` when missing. Default: the URL's `schema` parameter
   * (`postgres://host/db?schema=hub1`), else `franca`. Several hubs can share a database, one schema each.
   */
  schema?: string;
  /** Connections in the store's pool (default 10). Each worker process has its own pool. */
  poolSize?: number;
}

/** A store bound to one open transaction (see `PostgresStore.withTransaction`), with the connection it runs on. */
export type PostgresTransaction = PostgresStore & { readonly client: pg.PoolClient };

export const defaultSchema = "franca";

type Sql = <R extends pg.QueryResultRow = Record<string, unknown>>(
  text: string,
  values?: readonly unknown[],
) => Promise<pg.QueryResult<R>>;

/** What a transaction-bound store shares with the store it came from. */
interface Binding {
  pool: pg.Pool;
  client: pg.PoolClient;
  schema: string;
  location: string;
  /** False once the transaction committed or rolled back: a kept reference can no longer be used. */
  state: { open: boolean; savepoints: number };
}

const bindingKey = Symbol("franca.postgres.binding");
type InternalOptions = PostgresStoreOptions & { [bindingKey]?: Binding };

// Advisory lock classes (the first key of the two-key form), so that Franca's locks never meet another
// application's: 'FRNM' (migrations of a schema), 'FRNR' (starting or claiming runs of a flow), 'FRNF' (finishing
// a run).
const migrateLockClass = 0x46524e4d;
const flowLockClass = 0x46524e52;
export const finishLockClass = 0x46524e46;

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * SQL: the pending load `p` (a row of `<s>.pending_loads`) is still pending. A row whose load is recorded with no
 * failure is not, whatever it says: a worker of a Franca from before that table (a rolling upgrade) loads without
 * ending the row, or transforms without giving it a digest.
 */
function stillPending(s: string, p: string): string {
  return `NOT EXISTS (SELECT 1 FROM ${s}.chunk_loads l
    WHERE l.run_id = ${p}.run_id AND l.target = ${p}.target AND l.seq = ${p}.seq AND l.failed = 0)`;
}

/** A load's outcome upsert's SET list (loadOutcomeUpdate), the existing row named `o`. */
const loadUpdate = loadOutcomeUpdate("o", true, (column, value) => `GREATEST(${column}, ${value})`);

/** A run failed as abandoned (its owner died; no worker was alive): the distributed executor takes it up again. */
function isAbandoned(run: RunRecord): boolean {
  return run.status === "failed" && run.error?.code === ErrorCode.RunAbandoned;
}

/** The connection string pg gets (our `schema` parameter removed) and the location shown (password removed). */
function parseUrl(
  url: string,
  schemaOption: string | undefined,
): { connectionString: string; location: string; schema: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FrancaError(ErrorCode.ConfigInvalid, `store: '${redactSecrets(url)}' is not a PostgreSQL URL`, {
      setting: "store",
    });
  }
  const schema = schemaOption ?? parsed.searchParams.get("schema") ?? defaultSchema;
  if (!identifier.test(schema)) {
    throw new FrancaError(
      ErrorCode.ConfigInvalid,
      `store: schema '${schema}' is not a plain identifier (letters, digits, underscores; not starting with a digit)`,
      { setting: "store" },
    );
  }
  parsed.searchParams.delete("schema");
  const connectionString = parsed.toString();
  parsed.password = "";
  parsed.searchParams.set("schema", schema);
  return { connectionString, location: parsed.toString(), schema };
}

const num = (value: number | string | null | undefined): number =>
  value === null || value === undefined ? 0 : Number(value);

/**
 * The shared store: every table in one PostgreSQL schema, so that several worker processes (on several machines)
 * run a hub's flows against the same state. Same tables, versions and semantics as the SQLite store; staged chunks
 * live in the `staged` table instead of files.
 *
 * - Every state-changing method is one transaction (often one statement), about a chunk in size.
 * - `startRun` and `claimRun` take a transaction-scoped advisory lock on the flow, so two processes starting the
 *   same flow at once are serialized: exactly one gets the run, the other RUN_LOCKED. A unique partial index
 *   (one running run per flow) makes a second running run impossible even so.
 * - A chunk's ledger rows are written set-based: one statement per chunk and target, the keys passed as one JSON
 *   array, inserted in key order (so that concurrent writers of overlapping keys lock them in the same order).
 * - `withTransaction` runs several calls (and the caller's own statements, e.g. a job queue's) in one transaction.
 *
 * BIGINT columns (ids, epoch-millisecond timestamps, sums) come back from pg as strings and are converted; pg's
 * type parsers are left as they are, since the connection of a transaction is handed to other libraries.
 */
export class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  /** The URL without its password, with the schema as `?schema=`. */
  readonly location: string;
  /** The schema holding the store's tables. */
  readonly schema: string;
  /**
   * The connection of the transaction this store is bound to (inside `withTransaction` only): statements run on it
   * commit or roll back with the store's.
   */
  readonly client?: pg.PoolClient;
  readonly #pool: pg.Pool;
  readonly #binding: Binding | undefined;
  /** The quoted schema, to prefix table names. */
  readonly #s: string;
  #closed = false;

  constructor(url: string, options: PostgresStoreOptions = {}) {
    const binding = (options as InternalOptions)[bindingKey];
    if (binding !== undefined) {
      this.#binding = binding;
      this.#pool = binding.pool;
      this.schema = binding.schema;
      this.location = binding.location;
      this.client = binding.client;
    } else {
      const parsed = parseUrl(url, options.schema);
      this.schema = parsed.schema;
      this.location = parsed.location;
      this.#pool = new pg.Pool({
        connectionString: parsed.connectionString,
        application_name: "franca",
        max: options.poolSize ?? 10,
        allowExitOnIdle: true,
      });
      // An idle connection that breaks (server restart) is dropped by the pool; without a listener it would crash
      // the process. The next statement reports the problem to its caller.
      this.#pool.on("error", () => {});
    }
    this.#s = `"${this.schema}"`;
  }

  // --- statements and transactions

  /** A store error from a pg error: transient when a later attempt can succeed, the URL's password never shown. */
  #error(error: unknown): FrancaError {
    if (error instanceof FrancaError) return error;
    const raw = error as { message?: unknown; constraint?: unknown; detail?: unknown };
    if (sqlState(error) === "23505" && raw.constraint === "runs_one_running") {
      const flow = typeof raw.detail === "string" ? /=\((.*)\) already exists/.exec(raw.detail)?.[1] : undefined;
      return new FrancaError(
        ErrorCode.RunLocked,
        `flow '${flow ?? "?"}' already has a run in progress (started by another process)`,
        { cause: error },
      );
    }
    const message = typeof raw?.message === "string" ? raw.message : String(error);
    return new FrancaError(ErrorCode.StoreError, `PostgreSQL store ${this.location}: ${redactSecrets(message)}`, {
      errorClass: isTransient(error) ? "transient" : "permanent",
      cause: error,
    });
  }

  #sqlOn(executor: pg.Pool | pg.PoolClient): Sql {
    return async <R extends pg.QueryResultRow>(text: string, values?: readonly unknown[]) => {
      try {
        return await executor.query<R>(text, values as unknown[] | undefined);
      } catch (error) {
        throw this.#error(error);
      }
    };
  }

  #assertOpen(): void {
    if (this.#binding !== undefined && !this.#binding.state.open) {
      throw new FrancaError(
        ErrorCode.StoreError,
        "this transaction's store was used after its transaction ended; use the store given to withTransaction only inside it",
      );
    }
    if (this.#closed) throw new FrancaError(ErrorCode.StoreError, `the store ${this.location} is closed`);
  }

  /** One statement: on the transaction's connection when bound, else on any pooled one (autocommit). */
  #sql: Sql = (text, values) => {
    this.#assertOpen();
    return this.#sqlOn(this.#binding?.client ?? this.#pool)(text, values);
  };

  async #rows<R extends pg.QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    return (await this.#sql<R>(text, values)).rows;
  }

  /**
   * Runs `work` in one transaction: its own (BEGIN … COMMIT on a pooled connection), or the one this store is
   * bound to, which commits or rolls back as a whole.
   */
  async #transaction<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    this.#assertOpen();
    if (this.#binding !== undefined) return work(this.#sqlOn(this.#binding.client));
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw this.#error(error);
    }
    const sql = this.#sqlOn(client);
    let broken = false;
    try {
      await sql("BEGIN");
      const result = await work(sql);
      await sql("COMMIT");
      return result;
    } catch (error) {
      // a connection that cannot even roll back is closed rather than reused
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Runs several store calls, and statements of the caller's own, in ONE PostgreSQL transaction on one connection:
   * all of them commit together when `work` resolves, none does when it throws (the error is rethrown).
   *
   * `work` gets a store bound to the transaction: its methods run on the transaction's connection and open no
   * transaction of their own. `tx.client` is that connection (a `pg.PoolClient`), and `tx.executeSql` runs a
   * statement on it, which makes `tx` a database handle for libraries that take one. A job queue can so record a
   * chunk's outcome, its staged output and the next job atomically:
   *
   * ```ts
   * await store.withTransaction(async (tx) => {
   *   await tx.stage(runId, seq, "canonical", data);
   *   await tx.saveCanonical(runId, seq, count, problems, Date.now());
   *   await boss.send("load-chunk", { runId, seq }, { db: tx }); // pg-boss: the job commits with the chunk
   * });
   * ```
   *
   * Rules:
   * - Use `tx` only inside `work` (it refuses calls afterwards), and do not release or end `tx.client`.
   * - A failed SQL statement aborts the whole transaction: let the error propagate. Franca's own refusals
   *   (RUN_LOCKED, RUN_NOT_RESUMABLE, RUN_NOT_FOUND) happen before a method writes anything and leave the
   *   transaction usable.
   * - Locks taken inside (the flow lock of `startRun` and `claimRun`, the rows written) are held until the end of the
   *   transaction: keep it short, about a chunk.
   * - Nested `tx.withTransaction(...)` runs in a savepoint: its error rolls back its own statements only.
   * - `close` and `migrate` on `tx` act on the transaction only (`close` does nothing: the parent owns the pool).
   */
  async withTransaction<T>(work: (tx: PostgresTransaction) => Promise<T>): Promise<T> {
    this.#assertOpen();
    if (this.#binding !== undefined) {
      const sql = this.#sqlOn(this.#binding.client);
      const savepoint = `franca_savepoint_${++this.#binding.state.savepoints}`;
      await sql(`SAVEPOINT ${savepoint}`);
      try {
        const result = await work(this as PostgresTransaction);
        await sql(`RELEASE SAVEPOINT ${savepoint}`);
        return result;
      } catch (error) {
        // a failed rollback leaves the transaction aborted: the enclosing one then fails, with its own error
        await sql(`ROLLBACK TO SAVEPOINT ${savepoint}`).catch(() => {});
        throw error;
      }
    }
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw this.#error(error);
    }
    const state = { open: true, savepoints: 0 };
    const tx = new PostgresStore(this.location, {
      [bindingKey]: { pool: this.#pool, client, schema: this.schema, location: this.location, state },
    } as InternalOptions) as PostgresTransaction;
    const sql = this.#sqlOn(client);
    let broken = false;
    try {
      await sql("BEGIN");
      const result = await work(tx);
      await sql("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      state.open = false;
      client.release(broken);
    }
  }

  /**
   * Runs one statement on the store's connection (the transaction's, inside `withTransaction`), pg-boss's
   * `IDatabase` shape: `boss.send(name, data, { db: tx })` sends a job in the transaction.
   */
  async executeSql(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }> {
    const result = await this.#sql(text, values);
    return { rows: result.rows };
  }

  // --- schema

  /**
   * Creates the schema and applies the migrations it lacks, in one transaction under an advisory lock on the schema:
   * processes starting at once apply each migration once, the others wait and find it applied. A schema written by
   * a newer Franca (a version this code does not know) is refused.
   */
  async migrate(): Promise<void> {
    const s = this.#s;
    await this.#transaction(async (sql) => {
      await sql("SELECT pg_advisory_xact_lock($1, hashtext($2))", [migrateLockClass, this.schema]);
      // checked before creating: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists
      const exists = await sql("SELECT 1 FROM pg_namespace WHERE nspname = $1", [this.schema]);
      if (exists.rowCount === 0) await sql(`CREATE SCHEMA ${s}`);
      await sql(
        `CREATE TABLE IF NOT EXISTS ${s}.migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
      );
      const applied = new Set(
        (await sql<{ version: number }>(`SELECT version FROM ${s}.migrations`)).rows.map((row) => row.version),
      );
      refuseNewerSchema(this.location, applied, latestVersion);
      for (const migration of migrations) {
        if (applied.has(migration.version)) continue;
        await sql(migration.sql(s));
        await sql(`INSERT INTO ${s}.migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [
          migration.version,
          migration.name,
          Date.now(),
        ]);
      }
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    if (this.#binding !== undefined || this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  // --- runs

  async #runOrThrow(sql: Sql, id: number, forUpdate = false): Promise<RunRecord> {
    const { rows } = await sql<RunRow>(`SELECT * FROM ${this.#s}.runs WHERE id = $1${forUpdate ? " FOR UPDATE" : ""}`, [
      id,
    ]);
    if (rows[0] === undefined) throw new FrancaError(ErrorCode.RunNotFound, `run ${id} does not exist`);
    return runFromRow(rows[0]);
  }

  /** Serializes, until the end of the transaction, everything that starts or claims a run of this flow. */
  async #lockFlow(sql: Sql, flow: string): Promise<void> {
    await sql("SELECT pg_advisory_xact_lock($1, hashtext($2))", [flowLockClass, `${this.schema}/${flow}`]);
  }

  async #assertFlowFree(sql: Sql, flow: string, except?: number): Promise<void> {
    const { rows } = await sql<{ id: string; owner: string | null }>(
      `SELECT id, owner FROM ${this.#s}.runs WHERE flow = $1 AND status = 'running' AND id IS DISTINCT FROM $2::bigint LIMIT 1`,
      [flow, except ?? null],
    );
    const running = rows[0];
    if (running !== undefined) {
      throw new FrancaError(
        ErrorCode.RunLocked,
        `flow '${flow}' already has run ${running.id} in progress (owner ${running.owner}); wait for it or resume it when it stops`,
      );
    }
  }

  async startRun(run: NewRun): Promise<RunRecord> {
    return this.#transaction(async (sql) => {
      await this.#lockFlow(sql, run.flow);
      await this.#assertFlowFree(sql, run.flow);
      const { rows } = await sql<RunRow>(
        `INSERT INTO ${this.#s}.runs (flow, kind, trigger, status, parent_id, targets, started_at, heartbeat_at, owner, cursor_from, stats)
         VALUES ($1, $2, $3, 'running', $4, $5, $6, $6, $7, $8, $9) RETURNING *`,
        [
          run.flow,
          run.kind,
          run.trigger,
          run.parentId ?? null,
          JSON.stringify(run.targets),
          run.now,
          run.owner,
          run.cursorFrom === undefined ? null : JSON.stringify(run.cursorFrom),
          JSON.stringify(run.stats ?? {}),
        ],
      );
      const started = runFromRow(rows[0] as RunRow);
      if (run.kind === "flow") {
        // the flow's earlier runs are superseded now (claimRun refuses them): their loads left pending never run
        await sql(
          `DELETE FROM ${this.#s}.pending_loads p USING ${this.#s}.runs r
            WHERE p.run_id = r.id AND r.flow = $1 AND r.kind = 'flow' AND r.id < $2`,
          [run.flow, started.id],
        );
      }
      return started;
    });
  }

  async claimRun(
    id: number,
    owner: string,
    now: number,
    options: { onlyAbandoned?: boolean } = {},
  ): Promise<RunRecord> {
    return this.#transaction(async (sql) => {
      await this.#lockFlow(sql, (await this.#runOrThrow(sql, id)).flow);
      const run = await this.#runOrThrow(sql, id, true);
      if (run.status === "running") {
        throw new FrancaError(
          ErrorCode.RunLocked,
          `run ${id} is running (owner ${run.owner ?? "unknown"}): wait for it to end; if its process died, it is marked abandoned once its heartbeat is older than staleAfterMs, and can be resumed then`,
        );
      }
      if (options.onlyAbandoned === true && !isAbandoned(run)) {
        throw new FrancaError(ErrorCode.RunNotResumable, `run ${id} is no longer abandoned: it ended ${run.status}`);
      }
      if (run.status !== "failed" && run.status !== "cancelled") {
        throw new FrancaError(
          ErrorCode.RunNotResumable,
          `run ${id} has status ${run.status}: only failed or cancelled runs resume`,
        );
      }
      await this.#assertFlowFree(sql, run.flow, id);
      const newer = await this.#newerRun(sql, run);
      if (newer !== undefined) {
        throw new FrancaError(
          ErrorCode.RunNotResumable,
          `run ${id} was superseded by run ${newer} of the same flow, which read its data again; resuming it could load older data over newer`,
        );
      }
      // `resumedAt`: where this execution's time starts (finishRecord), not the run's first start
      const stats = { ...run.stats, resumes: Number(run.stats.resumes ?? 0) + 1, resumedAt: now };
      const { rows } = await sql<RunRow>(
        `UPDATE ${this.#s}.runs SET status = 'running', owner = $1, heartbeat_at = $2, ended_at = NULL, error = NULL, stats = $3
         WHERE id = $4 RETURNING *`,
        [owner, now, JSON.stringify(stats), id],
      );
      return runFromRow(rows[0] as RunRow);
    });
  }

  async heartbeat(id: number, owner: string, now: number): Promise<boolean> {
    const result = await this.#sql(
      `UPDATE ${this.#s}.runs SET heartbeat_at = $1 WHERE id = $2 AND owner = $3 AND status = 'running'`,
      [now, id, owner],
    );
    return result.rowCount === 1;
  }

  async reapAbandoned(
    staleBefore: number,
    deadOwners: readonly string[],
    now: number,
    liveOwners: readonly string[] = [],
  ): Promise<number[]> {
    return this.#transaction(async (sql) => {
      // FOR UPDATE: a concurrent reaper waits, then finds the run no longer running; a heartbeat waits, then finds
      // the run no longer its owner's
      const { rows } = await sql<{ id: string; owner: string | null; heartbeat_at: string | null }>(
        `SELECT id, owner, heartbeat_at FROM ${this.#s}.runs
         WHERE status = 'running'
           AND ((COALESCE(heartbeat_at, 0) < $1 AND NOT COALESCE(owner = ANY($3::text[]), false))
                OR owner = ANY($2::text[]))
         ORDER BY id FOR UPDATE`,
        [staleBefore, deadOwners, liveOwners],
      );
      if (rows.length === 0) return [];
      const ids = rows.map((row) => Number(row.id));
      const errors = rows.map((run) =>
        JSON.stringify({
          code: ErrorCode.RunAbandoned,
          message: `the process running it (${run.owner ?? "unknown"}) stopped without finishing; last heartbeat ${
            run.heartbeat_at === null ? "never" : new Date(Number(run.heartbeat_at)).toISOString()
          }. Resume it with 'franca resume ${run.id}'.`,
        }),
      );
      await sql(
        `UPDATE ${this.#s}.runs AS r SET status = 'failed', ended_at = $1, error = u.error
         FROM unnest($2::bigint[], $3::text[]) AS u(id, error) WHERE r.id = u.id AND r.status = 'running'`,
        [now, ids, errors],
      );
      return ids;
    });
  }

  async markExtractDone(id: number): Promise<void> {
    await this.#sql(`UPDATE ${this.#s}.runs SET extract_done = true WHERE id = $1`, [id]);
  }

  async updateStats(id: number, stats: Record<string, unknown>): Promise<void> {
    await this.#sql(`UPDATE ${this.#s}.runs SET stats = $1 WHERE id = $2`, [JSON.stringify(stats), id]);
  }

  async finishRun(id: number, owner: string, finish: FinishRun, now: number): Promise<void> {
    const s = this.#s;
    await this.#transaction(async (sql) => {
      const run = await this.#runOrThrow(sql, id, true);
      if (run.owner !== owner) {
        throw new FrancaError(ErrorCode.RunLocked, `run ${id} was taken over by ${run.owner ?? "another process"}`);
      }
      await sql(
        `UPDATE ${s}.runs SET status = $1, ended_at = $2, error = $3, stats = $4, cursor_to = $5 WHERE id = $6`,
        [
          finish.status,
          now,
          finish.error === undefined ? null : JSON.stringify(finish.error),
          JSON.stringify(finish.stats ?? run.stats),
          finish.cursor === undefined ? null : JSON.stringify(finish.cursor),
          id,
        ],
      );
      if (finish.cursor !== undefined) {
        await sql(
          `INSERT INTO ${s}.cursors (flow, position, run_id, updated_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (flow) DO UPDATE SET position = excluded.position, run_id = excluded.run_id, updated_at = excluded.updated_at`,
          [run.flow, JSON.stringify(finish.cursor), id, now],
        );
      }
      if (finish.profile !== undefined) {
        await sql(
          `INSERT INTO ${s}.profiles (flow, profile, run_id) VALUES ($1, $2, $3)
           ON CONFLICT (flow) DO UPDATE SET profile = excluded.profile, run_id = excluded.run_id`,
          [run.flow, JSON.stringify(finish.profile), id],
        );
      }
    });
  }

  async getRun(id: number): Promise<RunRecord | undefined> {
    const [row] = await this.#rows<RunRow>(`SELECT * FROM ${this.#s}.runs WHERE id = $1`, [id]);
    return row === undefined ? undefined : runFromRow(row);
  }

  async listRuns(
    filter: { flow?: string; limit?: number; status?: string; parentId?: number } = {},
  ): Promise<RunRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.flow !== undefined) where.push(`flow = $${values.push(filter.flow)}`);
    if (filter.status !== undefined) where.push(`status = $${values.push(filter.status)}`);
    if (filter.parentId !== undefined) where.push(`parent_id = $${values.push(filter.parentId)}`);
    const rows = await this.#rows<RunRow>(
      `SELECT * FROM ${this.#s}.runs ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`}
       ORDER BY id DESC LIMIT $${values.push(filter.limit ?? 20)}`,
      values,
    );
    return rows.map(runFromRow);
  }

  async latestUnfinished(flow: string): Promise<RunRecord | undefined> {
    const [row] = await this.#rows<RunRow>(
      `SELECT * FROM ${this.#s}.runs WHERE flow = $1 AND kind = 'flow' ORDER BY id DESC LIMIT 1`,
      [flow],
    );
    if (row === undefined) return undefined;
    const run = runFromRow(row);
    return run.status === "failed" || run.status === "cancelled" ? run : undefined;
  }

  // --- staging

  async stage(runId: number, seq: number, stage: "extracted" | "canonical", data: StagedValue): Promise<void> {
    // staged again (a chunk redone after a crash or a transient failure): the latest copy wins
    await this.#sql(
      `INSERT INTO ${this.#s}.staged (run_id, seq, stage, data) VALUES ($1, $2, $3, $4)
       ON CONFLICT (run_id, stage, seq) DO UPDATE SET data = excluded.data`,
      [runId, seq, stage, stagedText(data)],
    );
  }

  async readStaged(runId: number, seq: number, stage: "extracted" | "canonical"): Promise<string | undefined> {
    const [row] = await this.#rows<{ data: string }>(
      `SELECT data FROM ${this.#s}.staged WHERE run_id = $1 AND stage = $2 AND seq = $3`,
      [runId, stage, seq],
    );
    return row?.data;
  }

  async discardStaged(runId: number): Promise<void> {
    await this.#sql(`DELETE FROM ${this.#s}.staged WHERE run_id = $1`, [runId]);
  }

  async releaseStaged(runId: number, seq: number): Promise<void> {
    await this.#sql(
      `DELETE FROM ${this.#s}.staged WHERE run_id = $1 AND stage IN ('extracted', 'canonical') AND seq = $2`,
      [runId, seq],
    );
  }

  // --- chunks and the ledger

  async saveExtracted(runId: number, seq: number, position: unknown, records: number, now: number): Promise<void> {
    await this.#sql(
      `INSERT INTO ${this.#s}.chunks (run_id, seq, position, records, extracted_at) VALUES ($1, $2, $3, $4, $5)`,
      [runId, seq, position === undefined ? null : JSON.stringify(position), records, now],
    );
  }

  async saveCanonical(
    runId: number,
    seq: number,
    canonical: number,
    problems: readonly RecordOutcome[],
    now: number,
    again = false,
  ): Promise<void> {
    const s = this.#s;
    let failed = 0;
    for (const problem of problems) if (problem.status === "failed") failed++;
    await this.#transaction(async (sql) => {
      const { rows } = await sql<{ canonical: number | null }>(
        `SELECT canonical FROM ${s}.chunks WHERE run_id = $1 AND seq = $2 FOR UPDATE`,
        [runId, seq],
      );
      if (rows[0] !== undefined && rows[0].canonical !== null) {
        // transformed again (a resume after transient failures): its earlier outcomes and loads are void
        await this.#voidLoads(sql, runId, [seq]);
      } else if (again) {
        // a transform that stopped before it staged (the failure budget crossed) left its problems so far: void too
        await sql(unstagedOutcomesDelete(`${s}.`, "$1", "$2"), [runId, seq]);
      }
      await this.#insertOutcomes(sql, runId, problems);
      await sql(
        `UPDATE ${s}.chunks SET canonical = $1, quarantined = $2, failed = $3, transformed_at = $4 WHERE run_id = $5 AND seq = $6`,
        [canonical, problems.length - failed, failed, now, runId, seq],
      );
    });
  }

  /**
   * Voids the outcomes and loads of a run's chunks `seqs` (transformed again, or reopened to be: voidChunksSql).
   * The outcomes are locked in key order first, the order in which loads and transforms write theirs, so that a load
   * or transform of another chunk sharing keys, committing meanwhile, cannot wait on this while this waits on it.
   */
  async #voidLoads(sql: Sql, runId: number, seqs: readonly number[]): Promise<void> {
    const s = this.#s;
    await sql(
      `SELECT 1 FROM ${s}.outcomes WHERE run_id = $1 AND seq = ANY($2::int[]) ORDER BY key, target FOR UPDATE`,
      [runId, seqs],
    );
    for (const statement of voidChunksSql(`${s}.`, "$1", "seq = ANY($2::int[])")) await sql(statement, [runId, seqs]);
  }

  async saveOutcomes(runId: number, outcomes: readonly RecordOutcome[]): Promise<void> {
    this.#assertOpen();
    await this.#insertOutcomes(this.#sql, runId, outcomes);
  }

  /**
   * Upserts outcomes in one statement: rows passed as one JSON array of arrays (rows.ts's column order), the same
   * key and target given twice resolved as SQLite does (the later one wins), inserted in key order.
   */
  async #insertOutcomes(sql: Sql, runId: number, outcomes: readonly RecordOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    const rows = outcomes.map((outcome) => {
      const values = outcomeValues(runId, outcome).slice(1);
      // PostgreSQL text cannot hold NUL, which a message quoting a source value may: in the free-text columns (code
      // to source id) it becomes U+FFFD; a key holding NUL is refused by the server
      for (let i = 5; i < values.length; i++) {
        const value = values[i];
        if (typeof value === "string" && value.includes("\0")) values[i] = value.replaceAll("\0", "\uFFFD");
      }
      return values;
    });
    await sql(
      `INSERT INTO ${this.#s}.outcomes AS o (run_id, key, target, status, seq, attempts, code, error_class, message, path, target_id, source_id)
       SELECT DISTINCT ON (v ->> 0, v ->> 1) $1::bigint, v ->> 0, v ->> 1, v ->> 2, (v ->> 3)::integer, (v ->> 4)::integer,
         v ->> 5, v ->> 6, v ->> 7, v ->> 8, v ->> 9, v ->> 10
       FROM json_array_elements($2::json) WITH ORDINALITY AS e(v, ord)
       ORDER BY v ->> 0, v ->> 1, ord DESC
       ON CONFLICT (run_id, key, target) DO UPDATE SET status = excluded.status, seq = excluded.seq,
         attempts = excluded.attempts, code = excluded.code, error_class = excluded.error_class, message = excluded.message,
         path = excluded.path, target_id = excluded.target_id, source_id = excluded.source_id
       WHERE ${problemOutcomeWhere("o")}`,
      [runId, JSON.stringify(rows)],
    );
  }

  async saveLoad(runId: number, seq: number, target: string, result: LoadResult, now: number): Promise<void> {
    const s = this.#s;
    const defer = result.deferHashes === true;
    let quarantined = 0;
    let failed = 0;
    for (const problem of result.problems) {
      if (problem.status === "failed") failed++;
      else quarantined++;
    }
    // One statement for the loaded and unchanged keys (outcomes, current hashes) and the chunk's load state. A key
    // given twice resolves as in SQLite, which runs loaded then unchanged: the unchanged one wins.
    const values = [
      runId,
      target,
      seq,
      result.attempts,
      JSON.stringify(result.loaded.map((key, i) => [key, result.targetIds?.[i] ?? null, result.hashes[i]])),
      JSON.stringify(result.unchanged),
      defer,
      result.loaded.length,
      unchangedCount(result),
      quarantined,
      failed,
      now,
    ];
    const statement = `
      WITH input AS (
        SELECT e.v ->> 0 AS key, 'loaded' AS status, e.v ->> 1 AS target_id, e.v ->> 2 AS hash, 0 AS pass, e.ord
        FROM json_array_elements($5::json) WITH ORDINALITY AS e(v, ord)
        UNION ALL
        SELECT u.key, 'unchanged', NULL, NULL, 1, u.ord FROM json_array_elements_text($6::json) WITH ORDINALITY AS u(key, ord)
      ), current_hashes AS (
        INSERT INTO ${s}.target_hashes (target, key, hash, run_id)
        SELECT DISTINCT ON (key) $2::text, key, hash, $1::bigint FROM input WHERE pass = 0 AND NOT $7::boolean
        ORDER BY key, ord DESC
        ON CONFLICT (target, key) DO UPDATE SET hash = excluded.hash, run_id = excluded.run_id
      ), ledger AS (
        INSERT INTO ${s}.outcomes AS o (run_id, key, target, status, seq, attempts, target_id, hash, loaded_seq)
        SELECT DISTINCT ON (key) $1::bigint, key, $2::text, status, $3::integer, $4::integer, target_id,
          CASE WHEN $7::boolean THEN hash END, $3::integer
        FROM input ORDER BY key, pass DESC, ord DESC
        ON CONFLICT (run_id, key, target) DO UPDATE SET ${loadUpdate}
      )
      INSERT INTO ${s}.chunk_loads AS cl (run_id, target, seq, loaded, unchanged, quarantined, failed, attempts, loaded_at)
      VALUES ($1::bigint, $2::text, $3::integer, $8, $9, $10, $11, $4::integer, $12)
      ON CONFLICT (run_id, target, seq) DO UPDATE SET loaded = excluded.loaded, unchanged = excluded.unchanged,
        quarantined = excluded.quarantined, failed = excluded.failed, attempts = cl.attempts + excluded.attempts,
        loaded_at = excluded.loaded_at`;
    if (result.problems.length === 0) {
      this.#assertOpen();
      await this.#sql(statement, values);
      return;
    }
    await this.#transaction(async (sql) => {
      await sql(statement, values);
      // after the loaded and unchanged keys, as in SQLite: a problem wins over either
      await this.#insertOutcomes(sql, runId, result.problems);
    });
  }

  async commitHashes(runId: number, target: string): Promise<void> {
    const s = this.#s;
    await this.#sql(
      `INSERT INTO ${s}.target_hashes (target, key, hash, run_id)
       SELECT target, key, hash, run_id FROM ${s}.outcomes
       WHERE run_id = $1 AND target = $2 AND status = 'loaded' AND hash IS NOT NULL ORDER BY key
       ON CONFLICT (target, key) DO UPDATE SET hash = excluded.hash, run_id = excluded.run_id`,
      [runId, target],
    );
  }

  chunkStates(runId: number): Promise<ChunkState[]> {
    return this.#chunkStates(runId);
  }

  /** The states of a run's chunks in order, or of its chunk `seq` alone. */
  async #chunkStates(runId: number, seq?: number): Promise<ChunkState[]> {
    const only = seq === undefined ? "" : " AND seq = $2";
    const params = seq === undefined ? [runId] : [runId, seq];
    const chunks = await this.#rows<ChunkRow>(
      `SELECT seq, position, records, canonical, quarantined, failed, transformed_at FROM ${this.#s}.chunks WHERE run_id = $1${only} ORDER BY seq`,
      params,
    );
    if (chunks.length === 0) return [];
    const loads = await this.#rows<ChunkLoadRow>(
      `SELECT seq, target, quarantined, failed FROM ${this.#s}.chunk_loads WHERE run_id = $1${only}`,
      params,
    );
    return chunkStatesFromRows(chunks, loads);
  }

  /** One chunk's state: a distributed job asks for its own chunk, not for every chunk of the run. */
  async chunkState(runId: number, seq: number): Promise<ChunkState | undefined> {
    return (await this.#chunkStates(runId, seq))[0];
  }

  /**
   * Whether a chunk was transformed and loaded into every target with no record quarantined or failed: no resume or
   * replay reads its staged output then (`releaseStaged`). One statement, for a load job of the distributed executor.
   */
  async chunkLoadedClean(runId: number, seq: number, targets: readonly string[]): Promise<boolean> {
    const [row] = await this.#rows<{ clean: boolean }>(
      `SELECT c.canonical IS NOT NULL AND c.quarantined = 0 AND c.failed = 0 AND (
         SELECT count(*) FROM ${this.#s}.chunk_loads l
          WHERE l.run_id = c.run_id AND l.seq = c.seq AND l.quarantined = 0 AND l.failed = 0
            AND l.target = ANY($3::text[])
       ) = cardinality($3::text[]) AS clean
       FROM ${this.#s}.chunks c WHERE c.run_id = $1 AND c.seq = $2`,
      [runId, seq, targets],
    );
    return row?.clean === true;
  }

  // --- the order of a key's loads across workers (the distributed executor: engine/distributed/load-order.ts)

  /** A chunk just extracted will be loaded into each of `targets`: its loads are pending, its keys not known yet. */
  async expectLoads(runId: number, seq: number, targets: readonly string[]): Promise<void> {
    await this.#sql(
      `INSERT INTO ${this.#s}.pending_loads (run_id, target, seq)
       SELECT $1, target, $2 FROM unnest($3::text[]) AS t(target) ON CONFLICT DO NOTHING`,
      [runId, seq, targets],
    );
  }

  /**
   * A chunk transformed: the digest of its keys, for its pending loads into `targets` (pending again when it was
   * transformed anew, its earlier loads void).
   */
  async savePendingKeys(runId: number, seq: number, targets: readonly string[], digests: Uint8Array): Promise<void> {
    await this.#sql(
      `INSERT INTO ${this.#s}.pending_loads (run_id, target, seq, key_digests)
       SELECT $1, target, $2, $4 FROM unnest($3::text[]) AS t(target)
       ON CONFLICT (run_id, target, seq) DO UPDATE SET key_digests = excluded.key_digests`,
      [runId, seq, targets, Buffer.from(digests.buffer, digests.byteOffset, digests.byteLength)],
    );
  }

  /**
   * The run's chunks before `seq` whose load into `target` is pending, in order, with the digest of their keys (null:
   * not transformed yet; `stillPending`). Only pending loads have a row, so this reads the few in flight, not the
   * run's every chunk.
   */
  async pendingLoadsBefore(
    runId: number,
    target: string,
    seq: number,
  ): Promise<{ seq: number; digests: Uint8Array | null }[]> {
    const s = this.#s;
    const rows = await this.#rows<{ seq: number; key_digests: Buffer | null }>(
      `SELECT p.seq, p.key_digests FROM ${s}.pending_loads p
        WHERE p.run_id = $1 AND p.target = $2 AND p.seq < $3 AND ${stillPending(s, "p")}
        ORDER BY p.seq`,
      [runId, target, seq],
    );
    return rows.map((row) => ({ seq: row.seq, digests: row.key_digests }));
  }

  /**
   * Chunks transformed with records that failed, to be transformed again (a continued run): their earlier transform
   * and loads are void now (as their new transform's `saveCanonical` would make them), their staged records kept for
   * the load jobs of then still queued or running to find, which leave them (`transformedAt` no longer theirs, checked
   * again with the chunk's row locked as they commit). The chunks' rows are all locked first, in order, before any is
   * voided: a load of then committing holds its chunk's row while it writes outcomes another chunk may share keys with,
   * so locking and voiding chunk by chunk could wait on each other. Chunks never transformed (a transform the failure
   * policy stopped) or transformed cleanly since are left as they are. Returns the chunks reopened.
   */
  async reopenChunks(runId: number, seqs: readonly number[]): Promise<number[]> {
    if (seqs.length === 0) return [];
    const s = this.#s;
    return this.#transaction(async (sql) => {
      const { rows } = await sql<{ seq: number }>(
        `SELECT seq FROM ${s}.chunks WHERE run_id = $1 AND seq = ANY($2::int[]) ORDER BY seq FOR UPDATE`,
        [runId, seqs],
      );
      if (rows.length === 0) return [];
      const { rows: reopened } = await sql<{ seq: number }>(
        `SELECT seq FROM ${s}.chunks WHERE run_id = $1 AND seq = ANY($2::int[]) AND canonical IS NOT NULL AND failed > 0`,
        [runId, rows.map((row) => row.seq)],
      );
      const chunks = reopened.map((row) => row.seq);
      if (chunks.length === 0) return [];
      await this.#voidLoads(sql, runId, chunks);
      await sql(
        `UPDATE ${s}.chunks SET canonical = NULL, quarantined = 0, failed = 0, transformed_at = NULL
          WHERE run_id = $1 AND seq = ANY($2::int[])`,
        [runId, chunks],
      );
      return chunks;
    });
  }

  /**
   * Inside `withTransaction`: takes the lock on finishing run `runId` until the transaction ends, waiting while another
   * transaction holds it. Finishing a run holds it (of two finish jobs of a run at once, the second then finds the run
   * ended), and so does planning a continued run (a finish job waits until what the plan reopened reads as open).
   */
  async lockFinish(runId: number): Promise<void> {
    await this.#sql("SELECT pg_advisory_xact_lock($1, hashtext($2))", this.#finishLock(runId));
  }

  /** The finish lock's two keys (its class, and the schema and run as text): `$1, hashtext($2)`. */
  #finishLock(runId: number): [number, string] {
    return [finishLockClass, `${this.schema}/${runId}`];
  }

  /**
   * Ends run `id` early (failed, cancelled) if it is still running, holding its finish lock: a finish job that ended
   * it meanwhile (its file targets published, its cursor moved) is not overwritten, and one that comes after finds it
   * ended; nor when `unless`, asked in the transaction under the lock, holds. `finishOf` makes the end from the run's
   * chunk states as they are under the lock. Returns whether it ended the run.
   */
  async endRunning(
    id: number,
    owner: string,
    now: number,
    unless: ((tx: PostgresTransaction) => Promise<boolean>) | undefined,
    finishOf: (run: RunRecord, chunks: ChunkState[]) => FinishRun,
  ): Promise<boolean> {
    // The lock is tried, not waited for, with the transaction's connection given back between tries: jobs failing at
    // once must not hold the pool's connections while they wait, when the holder (a finish job) needs one of them.
    for (let pause = 5; ; pause = Math.min(100, pause * 2)) {
      const ended = await this.withTransaction(async (tx) => {
        const [lock] = await tx.#rows<{ locked: boolean }>(
          "SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS locked",
          this.#finishLock(id),
        );
        if (lock?.locked !== true) return undefined;
        const run = await tx.getRun(id);
        if (run === undefined) return false;
        // a run abandoned while no worker was alive is still to end (its next job would take it up again), unless a
        // newer run of its flow superseded it (its cursor is not to be written over the newer one's)
        if (run.status !== "running" && !(await tx.#toTakeUp(run))) return false;
        if (unless !== undefined && (await unless(tx))) return false;
        await tx.finishRun(id, owner, finishOf(run, await tx.chunkStates(id)), now);
        return true;
      });
      if (ended !== undefined) return ended;
      await sleep(pause);
    }
  }

  /**
   * Whether a load of the chunk into `target` is recorded and no longer pending: its job committed it (with or without
   * records that failed), and a retry of the job is not to write the chunk again. A load whose system failed stays
   * pending while its job is retried, and a continued run makes the loads it sends pending again.
   */
  async loadRecorded(runId: number, seq: number, target: string): Promise<boolean> {
    const s = this.#s;
    const [row] = await this.#rows<{ recorded: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ${s}.chunk_loads WHERE run_id = $1 AND seq = $2 AND target = $3)
          AND NOT EXISTS (SELECT 1 FROM ${s}.pending_loads WHERE run_id = $1 AND seq = $2 AND target = $3) AS recorded`,
      [runId, seq, target],
    );
    return row?.recorded === true;
  }

  /**
   * Inside `withTransaction`: whether the chunk's transform is still the one recorded at `transformedAt`, its row
   * locked against a new transform or a reopening until the transaction ends (a load job's commit of that transform's
   * load).
   */
  async stillTransformedAt(runId: number, seq: number, transformedAt: number): Promise<boolean> {
    const [row] = await this.#rows<{ transformed_at: string | null }>(
      `SELECT transformed_at FROM ${this.#s}.chunks WHERE run_id = $1 AND seq = $2 FOR SHARE`,
      [runId, seq],
    );
    return row !== undefined && row.transformed_at !== null && Number(row.transformed_at) === transformedAt;
  }

  /** A chunk's load job into `target` is done with it for good (loaded, or its problems recorded). */
  async loadDone(runId: number, seq: number, target: string): Promise<void> {
    await this.#sql(`DELETE FROM ${this.#s}.pending_loads WHERE run_id = $1 AND target = $2 AND seq = $3`, [
      runId,
      target,
      seq,
    ]);
  }

  /**
   * Whether a run has ended for good: not running, and not failed as abandoned (which a worker takes up again). In a
   * transaction (`withTransaction`) the run's row stays locked against a claim (claimRun locks it FOR UPDATE) until the
   * transaction ends, so that what is done there on the strength of the answer cannot race a continuation of the run.
   */
  async runEnded(runId: number): Promise<boolean> {
    const [row] = await this.#rows<RunRow>(`SELECT * FROM ${this.#s}.runs WHERE id = $1 FOR SHARE`, [runId]);
    if (row === undefined) return false;
    const run = runFromRow(row);
    return run.status !== "running" && !(await this.#toTakeUp(run));
  }

  /**
   * Whether a run that is not running is one a worker takes up again: failed as abandoned (no worker was alive), and
   * not superseded by a newer run of its flow (claimRun refuses that one).
   */
  async #toTakeUp(run: RunRecord): Promise<boolean> {
    return isAbandoned(run) && (await this.#newerRun(this.#sql, run)) === undefined;
  }

  /** The id of a newer run of a flow run's flow, which superseded it; undefined when there is none. */
  async #newerRun(sql: Sql, run: RunRecord): Promise<string | undefined> {
    if (run.kind !== "flow") return undefined;
    const { rows } = await sql<{ id: string }>(
      `SELECT id FROM ${this.#s}.runs WHERE flow = $1 AND kind = 'flow' AND id > $2 ORDER BY id LIMIT 1`,
      [run.flow, run.id],
    );
    return rows[0]?.id;
  }

  /**
   * Whether a running run has nothing left to do: its extraction done, every chunk transformed (its canonical records
   * staged) and loaded into every target, and no load still pending (a load whose system failed is, while pg-boss
   * retries it). Records that failed, in a transform or a load whose job ended, leave nothing more for this run to do:
   * the run then ends failed, and a resume retries them. A pending row whose load is recorded with no failure is not
   * pending (`stillPending`). One statement: while any load of the run is pending (every chunk's are, from its
   * extraction to its load), it reads that one row, not the run's chunks; only then does it go through the chunks
   * (for those extracted before pending loads existed), stopping at the first still open.
   */
  async runComplete(runId: number, targets: readonly string[]): Promise<boolean> {
    const s = this.#s;
    const [row] = await this.#rows<{ complete: boolean }>(
      `SELECT CASE
         WHEN r.status <> 'running' OR NOT r.extract_done THEN false
         WHEN EXISTS (
           SELECT 1 FROM ${s}.pending_loads p
            WHERE p.run_id = r.id AND p.target = ANY($2::text[]) AND ${stillPending(s, "p")}
         ) THEN false
         ELSE NOT EXISTS (
           SELECT 1 FROM ${s}.chunks c
            WHERE c.run_id = r.id
              AND (c.canonical IS NULL OR (
                SELECT count(*) FROM ${s}.chunk_loads l
                 WHERE l.run_id = c.run_id AND l.seq = c.seq AND l.target = ANY($2::text[])
              ) < cardinality($2::text[]))
         )
       END AS complete
       FROM ${s}.runs r WHERE r.id = $1`,
      [runId, targets],
    );
    return row?.complete === true;
  }

  // --- cursors, profiles, hashes, lookup cache

  async getCursor(flow: string): Promise<unknown | undefined> {
    const [row] = await this.#rows<{ position: string }>(`SELECT position FROM ${this.#s}.cursors WHERE flow = $1`, [
      flow,
    ]);
    return row === undefined ? undefined : JSON.parse(row.position);
  }

  async getProfile(flow: string): Promise<Record<string, string> | undefined> {
    const [row] = await this.#rows<{ profile: string }>(`SELECT profile FROM ${this.#s}.profiles WHERE flow = $1`, [
      flow,
    ]);
    return row === undefined ? undefined : JSON.parse(row.profile);
  }

  async getHashes(target: string, keys: readonly string[]): Promise<Map<string, LoadedHash>> {
    const found = new Map<string, LoadedHash>();
    if (keys.length === 0) return found;
    // One primary-key probe per key (the LATERAL … LIMIT 1 keeps the planner from scanning the target's hashes
    // instead, which it prefers on a table without statistics yet): the cost follows the keys, not the table.
    const rows = await this.#rows<{ key: string; hash: string; run_id: string }>(
      `SELECT k.key, h.hash, h.run_id FROM unnest($2::text[]) AS k(key)
       CROSS JOIN LATERAL (SELECT hash, run_id FROM ${this.#s}.target_hashes WHERE target = $1 AND key = k.key LIMIT 1) AS h`,
      [target, keys],
    );
    for (const row of rows) found.set(row.key, { hash: row.hash, runId: Number(row.run_id) });
    return found;
  }

  async hasHashes(target: string): Promise<boolean> {
    const rows = await this.#rows(`SELECT 1 FROM ${this.#s}.target_hashes WHERE target = $1 LIMIT 1`, [target]);
    return rows.length > 0;
  }

  async laterInTarget(runId: number, target: string, seq: number, keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    // one primary-key probe per key, as getHashes (a join let the planner scan the run's outcomes: 360 ms a chunk of
    // 1,000 keys in a run of 1,000,000 outcomes, against 3.9 ms; docs/benchmarks.md, stop 30)
    const rows = await this.#rows<{ key: string }>(
      `SELECT k.key FROM unnest($3::text[]) AS k(key)
       CROSS JOIN LATERAL (SELECT 1 FROM ${this.#s}.outcomes
         WHERE run_id = $1 AND key = k.key AND target = $2 AND loaded_seq > $4 LIMIT 1) AS o`,
      [runId, target, keys, seq],
    );
    return new Set(rows.map((row) => row.key));
  }

  async cacheGet(lookup: string, keys: readonly string[], now: number): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>();
    if (keys.length === 0) return found;
    const rows = await this.#rows<{ key: string; value: string }>(
      `SELECT k.key, c.value FROM unnest($2::text[]) AS k(key)
       CROSS JOIN LATERAL (SELECT value FROM ${this.#s}.lookup_cache
         WHERE lookup = $1 AND key = k.key AND expires_at > $3 LIMIT 1) AS c`,
      [lookup, keys, now],
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
    const s = this.#s;
    await this.#transaction(async (sql) => {
      await sql(
        `INSERT INTO ${s}.lookup_cache (lookup, key, value, expires_at)
         SELECT DISTINCT ON (v ->> 0) $1::text, v ->> 0, v ->> 1, $2::bigint
         FROM json_array_elements($3::json) WITH ORDINALITY AS e(v, ord) ORDER BY v ->> 0, ord DESC
         ON CONFLICT (lookup, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
        [lookup, expiresAt, JSON.stringify(entries.map((entry) => [entry.key, JSON.stringify(entry.value ?? null)]))],
      );
      await sql(`DELETE FROM ${s}.lookup_cache WHERE lookup = $1 AND expires_at <= $2`, [lookup, now]);
    });
  }

  // --- reading the ledger

  async counts(runId: number): Promise<RunCounts> {
    const s = this.#s;
    const [totals] = await this.#rows<{
      chunks: string;
      extracted: string | null;
      canonical: string | null;
      quarantined: string | null;
      failed: string | null;
    }>(
      `SELECT count(*) AS chunks, sum(records) AS extracted, sum(canonical) AS canonical, sum(quarantined) AS quarantined,
         sum(failed) AS failed FROM ${s}.chunks WHERE run_id = $1`,
      [runId],
    );
    const targets: RunCounts["targets"] = {};
    const [run] = await this.#rows<{ targets: string }>(`SELECT targets FROM ${s}.runs WHERE id = $1`, [runId]);
    for (const name of run === undefined ? [] : (JSON.parse(run.targets) as string[])) {
      targets[name] = { loaded: 0, unchanged: 0, quarantined: 0, failed: 0 };
    }
    const loads = await this.#rows<{
      target: string;
      loaded: string;
      unchanged: string;
      quarantined: string;
      failed: string;
    }>(
      `SELECT target, sum(loaded) AS loaded, sum(unchanged) AS unchanged, sum(quarantined) AS quarantined, sum(failed) AS failed
       FROM ${s}.chunk_loads WHERE run_id = $1 GROUP BY target`,
      [runId],
    );
    for (const row of loads) {
      targets[row.target] = {
        loaded: num(row.loaded),
        unchanged: num(row.unchanged),
        quarantined: num(row.quarantined),
        failed: num(row.failed),
      };
    }
    const unstaged = await this.#rows<ProblemCountRow>(unstagedProblemsSql(`${s}.outcomes`, `${s}.chunks`, "$1"), [
      runId,
    ]);
    return {
      chunks: num(totals?.chunks),
      extracted: num(totals?.extracted),
      canonical: num(totals?.canonical),
      quarantined: num(totals?.quarantined) + problemCount(unstaged, "quarantined"),
      failed: num(totals?.failed) + problemCount(unstaged, "failed"),
      targets,
    };
  }

  /**
   * What a run has spent of its failure budget, as the ledger has it, in one statement (the distributed executor's jobs
   * that have problems read it: every worker records its own here). Processed: the rows of the chunks transformed, and
   * the problems of a chunk whose transform the budget stopped. Problems: before load, and in every target, leaving
   * out a load whose system failed and whose job waits for its retry (its loads still pending).
   */
  async budgetSpent(runId: number): Promise<{ processed: number; problems: number }> {
    const s = this.#s;
    const [row] = await this.#rows<{
      processed: string | null;
      transform: string | null;
      unstaged: string | null;
      loads: string | null;
    }>(
      `SELECT
         (SELECT sum(records) FROM ${s}.chunks WHERE run_id = $1 AND canonical IS NOT NULL) AS processed,
         (SELECT sum(quarantined + failed) FROM ${s}.chunks WHERE run_id = $1) AS transform,
         (SELECT sum(u.n) FROM (${unstagedProblemsSql(`${s}.outcomes`, `${s}.chunks`, "$1")}) AS u) AS unstaged,
         (SELECT sum(l.quarantined + l.failed) FROM ${s}.chunk_loads l
           WHERE l.run_id = $1 AND NOT (l.failed > 0 AND EXISTS (
             SELECT 1 FROM ${s}.pending_loads p WHERE p.run_id = l.run_id AND p.target = l.target AND p.seq = l.seq
           ))) AS loads`,
      [runId],
    );
    const unstaged = num(row?.unstaged);
    return { processed: num(row?.processed) + unstaged, problems: num(row?.transform) + unstaged + num(row?.loads) };
  }

  async records(runId: number, query: RecordQuery = {}): Promise<RecordOutcome[]> {
    const values: unknown[] = [runId];
    const where = ["run_id = $1"];
    if (query.status !== undefined) where.push(`status = $${values.push(query.status)}`);
    if (query.key !== undefined) where.push(`key = $${values.push(query.key)}`);
    if (query.target !== undefined) where.push(`target = $${values.push(query.target)}`);
    const rows = await this.#rows<OutcomeRow>(
      `SELECT key, target, status, seq, attempts, code, error_class, message, path, target_id, source_id
       FROM ${this.#s}.outcomes WHERE ${where.join(" AND ")}
       ORDER BY seq, key, target LIMIT $${values.push(query.limit ?? 1000)} OFFSET $${values.push(query.offset ?? 0)}`,
      values,
    );
    return rows.map(outcomeFromRow);
  }
}

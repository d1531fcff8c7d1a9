/** Row ↔ record conversions shared by the SQLite and PostgreSQL stores (same columns in both). */
import type { ErrorClass, ErrorCode } from "../core/errors.ts";
import type { RecordOutcome, RecordStatus, RunStatus } from "../core/record.ts";
import type { ChunkState, LoadResult, RunKind, RunRecord } from "./types.ts";

export interface RunRow {
  id: number | string;
  flow: string;
  kind: string;
  trigger: string;
  status: string;
  parent_id: number | string | null;
  targets: string;
  started_at: number | string;
  ended_at: number | string | null;
  heartbeat_at: number | string | null;
  owner: string | null;
  cursor_from: string | null;
  cursor_to: string | null;
  extract_done: number | boolean;
  error: string | null;
  stats: string;
}

const num = (value: number | string): number => (typeof value === "number" ? value : Number(value));

export function runFromRow(row: RunRow): RunRecord {
  return {
    id: num(row.id),
    flow: row.flow,
    kind: row.kind as RunKind,
    trigger: row.trigger,
    status: row.status as RunStatus,
    ...(row.parent_id === null ? {} : { parentId: num(row.parent_id) }),
    targets: JSON.parse(row.targets) as string[],
    startedAt: num(row.started_at),
    ...(row.ended_at === null ? {} : { endedAt: num(row.ended_at) }),
    ...(row.heartbeat_at === null ? {} : { heartbeatAt: num(row.heartbeat_at) }),
    ...(row.owner === null ? {} : { owner: row.owner }),
    ...(row.cursor_from === null ? {} : { cursorFrom: JSON.parse(row.cursor_from) }),
    ...(row.cursor_to === null ? {} : { cursorTo: JSON.parse(row.cursor_to) }),
    extractDone: row.extract_done === true || row.extract_done === 1,
    ...(row.error === null ? {} : { error: JSON.parse(row.error) }),
    stats: JSON.parse(row.stats) as Record<string, unknown>,
  };
}

export interface OutcomeRow {
  key: string;
  target: string;
  status: string;
  seq: number | string;
  attempts: number | string;
  code: string | null;
  error_class: string | null;
  message: string | null;
  path: string | null;
  target_id: string | null;
  source_id: string | null;
}

export function outcomeFromRow(row: OutcomeRow): RecordOutcome {
  return {
    key: row.key,
    target: row.target === "" ? null : row.target,
    status: row.status as RecordStatus,
    chunk: num(row.seq),
    attempts: num(row.attempts),
    ...(row.code === null ? {} : { code: row.code as ErrorCode }),
    ...(row.error_class === null ? {} : { errorClass: row.error_class as ErrorClass }),
    ...(row.message === null ? {} : { message: row.message }),
    ...(row.path === null ? {} : { path: row.path }),
    ...(row.target_id === null ? {} : { targetId: row.target_id }),
    ...(row.source_id === null ? {} : { sourceId: row.source_id }),
  };
}

/** Outcome columns in insertion order, for both stores. */
export function outcomeValues(runId: number, outcome: RecordOutcome): unknown[] {
  return [
    runId,
    outcome.key,
    outcome.target ?? "",
    outcome.status,
    outcome.chunk,
    outcome.attempts,
    outcome.code ?? null,
    outcome.errorClass ?? null,
    outcome.message ?? null,
    outcome.path ?? null,
    outcome.targetId ?? null,
    outcome.sourceId ?? null,
  ];
}

export interface ChunkRow {
  seq: number;
  position: string | null;
  records: number;
  canonical: number | null;
  quarantined: number;
  failed: number;
  /** Epoch ms (PostgreSQL's bigint comes as text). */
  transformed_at: number | string | null;
}

export interface ChunkLoadRow {
  seq: number;
  target: string;
  quarantined: number;
  failed: number;
}

/** A run's chunk states from its chunk rows (in order) and its chunk_loads rows: a target is done when none failed. */
export function chunkStatesFromRows(chunks: readonly ChunkRow[], loads: readonly ChunkLoadRow[]): ChunkState[] {
  const byChunk = new Map<number, Record<string, boolean>>();
  const quarantinedAt = new Map<number, Record<string, number>>();
  for (const load of loads) {
    const entry = byChunk.get(load.seq) ?? {};
    entry[load.target] = load.failed === 0;
    byChunk.set(load.seq, entry);
    const spent = quarantinedAt.get(load.seq) ?? {};
    spent[load.target] = Number(load.quarantined);
    quarantinedAt.set(load.seq, spent);
  }
  return chunks.map((chunk) => ({
    seq: chunk.seq,
    position: chunk.position === null ? undefined : JSON.parse(chunk.position),
    records: chunk.records,
    transformed: chunk.canonical !== null && chunk.failed === 0,
    ...(chunk.transformed_at === null ? {} : { transformedAt: Number(chunk.transformed_at) }),
    loaded: byChunk.get(chunk.seq) ?? {},
    spent: {
      canonical: Number(chunk.canonical ?? 0),
      quarantined: Number(chunk.quarantined),
      loads: quarantinedAt.get(chunk.seq) ?? {},
    },
  }));
}

/**
 * The problems a chunk whose transform was stopped (the failure budget) left in the ledger: that chunk is not staged,
 * so its chunk row counts none of them. `outcomes` and `chunks` are the tables' names as the store writes them,
 * `run` the run id's parameter.
 */
export function unstagedProblemsSql(outcomes: string, chunks: string, run: string): string {
  return `SELECT o.status AS status, count(*) AS n FROM ${outcomes} o JOIN ${chunks} c ON c.run_id = o.run_id AND c.seq = o.seq
    WHERE o.run_id = ${run} AND o.target = '' AND o.status IN ('quarantined', 'failed') AND c.canonical IS NULL
    GROUP BY o.status`;
}

export interface ProblemCountRow {
  status: string;
  n: number | string;
}

/** The count of `status` in the rows of unstagedProblemsSql (0 when absent). */
export function problemCount(rows: readonly ProblemCountRow[], status: "quarantined" | "failed"): number {
  return Number(rows.find((row) => row.status === status)?.n ?? 0);
}

/**
 * The SET list of a load's outcome upsert (loaded or unchanged keys), in either store's SQL: the row takes the new
 * outcome (its error columns cleared; its target id and hash, or NULL when `detailed` is false) unless it holds a
 * later chunk's (an earlier chunk loaded again by a resumed run: the later chunk's outcome stays), and the chunk that
 * last loaded the key (`loaded_seq`) advances either way, so that `Store.laterInTarget` knows a later version is in
 * the target whatever the row's status says. `row`: how the statement names the existing row; `greatest`: the
 * dialect's larger of a nullable column and a value.
 */
export function loadOutcomeUpdate(
  row: string,
  detailed: boolean,
  greatest: (column: string, value: string) => string,
): string {
  const set: [column: string, value: string][] = [
    ["status", "excluded.status"],
    ["seq", "excluded.seq"],
    ["attempts", "excluded.attempts"],
    ...["code", "error_class", "message", "path"].map((column): [string, string] => [column, "NULL"]),
    ["target_id", detailed ? "excluded.target_id" : "NULL"],
    ["hash", detailed ? "excluded.hash" : "NULL"],
  ];
  const newer = `excluded.seq >= ${row}.seq`;
  return [
    ...set.map(([column, value]) => `${column} = CASE WHEN ${newer} THEN ${value} ELSE ${row}.${column} END`),
    `loaded_seq = ${greatest(`${row}.loaded_seq`, "excluded.loaded_seq")}`,
  ].join(", ");
}

/** The records a chunk's load counts as unchanged: those found unchanged, and those a later chunk superseded. */
export function unchangedCount(result: LoadResult): number {
  return result.unchanged.length + (result.superseded ?? 0);
}

/**
 * The condition on a problem's outcome upsert: a load's problem does not replace a later chunk's problem (see
 * loadOutcomeUpdate), but does replace a later chunk's load, whose `loaded_seq` stays: the refusal of an earlier
 * version (a target that keeps every version, written again by a resumed run) is kept for a replay. A transform's
 * (target '') always replaces: those of one chunk are only written again by the chunk's own transform, after its
 * earlier ones were deleted, or by a run stopped mid-chunk, whose count of them rests on the row.
 */
export function problemOutcomeWhere(row: string): string {
  return `excluded.target = '' OR excluded.seq >= ${row}.seq OR ${row}.status IN ('loaded', 'unchanged')`;
}

/**
 * Deletes the transform problems of a chunk never staged (`run`, `seq`: how the statement names them): a transform
 * that crossed the failure budget records the problems it found so far and stops before staging the chunk
 * (unstagedProblemsSql counts them); the chunk's next transform records its own.
 */
export function unstagedOutcomesDelete(s: string, run: string, seq: string, indexedBy = ""): string {
  // by the run's problems (the partial index outcomes_problems), not by scanning the run's outcomes for the chunk:
  // this runs at every chunk's transform, and a run's outcomes are its records (SQLite's planner takes the primary
  // key's run_id prefix instead, a scan of the run: `indexedBy` names the index to it)
  return `DELETE FROM ${s}outcomes${indexedBy} WHERE run_id = ${run} AND status IN ('quarantined', 'failed')
    AND seq = ${seq} AND target = ''`;
}

/**
 * The statements that void a run's chunks `seqs` (transformed again, or reopened to be), in either store's SQL: their
 * loads go, and their outcomes, but that an outcome one of them wrote over a load of another chunk (`loaded_seq`)
 * goes back to that load, whose version is still in the target (`Store.laterInTarget`). `s`: the tables' prefix;
 * `run`, `seqs`: the SQL of the run id and of a condition on `seq`.
 */
export function voidChunksSql(s: string, run: string, seqs: string): string[] {
  return [
    `UPDATE ${s}outcomes SET status = 'loaded', seq = loaded_seq, code = NULL, error_class = NULL, message = NULL,
       path = NULL WHERE run_id = ${run} AND ${seqs} AND loaded_seq <> seq`,
    `DELETE FROM ${s}outcomes WHERE run_id = ${run} AND ${seqs}`,
    `DELETE FROM ${s}chunk_loads WHERE run_id = ${run} AND ${seqs}`,
  ];
}

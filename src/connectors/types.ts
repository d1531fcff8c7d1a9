/**
 * The connector interface: one small contract per system type. A connector folder (sqlite/, postgres/, http/,
 * file/, …) has the same few files: `options.ts` (TypeBox schemas of its system and binding settings), `driver.ts`
 * (the Driver below), and the reading and writing code it needs. A new system type is that shape filled in.
 *
 * Contract, in short:
 * - `read` yields batches in a stable order; each batch carries the position after its last row, and `read`
 *   started `from` that position continues right after it (resume, incremental runs).
 * - `write` is idempotent: writing the same items again leaves the target as after the first write (upsert by
 *   key, idempotency keys). It returns one result per item, in order; it throws only when the whole batch failed.
 * - Errors are FrancaErrors with `errorClass` transient (may succeed on retry) or permanent.
 * - Connectors never retry, throttle or time out on their own: the engine wraps every call in the system's
 *   policies (concurrency, rate limit, timeout, retry, breaker), so those hold across flows and lookups.
 */
import type { Row } from "../core/binding.ts";
import type { FrancaError } from "../core/errors.ts";
import type { DriverContract, SettingIssue, System } from "../core/system.ts";

/** A JSON-serialisable point in a source's order, owned by the connector (a keyset tuple, a page, a file offset). */
export type Position = unknown;

export interface ReadRequest {
  /** The binding's connector settings (table, query, path, pagination…), already validated. */
  options: Readonly<Record<string, unknown>>;
  /** Native key field(s): the tie-breaker of a stable order. */
  key: readonly string[];
  /** Native cursor field, when the binding is incremental. */
  cursor?: string;
  /** Continue after this position; undefined reads from the beginning. */
  from?: Position;
  /**
   * Rows wanted per batch; a connector may return fewer, and more only when the system forces its page size. Read it
   * before each batch: it grows during a read (the first chunks of an extraction are small, so that the targets get
   * work at once). Judge a page short against the size asked for that page, never against a later reading.
   */
  readonly batchSize: number;
  /**
   * The size `batchSize` grows to (the flow's chunk size): for a read that must keep one page size from its first
   * page to its last (pages by number, cursors that may stand for them). Absent: use `batchSize` at the start.
   */
  readonly fullBatchSize?: number;
  signal: AbortSignal;
  /**
   * Runs one request to the system under its concurrency cap, rate limit, breaker and timeout (no retry: on a
   * transient error the engine restarts the read from the last position it persisted). Network connectors wrap
   * each page request in it; the signal it passes aborts at the timeout.
   */
  call<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /**
   * Reports something about the read that does not stop it but that whoever runs the flow should know and fix (a
   * keyset read whose order has no index, so that every batch scans the table): the engine logs it as a warning and
   * keeps it in the run's stats.
   */
  warn?(message: string): void;
}

export interface ReadBatch {
  rows: Row[];
  /** Position right after the last row of this batch. */
  position: Position;
}

/**
 * A read batch in the system's own text, not decoded (see `Connection.readEncoded`): the engine stages the text as it
 * is, and decodes it with the driver's `decode` where the chunk is transformed (possibly on another thread).
 */
export interface EncodedBatch {
  /**
   * How `text` decodes, for `Driver.decode` (driver-defined: the columns and their types, say). Every batch of one
   * read has the same encoding. No newline in it.
   */
  encoding: string;
  /**
   * The batch's rows as text, or as that text's UTF-8 bytes (which the engine stages and hands to another thread
   * without decoding them). The texts of consecutive batches of one read concatenate into the text of all their rows.
   * Bytes handed over are the engine's: it frees them once their chunk is transformed, so the connector must not
   * reuse them or keep a view of them.
   */
  text: string | Uint8Array;
  /** How many rows `text` holds. */
  count: number;
  /** Position right after the last row of this batch. */
  position: Position;
}

/** What `Driver.prepare` encodes rows for: a target binding and what its connection's `describeTarget` found. */
export interface PrepareRequest {
  /** The target binding's connector settings (the table, say). */
  options: Readonly<Record<string, unknown>>;
  /** Native key field(s) of the target. */
  key: readonly string[];
  /** What `Connection.describeTarget` returned for these options (column types, say). */
  target: unknown;
}

/**
 * Rows a transform thread encoded with `Driver.prepare`, handed to `write` with the items they are for: `rows[i]` is
 * the index in `data` of `items[i]`'s row.
 */
export interface PreparedRows {
  data: unknown;
  rows: readonly number[];
}

export interface WriteItem {
  /** The canonical record key. */
  key: string;
  /**
   * The native row made by the binding's fromCanonical. When the request carries `prepared` rows, reading `row` may
   * cost a decode and a mapping on the calling thread: read it only on the slow paths (a batch to isolate).
   */
  readonly row: Row;
  /** Stable per target, record key and content: the same record written twice carries the same key. */
  idempotencyKey: string;
  hash: string;
}

export interface WriteRequest {
  options: Readonly<Record<string, unknown>>;
  /** Native key field(s) of the target: the upsert's conflict target. */
  key: readonly string[];
  /** Target binding name. */
  target: string;
  run: number;
  chunk: number;
  items: readonly WriteItem[];
  /**
   * The items' rows as the driver's `prepare` already encoded them (in a transform thread), when the engine had them
   * prepared. The connector sends them as they are, or ignores them (a target described differently since) and
   * encodes `items[i].row` itself.
   */
  prepared?: PreparedRows;
  signal: AbortSignal;
}

export type ItemResult = { ok: true; targetId?: string } | { ok: false; error: FrancaError };

export interface CompleteRequest {
  options: Readonly<Record<string, unknown>>;
  target: string;
  run: number;
  /** Every chunk of the run, in order, including those that had nothing to write. */
  chunks: readonly number[];
  /** Aborted when the run stops. `complete` has no call timeout: publishing a large file may take a while. */
  signal: AbortSignal;
}

export interface Health {
  ok: boolean;
  latencyMs: number;
  message?: string;
}

/**
 * A row the source could not parse (a bad NDJSON line, a broken CSV record) is still yielded, as
 * `{ $error: "why", $raw: "the text", $line?: n }`: the transform quarantines it with that reason, so bad input is
 * reported and kept, never dropped, and never stops the run.
 */
export interface UnreadableRow {
  $error: string;
  $raw?: string;
  $line?: number;
}

export interface Connection {
  read?(request: ReadRequest): AsyncIterable<ReadBatch>;
  /**
   * Reads like `read`, the same rows in the same batches and order, but yields each batch undecoded, as the system's
   * own text (a COPY stream's lines, say): the engine stages that text as it is and decodes it with `Driver.decode`
   * where the chunk is transformed. Returns undefined when this binding's reads cannot be had that way (the engine
   * then calls `read`). Needs `Driver.decode`.
   */
  readEncoded?(request: ReadRequest): AsyncIterable<EncodedBatch> | undefined;
  /**
   * What `Driver.prepare` needs to know of a target (a table's columns and their types): read once per run and
   * target, before its chunks are prepared. Must be structured-cloneable (it crosses threads). Needs
   * `Driver.prepare`.
   */
  describeTarget?(options: Readonly<Record<string, unknown>>, signal: AbortSignal): Promise<unknown>;
  /**
   * The column names of a binding's relation (its table, or its query's result), so that a key or cursor the
   * relation does not have is named as the binding's setting before anything is written (`franca check`, a run's
   * start) rather than met as the system's error mid-run. Throws the system's error when the relation cannot be read
   * (a table that is not there). `caseSensitive`: whether a name must match in case too (PostgreSQL's, which the
   * connector quotes; MariaDB's and SQLite's column names ignore case). SQL connectors.
   */
  columns?(
    options: Readonly<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<{ names: string[]; caseSensitive: boolean }>;
  /**
   * The position a new run starts from, given the one the previous run ended at. Default: the same (a keyset
   * position is both). A paged API source, say, turns "page 57 of the rows changed since T" into "page 1 of the rows
   * changed since the newest change seen".
   */
  nextRunFrom?(previousRunEnd: Position): Position | undefined;
  write?(request: WriteRequest): Promise<ItemResult[]>;
  /**
   * Most items one `write` call takes (an API's batch size; 1 for a single-record endpoint). The engine splits a
   * chunk into calls of this size, each under the system's policy. Default: the whole chunk in one call.
   */
  maxWriteBatch?(options: Readonly<Record<string, unknown>>): number;
  /**
   * Once per run and target, after every chunk was written: publish what was staged (file targets). Targets with
   * `complete` have the content hashes of a run's records committed only once it succeeded, so a record counts as
   * unchanged only against what was really published.
   */
  complete?(request: CompleteRequest): Promise<void>;
  /** Tells the source that everything up to `position` is durable (message brokers ack here, never earlier). */
  ack?(position: Position): Promise<void>;
  /** What lookups and users' code call the system with (an HTTP client, a SQL query function). */
  client?(): unknown;
  health(signal: AbortSignal): Promise<Health>;
  close(): Promise<void>;
}

export interface DriverEnv {
  /** Directory of the hub's configuration: relative paths in settings resolve from here. */
  baseDir: string;
}

export interface Driver extends DriverContract {
  open(system: System, env: DriverEnv): Connection;
  /**
   * Decodes the text of encoded batches (`Connection.readEncoded`) into the rows `read` would have yielded: the first
   * `limit` rows only, when given. Pure (no connection, no I/O): it runs on the engine's transform threads too.
   */
  decode?(encoding: string, text: string | Uint8Array, limit?: number): Row[];
  /**
   * Cuts the text of encoded batches after its first `rows` rows: [their text, the rest's text], each of which
   * `decode` takes on its own; the first is not empty when the text is not, the rest is empty when the text has
   * `rows` rows or fewer. With it, a transform thread decodes and maps a chunk a piece at a time
   * (engine/map-pieces.ts). Pure.
   */
  cut?(encoding: string, text: string | Uint8Array, rows: number): [string | Uint8Array, string | Uint8Array];
  /**
   * Encodes rows for this driver's `write` (COPY lines, SQL tuples…), in order, for the target described: what
   * `write` receives as `prepared.data`. Pure (no connection, no I/O), it runs on a transform thread; its result must
   * be structured-cloneable. A row it cannot encode is marked refused in the result (for `write` to report), never
   * thrown for.
   */
  prepare?(rows: readonly Row[], request: PrepareRequest): unknown;
  /**
   * Joins what `prepare` returned for consecutive runs of rows of one chunk (a transform thread prepares a chunk a
   * piece at a time) into what it would have returned for all of them; undefined when they do not join (prepared for
   * different columns, say): the chunk's rows are then mapped and encoded for the target where they are written, and
   * the thread prepares the flow's later chunks whole. Pure. The result must hold byte arrays of its own: the parts'
   * are freed once joined. A driver with `prepare` but without `join` has its chunks prepared whole; a driver made
   * from another (`{ ...postgresDriver, prepare }`) that changes `prepare` must change or drop `join` too.
   */
  join?(parts: readonly unknown[]): unknown;
  /**
   * Whether a write of this binding (its options, its key fields) goes to what the target holds under the key, the
   * last write winning (an upsert or a PUT replaces it, a PATCH updates the fields it sends), so that of a record's
   * versions written one after the other the target keeps the last. A resumed run then leaves out an earlier chunk's
   * version of a key that a later chunk wrote (engine/load.ts). Default: no (a file, an API that creates a record per
   * request: they keep every version, and the resumed run writes each).
   */
  replacesByKey?(options: Readonly<Record<string, unknown>>, key: readonly string[]): boolean;
  /**
   * Whether every row a read of this binding (its options) yields carries every field of the source, null or not: a
   * query's columns, a CSV file's header. A field missing from the first rows of a run is then missing from the whole
   * source, and the run's drift check can say so (and stop, under the policy `fail`) before anything is loaded
   * (engine/extract.ts). Default: no (JSON documents leave out fields, and a later one may carry a field the first
   * ones lack: such a field is judged missing only once the whole extraction has been seen).
   */
  fieldsInEveryRow?(options: Readonly<Record<string, unknown>>): boolean;
  /**
   * Checks that need the local machine but not the network (a file's directory exists, a URL parses). Run before
   * anything is written; `franca check` adds a health call.
   */
  preflight?(system: System, env: DriverEnv): SettingIssue[];
}

export function isDriver(value: unknown): value is Driver {
  return typeof value === "object" && value !== null && typeof (value as Driver).open === "function";
}

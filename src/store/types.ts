/**
 * The store: runs, chunks, staged stage outputs, the per-record ledger, cursors and content hashes. One interface,
 * a SQLite implementation (embedded default) and a PostgreSQL one (shared, for worker processes).
 *
 * Every method that changes state is one transaction, about a chunk in size: a chunk's staged output and its
 * ledger rows commit together, so a crash leaves each chunk either fully recorded or not at all.
 */
import type { ErrorClass, ErrorCode } from "../core/errors.ts";
import type { RecordOutcome, RecordStatus, RunStatus } from "../core/record.ts";

export type RunKind = "flow" | "replay";

export interface RunError {
  code: ErrorCode;
  message: string;
  errorClass?: ErrorClass;
  system?: string;
  setting?: string;
}

export interface TargetCounts {
  loaded: number;
  unchanged: number;
  quarantined: number;
  failed: number;
}

export interface RunCounts {
  chunks: number;
  extracted: number;
  /** Records that became valid canonical records. */
  canonical: number;
  /** Records quarantined before load (mapping, validation, key). */
  quarantined: number;
  /** Records that failed before load on a transient error (a lookup's system down): retried by resume. */
  failed: number;
  targets: Record<string, TargetCounts>;
}

export interface RunRecord {
  id: number;
  flow: string;
  kind: RunKind;
  trigger: string;
  status: RunStatus;
  parentId?: number;
  /** Target binding names this run loads, fixed at start so a resume loads the same ones. */
  targets: string[];
  startedAt: number;
  endedAt?: number;
  heartbeatAt?: number;
  owner?: string;
  /** Position the extraction started from (the flow's cursor when the run began). */
  cursorFrom?: unknown;
  /** Position the flow's cursor advanced to when the run ended. */
  cursorTo?: unknown;
  extractDone: boolean;
  error?: RunError;
  /** Free-form figures: stage timings, lookup hit rates, drift report, resumes. */
  stats: Record<string, unknown>;
}

export interface NewRun {
  flow: string;
  kind: RunKind;
  trigger: string;
  targets: string[];
  owner: string;
  now: number;
  cursorFrom?: unknown;
  parentId?: number;
  stats?: Record<string, unknown>;
}

export interface ChunkState {
  seq: number;
  /** Source position after the chunk's last record. */
  position: unknown;
  records: number;
  /** Transformed with no transient failure: the canonical output is final. */
  transformed: boolean;
  /**
   * When its transform was recorded (epoch ms), also one with records that failed; absent while it is not transformed.
   * The distributed executor tells a load job of an earlier transform of the chunk by it.
   */
  transformedAt?: number;
  /** Per target: whether every record of the chunk has a final outcome there (no 'failed'). */
  loaded: Record<string, boolean>;
  /**
   * What the chunk's recorded stages count against the failure budget: its canonical and quarantined records (as its
   * transform recorded them; 0 while it has none) and, per target, the records its load quarantined.
   */
  spent: { canonical: number; quarantined: number; loads: Record<string, number> };
}

/** One chunk's load into one target. */
export interface LoadResult {
  /**
   * Keys loaded, with the content hash now in the target (`hashes[i]` for `loaded[i]`) and the id the target gave
   * (`targetIds[i]`, when the target gives ids). Parallel arrays of strings rather than an object per record: the
   * embedded store makes them JSON texts for SQLite (`encodeLoad`) on the caller's thread, before they cross to its
   * own.
   */
  loaded: string[];
  hashes: string[];
  targetIds?: (string | null)[];
  unchanged: string[];
  /** Quarantined or failed records, with their reasons. */
  problems: RecordOutcome[];
  attempts: number;
  /**
   * The target publishes at the end of the run (`complete`): keep the new content hashes with the outcomes and
   * make them current only on `commitHashes`, so nothing counts as unchanged against output never published.
   */
  deferHashes?: boolean;
  /**
   * Records not sent because a later chunk of the run has their key in this target (`writeChunk`'s `again`): counted
   * with the unchanged records in the chunk's load, with no outcome of their own (the ledger keeps the later chunk's).
   */
  superseded?: number;
}

export interface LoadedHash {
  hash: string;
  runId: number;
}

export interface RecordQuery {
  status?: RecordStatus;
  key?: string;
  target?: string;
  limit?: number;
  offset?: number;
}

export interface FinishRun {
  status: RunStatus;
  error?: RunError;
  stats?: Record<string, unknown>;
  /** Advance the flow's cursor to this position, in the same transaction. */
  cursor?: unknown;
  /** The source's field profile seen by this run (drift detection), saved for the next run. */
  profile?: Record<string, string>;
}

/**
 * A chunk's staged output: text, its UTF-8 bytes, or parts of either that concatenate into it (a header and the
 * bytes a source gave, written one after the other rather than copied into one buffer first).
 */
export type StagedValue = string | Uint8Array | readonly (string | Uint8Array)[];

export interface Store {
  readonly kind: "sqlite" | "postgres";
  /** Human-readable location (file path, or URL without password). */
  readonly location: string;
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** Closes the store when the block that holds it ends: `await using store = …`. */
  [Symbol.asyncDispose](): Promise<void>;

  /** Creates a running run. Throws RUN_LOCKED when the flow has a running run with a live owner. */
  startRun(run: NewRun): Promise<RunRecord>;
  /**
   * Takes over a run that is not running (failed, abandoned) for resumption. `onlyAbandoned`: only a run failed as
   * abandoned (RUN_ABANDONED), read under the claim's lock (a worker taking up a run whose workers all died; not one
   * that something ended for another reason meanwhile). The distributed executor's; the SQLite store has no workers.
   */
  claimRun(id: number, owner: string, now: number, options?: { onlyAbandoned?: boolean }): Promise<RunRecord>;
  /** Records that the owner is alive. Returns false when the run is no longer this owner's. */
  heartbeat(id: number, owner: string, now: number): Promise<boolean>;
  /**
   * Marks running runs whose owner is gone as failed (resumable): heartbeat older than `staleBefore`, or owner in
   * `deadOwners` (processes known to have died). Runs of `liveOwners` (known alive: the distributed queue while a
   * worker is up) are kept whatever their heartbeat. Returns their ids.
   */
  reapAbandoned(
    staleBefore: number,
    deadOwners: readonly string[],
    now: number,
    liveOwners?: readonly string[],
  ): Promise<number[]>;
  markExtractDone(id: number): Promise<void>;
  updateStats(id: number, stats: Record<string, unknown>): Promise<void>;
  finishRun(id: number, owner: string, finish: FinishRun, now: number): Promise<void>;
  getRun(id: number): Promise<RunRecord | undefined>;
  /** Runs, newest first: of a flow, in a status, or the replays of run `parentId`. */
  listRuns(filter?: { flow?: string; limit?: number; status?: RunStatus; parentId?: number }): Promise<RunRecord[]>;
  /** The flow's most recent run when it did not finish (failed with work left, or abandoned). */
  latestUnfinished(flow: string): Promise<RunRecord | undefined>;

  /**
   * Stages one chunk's output of a stage as one value (see StagedValue). Called before the chunk is recorded
   * (saveExtracted / saveCanonical): only a recorded chunk's staged value is ever read.
   */
  stage(runId: number, seq: number, stage: "extracted" | "canonical", data: StagedValue): Promise<void>;
  /** Records one extracted chunk (its rows staged) and the source position after it. */
  saveExtracted(runId: number, seq: number, position: unknown, records: number, now: number): Promise<void>;
  /**
   * Records one transformed chunk (its canonical records staged) with the records the transform could not turn into
   * one (quarantined, or failed on a transient error). `again`: the run was executed before (resumed, continued), so
   * an earlier transform of the chunk that stopped before staging it may have left problems, deleted first.
   */
  saveCanonical(
    runId: number,
    seq: number,
    canonical: number,
    problems: readonly RecordOutcome[],
    now: number,
    again?: boolean,
  ): Promise<void>;
  /** Records outcomes decided before the chunk could be staged (a run stopped mid-chunk by its failure policy). */
  saveOutcomes(runId: number, outcomes: readonly RecordOutcome[]): Promise<void>;
  /**
   * Records one chunk's load into one target: outcomes, new content hashes, chunk state. The ledger keeps one outcome
   * per run, key and target: a chunk's replaces one of the same chunk or an earlier one; of a later chunk's (a resumed
   * run's chunk loaded again after a later chunk of the run recorded the key: `laterInTarget`), a problem replaces a
   * load (whose chunk the row keeps as `loaded_seq`) and nothing else is replaced (store/rows.ts).
   */
  saveLoad(runId: number, seq: number, target: string, result: LoadResult, now: number): Promise<void>;
  /** Makes the content hashes of the records this run loaded to `target` current (after a deferred publish). */
  commitHashes(runId: number, target: string): Promise<void>;
  readStaged(runId: number, seq: number, stage: "extracted" | "canonical"): Promise<string | undefined>;
  /** Drops a run's staged chunks (the run succeeded: nothing will be resumed or replayed from them). */
  discardStaged(runId: number): Promise<void>;
  /**
   * The run needs one chunk's staged output no more: it was loaded to every target with no record quarantined or
   * failed, so neither a resume nor a replay reads it. The store may drop it now or later (SQLite: once every chunk of
   * its segment file is released), so that a long run's staging does not grow with the run.
   */
  releaseStaged(runId: number, seq: number): Promise<void>;
  /**
   * A store whose runs several workers load (PostgreSQL) keeps a key's loads in chunk order across them: a chunk's
   * loads into `targets` are pending from its extraction (`expectLoads`), with a digest of its keys once it is
   * transformed (`savePendingKeys`; engine/distributed/load-order.ts). A store of one process has neither: its
   * executor keeps the order in memory (engine/key-locks.ts).
   */
  expectLoads?(runId: number, seq: number, targets: readonly string[]): Promise<void>;
  savePendingKeys?(runId: number, seq: number, targets: readonly string[], digests: Uint8Array): Promise<void>;
  chunkStates(runId: number): Promise<ChunkState[]>;

  getCursor(flow: string): Promise<unknown | undefined>;
  getProfile(flow: string): Promise<Record<string, string> | undefined>;
  /** Content hash last loaded to `target` for each of these keys, and the run that loaded it. */
  getHashes(target: string, keys: readonly string[]): Promise<Map<string, LoadedHash>>;
  /** Whether any content hash was loaded to `target` (by any run): none means every record there is new to it. */
  hasHashes(target: string): Promise<boolean>;
  /**
   * The keys among `keys` that a chunk of the run after `seq` loaded into `target`, or found unchanged there: a later
   * version of each is in the target. The ledger keeps one outcome per run, key and target, the last recorded, and
   * with it the chunk that last loaded the key or found it unchanged (`loaded_seq`), which a later chunk's quarantine
   * or failure leaves as it was. Asked when a run executed before loads a chunk again (a resumed or continued run),
   * whose earlier execution may have loaded a later chunk while this one's records failed: loading them again would
   * put the older version back.
   */
  laterInTarget(runId: number, target: string, seq: number, keys: readonly string[]): Promise<Set<string>>;

  /** Values of a lookup cached across runs (unexpired at `now`), by cache key. */
  cacheGet(lookup: string, keys: readonly string[], now: number): Promise<Map<string, unknown>>;
  /** Keeps lookup values across runs until `expiresAt` (and drops the lookup's expired ones). */
  cacheSet(
    lookup: string,
    entries: readonly { key: string; value: unknown }[],
    expiresAt: number,
    now: number,
  ): Promise<void>;

  counts(runId: number): Promise<RunCounts>;
  records(runId: number, query?: RecordQuery): Promise<RecordOutcome[]>;
}

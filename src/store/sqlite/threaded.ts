import type { HeapInfo } from "node:v8";
import { Worker } from "node:worker_threads";
import { type ErrorClass, type ErrorCode, FrancaError } from "../../core/errors.ts";
import { StagingFiles } from "../staging-files.ts";
import type { Store } from "../types.ts";
import { encodeLoad, type SqliteStoreOptions, stagingDir } from "./store.ts";

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { francaCode?: ErrorCode; class?: ErrorClass; message: string; setting?: string; details?: unknown };
}

/**
 * The embedded store as used by the engine: a SqliteStore on its own thread. node:sqlite is synchronous, so on the
 * main thread every commit would stop the event loop (and the mapping, validation and network calls waiting on it);
 * on a worker the store's I/O runs beside them, on the machine's second core. Calls are answered in order.
 */
export class ThreadedSqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly location: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  readonly #staging: StagingFiles;
  #next = 0;
  #closed = false;

  constructor(file: string, options: SqliteStoreOptions = {}) {
    this.location = file;
    // Staged chunks are written from here, by libuv's thread pool (StagingFiles.append): cheaper than copying the
    // chunk to the store's thread, and the engine's thread does not wait on the disk. The chunk is recorded (on the
    // store's thread) only after the write completed.
    this.#staging = new StagingFiles(stagingDir(file), { fsync: options.synchronous === "full" });
    // A young generation of 4 MB semi-spaces (V8 takes a third of maxYoungGenerationSizeMb for each) when the
    // process does not set one (--max-semi-space-size, which V8 then takes instead): the thread's data is short-lived,
    // and V8's own sizing would give it up to 64 MB.
    this.#worker = new Worker(new URL("./worker.ts", import.meta.url), {
      workerData: { file, options },
      resourceLimits: { maxYoungGenerationSizeMb: 12 },
    });
    this.#worker.unref();
    this.#worker.on("message", (reply: Reply) => this.#settle(reply));
    this.#worker.on("error", (error) => this.#failAll(error));
    this.#worker.on("exit", (code) => {
      if (!this.#closed) this.#failAll(new Error(`the store thread exited (code ${code})`));
    });
  }

  #settle(reply: Reply): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    // the worker keeps the process alive only while a call is waiting on it
    if (this.#pending.size === 0) this.#worker.unref();
    if (reply.ok) pending.resolve(reply.result);
    else {
      const error = reply.error as NonNullable<Reply["error"]>;
      pending.reject(
        error.francaCode === undefined
          ? new Error(error.message)
          : new FrancaError(error.francaCode, error.message, {
              ...(error.class === undefined ? {} : { errorClass: error.class }),
              ...(error.setting === undefined ? {} : { setting: error.setting }),
              ...(error.details === undefined ? {} : { details: error.details }),
            }),
      );
    }
  }

  #failAll(error: unknown): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }

  #call<T>(method: string, ...args: unknown[]): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("the store is closed"));
    const id = this.#next++;
    if (this.#pending.size === 0) this.#worker.ref();
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#worker.postMessage({ id, method, args });
    });
  }

  migrate = () => this.#call<void>("migrate");
  startRun: Store["startRun"] = (...args) => this.#call("startRun", ...args);
  claimRun: Store["claimRun"] = (...args) => this.#call("claimRun", ...args);
  heartbeat: Store["heartbeat"] = (...args) => this.#call("heartbeat", ...args);
  reapAbandoned: Store["reapAbandoned"] = (...args) => this.#call("reapAbandoned", ...args);
  markExtractDone: Store["markExtractDone"] = (...args) => this.#call("markExtractDone", ...args);
  updateStats: Store["updateStats"] = (...args) => this.#call("updateStats", ...args);
  finishRun: Store["finishRun"] = (...args) => this.#call("finishRun", ...args);
  getRun: Store["getRun"] = (...args) => this.#call("getRun", ...args);
  listRuns: Store["listRuns"] = (...args) => this.#call("listRuns", ...args);
  latestUnfinished: Store["latestUnfinished"] = (...args) => this.#call("latestUnfinished", ...args);
  saveExtracted: Store["saveExtracted"] = (...args) => this.#call("saveExtracted", ...args);
  saveCanonical: Store["saveCanonical"] = (...args) => this.#call("saveCanonical", ...args);
  saveOutcomes: Store["saveOutcomes"] = (...args) => this.#call("saveOutcomes", ...args);
  // the result's per-record columns go as JSON texts and bytes made here (encodeLoad), not as arrays cloned string by
  // string
  saveLoad: Store["saveLoad"] = (runId, seq, target, result, now) =>
    this.#call("saveEncodedLoad", runId, seq, target, encodeLoad(result), now);
  commitHashes: Store["commitHashes"] = (...args) => this.#call("commitHashes", ...args);
  stage: Store["stage"] = async (runId, seq, stage, data) => this.#staging.append(runId, seq, stage, data);
  readStaged: Store["readStaged"] = async (runId, seq, stage) => this.#staging.read(runId, seq, stage);
  discardStaged: Store["discardStaged"] = (runId) => this.#staging.discardAfterAppends(runId);
  releaseStaged: Store["releaseStaged"] = (runId, seq) => this.#staging.release(runId, seq);
  chunkStates: Store["chunkStates"] = (...args) => this.#call("chunkStates", ...args);
  getCursor: Store["getCursor"] = (...args) => this.#call("getCursor", ...args);
  getProfile: Store["getProfile"] = (...args) => this.#call("getProfile", ...args);
  getHashes: Store["getHashes"] = (...args) => this.#call("getHashes", ...args);
  hasHashes: Store["hasHashes"] = (...args) => this.#call("hasHashes", ...args);
  laterInTarget: Store["laterInTarget"] = (...args) => this.#call("laterInTarget", ...args);
  cacheGet: Store["cacheGet"] = (...args) => this.#call("cacheGet", ...args);
  cacheSet: Store["cacheSet"] = (...args) => this.#call("cacheSet", ...args);
  counts: Store["counts"] = (...args) => this.#call("counts", ...args);
  records: Store["records"] = (...args) => this.#call("records", ...args);

  /**
   * The store thread's V8 heap statistics (`v8.getHeapStatistics()` as the thread sees it): what the thread holds and
   * may grow to, for diagnostics. Its `heap_size_limit` includes the young generation set above.
   */
  heapStatistics(): Promise<HeapInfo> {
    return this.#worker.getHeapStatistics();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#staging.closeAfterAppends();
    await this.#call("close");
    this.#closed = true;
    await this.#worker.terminate();
  }
}

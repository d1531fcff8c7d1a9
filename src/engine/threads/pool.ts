/**
 * The engine's transform threads (thread.ts): a chunk's source rows are decoded (the source's own text, or decoded
 * rows as the JSON they were staged as), mapped, validated, hashed and prepared for their database targets there, so
 * that a run uses every core and the engine's thread mostly moves bytes (stages, records the ledger, sends prepared
 * rows). Lookups the mappings call are answered here, through the run's caches and the systems' policies, as if the
 * mapping ran on this thread.
 *
 * Threads start at a run's fourth chunk (a small run is done before they would be ready) and are used as soon as one
 * is ready: until then the engine transforms on its own thread. A resumed run's chunks, read back from the store, go
 * to the threads like fresh ones (decoded rows as their staged text). A thread that cannot load the hub's module, or
 * dies, makes the engine transform on its own thread from then on, with a warning; the chunks it had go back to their
 * runs.
 */

import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { Driver } from "../../connectors/types.ts";
import { ErrorCode, FrancaError, toFrancaError } from "../../core/errors.ts";
import type { Lookup } from "../../core/lookup.ts";
import { tagRawJson } from "../../core/raw-json-tags.ts";
import { CanonicalChunk, type PreparedTarget } from "../canonical-chunk.ts";
import { forChunk } from "../chunk-order.ts";
import type { Endpoint, RunContext } from "../context.ts";
import { AttemptsError } from "../policy.ts";
import type { SourceRows } from "../source-rows.ts";
import type { RemoteResult, RemoteTransform } from "../transform.ts";
import { whenAborted } from "../when-aborted.ts";
import type { FromThread, LookupAnswers, TargetJob, ThreadSetup } from "./protocol.ts";
import { startWithSemiSpace } from "./semi-space.ts";

export interface ThreadsOptions {
  /** The module whose default export is the hub (the configuration file): path or URL. Each thread imports it. */
  module: string;
  /** Threads to start. Default: the machine's cores less one (one is the engine's), at least 1, at most 4. */
  count?: number;
  logger: Logger;
  /** The hub's lookups by name: the threads' mappings call them here. */
  lookups: ReadonlyMap<string, Lookup<unknown, unknown>>;
}

/**
 * Chunks a run transforms on the engine's thread before it starts the threads (the first chunks of a run are small:
 * 50, 100, 200 records…, so this is 350 records).
 */
export const startAfterChunks = 3;

/** A transform thread's semi-spaces, in MB, whatever the process's own (semi-space.ts). */
export const transformSemiSpaceMb = 8;

export function defaultThreadCount(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

interface Handle {
  worker: Worker;
  ready: boolean;
  /** Jobs sent and not answered. */
  jobs: number;
}

interface Job {
  handle: Handle;
  ctx: RunContext;
  seq: number;
  /** With undefined when the thread could not finish the chunk (the engine then transforms it itself). */
  resolve(result: RemoteResult | undefined): void;
  reject(error: unknown): void;
}

export class TransformThreads {
  readonly #options: ThreadsOptions;
  readonly #count: number;
  readonly #jobs = new Map<number, Job>();
  #handles: Handle[] | undefined;
  #unusable = false;
  /**
   * Flows the threads declined (their hub lacks the flow, or a chunk's transform could not be copied back): the
   * engine's thread transforms them for as long as the pool lives.
   */
  readonly #foreignFlows = new Set<string>();
  #next = 0;
  #started: Promise<boolean> | undefined;

  constructor(options: ThreadsOptions) {
    this.#options = options;
    this.#count = Math.max(1, options.count ?? defaultThreadCount());
  }

  /** How many threads this engine has (started or not). */
  get count(): number {
    return this.#count;
  }

  /** Starts the threads; resolves once each is ready, or false when they cannot be used. */
  ready(): Promise<boolean> {
    this.#started ??= this.#start();
    return this.#started;
  }

  #start(): Promise<boolean> {
    this.#options.logger.info({ threads: this.#count, module: this.#options.module }, "starting transform threads");
    const setup: ThreadSetup = { module: this.#options.module };
    const handles: Handle[] = [];
    const readiness: Promise<boolean>[] = [];
    // a thread keeps a chunk's records alive across collections: semi-spaces of 8 MB (semi-space.ts)
    const workers = startWithSemiSpace(transformSemiSpaceMb, () =>
      Array.from(
        { length: this.#count },
        () => new Worker(new URL("./thread.ts", import.meta.url), { workerData: setup }),
      ),
    );
    for (const worker of workers) {
      const handle: Handle = { worker, ready: false, jobs: 0 };
      handles.push(handle);
      readiness.push(
        new Promise<boolean>((resolve) => {
          worker.on("message", (message: FromThread) => {
            if (message.type === "ready") {
              handle.ready = true;
              // An idle thread does not keep the process alive; one with jobs does (#busy), as the store's thread
              // does while calls wait on it. Until it is ready, it does (a caller may be waiting for it).
              if (handle.jobs === 0) worker.unref();
              resolve(true);
            } else if (message.type === "unusable") {
              this.#giveUp(FrancaError.fromJSON(message.error));
              resolve(false);
            } else this.#answer(handle, message);
          });
          worker.on("error", (error) => {
            this.#giveUp(error);
            resolve(false);
          });
          worker.on("exit", (code) => {
            handle.ready = false;
            if (!this.#unusable && this.#handles !== undefined) this.#giveUp(new Error(`exited with code ${code}`));
            resolve(false);
          });
        }),
      );
    }
    this.#handles = handles;
    return Promise.all(readiness).then((all) => all.every(Boolean));
  }

  /** The threads cannot be used (the hub module does not load, a thread died): chunks go back to the engine's thread. */
  #giveUp(error: unknown): void {
    if (this.#unusable) return;
    this.#unusable = true;
    this.#options.logger.warn(
      { err: (error as Error).message, module: this.#options.module },
      "transform threads unavailable; transforming on the engine's thread",
    );
    for (const [id, job] of this.#jobs) {
      this.#jobs.delete(id);
      job.resolve(undefined);
    }
    for (const handle of this.#handles ?? []) void handle.worker.terminate();
  }

  #answer(handle: Handle, message: FromThread): void {
    if (message.type === "lookup") {
      void this.#lookups(handle, message);
      return;
    }
    if (message.type !== "done" && message.type !== "failed") return;
    const job = this.#jobs.get(message.id);
    if (job === undefined) return; // its run stopped meanwhile
    this.#jobs.delete(message.id);
    this.#idle(handle);
    if (message.type === "failed") {
      const error = FrancaError.fromJSON(message.error);
      if (message.declined !== true) {
        job.reject(error);
        return;
      }
      this.#declined(job.ctx, error);
      job.resolve(undefined);
      return;
    }
    const prepared = new Map<string, PreparedTarget>();
    for (const target of message.targets) prepared.set(target.name, target);
    job.resolve({
      chunk: CanonicalChunk.transferred(message.keys, message.hashes, message.sourceIds, message.staged, prepared),
      staged: message.staged,
      problems: message.problems,
    });
  }

  /**
   * A thread could not take a chunk (protocol.ts, `declined`: its hub has no such flow, or the chunk's transform
   * cannot cross threads): the run transforms it on the engine's thread, and so every later chunk of the flow, with
   * one warning.
   */
  #declined(ctx: RunContext, error: FrancaError): void {
    const flow = ctx.flow.name;
    if (this.#foreignFlows.has(flow)) return;
    this.#foreignFlows.add(flow);
    this.#options.logger.warn(
      { err: error.message, flow, module: this.#options.module },
      "a transform thread declined a chunk; transforming the flow on the engine's thread",
    );
  }

  /** Answers the lookups a thread's mappings called, through the run's lookups, on behalf of the chunk. */
  async #lookups(handle: Handle, message: Extract<FromThread, { type: "lookup" }>): Promise<void> {
    const job = this.#jobs.get(message.job);
    const settled = await Promise.allSettled(
      message.calls.map((call) => {
        const lookup = this.#options.lookups.get(call.lookup);
        if (job === undefined || lookup === undefined)
          return Promise.reject(new FrancaError(ErrorCode.Internal, `lookup '${call.lookup}' has no run to answer it`));
        return forChunk(job.seq, () => job.ctx.lookups.call(lookup, call.key));
      }),
    );
    const answers: LookupAnswers["answers"] = settled.map((result) =>
      result.status === "fulfilled"
        ? // a number a double cannot hold (JSON.rawJSON) goes tagged: structured clone refuses it (thread.ts revives it)
          { ok: true, value: tagRawJson(result.value) }
        : {
            ok: false,
            error: toFrancaError(result.reason instanceof AttemptsError ? result.reason.error : result.reason).toJSON(),
          },
    );
    if (!handle.ready) return; // the thread is gone: its chunks are transformed here
    try {
      handle.worker.postMessage({ type: "lookups", id: message.id, answers } satisfies LookupAnswers);
    } catch (error) {
      // a value that cannot cross threads (a function, a symbol): those calls fail
      const refused = new FrancaError(
        ErrorCode.LookupFailed,
        `a lookup's value cannot be passed to a transform thread: ${(error as Error).message}`,
      ).toJSON();
      handle.worker.postMessage({
        type: "lookups",
        id: message.id,
        answers: answers.map((answer) => (answer.ok ? { ok: false, error: refused } : answer)),
      } satisfies LookupAnswers);
    }
  }

  /**
   * How a run's chunks are transformed on the threads: a function that takes a chunk (source text, or decoded rows as
   * their staged text) and returns its transform, or undefined when no thread can take it now (the engine then
   * transforms it itself). Undefined when the threads cannot be used at all.
   */
  remote(ctx: RunContext): RemoteTransform | undefined {
    if (this.#unusable) return undefined;
    const descriptions = new Map<string, Promise<TargetJob | undefined>>();
    const describe = (target: Endpoint): Promise<TargetJob | undefined> => {
      const name = target.binding.name;
      let known = descriptions.get(name);
      if (known === undefined) {
        known = describeTarget(ctx, target);
        descriptions.set(name, known);
      }
      return known;
    };
    let chunks = 0;
    return (seq: number, data: SourceRows) => {
      if (this.#unusable || "rows" in data || this.#foreignFlows.has(ctx.flow.name)) return undefined;
      // A run that has not extracted `startAfterChunks` chunks yet may be a small one, done before a thread would
      // be ready (~0.1–0.3 s: a thread imports the hub's module): its first chunks are transformed here.
      if (++chunks > startAfterChunks) void this.ready();
      const handle = this.#pick();
      if (handle === undefined) return undefined;
      return this.#send(ctx, handle, seq, data, describe);
    };
  }

  /** A job more for `handle`: a thread with jobs keeps the process alive. */
  #busy(handle: Handle): void {
    if (handle.jobs++ === 0) handle.worker.ref();
  }

  /** A job less for `handle`: an idle thread does not keep the process alive. */
  #idle(handle: Handle): void {
    if (--handle.jobs === 0 && handle.ready) handle.worker.unref();
  }

  #pick(): Handle | undefined {
    let best: Handle | undefined;
    for (const handle of this.#handles ?? [])
      if (handle.ready && (best === undefined || handle.jobs < best.jobs)) best = handle;
    return best;
  }

  async #send(
    ctx: RunContext,
    handle: Handle,
    seq: number,
    data: Exclude<SourceRows, { rows: unknown }>,
    describe: (target: Endpoint) => Promise<TargetJob | undefined>,
  ): Promise<RemoteResult | undefined> {
    this.#busy(handle);
    const id = this.#next++;
    let targets: TargetJob[];
    try {
      targets = (await Promise.all(ctx.targets.map(describe))).filter((target) => target !== undefined);
    } catch (error) {
      this.#idle(handle);
      throw error;
    }
    // The threads may have been given up while the targets were described (a thread died): the chunk is the
    // engine's thread's then, like every job that thread had.
    if (this.#unusable || !handle.ready) {
      this.#idle(handle);
      return undefined;
    }
    const { promise, resolve, reject } = Promise.withResolvers<RemoteResult | undefined>();
    this.#jobs.set(id, { handle, ctx, seq, resolve, reject });
    const forget = whenAborted(ctx.signal, () => {
      if (this.#jobs.delete(id)) {
        this.#idle(handle);
        reject(ctx.signal.reason);
      }
    });
    handle.worker.postMessage({
      type: "transform",
      id,
      flow: ctx.flow.name,
      run: ctx.run.id,
      seq,
      source: { encoding: data.encoding, text: data.text, count: data.count },
      targets,
    });
    try {
      return await promise;
    } finally {
      forget();
    }
  }

  async close(): Promise<void> {
    const handles = this.#handles ?? [];
    this.#handles = undefined;
    this.#unusable = true;
    // a chunk still on a thread goes back to its run (which is transforming it itself, or stopping)
    for (const [id, job] of this.#jobs) {
      this.#jobs.delete(id);
      job.resolve(undefined);
    }
    await Promise.all(handles.map((handle) => handle.worker.terminate()));
  }
}

/**
 * What a target's connection says of it for its driver's `prepare` (read once per run), or undefined when its rows
 * are not prepared on the threads: a driver without `prepare`, or a description that failed (the load then meets the
 * problem itself, and reports it the usual way).
 */
async function describeTarget(ctx: RunContext, target: Endpoint): Promise<TargetJob | undefined> {
  const { binding, connection, policy } = target;
  const describe = connection.describeTarget;
  if ((binding.system.driver as Driver).prepare === undefined || describe === undefined) return undefined;
  try {
    const { value } = await policy.execute((signal) => describe.call(connection, binding.options, signal), ctx.signal);
    return { name: binding.name, description: value };
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    ctx.logger.warn(
      { target: binding.name, err: (error instanceof AttemptsError ? error.error : (error as Error)).message },
      "could not describe the target for the transform threads; its rows are encoded at load",
    );
    return undefined;
  }
}

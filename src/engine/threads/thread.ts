/**
 * A transform thread: imports the hub's module (the configuration file) and transforms the chunks the engine sends
 * it — decodes the source rows, maps them to canonical records (validation, key, canonical JSON, content hash, see
 * map-chunk.ts) and, for every database target, maps the records to the target's rows and encodes them for its
 * driver (`Driver.prepare`). The engine's own thread then only moves bytes: it stages the texts, records the ledger
 * and sends the prepared rows. Lookups called by mappings are answered by the engine (its run caches, its policies).
 */

import { pathToFileURL } from "node:url";
import { parentPort, workerData } from "node:worker_threads";
import type { Driver } from "../../connectors/types.ts";
import type { MapContext } from "../../core/binding.ts";
import { compileEntity } from "../../core/compiled-entity.ts";
import { ErrorCode, FrancaError, toFrancaError } from "../../core/errors.ts";
import type { Flow } from "../../core/flow.ts";
import type { Hub } from "../../core/hub.ts";
import type { Lookup } from "../../core/lookup.ts";
import { untagRawJson } from "../../core/raw-json-tags.ts";
import { freeBytes } from "../free-bytes.ts";
import { undeclaredLookup } from "../lookups.ts";
import { ChunkMapper, type ChunkProblem } from "../map-chunk.ts";
import { mapSource } from "../map-pieces.ts";
import { type CanonicalRecord, CanonicalStager, type RecordColumns } from "../staging.ts";
import type { Lineage } from "../target-rows.ts";
import { PreparedPieces, type Preparer } from "./prepared-pieces.ts";
import {
  type FromThread,
  type PreparedParts,
  type TargetJob,
  type ThreadSetup,
  type ToThread,
  type TransformJob,
  transferables,
} from "./protocol.ts";

const port = parentPort as NonNullable<typeof parentPort>;
const { module } = workerData as ThreadSetup;
const send = (message: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

let hub: Hub;
try {
  const url = /^[a-z][a-z+.-]*:/i.test(module) ? module : pathToFileURL(module).href;
  const loaded = (await import(url)) as { default?: Hub };
  if (loaded.default?.kind !== "hub") throw new Error(`${module} does not default-export a hub`);
  hub = loaded.default;
  send({ type: "ready" });
} catch (error) {
  send({ type: "unusable", error: toFrancaError(error).toJSON() });
  throw error;
}

// ── lookups, answered by the engine ─────────────────────────────────────────────────────────────────────────────

type Settle = { resolve: (value: unknown) => void; reject: (error: unknown) => void }[];
let nextRequest = 0;
const waiting = new Map<number, Settle>();
/** Lookup calls made in this turn, per job: sent together, so that the engine's DataLoader batches them. */
const queued = new Map<number, { calls: { lookup: string; key: unknown }[]; settle: Settle }>();

function lookupVia(job: number, lookup: Lookup<unknown, unknown>, key: unknown): Promise<unknown> {
  const undeclared = undeclaredLookup(hub.lookups, lookup);
  if (undeclared !== undefined) return Promise.reject(undeclared);
  let batch = queued.get(job);
  if (batch === undefined) {
    const made = { calls: [] as { lookup: string; key: unknown }[], settle: [] as Settle };
    batch = made;
    queued.set(job, made);
    queueMicrotask(() => {
      queued.delete(job);
      const id = nextRequest++;
      waiting.set(id, made.settle);
      send({ type: "lookup", id, job, calls: made.calls });
    });
  }
  const { promise, resolve, reject } = Promise.withResolvers<unknown>();
  batch.calls.push({ lookup: lookup.name, key });
  batch.settle.push({ resolve, reject });
  return promise;
}

/**
 * A lookup's value as the engine's thread had it, as far as structured clone lets it be: it keeps dates, maps, sets
 * and typed arrays, but a Buffer arrives as a plain Uint8Array (whose toString differs), so those are made Buffers
 * again (views of the same memory). Class instances arrive as plain objects: lookups should return plain data.
 */
function revived(value: unknown): unknown {
  if (value instanceof Uint8Array) {
    return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revived(value[i]);
  } else if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const key of Object.keys(value))
      (value as Record<string, unknown>)[key] = revived((value as Record<string, unknown>)[key]);
  }
  return value;
}

// ── transform ───────────────────────────────────────────────────────────────────────────────────────────────────

function mapContextOf(job: TransformJob, binding: string): MapContext {
  return {
    run: { id: job.run, flow: job.flow },
    binding,
    lookup: <K, V>(item: Lookup<K, V>, key: K) =>
      lookupVia(job.id, item as Lookup<unknown, unknown>, key) as Promise<V>,
  };
}

/** What prepares a target's rows of the job's chunk: undefined when its driver does not prepare rows. */
function preparerOf(job: TransformJob, flow: Flow, target: TargetJob): Preparer | undefined {
  const binding = flow.to.find((item) => item.name === target.name);
  const driver = binding?.system.driver as Driver | undefined;
  if (binding === undefined || driver?.prepare === undefined) return undefined;
  return { target, binding, driver: driver as Preparer["driver"], mapContext: mapContextOf(job, binding.name) };
}

/** Where the job's records are mapped for their targets: the flow's source system, the run and the chunk. */
function lineageOf(job: TransformJob, flow: Flow): Lineage {
  return { sourceSystem: flow.from.system.name, run: job.run, chunk: job.seq };
}

/** Flows whose mappings were seen to wait (a lookup, other asynchronous work): their chunks are mapped whole. */
const waitingFlows = new Set<string>();
/**
 * Flows this thread transforms whole (`wholeJob`) for the rest of a run (flow → run), since one of the run's chunks
 * was seen to repeat a key across pieces, or to have a target's prepared pieces that did not join, or a target mapping
 * that waited (streamed, its lookups would go out a piece at a time, for rows the load then maps again anyway). For
 * that run only: a later run may find the target in another state (a MariaDB table with rows, whose pieces all take
 * tuples and join, where an empty one took LOAD DATA lines but for the piece holding a row that LOAD DATA cannot
 * take).
 */
const wholeFlows = new Map<string, number>();

/** A chunk transformed: what the thread sends back. */
interface Transformed {
  columns: RecordColumns;
  staged: Uint8Array;
  problems: ChunkProblem[];
  targets: PreparedParts[];
}

/** A mapper of the job's chunk to the flow's canonical records. */
function mapperOf(job: TransformJob, flow: Flow): ChunkMapper {
  return new ChunkMapper(flow.from, compileEntity(flow.entity), mapContextOf(job, flow.from.name), job.seq);
}

/** Thrown to stop mapping a chunk's pieces once it is to be transformed whole. */
const transformWhole = Symbol("transform whole");

/**
 * A chunk's outputs, made as its canonical records come (`add`, a piece at a time or all at once): its staged text,
 * and each target's rows prepared by its driver and joined at the end (`finish`).
 */
class ChunkOutputs {
  readonly #stager = new CanonicalStager();
  readonly #pieces: PreparedPieces[];
  readonly #lineage: Lineage;

  constructor(job: TransformJob, flow: Flow, preparers: readonly Preparer[]) {
    this.#pieces = preparers.map((preparer) => new PreparedPieces(preparer));
    this.#lineage = lineageOf(job, flow);
  }

  /** Stages the chunk's next records and prepares their rows for every target. */
  async add(records: readonly CanonicalRecord[]): Promise<void> {
    if (records.length === 0) return;
    const from = this.#stager.count;
    this.#stager.add(records);
    for (const piece of this.#pieces) await piece.add(this.#lineage, records, from);
  }

  /**
   * What the thread sends back, and whether the flow's next chunks of this run can be streamed: not when a target's
   * pieces did not join (its rows are left out: the load maps them itself) or a target mapping waited.
   */
  finish(problems: ChunkProblem[]): { transformed: Transformed; streamable: boolean } {
    const targets: PreparedParts[] = [];
    let streamable = true;
    for (const piece of this.#pieces) {
      const joined = piece.joined();
      if (joined !== undefined) targets.push(joined);
      if (joined === undefined || piece.waited) streamable = false;
    }
    const { columns } = this.#stager;
    return { transformed: { columns, staged: this.#stager.bytes(), problems, targets }, streamable };
  }
}

/**
 * The chunk transformed a piece at a time, end to end: each piece of source text is decoded, mapped to canonical
 * records, staged, mapped to every target's rows and prepared before the next piece is decoded, so that only the
 * chunk's outputs (staged bytes, prepared bytes, keys and hashes) live to its end, not its records and rows. A
 * chunk's records and rows lived through several of the thread's young-generation collections and were copied by
 * each (docs/benchmarks.md, stop 23).
 *
 * Undefined when the chunk must be transformed whole instead (`wholeJob`): a key repeated a key of an earlier piece,
 * whose record the later should replace after its piece was staged and prepared. The pieces after it are not mapped;
 * those before it are mapped again (a mapping with side effects sees their rows twice, once per flow, run and thread).
 */
async function streamJob(
  job: TransformJob,
  flow: Flow,
  preparers: readonly Preparer[],
): Promise<Transformed | undefined> {
  const { system } = flow.from;
  const mapper = mapperOf(job, flow);
  const outputs = new ChunkOutputs(job, flow, preparers);
  try {
    await mapSource(mapper, system.driver as Driver, system.name, job.source, waitingFlows.has(flow.name), () => {
      if (mapper.repeatedTaken) throw transformWhole;
      return outputs.add(mapper.takeRecords());
    });
  } catch (error) {
    if (error !== transformWhole) throw error;
    wholeFlows.set(flow.name, job.run);
    return undefined;
  } finally {
    if (mapper.waited) waitingFlows.add(flow.name);
  }
  const { transformed, streamable } = outputs.finish(mapper.mapped.problems);
  if (!streamable) wholeFlows.set(flow.name, job.run);
  return transformed;
}

/**
 * The chunk transformed whole: its source rows mapped to canonical records (source text a piece at a time when its
 * driver can cut it: map-pieces.ts), then staged, then mapped and prepared for each target all at once (one piece,
 * which its driver need not join).
 */
async function wholeJob(job: TransformJob, flow: Flow, preparers: readonly Preparer[]): Promise<Transformed> {
  const { system } = flow.from;
  const mapper = mapperOf(job, flow);
  await mapSource(mapper, system.driver as Driver, system.name, job.source, waitingFlows.has(flow.name));
  if (mapper.waited) waitingFlows.add(flow.name);
  const outputs = new ChunkOutputs(job, flow, preparers);
  await outputs.add(mapper.mapped.records);
  return outputs.finish(mapper.mapped.problems).transformed;
}

/** The thread cannot take the chunk, through no fault of the chunk: the engine's thread transforms it (protocol.ts). */
function decline(job: TransformJob, code: ErrorCode, reason: string): void {
  send({ type: "failed", id: job.id, error: new FrancaError(code, reason).toJSON(), declined: true });
}

async function transform(job: TransformJob): Promise<void> {
  const flow = hub.flows.get(job.flow);
  if (flow === undefined) {
    decline(
      job,
      ErrorCode.ConfigUnknownReference,
      `the transform thread's configuration (${module}) has no flow '${job.flow}'`,
    );
    return;
  }
  const preparers = job.targets.flatMap((target) => preparerOf(job, flow, target) ?? []);
  // a driver that prepares rows but cannot join prepared pieces has its chunks prepared whole
  const streams =
    wholeFlows.get(flow.name) !== job.run && preparers.every((preparer) => preparer.driver.join !== undefined);
  const done = (streams ? await streamJob(job, flow, preparers) : undefined) ?? (await wholeJob(job, flow, preparers));
  // The source text came as a copy of the engine's bytes (structured clone), decoded now: freed at once rather than
  // at this thread's next full collection (free-bytes.ts), which may be tens of chunks later.
  freeBytes(job.source.text);
  const { columns, staged, problems, targets } = done;
  const { keys, hashes, sourceIds } = columns;
  // the big parts (the staged text, the prepared rows' bytes) are moved to the engine's thread, not copied
  const transfer = transferables(staged);
  for (const target of targets) {
    transferables(target.rowOf, transfer);
    transferables(target.data, transfer);
  }
  try {
    send({ type: "done", id: job.id, keys, hashes, sourceIds, staged, problems, targets }, transfer);
  } catch (error) {
    // A result structured clone cannot copy (a driver's `prepare` that returns functions, say) would fail every chunk
    // of the flow alike: the thread declines it, and the engine's thread transforms the flow, which needs no copy.
    if (!(error instanceof Error && error.name === "DataCloneError")) throw error;
    decline(
      job,
      ErrorCode.Internal,
      `the transform of chunk ${job.seq} cannot be passed back from a transform thread: ${error.message}`,
    );
  }
}

port.on("message", (message: ToThread) => {
  if (message.type === "lookups") {
    const settle = waiting.get(message.id) ?? [];
    waiting.delete(message.id);
    message.answers.forEach((answer, index) => {
      const pending = settle[index];
      if (answer.ok) pending?.resolve(untagRawJson(revived(answer.value)));
      else pending?.reject(FrancaError.fromJSON(answer.error));
    });
    return;
  }
  transform(message).catch((error: unknown) =>
    send({ type: "failed", id: message.id, error: toFrancaError(error).toJSON() }),
  );
});

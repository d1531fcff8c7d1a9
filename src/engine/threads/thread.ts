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
import type { MapContext, Row } from "../../core/binding.ts";
import { compileEntity } from "../../core/compiled-entity.ts";
import { ErrorCode, FrancaError, toFrancaError } from "../../core/errors.ts";
import type { Flow } from "../../core/flow.ts";
import type { Hub } from "../../core/hub.ts";
import type { Lookup } from "../../core/lookup.ts";
import type { MappingFailure } from "../canonical-chunk.ts";
import { freeBytes } from "../free-bytes.ts";
import { undeclaredLookup } from "../lookups.ts";
import { mapAll } from "../map-all.ts";
import { ChunkMapper, type MappedChunk } from "../map-chunk.ts";
import { mapSource } from "../map-pieces.ts";
import { type CanonicalRecord, encodeCanonical, recordColumns } from "../staging.ts";
import { mapToTarget, targetRowProblem } from "../target-rows.ts";
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

/** One target's rows of the chunk: mapped (fromCanonical), then encoded by its driver. */
async function prepareTarget(
  job: TransformJob,
  flow: Flow,
  records: readonly CanonicalRecord[],
  target: TargetJob,
): Promise<PreparedParts | undefined> {
  const binding = flow.to.find((item) => item.name === target.name);
  const prepare = (binding?.system.driver as Driver | undefined)?.prepare;
  if (binding === undefined || prepare === undefined) return undefined;
  const mapContext = mapContextOf(job, binding.name);
  const lineage = { sourceSystem: flow.from.system.name, run: job.run, chunk: job.seq };
  let async = false;
  const { values, thrown } = await mapAll(records, (record) => {
    const row = mapToTarget(binding, record, mapContext, lineage);
    if (typeof (row as { then?: unknown } | null)?.then === "function") async = true;
    return row;
  });
  const rowOf = new Int32Array(records.length);
  const failures: MappingFailure[] = [];
  const rows: Row[] = [];
  for (let i = 0; i < records.length; i++) {
    const error = targetRowProblem(binding.name, thrown.has(i), thrown.get(i), values[i]);
    if (error !== undefined) {
      rowOf[i] = -1;
      failures.push({ index: i, ...error.toJSON() });
      continue;
    }
    rowOf[i] = rows.length;
    rows.push(values[i] as Row);
  }
  const data = prepare(rows, { options: binding.options, key: binding.key, target: target.description });
  return { name: binding.name, data, rowOf, failures, async };
}

/** Flows whose mappings were seen to wait (a lookup, other asynchronous work): their chunks are mapped whole. */
const waitingFlows = new Set<string>();

/**
 * The chunk's source rows mapped to canonical records: source text a piece at a time when its driver can cut it
 * (map-pieces.ts; bench:bulk's PostgreSQL part, 1,000,000 rows, three runs each: peak memory 250–260 MB against
 * 272–295, 17.2–18.1 CPU-seconds against 18.2–19.8), all at once for a flow whose mappings wait.
 */
async function mapJob(job: TransformJob, flow: Flow): Promise<MappedChunk> {
  const binding = flow.from;
  const driver = binding.system.driver as Driver;
  const mapper = new ChunkMapper(binding, compileEntity(flow.entity), mapContextOf(job, binding.name), job.seq);
  await mapSource(mapper, driver, binding.system.name, job.source, waitingFlows.has(flow.name));
  if (mapper.waited) waitingFlows.add(flow.name);
  return mapper.mapped;
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
  const { records, problems } = await mapJob(job, flow);
  // The source text came as a copy of the engine's bytes (structured clone), decoded now: freed at once rather than
  // at this thread's next full collection (free-bytes.ts), which may be tens of chunks later.
  freeBytes(job.source.text);
  const { keys, hashes, sourceIds } = recordColumns(records);
  const staged = encodeCanonical(records, { keys, hashes, sourceIds });
  const targets: PreparedParts[] = [];
  for (const target of job.targets) {
    const prepared = await prepareTarget(job, flow, records, target);
    if (prepared !== undefined) targets.push(prepared);
  }
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
      if (answer.ok) pending?.resolve(revived(answer.value));
      else pending?.reject(FrancaError.fromJSON(answer.error));
    });
    return;
  }
  transform(message).catch((error: unknown) =>
    send({ type: "failed", id: message.id, error: toFrancaError(error).toJSON() }),
  );
});

import { setTimeout as sleep } from "node:timers/promises";
import type { Driver, EncodedBatch, ReadBatch, ReadRequest } from "../connectors/types.ts";
import type { Row } from "../core/binding.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { RunRecord, Store } from "../store/types.ts";
import { classify } from "./classify.ts";
import type { RunContext } from "./context.ts";
import {
  compareProfiles,
  type Drift,
  describeDrift,
  joinDrift,
  noteFields,
  type Profile,
  profileRows,
  untold,
} from "./drift.ts";
import { joinEncoded, rowCount, rowsOf, type SourceRows } from "./source-rows.ts";
import { yieldToEventLoop } from "./yield.ts";

/** Records in the first chunk of an extraction; each next one doubles, up to the flow's chunk size. */
export const firstChunkSize = 50;

/**
 * Rows of each chunk whose types are profiled for drift: up to 100, and, once the fields were compared, 20 when the
 * rows come as source text, which must be decoded for it (on this thread). (Rows that may leave fields out have
 * every row's field names noted besides: noteFields.)
 */
const profiledRows = 100;
const profiledEncodedRows = 20;

/** A chunk handed from extract to transform: its rows, or none when they are to be read back from the store. */
export interface ExtractedChunk {
  seq: number;
  data?: SourceRows;
}

export interface DriftState {
  previous?: Profile;
  current: Profile;
  drift?: Drift;
  /**
   * The run goes on when its source's fields changed under the policy `fail` (`franca run --accept-drift`): the change
   * is logged and recorded as under `warn`, and the source's fields as this run sees them become the flow's profile
   * at its end (finishRecord).
   */
  accepted?: boolean;
  /**
   * This execution compared the source's fields with the flow's profile (from its first chunk whose rows told their
   * fields on): the run's record takes its finding, with what earlier executions found and loaded (keptFinding: a
   * finding that stopped an earlier one goes, so a run continued once the source is set right records none).
   */
  checked?: boolean;
}

/**
 * A run's drift state as an execution of it starts: the flow's profile (the fields and types its earlier runs saw),
 * and whether the run was told to accept a change (`acceptDrift` in its stats, set by `franca run --accept-drift`).
 */
export async function driftState(store: Pick<Store, "getProfile">, run: RunRecord): Promise<DriftState> {
  const previous = await store.getProfile(run.flow);
  return {
    current: {},
    ...(previous === undefined ? {} : { previous }),
    ...(run.stats.acceptDrift === true ? { accepted: true } : {}),
  };
}

/** Whether every row the run's source reads carries every field of the source (`Driver.fieldsInEveryRow`). */
function fieldsInEveryRow(ctx: Pick<RunContext, "source">): boolean {
  const { binding } = ctx.source;
  return (binding.system.driver as Driver).fieldsInEveryRow?.(binding.options) === true;
}

/**
 * Whether the fields an extraction of `run` sees to its end are all the source's (missing fields judged, the ones not
 * seen dropped from the profile): every row carries every field, or it read the source from its start (`fromStart`)
 * and not from a cursor (an incremental read of documents sees only the changed ones, which may leave fields out).
 */
export function seesWholeSource(ctx: Pick<RunContext, "source">, run: RunRecord, fromStart: boolean): boolean {
  return fieldsInEveryRow(ctx) || (fromStart && run.cursorFrom === undefined);
}

/**
 * Where an extracted chunk goes: it must be durable (staged and recorded with its position) when the sink returns,
 * for the chunk is then acknowledged upstream. The in-process executor stages it and hands it to the transform
 * stage; the distributed one stages it and enqueues its transform job in one transaction.
 */
export type ChunkSink = (chunk: { seq: number; data: SourceRows; position: unknown }) => Promise<void>;

type Batch = ReadBatch | EncodedBatch;

/** The source's batches: undecoded source text when its connector can give it (`readEncoded`), else rows. */
function readBatches(ctx: RunContext, request: ReadRequest): AsyncIterable<Batch> {
  const { connection } = ctx.source;
  const encoded =
    (ctx.source.binding.system.driver as Driver).decode === undefined ? undefined : connection.readEncoded;
  const stream = encoded?.call(connection, request);
  if (stream !== undefined) return stream;
  return (connection.read as NonNullable<typeof connection.read>).call(connection, request);
}

/**
 * Reads the source from `from`, cuts the stream into chunks (slow start, then the flow's chunk size), hands each
 * chunk to the sink, which makes it durable, and only then acknowledges it upstream. A transient read error restarts
 * the read from the last durable position after a backoff; rows read since then are dropped, never half-kept.
 */
export async function extract(
  ctx: RunContext,
  startSeq: number,
  from: unknown,
  drift: DriftState,
  sink: ChunkSink,
): Promise<void> {
  const { binding, connection, policy } = ctx.source;
  const log = ctx.logger.child({ stage: "extract", system: binding.system.name });
  if (connection.read === undefined && connection.readEncoded === undefined) {
    throw new FrancaError(ErrorCode.ConfigInvalid, `system '${binding.system.name}' cannot be read`, {
      setting: `flows.${ctx.flow.name}.from`,
    });
  }
  const driver = binding.system.driver as Driver;
  const everyRow = fieldsInEveryRow(ctx);
  // Slow start: the first chunks of an extraction are small (50, 100, 200… up to chunkSize), so that the targets
  // get work while the source is still being read, instead of waiting for a whole first chunk to be enriched.
  const sizeOf = (seq: number) => Math.min(ctx.flow.chunkSize, firstChunkSize * 2 ** Math.max(0, seq - startSeq));
  let position = from;
  let seq = startSeq;
  // the chunk being filled: rows, or the encoded batches that make it
  let buffer: Row[] = [];
  let encoded: EncodedBatch[] = [];
  let buffered = 0;
  let bufferPosition: unknown;
  let failures = 0;
  let delayed = 0;
  let pausedSince: number | undefined;

  const flush = async () => {
    const data: SourceRows = encoded.length > 0 ? joinEncoded(encoded) : { rows: buffer };
    buffer = [];
    encoded = [];
    buffered = 0;
    if ("rows" in data) {
      profileRows(data.rows, drift.current, profiledRows);
      // rows that may leave fields out: every row's fields noted, the sample's types aside, so that a field is judged
      // new, or missing at the end, on every row read
      if (!everyRow) noteFields(data.rows, drift.current);
    } else {
      // the larger sample for the execution's first chunk, and until the fields are compared (the comparison is
      // judged on it)
      const comparing = drift.checked !== true && drift.previous !== undefined && ctx.flow.drift !== "ignore";
      const sample = seq === startSeq || comparing ? profiledRows : profiledEncodedRows;
      // (the encoded reads, SQL's, have no unreadable rows: the sample tells the fields)
      profileRows(rowsOf(data, driver, binding.system.name, sample), drift.current, sample);
    }
    // Judged at every chunk, from the execution's first whose rows told their fields (rows that could not be read tell
    // none: had they all, every field would read as missing), before the chunk is handed on: what a chunk shows first
    // is logged then, and stops the run under 'fail' before that chunk or any later one is loaded.
    if (drift.previous !== undefined && ctx.flow.drift !== "ignore" && Object.keys(drift.current).length > 0) {
      const first = drift.checked !== true;
      drift.checked = true;
      // A source whose rows each carry every field shows a missing one in its first rows; any other only once the
      // whole extraction is seen (finishRecord).
      const found = compareProfiles(drift.previous, drift.current, everyRow);
      const news = found === undefined ? undefined : untold(found, drift.drift);
      if (news !== undefined) {
        drift.drift = joinDrift(drift.drift, news);
        const stops = ctx.flow.drift === "fail" && drift.accepted !== true;
        const message = `source drift in ${binding.name}${first ? "" : ` at chunk ${seq}`}: ${describeDrift(news)}`;
        log.warn(
          { drift: news, chunk: seq, ...(drift.accepted === true ? { accepted: true } : {}) },
          drift.accepted === true && ctx.flow.drift === "fail" ? `${message} (accepted for this run)` : message,
        );
        if (stops) {
          throw new FrancaError(
            ErrorCode.SourceDrift,
            `${message} (the flow's drift policy is 'fail'; \`franca run ${ctx.flow.name} --accept-drift\` takes the source as it is now)`,
            // for the run's record: the distributed executor ends the run with it (worker.ts)
            { system: binding.system.name, details: { drift: drift.drift, stopped: news } },
          );
        }
      }
    }
    await sink({ seq, data, position: bufferPosition });
    position = bufferPosition;
    if (connection.ack !== undefined) await connection.ack(position);
    log.debug({ chunk: seq, records: rowCount(data) }, "chunk extracted");
    seq++;
    await yieldToEventLoop();
  };

  for (;;) {
    try {
      const stream = readBatches(ctx, {
        options: binding.options,
        key: binding.key,
        ...(binding.cursor === undefined ? {} : { cursor: binding.cursor }),
        ...(position === undefined ? {} : { from: position }),
        // grows with the chunk being filled (slow start): connectors read it before each batch
        get batchSize() {
          return sizeOf(seq);
        },
        fullBatchSize: ctx.flow.chunkSize,
        signal: ctx.signal,
        call: (fn) => policy.attempt(fn, ctx.signal),
        // once each, also when the read restarts after a transient error
        warn: (message) => {
          if (ctx.warnings.has(message)) return;
          ctx.warnings.add(message);
          log.warn({ system: binding.system.name }, message);
        },
      });
      for await (const batch of stream) {
        failures = 0;
        pausedSince = undefined;
        if ("rows" in batch) {
          if (buffer.length === 0)
            buffer = batch.rows; // the usual case: one batch is one chunk, no copy
          else for (const row of batch.rows) buffer.push(row);
          buffered += batch.rows.length;
        } else if (batch.count > 0) {
          encoded.push(batch);
          buffered += batch.count;
        }
        bufferPosition = batch.position;
        if (buffered >= sizeOf(seq)) await flush();
        if (ctx.signal.aborted) return;
      }
      if (buffered > 0) await flush();
      return;
    } catch (raw) {
      if (ctx.signal.aborted) return;
      const error = classify(raw, binding.system.name);
      buffer = [];
      encoded = [];
      buffered = 0;
      if (error.code === ErrorCode.CircuitOpen || (error.transient && policy.breakerState !== "closed")) {
        pausedSince ??= Date.now();
        await policy.waitForBreaker(ctx.signal, pausedSince);
        continue;
      }
      if (!error.transient) throw error;
      failures++;
      const delay = policy.retryDelay(failures, error, delayed);
      if (delay === undefined) throw error;
      policy.noteTransient(error, failures, delay);
      log.warn(
        { err: error.toJSON(), attempt: failures, delayMs: Math.round(delay) },
        "read failed; resuming from the last persisted chunk",
      );
      delayed += delay;
      await sleep(delay, undefined, { signal: ctx.signal });
    }
  }
}

import { setTimeout as sleep } from "node:timers/promises";
import type { Row } from "../core/binding.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { classify } from "./classify.ts";
import type { RunContext } from "./context.ts";
import { compareProfiles, type Drift, describeDrift, type Profile, profileRows } from "./drift.ts";
import { yieldToEventLoop } from "./yield.ts";

/** Records in the first chunk of an extraction; each next one doubles, up to the flow's chunk size. */
export const firstChunkSize = 50;

/** A chunk handed from extract to transform: its rows, or none when they are to be read back from the store. */
export interface ExtractedChunk {
  seq: number;
  rows?: Row[];
}

export interface DriftState {
  previous?: Profile;
  current: Profile;
  drift?: Drift;
}

/**
 * Where an extracted chunk goes: it must be durable (staged and recorded with its position) when the sink returns,
 * for the chunk is then acknowledged upstream. The in-process executor stages it and hands it to the transform
 * stage; the distributed one stages it and enqueues its transform job in one transaction.
 */
export type ChunkSink = (chunk: { seq: number; rows: Row[]; position: unknown }) => Promise<void>;

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
  if (connection.read === undefined) {
    throw new FrancaError(ErrorCode.ConfigInvalid, `system '${binding.system.name}' cannot be read`, {
      setting: `flows.${ctx.flow.name}.from`,
    });
  }
  const read = connection.read.bind(connection);
  // Slow start: the first chunks of an extraction are small (50, 100, 200… up to chunkSize), so that the targets
  // get work while the source is still being read, instead of waiting for a whole first chunk to be enriched.
  const sizeOf = (seq: number) => Math.min(ctx.flow.chunkSize, firstChunkSize * 2 ** Math.max(0, seq - startSeq));
  let position = from;
  let seq = startSeq;
  let buffer: Row[] = [];
  let bufferPosition: unknown;
  let failures = 0;
  let delayed = 0;
  let pausedSince: number | undefined;

  const flush = async () => {
    const rows = buffer;
    buffer = [];
    profileRows(rows, drift.current);
    if (seq === startSeq && drift.previous !== undefined && ctx.flow.drift !== "ignore") {
      drift.drift = compareProfiles(drift.previous, drift.current, false);
      if (drift.drift !== undefined) {
        const message = `source drift in ${binding.name}: ${describeDrift(drift.drift)}`;
        log.warn({ drift: drift.drift }, message);
        if (ctx.flow.drift === "fail") {
          throw new FrancaError(ErrorCode.SourceDrift, `${message} (the flow's drift policy is 'fail')`, {
            system: binding.system.name,
          });
        }
      }
    }
    await sink({ seq, rows, position: bufferPosition });
    position = bufferPosition;
    if (connection.ack !== undefined) await connection.ack(position);
    log.debug({ chunk: seq, records: rows.length }, "chunk extracted");
    seq++;
    await yieldToEventLoop();
  };

  for (;;) {
    try {
      const stream = read({
        options: binding.options,
        key: binding.key,
        ...(binding.cursor === undefined ? {} : { cursor: binding.cursor }),
        ...(position === undefined ? {} : { from: position }),
        // grows with the chunk being filled (slow start): connectors read it before each batch
        get batchSize() {
          return sizeOf(seq);
        },
        signal: ctx.signal,
        call: (fn) => policy.attempt(fn, ctx.signal),
      });
      for await (const batch of stream) {
        failures = 0;
        pausedSince = undefined;
        if (buffer.length === 0)
          buffer = batch.rows; // the usual case: one batch is one chunk, no copy
        else for (const row of batch.rows) buffer.push(row);
        bufferPosition = batch.position;
        if (buffer.length >= sizeOf(seq)) await flush();
        if (ctx.signal.aborted) return;
      }
      if (buffer.length > 0) await flush();
      return;
    } catch (raw) {
      if (ctx.signal.aborted) return;
      const error = classify(raw, binding.system.name);
      buffer = [];
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

import type { Readable } from "node:stream";
import pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import type { Row } from "../../core/binding.ts";
import {
  afterPredicate,
  orderColumns,
  orderNotNull,
  positionOf,
  quoteIdent,
  sourceRelation,
  warnNullOrder,
} from "../sql.ts";
import type { EncodedBatch, ReadBatch, ReadRequest } from "../types.ts";
import {
  CopyLines,
  type CopyLinesTaken,
  CopyRowDecoder,
  copyEncoding,
  copyFields,
  parameterText,
} from "./copy-text.ts";
import type { DedicatedClient, PostgresSession } from "./driver.ts";
import { postgresError } from "./errors.ts";
import type { PostgresBindingOptions } from "./options.ts";
import { countNullOrder, readWhat, savedPosition } from "./read.ts";

/**
 * The lines of one running `COPY … TO STDOUT`, taken a batch at a time. The stream is read only inside `take`: between
 * two takes nothing reads the socket, so pg-copy-streams stops pulling from it, the kernel buffers fill and the
 * server waits (back-pressure). At most about one socket read of lines is held ahead of the batch asked for.
 */
class CopyReader {
  readonly #connection: DedicatedClient;
  readonly #stream: Readable;
  readonly #lines = new CopyLines();
  #ended = false;
  #failure: unknown;
  #wake: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(connection: DedicatedClient, stream: Readable) {
    this.#connection = connection;
    this.#stream = stream;
    const wake = () => {
      const resolve = this.#wake;
      this.#wake = undefined;
      resolve?.();
    };
    stream.on("readable", wake);
    stream.on("end", () => {
      this.#ended = true;
      wake();
    });
    stream.on("error", (error) => {
      this.#failure ??= error;
      wake();
    });
    stream.on("close", () => {
      // A stream cut short is a lost connection (transient: the engine resumes from the last persisted position).
      if (!this.#ended)
        this.#failure ??= Object.assign(new Error("the COPY stream closed before its end"), { code: "ECONNRESET" });
      wake();
    });
  }

  /** Every line was handed out and the statement completed. */
  get finished(): boolean {
    return this.#ended && this.#lines.empty;
  }

  /**
   * The next `size` lines (fewer only at the end; none when there are no more). When `signal` aborts, the statement
   * is cancelled on the server and the take fails with the server's error (query_canceled).
   */
  async take(size: number, signal: AbortSignal): Promise<CopyLinesTaken> {
    const onAbort = () => void this.#connection.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal.aborted) onAbort();
      while (!this.#lines.collect(size) && !this.#ended) {
        if (this.#failure !== undefined) throw this.#failure;
        const chunk = this.#stream.read() as Buffer | null;
        if (chunk !== null) {
          this.#lines.push(chunk);
          continue;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#ended) this.#lines.end();
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    return this.#lines.take();
  }

  /**
   * Ends the read. A statement still running is cancelled first (a backend busy computing, a sort say, would not
   * notice a closed socket until it writes), then the connection is closed: a backend blocked writing rows nobody
   * reads gets a reset and ends.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.#ended || this.#failure !== undefined) await this.#connection.cancel();
      await this.#connection.close();
    })();
    return this.#closing;
  }
}

const empty = new Uint8Array(0);

/** A position value as an SQL literal: the text a query parameter would carry, untyped like one. */
function literal(value: unknown): string {
  return pg.escapeLiteral(parameterText(value));
}

/** One batch of a COPY read: its lines (when not decoded), or their rows, and the position after the last. */
interface CopyBatch {
  encoding: string;
  bytes: Uint8Array;
  count: number;
  rows: Row[] | undefined;
  position: unknown[];
}

/**
 * COPY reads: one `COPY (SELECT * FROM r [WHERE (cursor, key) > (…)] ORDER BY cursor, key) TO STDOUT` for the whole
 * read, on a connection of its own, cut into batches of `request.batchSize` lines, each with the position after its
 * last row. Its rows are identical to the keyset reads' (the column types come from the same SELECT run with LIMIT 0,
 * and values go through the same parsers). A read from a position starts a new COPY after it (COPY takes no
 * parameters: the position's values are inlined as quoted literals, untyped like the keyset reads' parameters).
 * `decode` decodes each batch's lines into rows (`read`); without it only the order columns of each batch's last
 * line are decoded, for the position (`readEncoded`: the rows are decoded where the chunk is transformed).
 *
 * `request.call` covers the production of each batch, as it covers each page of a keyset read: the first call
 * connects, describes the query and starts the COPY; every call reads (and decodes) lines until its batch is full. So
 * the system's timeout bounds one batch, not the stream, its rate limit counts batches, and its concurrency slot is
 * held while a batch is read, not while the engine persists it (a slot held for the whole stream would deadlock a
 * flow whose source and target are the same system with concurrency 1). Between calls the stream is paused and the
 * server waits; the connection stays open until the read ends.
 *
 * Abort: the call's signal (timeout, stop) cancels the statement and fails the batch with the server's error; the
 * read's signal, or leaving the iteration early, cancels the statement and closes the connection at once.
 */
async function* copyBatches(session: PostgresSession, request: ReadRequest, decode: boolean): AsyncIterable<CopyBatch> {
  const options = request.options as PostgresBindingOptions;
  const columns = orderColumns(request.cursor, request.key);
  const relation = sourceRelation(options, '"');
  const what = readWhat(options);
  const from = savedPosition(request.from, columns, what, session.system);
  const order = columns.map((column) => quoteIdent(column)).join(", ");
  const after =
    from === undefined ? "" : `${afterPredicate(columns, (index) => literal(from[index]), '"', "row").sql} AND `;
  const where = ` WHERE ${after}${orderNotNull(columns, '"')}`;
  const select = `SELECT * FROM ${relation}${where} ORDER BY ${order}`;

  let reader: CopyReader | undefined;
  let connection: DedicatedClient | undefined;
  let encoding = "";
  let decoder: CopyRowDecoder | undefined;
  const start = async (signal: AbortSignal): Promise<CopyReader> => {
    connection = await session.dedicated(signal);
    const open = connection;
    const onAbort = () => void open.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const described = await open.client.query(`${select} LIMIT 0`);
      const fields = described.fields.map((field) => ({ name: field.name, type: field.dataTypeID }));
      encoding = copyEncoding(fields);
      decoder = new CopyRowDecoder(copyFields(fields));
      signal.throwIfAborted();
      const stream = open.client.query(copyTo(`COPY (${select}) TO STDOUT`));
      return new CopyReader(open, stream);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  };
  const stop = () => {
    if (reader !== undefined) void reader.close();
    else void connection?.close();
  };
  request.signal.addEventListener("abort", stop, { once: true });
  try {
    await warnNullOrder(request, options.table, (signal) => countNullOrder(session, relation, columns, signal));
    for (;;) {
      if (request.signal.aborted) return;
      // Only pg's errors (and the decoder's) are classified here; the policy's own (timeout, open circuit) pass
      // through to the engine.
      const batch = await request.call(async (signal) => {
        try {
          reader ??= await start(signal);
          const lines = await reader.take(request.batchSize, signal);
          if (lines.count === 0) return undefined;
          const rows = decode
            ? lines.parts.flatMap((part) => (decoder as CopyRowDecoder).rows(part.toString("utf8")))
            : undefined;
          const last = rows?.[rows.length - 1] ?? (decoder as CopyRowDecoder).pick(lines.last, columns);
          return { lines, rows, last };
        } catch (error) {
          if (signal.aborted) throw error;
          throw postgresError(error, session.system, what);
        }
      });
      if (batch === undefined) return;
      const { lines, rows, last } = batch;
      // one copy of the lines' bytes, into a buffer of the batch's own (the chunks received are slices of pg's reads)
      const bytes = decode ? empty : Buffer.concat(lines.parts);
      yield { encoding, bytes, count: lines.count, rows, position: positionOf(last, columns) };
      if (reader?.finished === true) return;
    }
  } finally {
    request.signal.removeEventListener("abort", stop);
    if (reader !== undefined) await reader.close();
    else await connection?.close();
  }
}

/** `read` of a COPY binding: the batches of copyBatches, decoded. */
export async function* readPostgresCopy(session: PostgresSession, request: ReadRequest): AsyncIterable<ReadBatch> {
  for await (const batch of copyBatches(session, request, true)) {
    yield { rows: batch.rows as Row[], position: batch.position };
  }
}

/**
 * `readEncoded` of a COPY binding: the batches of copyBatches as the server's text, decoded by `decodeCopy`. The
 * work per row here is finding its newline; only the order columns of each batch's last line are decoded.
 */
export async function* readPostgresCopyEncoded(
  session: PostgresSession,
  request: ReadRequest,
): AsyncIterable<EncodedBatch> {
  for await (const batch of copyBatches(session, request, false)) {
    yield { encoding: batch.encoding, text: batch.bytes, count: batch.count, position: batch.position };
  }
}

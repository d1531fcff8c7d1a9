import type { Readable } from "node:stream";
import pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import type { Row } from "../../core/binding.ts";
import { afterPredicate, orderColumns, positionOf, quoteIdent, sourceRelation } from "../sql.ts";
import type { ReadBatch, ReadRequest } from "../types.ts";
import { CopyTextParser, parameterText } from "./copy-text.ts";
import type { DedicatedClient, PostgresSession } from "./driver.ts";
import { postgresError } from "./errors.ts";
import type { PostgresBindingOptions } from "./options.ts";
import { textParser } from "./parsers.ts";
import { readWhat, savedPosition } from "./read.ts";

/**
 * The rows of one running `COPY … TO STDOUT`, taken a batch at a time. The stream is read only inside `take`: between
 * two takes nothing reads the socket, so pg-copy-streams stops pulling from it, the kernel buffers fill and the
 * server waits (back-pressure). At most about one socket read of rows is parsed ahead of the batch asked for.
 */
class CopyReader {
  readonly #connection: DedicatedClient;
  readonly #stream: Readable;
  readonly #parser: CopyTextParser;
  #rows: Row[] = [];
  #ended = false;
  #failure: unknown;
  #wake: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(connection: DedicatedClient, stream: Readable, parser: CopyTextParser) {
    this.#connection = connection;
    this.#stream = stream;
    this.#parser = parser;
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

  /** Every row was handed out and the statement completed. */
  get finished(): boolean {
    return this.#ended && this.#rows.length === 0;
  }

  /**
   * The next `size` rows (fewer only at the end; none when there are no more). When `signal` aborts, the statement
   * is cancelled on the server and the take fails with the server's error (query_canceled).
   */
  async take(size: number, signal: AbortSignal): Promise<Row[]> {
    const onAbort = () => void this.#connection.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal.aborted) onAbort();
      while (this.#rows.length < size && !this.#ended) {
        if (this.#failure !== undefined) throw this.#failure;
        const chunk = this.#stream.read() as Buffer | null;
        if (chunk !== null) {
          this.#parser.push(chunk, this.#rows);
          continue;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#ended) this.#parser.end();
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    if (this.#rows.length <= size) {
      const rows = this.#rows;
      this.#rows = [];
      return rows;
    }
    const rows = this.#rows.slice(0, size);
    this.#rows = this.#rows.slice(size);
    return rows;
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

/** A position value as an SQL literal: the text a query parameter would carry, untyped like one. */
function literal(value: unknown): string {
  return pg.escapeLiteral(parameterText(value));
}

/**
 * COPY reads: one `COPY (SELECT * FROM r [WHERE (cursor, key) > (…)] ORDER BY cursor, key) TO STDOUT` for the whole
 * read, on a connection of its own, parsed into rows identical to the keyset reads' (the column types come from the
 * same SELECT run with LIMIT 0, and values go through the same parsers), cut into batches of `request.batchSize`,
 * each with the position after its last row. A read from a position starts a new COPY after it (COPY takes no
 * parameters: the position's values are inlined as quoted literals, untyped like the keyset reads' parameters).
 *
 * `request.call` covers the production of each batch, as it covers each page of a keyset read: the first call
 * connects, describes the query and starts the COPY; every call reads and parses rows until its batch is full. So the
 * system's timeout bounds one batch, not the stream, its rate limit counts batches, and its concurrency slot is held
 * while a batch is read, not while the engine persists it (a slot held for the whole stream would deadlock a flow
 * whose source and target are the same system with concurrency 1). Between calls the stream is paused and the server
 * waits; the connection stays open until the read ends.
 *
 * Abort: the call's signal (timeout, stop) cancels the statement and fails the batch with the server's error; the
 * read's signal, or leaving the iteration early, cancels the statement and closes the connection at once.
 */
export async function* readPostgresCopy(session: PostgresSession, request: ReadRequest): AsyncIterable<ReadBatch> {
  const options = request.options as PostgresBindingOptions;
  const columns = orderColumns(request.cursor, request.key);
  const relation = sourceRelation(options, '"');
  const what = readWhat(options);
  let position = savedPosition(request.from, columns, what, session.system);
  const order = columns.map((column) => quoteIdent(column)).join(", ");
  const from = position;
  const where =
    from === undefined ? "" : ` WHERE ${afterPredicate(columns, (index) => literal(from[index]), '"', "row").sql}`;
  const select = `SELECT * FROM ${relation}${where} ORDER BY ${order}`;

  let reader: CopyReader | undefined;
  let connection: DedicatedClient | undefined;
  const start = async (signal: AbortSignal): Promise<CopyReader> => {
    connection = await session.dedicated(signal);
    const open = connection;
    const onAbort = () => void open.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const described = await open.client.query(`${select} LIMIT 0`);
      const parser = new CopyTextParser(
        described.fields.map((field) => ({ name: field.name, parse: textParser(field.dataTypeID) })),
      );
      signal.throwIfAborted();
      const stream = open.client.query(copyTo(`COPY (${select}) TO STDOUT`));
      return new CopyReader(open, stream, parser);
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
    for (;;) {
      if (request.signal.aborted) return;
      // Only pg's errors are classified here; the policy's own (timeout, open circuit) pass through to the engine.
      const rows = await request.call(async (signal) => {
        try {
          reader ??= await start(signal);
          return await reader.take(request.batchSize, signal);
        } catch (error) {
          if (signal.aborted) throw error;
          throw postgresError(error, session.system, what);
        }
      });
      if (rows.length === 0) return;
      position = positionOf(rows[rows.length - 1] as Row, columns);
      yield { rows, position };
      if (reader?.finished === true) return;
    }
  } finally {
    request.signal.removeEventListener("abort", stop);
    if (reader !== undefined) await reader.close();
    else await connection?.close();
  }
}

/**
 * One measured part of the PostgreSQL → PostgreSQL copy benchmark, run in its own process so that its peak memory is
 * its own. Rows: id bigint, name, email, amount numeric(12,2), updated_at timestamptz, a ~200-byte jsonb.
 *
 *   node bench/pg-copy-part.ts setup     [--rows 1000000]   creates <schema>.src (filled) and <schema>.dst
 *   node bench/pg-copy-part.ts raw                           COPY (SELECT * FROM src ORDER BY id) TO STDOUT piped
 *                                                            into COPY dst FROM STDIN, over two connections
 *   node bench/pg-copy-part.ts connector [--batch 1000]      the connector alone (no engine): read src in batches,
 *                        [--inflight 1]                      write each batch to dst (COPY read, COPY write), with
 *                                                            up to --inflight writes running while the next batch is
 *                                                            read (the engine overlaps extract and load likewise)
 *   node bench/pg-copy-part.ts insert    [--batch 1000]      the same with `copy: false` (keyset pages, INSERTs)
 *   node bench/pg-copy-part.ts read      [--batch 1000]      read src alone, with `read` (rows), or `readEncoded`
 *                        [--encoded]                         (the COPY text, as the engine stages it for its
 *                                                            transform threads to decode)
 *   node bench/pg-copy-part.ts write     [--batch 1000]      write src's rows to dst, batch by batch, with up to
 *                        [--inflight 1] [--prepared]         --inflight writes at once: the items' rows, or
 *                        [--upsert]                          (--prepared) rows `prepare` encoded beforehand, as a
 *                                                            transform thread would; --upsert: every key is in dst
 *                                                            already (the staging-table upsert; else the direct COPY)
 *   node bench/pg-copy-part.ts send      [--batch 1000]      COPY prepared rows into dst, batch by batch, the way
 *                        [--how buffer|pieces|strings]       write sends them (buffer: views of the encoded bytes
 *                                                            written to the COPY stream), as Readable.from + pipeline
 *                                                            of 64 kB pieces of those bytes (pieces), or of the lines
 *                                                            as strings, joined and encoded per piece (strings: how
 *                                                            write sent them before prepare)
 *   node bench/pg-copy-part.ts drop                          drops the schema
 *
 * Options: --url (default postgres://postgres@127.0.0.1:5432/test), --schema (default franca_bench_pg).
 * Every part but setup and drop empties dst first, checks it holds every row afterwards, and prints one JSON line:
 * { part, rows, wall_s, rows_per_s, peak_rss_mb }. read, write and send measure only the reading, writing or sending
 * (what they need is made before), and add the main thread's CPU time then (process.threadCpuUsage: the time of
 * this thread alone, not the GC's helper threads), in all and per row: main_cpu_s, main_cpu_us_per_row; write adds
 * row_reads, how many times it read an item's row (none on the fast paths of a prepared write). --cpu-profile <file>
 * writes a CPU profile of their timed phase (Chrome DevTools' .cpuprofile format).
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { Readable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { postgres, postgresDriver } from "../src/connectors/postgres/index.ts";
import { quoteIdent } from "../src/connectors/sql.ts";
import type { Connection, ReadRequest, WriteItem } from "../src/connectors/types.ts";
import type { Row } from "../src/core/binding.ts";
import { fillSource, partResult, sourceColumns, withPg } from "./bulk-shared.ts";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string", default: "postgres://postgres@127.0.0.1:5432/test" },
    schema: { type: "string", default: "franca_bench_pg" },
    rows: { type: "string", default: "1000000" },
    batch: { type: "string", default: "1000" },
    inflight: { type: "string", default: "1" },
    encoded: { type: "boolean", default: false },
    prepared: { type: "boolean", default: false },
    upsert: { type: "boolean", default: false },
    how: { type: "string", default: "buffer" },
    "cpu-profile": { type: "string" },
  },
});
const part = positionals[0] ?? "";
const url = values.url as string;
const schema = quoteIdent(values.schema as string);
const columns = sourceColumns;

async function setup(): Promise<void> {
  const rows = Number(values.rows);
  await withPg(url, async (client) => {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(`CREATE TABLE ${schema}.src (${columns})`);
    await client.query(`CREATE TABLE ${schema}.dst (${columns})`);
    await fillSource(client, `${schema}.src`, rows);
    const [size] = (
      await client.query(`SELECT pg_size_pretty(pg_total_relation_size('${schema}.src')) AS size,
        avg(length(doc::text))::int AS doc_bytes FROM ${schema}.src`)
    ).rows;
    console.error(`source: ${rows} rows, ${size.size}, jsonb ~${size.doc_bytes} bytes as text`);
  });
}

async function emptyTarget(): Promise<void> {
  await withPg(url, (client) => client.query(`TRUNCATE ${schema}.dst`).then(() => undefined));
}

async function countTarget(): Promise<number> {
  return withPg(url, async (client) =>
    Number((await client.query(`SELECT count(*) AS n FROM ${schema}.dst`)).rows[0].n),
  );
}

async function raw(): Promise<number> {
  const source = new pg.Client({ connectionString: url });
  const target = new pg.Client({ connectionString: url });
  await Promise.all([source.connect(), target.connect()]);
  try {
    const out = source.query(copyTo(`COPY (SELECT * FROM ${schema}.src ORDER BY id) TO STDOUT`));
    const into = target.query(copyFrom(`COPY ${schema}.dst FROM STDIN`));
    await pipeline(out, into);
    return into.rowCount;
  } finally {
    await Promise.all([source.end(), target.end()]);
  }
}

async function connector(copy: boolean): Promise<number> {
  const from = open("source");
  const to = open("target");
  const read = from.read as NonNullable<Connection["read"]>;
  const write = to.write as NonNullable<Connection["write"]>;
  const request: ReadRequest = {
    options: { table: `${values.schema}.src`, copy },
    key: ["id"],
    batchSize: Number(values.batch),
    signal,
    call: (fn) => fn(signal),
  };
  let rows = 0;
  const store = async (batchRows: Row[], seq: number): Promise<void> => {
    const results = await write({
      options: { table: `${values.schema}.dst`, copy },
      key: ["id"],
      target: "bench.dst",
      run: 1,
      chunk: seq,
      items: batchRows.map((row) => ({ key: String(row.id), row, idempotencyKey: "", hash: "" })),
      signal,
    });
    for (const result of results) if (!result.ok) throw result.error;
    rows += batchRows.length;
  };
  try {
    await inFlight(read(request), (batch, chunk) => store(batch.rows, chunk));
  } finally {
    await Promise.all([from.close(), to.close()]);
  }
  return rows;
}

/**
 * Runs `each` over the items, at most --inflight at once (a read waits, its stream paused, while they run); the
 * first failure rejects.
 */
async function inFlight<T>(
  items: Iterable<T> | AsyncIterable<T>,
  each: (item: T, index: number) => Promise<void>,
): Promise<void> {
  const limit = Math.max(1, Number(values.inflight));
  const running = new Set<Promise<void>>();
  let index = 0;
  for await (const item of items) {
    while (running.size >= limit) await Promise.race(running);
    const task = each(item, index++);
    running.add(task);
    void task.then(
      () => running.delete(task),
      () => {},
    );
  }
  await Promise.all(running);
}

const open = (name: string): Connection => postgresDriver.open(postgres(name, { url }), { baseDir: process.cwd() });
const signal = new AbortController().signal;
const source = { table: `${values.schema}.src` };
const target = { table: `${values.schema}.dst` };
const readRequest = (): ReadRequest => ({
  options: source,
  key: ["id"],
  batchSize: Number(values.batch),
  signal,
  call: (fn) => fn(signal),
});

/**
 * Starts a CPU profile of this thread when --cpu-profile names a file (read, write and send profile their timed
 * phase only); the function returned stops it and writes the file.
 */
async function profile(): Promise<() => Promise<void>> {
  const file = values["cpu-profile"];
  if (file === undefined) return async () => {};
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return async () => {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/** The main thread's CPU time so far, in µs. */
function mainCpu(): number {
  const used = process.threadCpuUsage();
  return used.user + used.system;
}

/**
 * Runs a timed phase (profiled when --cpu-profile names a file) that returns how many rows it moved: its rows, its
 * wall seconds, and what it adds to the part's result line, its main-thread CPU in all and per row.
 */
async function timed(work: () => Promise<number>): Promise<{ rows: number; wall: number; cpu: object }> {
  const stopProfile = await profile();
  const started = performance.now();
  const cpuAtStart = mainCpu();
  const rows = await work();
  const cpuUs = mainCpu() - cpuAtStart;
  const wall = (performance.now() - started) / 1000;
  await stopProfile();
  const cpu = { main_cpu_s: Number((cpuUs / 1e6).toFixed(3)), main_cpu_us_per_row: Number((cpuUs / rows).toFixed(2)) };
  return { rows, wall, cpu };
}

/** Reads src alone, with `read` or `readEncoded`; the target is not touched. */
async function readOnly(): Promise<void> {
  const from = open("source");
  const { rows, wall, cpu } = await timed(async () => {
    let rows = 0;
    try {
      if (values.encoded) {
        const read = (from.readEncoded as NonNullable<Connection["readEncoded"]>)(readRequest());
        if (read === undefined) throw new Error("no encoded read");
        for await (const batch of read) rows += batch.count;
      } else {
        for await (const batch of (from.read as NonNullable<Connection["read"]>)(readRequest()))
          rows += batch.rows.length;
      }
    } finally {
      await from.close();
    }
    return rows;
  });
  console.log(JSON.stringify(partResult(`${part}${values.encoded ? " encoded" : ""}`, rows, wall, cpu)));
}

/** Every row of src, in batches of --batch (read before anything is timed). */
async function sourceBatches(): Promise<Row[][]> {
  const from = open("source");
  const batches: Row[][] = [];
  try {
    for await (const batch of (from.read as NonNullable<Connection["read"]>)(readRequest())) batches.push(batch.rows);
  } finally {
    await from.close();
  }
  return batches;
}

/**
 * Writes src's rows to dst, timed apart from reading them, preparing them (as a transform thread would, then
 * structured-cloned as they would cross to the main thread) and making the items.
 */
async function writeOnly(): Promise<void> {
  const to = open("target");
  const write = to.write as NonNullable<Connection["write"]>;
  const batches = await sourceBatches();
  const description = values.prepared
    ? await (to.describeTarget as NonNullable<Connection["describeTarget"]>)(target, signal)
    : undefined;
  const prepare = postgresDriver.prepare as NonNullable<typeof postgresDriver.prepare>;
  let rowReads = 0;
  const requests = batches.map((rows, chunk) => {
    const items: WriteItem[] = rows.map((row) => ({
      key: String(row.id),
      get row() {
        rowReads++;
        return row;
      },
      idempotencyKey: "",
      hash: "",
    }));
    const prepared =
      description === undefined
        ? undefined
        : {
            data: structuredClone(prepare(rows, { options: target, key: ["id"], target: description })),
            rows: rows.map((_, i) => i),
          };
    return { options: target, key: ["id"], target: "bench.dst", run: 1, chunk, items, prepared, signal };
  });
  await emptyTarget();
  const send = async (request: (typeof requests)[number]): Promise<void> => {
    for (const result of await write(request)) if (!result.ok) throw result.error;
  };
  if (values.upsert) for (const request of requests) await send({ ...request, prepared: undefined });
  rowReads = 0;
  const { rows, wall, cpu } = await timed(async () => {
    let rows = 0;
    try {
      await inFlight(requests, async (request) => {
        await send(request);
        rows += request.items.length;
      });
    } finally {
      await to.close();
    }
    return rows;
  });
  const landed = await countTarget();
  if (landed !== rows) throw new Error(`${part}: wrote ${rows} rows but the target holds ${landed}`);
  const name = `${part}${values.prepared ? " prepared" : " rows"}${values.upsert ? " upsert" : " direct"}`;
  console.log(JSON.stringify(partResult(name, rows, wall, { ...cpu, row_reads: rowReads })));
}

/**
 * COPYs prepared rows into dst, one COPY per batch, sent the way --how says; only the sends are timed (and only
 * their main-thread CPU counted).
 */
async function sendOnly(): Promise<void> {
  const to = open("target");
  const description = await (to.describeTarget as NonNullable<Connection["describeTarget"]>)(target, signal);
  await to.close();
  const prepare = postgresDriver.prepare as NonNullable<typeof postgresDriver.prepare>;
  const batches = (await sourceBatches()).map(
    (rows) =>
      structuredClone(prepare(rows, { options: target, key: ["id"], target: description })) as {
        bytes: Uint8Array;
        ends: Uint32Array;
      },
  );
  // The lines as strings, for --how strings (how write held them before prepare).
  const lines = batches.map((batch) => {
    const bytes = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.length);
    return Array.from(batch.ends, (end, i) => bytes.toString("utf8", i === 0 ? 0 : batch.ends[i - 1], end));
  });
  const how = values.how as string;
  const piece = 64 * 1024;
  function* strings(list: string[]): Generator<Buffer> {
    let joined: string[] = [];
    let length = 0;
    for (const line of list) {
      joined.push(line);
      length += line.length;
      if (length >= piece) {
        yield Buffer.from(joined.join(""));
        joined = [];
        length = 0;
      }
    }
    if (joined.length > 0) yield Buffer.from(joined.join(""));
  }
  function* pieces(bytes: Uint8Array): Generator<Buffer> {
    for (let at = 0; at < bytes.length; at += piece)
      yield Buffer.from(bytes.buffer, bytes.byteOffset + at, Math.min(piece, bytes.length - at));
  }
  await emptyTarget();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const sql = `COPY ${schema}.dst FROM STDIN`;
  const { rows, wall, cpu } = await timed(async () => {
    let rows = 0;
    try {
      for (const [b, batch] of batches.entries()) {
        const stream = client.query(copyFrom(sql));
        if (how === "strings") await pipeline(Readable.from(strings(lines[b] as string[])), stream);
        else if (how === "pieces") await pipeline(Readable.from(pieces(batch.bytes)), stream);
        else {
          const data = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.length);
          for (let at = 0; at < data.length; at += 1024 * 1024) stream.write(data.subarray(at, at + 1024 * 1024));
          stream.end();
          await finished(stream);
        }
        rows += batch.ends.length;
      }
    } finally {
      await client.end();
    }
    return rows;
  });
  const landed = await countTarget();
  if (landed !== rows) throw new Error(`${part}: sent ${rows} rows but the target holds ${landed}`);
  console.log(JSON.stringify(partResult(`${part} ${how}`, rows, wall, cpu)));
}

async function measure(work: () => Promise<number>): Promise<void> {
  await emptyTarget();
  const started = performance.now();
  const rows = await work();
  const wall = (performance.now() - started) / 1000;
  const landed = await countTarget();
  if (landed !== rows) throw new Error(`${part}: moved ${rows} rows but the target holds ${landed}`);
  console.log(JSON.stringify(partResult(part, rows, wall)));
}

switch (part) {
  case "setup":
    await setup();
    break;
  case "raw":
    await measure(raw);
    break;
  case "connector":
    await measure(() => connector(true));
    break;
  case "insert":
    await measure(() => connector(false));
    break;
  case "read":
    await readOnly();
    break;
  case "write":
    await writeOnly();
    break;
  case "send":
    await sendOnly();
    break;
  case "drop":
    await withPg(url, (client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).then(() => undefined));
    break;
  default:
    console.error(
      "usage: node bench/pg-copy-part.ts setup|raw|connector|insert|read|write|send|drop [--rows N] [--batch N] …",
    );
    process.exitCode = 2;
}

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
 *   node bench/pg-copy-part.ts drop                          drops the schema
 *
 * Options: --url (default postgres://postgres@127.0.0.1:5432/test), --schema (default franca_bench_pg).
 * Every part but setup and drop empties dst first, checks it holds every row afterwards, and prints one JSON line:
 * { part, rows, wall_s, rows_per_s, peak_rss_mb }.
 */
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { postgres, postgresDriver } from "../src/connectors/postgres/index.ts";
import { quoteIdent } from "../src/connectors/sql.ts";
import type { Connection, ReadRequest } from "../src/connectors/types.ts";
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
  const open = (name: string): Connection => postgresDriver.open(postgres(name, { url }), { baseDir: process.cwd() });
  const from = open("source");
  const to = open("target");
  const signal = new AbortController().signal;
  const read = from.read as NonNullable<Connection["read"]>;
  const write = to.write as NonNullable<Connection["write"]>;
  const request: ReadRequest = {
    options: { table: `${values.schema}.src`, copy },
    key: ["id"],
    batchSize: Number(values.batch),
    signal,
    call: (fn) => fn(signal),
  };
  const inflight = Math.max(1, Number(values.inflight));
  const running = new Set<Promise<void>>();
  let rows = 0;
  let chunk = 0;
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
    for await (const batch of read(request)) {
      // The read waits (paused stream) while `inflight` writes run.
      while (running.size >= inflight) await Promise.race(running);
      const writing = store(batch.rows, chunk++);
      running.add(writing);
      void writing.then(
        () => running.delete(writing),
        () => {},
      );
    }
    await Promise.all(running);
  } finally {
    await Promise.all([from.close(), to.close()]);
  }
  return rows;
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
  case "drop":
    await withPg(url, (client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).then(() => undefined));
    break;
  default:
    console.error("usage: node bench/pg-copy-part.ts setup|raw|connector|insert|drop [--rows N] [--batch N]");
    process.exitCode = 2;
}

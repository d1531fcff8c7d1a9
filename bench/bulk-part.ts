/**
 * One measured part of bench:bulk, run in its own process so that its peak memory is its own (bench/bulk.ts runs
 * them). Every part empties its target first (untimed), moves every row of the source table, checks the target holds
 * them all, and prints one JSON line: { part, rows, wall_s, rows_per_s, peak_rss_mb, cpu_s (this process, setup
 * included), and over the move alone: node_cpu_s (this process), machine_cpu_s (the whole machine, the databases'
 * processes included), busy_cores, databases_cpu_s (PostgreSQL's and MariaDB's or MySQL's processes) }.
 *
 *   node bench/bulk-part.ts pg-raw       --source T   COPY (SELECT * FROM T ORDER BY id) TO STDOUT piped into
 *                                                     COPY dst FROM STDIN, over two connections
 *   node bench/bulk-part.ts pg-engine    --source T   the Franca engine, PostgreSQL → PostgreSQL
 *   node bench/bulk-part.ts maria-engine --source T   the Franca engine, PostgreSQL → MariaDB
 *   node bench/bulk-part.ts pg-from-maria            the Franca engine, MariaDB → PostgreSQL: MariaDB's table as a
 *                                                     maria-engine part left it (with an index on its cursor, made
 *                                                     and dropped again untimed), read encoded (mysql2's values
 *                                                     as JSON lines, decoded on the transform thread)
 *   node bench/bulk-part.ts pg-from-maria-raw        its raw reference: the same table streamed by mysql2 (rows as
 *                                                     arrays, DATETIME and JSON as text) into COPY … FROM STDIN, as
 *                                                     a hand-written script would move it
 *   node bench/bulk-part.ts maria-raw    --source T --method load|insert [--batch N]
 *        load:   the COPY stream of the source handed as it is to LOAD DATA LOCAL INFILE (mysql2's
 *                infileStreamFactory): PostgreSQL's COPY text is MariaDB's LOAD DATA default format
 *        insert: the COPY stream parsed into rows, sent as multi-row INSERTs of N rows (autocommit)
 *
 * Options: --pg (URL), --maria (URL), --schema (PostgreSQL schema of the tables), --chunk-size and
 * --load-concurrency (the flow's settings; default: the flow's defaults), --threads (the engine's transform threads;
 * default: the machine's cores less one). The engine parts' hub is bench/bulk-hub.ts, a module the threads import.
 * BULK_THREAD_CPU=1 prints the CPU seconds of each of the process's threads (stderr) when the run ends.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type mysql from "mysql2/promise";
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import type { Hub } from "../src/core/hub.ts";
import { Engine } from "../src/engine/engine.ts";
import {
  databaseCpuSeconds,
  defaultMariaUrl,
  defaultPgUrl,
  machineBusySeconds,
  mariaTarget,
  partResult,
  targetNames,
  withPg,
} from "./bulk-shared.ts";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    pg: { type: "string", default: defaultPgUrl },
    maria: { type: "string", default: defaultMariaUrl },
    schema: { type: "string", default: "franca_bench_bulk" },
    source: { type: "string", default: "src" },
    method: { type: "string", default: "load" },
    batch: { type: "string", default: "1000" },
    "chunk-size": { type: "string" },
    "load-concurrency": { type: "string" },
    // transform threads (default: the engine's, the machine's cores less one; 0: none)
    threads: { type: "string" },
  },
});
const part = positionals[0] ?? "";
const pgUrl = values.pg as string;
const mariaUrl = values.maria as string;
const schema = values.schema as string;
const source = `${schema}.${values.source}`;
const pgTarget = `${schema}.dst`;
const dir = fileURLToPath(new URL("./.work/bulk", import.meta.url));

async function withMaria<T>(work: (connection: mysql.Connection) => Promise<T>): Promise<T> {
  const connection = await mysqlConnect(mariaUrl);
  try {
    return await work(connection);
  } finally {
    await connection.end();
  }
}

const maria = part.startsWith("maria");
const fromMaria = part === "pg-from-maria" || part === "pg-from-maria-raw";
// mysql2 only where MariaDB is used: a PostgreSQL part's peak memory is then the engine's and pg's alone
const { default: mysqlClient } = maria || fromMaria ? await import("mysql2/promise") : { default: undefined };
const mysqlConnect = (uri: string): Promise<mysql.Connection> =>
  (mysqlClient as NonNullable<typeof mysqlClient>).createConnection({ uri });
async function emptyTarget(): Promise<void> {
  if (maria) await withMaria((connection) => connection.query(`TRUNCATE ${mariaTarget}`));
  else await withPg(pgUrl, (client) => client.query(`TRUNCATE ${pgTarget}`));
}

async function countTarget(): Promise<number> {
  if (maria) {
    return withMaria(async (connection) => {
      const [rows] = await connection.query(`SELECT count(*) AS n FROM ${mariaTarget}`);
      return Number((rows as { n: number }[])[0]?.n);
    });
  }
  return withPg(pgUrl, async (client) =>
    Number((await client.query(`SELECT count(*) AS n FROM ${pgTarget}`)).rows[0].n),
  );
}

async function pgRaw(): Promise<number> {
  const from = new pg.Client({ connectionString: pgUrl });
  const to = new pg.Client({ connectionString: pgUrl });
  await Promise.all([from.connect(), to.connect()]);
  try {
    const out = from.query(copyTo(`COPY (SELECT * FROM ${source} ORDER BY id) TO STDOUT`));
    const into = to.query(copyFrom(`COPY ${pgTarget} (${targetNames.join(", ")}) FROM STDIN`));
    await pipeline(out, into);
    return into.rowCount;
  } finally {
    await Promise.all([from.end(), to.end()]);
  }
}

/** The source as COPY text MariaDB takes as it is: the timestamp as UTC wall time (DATETIME has no zone). */
const mariaCopy = `COPY (SELECT id, name, email, amount, updated_at AT TIME ZONE 'UTC', doc FROM ${source} ORDER BY id) TO STDOUT`;

async function mariaRaw(): Promise<number> {
  const from = new pg.Client({ connectionString: pgUrl });
  await from.connect();
  const to = await mysqlConnect(mariaUrl);
  try {
    const stream = from.query(copyTo(mariaCopy));
    if (values.method === "load") {
      const [result] = await to.query({
        sql: `LOAD DATA LOCAL INFILE 'franca-bench' INTO TABLE ${mariaTarget} CHARACTER SET utf8mb4
              FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (${targetNames.join(", ")})`,
        infileStreamFactory: () => stream,
      });
      return (result as { affectedRows: number }).affectedRows;
    }
    return await insertBatches(stream, to, Number(values.batch));
  } finally {
    await Promise.all([from.end(), to.end()]);
  }
}

/** A field of a COPY line: NULL as \N; backslash, newline, carriage return and tab escaped. */
const copyField = (value: unknown): string =>
  value === null ? "\\N" : String(value).replace(/[\\\n\r\t]/g, (char) => copyEscapes[char] as string);
const copyEscapes: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * MariaDB → PostgreSQL without the engine: MariaDB's table (a maria-engine part's) streamed by mysql2 (rows as arrays,
 * DATETIME as its text, read as UTC), written as COPY lines, 1,000 to a write, into PostgreSQL's table, in key order.
 */
async function pgFromMariaRaw(): Promise<number> {
  // mysql2's callback API: its queries stream rows (the promise API's buffer a whole result)
  const { default: mysqlStreaming } = await import("mysql2");
  const from = mysqlStreaming.createConnection({
    uri: mariaUrl,
    dateStrings: true,
    jsonStrings: true,
    rowsAsArray: true,
  });
  const to = new pg.Client({ connectionString: pgUrl, options: "-c TimeZone=UTC" });
  await to.connect();
  try {
    const rows = from.query(`SELECT ${targetNames.join(", ")} FROM ${mariaTarget} ORDER BY account_id`);
    const lines = Readable.from(
      (async function* () {
        let batch = "";
        let count = 0;
        for await (const row of rows.stream({ highWaterMark: 1000 }) as AsyncIterable<unknown[]>) {
          batch += `${row.map(copyField).join("\t")}\n`;
          if (++count % 1000 === 0) {
            yield batch;
            batch = "";
          }
        }
        if (batch !== "") yield batch;
      })(),
    );
    const into = to.query(copyFrom(`COPY ${pgTarget} (${targetNames.join(", ")}) FROM STDIN`));
    await pipeline(lines, into);
    return into.rowCount;
  } finally {
    await Promise.all([from.promise().end(), to.end()]);
  }
}

const unescapes: Record<string, string> = { n: "\n", r: "\r", t: "\t", b: "\b", f: "\f", v: "\v" };
const unescapeField = (field: string): string =>
  field.includes("\\") ? field.replace(/\\(.)/g, (_, char: string) => unescapes[char] ?? char) : field;

/** The COPY text parsed line by line and sent as multi-row INSERTs of `batch` rows, one after the other. */
async function insertBatches(stream: Readable, to: mysql.Connection, batch: number): Promise<number> {
  const head = `INSERT INTO ${mariaTarget} (${targetNames.join(", ")}) VALUES `;
  let tuples: string[] = [];
  let rest = "";
  let rows = 0;
  stream.setEncoding("utf8");
  for await (const text of stream as AsyncIterable<string>) {
    const lines = (rest + text).split("\n");
    rest = lines.pop() as string;
    for (const line of lines) {
      const fields = line.split("\t").map((field) => (field === "\\N" ? null : unescapeField(field)));
      tuples.push(
        `(${fields.map((field) => (mysqlClient as NonNullable<typeof mysqlClient>).escape(field)).join(", ")})`,
      );
      if (tuples.length === batch) {
        await to.query(head + tuples.join(", "));
        rows += tuples.length;
        tuples = [];
      }
    }
  }
  if (tuples.length > 0) {
    await to.query(head + tuples.join(", "));
    rows += tuples.length;
  }
  return rows;
}

/** CPU seconds of each of this process's threads (/proc), on stderr: where the engine's time goes, thread by thread. */
function threadCpu(): void {
  if (process.env.BULK_THREAD_CPU === undefined) return;
  const threads = readdirSync("/proc/self/task").map((task) => {
    const stat = readFileSync(`/proc/self/task/${task}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    return { name, cpu_s: (Number(fields[11]) + Number(fields[12])) / 100 };
  });
  console.error(JSON.stringify(threads.filter((thread) => thread.cpu_s > 0.05)));
}

async function engine(): Promise<number> {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, "store.db") + suffix, { force: true });
  rmSync(join(dir, "store.db.staging"), { recursive: true, force: true });
  // the hub is a module (bench/bulk-hub.ts) that the engine's transform threads import too; its settings travel in
  // the environment, which the threads share
  Object.assign(process.env, {
    FRANCA_BULK_TARGET: maria ? "maria" : "pg",
    FRANCA_BULK_FROM: fromMaria ? "maria" : "pg",
    FRANCA_BULK_SOURCE: source,
    FRANCA_BULK_PG: pgUrl,
    FRANCA_BULK_MARIA: mariaUrl,
    FRANCA_BULK_STORE: join(dir, "store.db"),
    ...(values["chunk-size"] === undefined ? {} : { FRANCA_BULK_CHUNK_SIZE: values["chunk-size"] }),
    ...(values["load-concurrency"] === undefined ? {} : { FRANCA_BULK_LOAD_CONCURRENCY: values["load-concurrency"] }),
  });
  const module = fileURLToPath(new URL("./bulk-hub.ts", import.meta.url));
  const { default: hub } = (await import(module)) as { default: Hub };
  const threads = values.threads === undefined ? {} : { count: Number(values.threads) };
  const franca = await Engine.open({ hub, baseDir: dir, threads: { module, ...threads } });
  const summary = await franca.run("accounts", { trigger: "bench" });
  threadCpu();
  await franca.close();
  if (summary.run.status !== "succeeded")
    throw new Error(`engine run ${summary.run.status}: ${JSON.stringify(summary.run.error)}`);
  return summary.counts.targets["warehouse.Account"]?.loaded ?? 0;
}

/**
 * MariaDB's table as a source: it must hold rows (a maria-engine part's), and gets the index its keyset read needs.
 * Returns whether this part made the index (then it drops it again: it would slow a later maria-engine part's writes).
 */
async function mariaSource(): Promise<boolean> {
  return withMaria(async (connection) => {
    const [counted] = await connection.query(`SELECT count(*) AS n FROM ${mariaTarget}`);
    if (Number((counted as { n: number }[])[0]?.n) === 0)
      throw new Error(`${mariaTarget} is empty: run a maria-engine part first`);
    const [indexes] = await connection.query(`SHOW INDEX FROM ${mariaTarget} WHERE Key_name = 'franca_cursor'`);
    if ((indexes as unknown[]).length > 0) return false;
    await connection.query(`CREATE INDEX franca_cursor ON ${mariaTarget} (changed_at, account_id)`);
    return true;
  });
}

const parts: Record<string, () => Promise<number>> = {
  "pg-raw": pgRaw,
  "pg-engine": engine,
  "pg-from-maria": engine,
  "pg-from-maria-raw": pgFromMariaRaw,
  "maria-raw": mariaRaw,
  "maria-engine": engine,
};
const work = parts[part];
if (work === undefined) {
  console.error(`usage: node bench/bulk-part.ts ${Object.keys(parts).join("|")} [--source T]`);
  process.exit(2);
}
const madeIndex = fromMaria && (await mariaSource());
await emptyTarget();
if (process.env.BULK_MEMLOG !== undefined) {
  // where the memory is, every half second (stderr): to see what the peak is made of
  setInterval(() => {
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    const mb = (bytes: number) => Math.round(bytes / 1048576);
    console.error(
      `rss ${mb(rss)} heap ${mb(heapUsed)}/${mb(heapTotal)} external ${mb(external)} buffers ${mb(arrayBuffers)}`,
    );
  }, 500).unref();
}
const busyBefore = machineBusySeconds();
const databasesBefore = databaseCpuSeconds();
const nodeBefore = process.cpuUsage();
const started = performance.now();
const measured = await (async () => {
  try {
    const rows = await work();
    return {
      rows,
      wall: (performance.now() - started) / 1000,
      machineCpu: machineBusySeconds() - busyBefore,
      databasesCpu: databaseCpuSeconds() - databasesBefore,
      nodeCpu: process.cpuUsage(nodeBefore),
    };
  } finally {
    // after the measure: the index this part made goes again (a failed move's too)
    if (madeIndex) await withMaria((connection) => connection.query(`DROP INDEX franca_cursor ON ${mariaTarget}`));
  }
})();
const { rows, wall, machineCpu, databasesCpu, nodeCpu } = measured;
const landed = await countTarget();
if (landed !== rows) throw new Error(`${part}: moved ${rows} rows but the target holds ${landed}`);
const label = part === "maria-raw" ? `maria-raw-${values.method === "load" ? "load" : `insert-${values.batch}`}` : part;
// machine_cpu_s: what the move cost the whole machine (databases included); busy_cores: that over the wall time;
// node_cpu_s and databases_cpu_s: this process's and the database servers' shares of it
console.log(
  JSON.stringify(
    partResult(label, rows, wall, {
      node_cpu_s: Number(((nodeCpu.user + nodeCpu.system) / 1e6).toFixed(2)),
      machine_cpu_s: Number(machineCpu.toFixed(2)),
      busy_cores: Number((machineCpu / wall).toFixed(2)),
      databases_cpu_s: Number(databasesCpu.toFixed(2)),
    }),
  ),
);

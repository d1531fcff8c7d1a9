/**
 * Moving a hub's state from its SQLite store to a PostgreSQL one (`franca store migrate --to postgres://…`): every
 * table, run ids kept, and the staged chunks of unfinished runs (segment files beside the SQLite file) into the
 * `staged` table, so that a failed run moved over can be resumed from PostgreSQL.
 *
 * The copy streams: rows go from a SQLite cursor to PostgreSQL's COPY in batches, never a whole table in memory.
 * It is one PostgreSQL transaction: a move that fails leaves the target as empty as it found it (and can be
 * retried), and no process can write to the target before the move is complete. The source is read in one read
 * transaction (a consistent snapshot); stop the hub's processes for the move all the same, since staged files are
 * outside that snapshot.
 */
import { existsSync } from "node:fs";
import { DatabaseSync, type SQLOutputValue } from "node:sqlite";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { redactSecrets } from "../core/redact.ts";
import { PostgresStore } from "./postgres/store.ts";
import { latestVersion } from "./sqlite/migrations.ts";
import { stagingDir } from "./sqlite/store.ts";
import { StagingFiles } from "./staging-files.ts";

export type MovedTable =
  | "runs"
  | "chunks"
  | "chunk_loads"
  | "outcomes"
  | "cursors"
  | "profiles"
  | "target_hashes"
  | "lookup_cache"
  | "staged";

/** Rows copied per table (`staged`: staged chunk outputs, one per chunk and stage). */
export type MoveCounts = Record<MovedTable, number>;

export interface MoveProgress {
  table: MovedTable;
  /** Rows of the table copied so far. */
  rows: number;
  /** The table is complete. */
  done: boolean;
}

export interface MoveOptions {
  /** Called as rows are copied (about every 256 KB of rows, and once at the end of each table). */
  onProgress?: (progress: MoveProgress) => void;
  /** Schema of the target store (default: the URL's `schema` parameter, else `franca`). */
  schema?: string;
}

interface TableSpec {
  name: Exclude<MovedTable, "staged">;
  columns: readonly string[];
  /** Primary-key order: the order SQLite stores the rows in, so reading them in it costs nothing. */
  order: string;
  /** Columns SQLite keeps as 0/1 and PostgreSQL as BOOLEAN. */
  booleans?: readonly string[];
}

// In foreign-key order: runs before the chunks that reference them.
const tables: readonly TableSpec[] = [
  {
    name: "runs",
    columns: [
      "id",
      "flow",
      "kind",
      "trigger",
      "status",
      "parent_id",
      "targets",
      "started_at",
      "ended_at",
      "heartbeat_at",
      "owner",
      "cursor_from",
      "cursor_to",
      "extract_done",
      "error",
      "stats",
    ],
    order: "id",
    booleans: ["extract_done"],
  },
  {
    name: "chunks",
    columns: [
      "run_id",
      "seq",
      "position",
      "records",
      "canonical",
      "quarantined",
      "failed",
      "extracted_at",
      "transformed_at",
    ],
    order: "run_id, seq",
  },
  {
    name: "chunk_loads",
    columns: ["run_id", "target", "seq", "loaded", "unchanged", "quarantined", "failed", "attempts", "loaded_at"],
    order: "run_id, target, seq",
  },
  {
    name: "outcomes",
    columns: [
      "run_id",
      "key",
      "target",
      "status",
      "seq",
      "attempts",
      "code",
      "error_class",
      "message",
      "path",
      "target_id",
      "source_id",
      "hash",
      "loaded_seq",
    ],
    order: "run_id, key, target",
  },
  { name: "cursors", columns: ["flow", "position", "run_id", "updated_at"], order: "flow" },
  { name: "profiles", columns: ["flow", "profile", "run_id"], order: "flow" },
  { name: "target_hashes", columns: ["target", "key", "hash", "run_id"], order: "target, key" },
  { name: "lookup_cache", columns: ["lookup", "key", "value", "expires_at"], order: "lookup, key" },
];

/** Bytes of COPY text gathered before it is handed to the connection. */
const batchBytes = 256 * 1024;

const copyEscapes: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** One field in COPY's text format: `\N` for NULL, the text with backslash, newline, CR and tab escaped. */
function copyField(value: SQLOutputValue | undefined): string {
  if (value === null || value === undefined) return "\\N";
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value !== "string") throw new FrancaError(ErrorCode.StoreError, "unexpected binary value in the store");
  return /[\\\n\r\t]/.test(value) ? value.replace(/[\\\n\r\t]/g, (char) => copyEscapes[char] as string) : value;
}

const moveError = (message: string) => new FrancaError(ErrorCode.StoreError, message);

/** Opens the source and checks it: a Franca SQLite store at the current schema version, with no running run. */
function openSource(file: string): DatabaseSync {
  if (!existsSync(file)) throw moveError(`no SQLite store at ${file}`);
  // read-only: the move never changes its source
  const db = new DatabaseSync(file, { readOnly: true, timeout: 10_000 });
  try {
    const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'").get();
    if (known === undefined) throw moveError(`${file} is not a Franca store (it has no migrations table)`);
    const version = Number((db.prepare("SELECT max(version) AS v FROM migrations").get() as { v: number | null }).v);
    if (version !== latestVersion) {
      throw moveError(
        `the SQLite store ${file} has schema version ${version}, this Franca moves version ${latestVersion}: ${
          version < latestVersion ? "open it with this Franca once (it migrates), then move it" : "upgrade Franca"
        }`,
      );
    }
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Copies a SQLite store (`fromSqliteFile`, with its `<file>.staging/` segments) into an empty PostgreSQL store,
 * keeping run ids (the target's id sequence continues after them). Refuses a source with a running run (stop it,
 * or let it be marked abandoned) and a target that already holds runs or other state. Returns the rows copied per
 * table; the source is left as it was.
 */
export async function moveStore(
  fromSqliteFile: string,
  toPostgresUrl: string,
  options: MoveOptions = {},
): Promise<MoveCounts> {
  const source = openSource(fromSqliteFile);
  const report = options.onProgress ?? (() => {});
  let target: PostgresStore | undefined;
  try {
    // one read transaction: every table from the same snapshot
    source.exec("BEGIN");
    const running = source
      .prepare("SELECT id, flow, owner FROM runs WHERE status = 'running' ORDER BY id LIMIT 1")
      .get() as { id: number; flow: string; owner: string | null } | undefined;
    if (running !== undefined) {
      throw new FrancaError(
        ErrorCode.RunLocked,
        `run ${running.id} of flow '${running.flow}' is running (owner ${running.owner ?? "unknown"}): let it finish or stop it before moving the store (a run whose process died is marked failed by the next 'franca runs' or 'franca run')`,
      );
    }
    target = new PostgresStore(toPostgresUrl, options.schema === undefined ? {} : { schema: options.schema });
    await target.migrate();
    const location = target.location;
    return await target.withTransaction(async (tx) => {
      const s = `"${tx.schema}"`;
      const client = tx.client;
      // no other process writes to the target until the move commits (reading stays possible)
      await client.query(
        `LOCK TABLE ${[...tables.map((table) => table.name), "staged"].map((name) => `${s}.${name}`).join(", ")} IN EXCLUSIVE MODE`,
      );
      const runs = Number((await client.query(`SELECT count(*) AS n FROM ${s}.runs`)).rows[0].n);
      if (runs > 0) {
        throw moveError(
          `the PostgreSQL store ${location} already holds ${runs} run${runs === 1 ? "" : "s"}: a store is moved into an empty one only (another schema: ?schema=name)`,
        );
      }
      for (const name of [...tables.map((table) => table.name), "staged"]) {
        const { rowCount } = await client.query(`SELECT 1 FROM ${s}.${name} LIMIT 1`);
        if (rowCount !== 0) {
          throw moveError(
            `the PostgreSQL store ${location} is not empty (table ${name} has rows): a store is moved into an empty one only`,
          );
        }
      }

      const counts = {} as MoveCounts;
      const copy = async (table: MovedTable, columns: readonly string[], lines: () => Iterable<string>) => {
        const stream = client.query(copyFrom(`COPY ${s}.${table} (${columns.join(", ")}) FROM STDIN`));
        let rows = 0;
        function* counted(): Generator<string> {
          let batch = "";
          for (const line of lines()) {
            batch += line;
            rows++;
            if (batch.length >= batchBytes) {
              yield batch;
              batch = "";
              report({ table, rows, done: false });
            }
          }
          if (batch.length > 0) yield batch;
        }
        await pipeline(Readable.from(counted()), stream);
        if (stream.rowCount !== rows) {
          throw moveError(`moving ${table}: ${rows} rows sent, PostgreSQL copied ${stream.rowCount}`);
        }
        counts[table] = rows;
        report({ table, rows, done: true });
      };

      for (const table of tables) {
        const statement = source.prepare(
          `SELECT ${table.columns.join(", ")} FROM ${table.name} ORDER BY ${table.order}`,
        );
        const booleans = new Set(table.booleans ?? []);
        await copy(table.name, table.columns, function* () {
          for (const row of statement.iterate()) {
            let line = "";
            for (let i = 0; i < table.columns.length; i++) {
              const column = table.columns[i] as string;
              const value = row[column];
              line += i === 0 ? "" : "\t";
              line += booleans.has(column) && value !== null ? (Number(value) === 0 ? "f" : "t") : copyField(value);
            }
            yield `${line}\n`;
          }
        });
      }

      // Staged chunk outputs: each recorded chunk's, read the way the SQLite store reads them (the latest copy; a
      // succeeded run's were discarded). One StagingFiles per run, closed after it, so files open stay few.
      const dir = stagingDir(fromSqliteFile);
      const chunks = source.prepare("SELECT run_id, seq, canonical FROM chunks ORDER BY run_id, seq");
      await copy("staged", ["run_id", "seq", "stage", "data"], function* () {
        let staging: StagingFiles | undefined;
        let stagingRun = -1;
        try {
          for (const row of chunks.iterate() as Iterable<{ run_id: number; seq: number; canonical: number | null }>) {
            if (row.run_id !== stagingRun) {
              staging?.close();
              staging = new StagingFiles(dir);
              stagingRun = row.run_id;
            }
            const files = staging as StagingFiles;
            const stages = row.canonical === null ? (["extracted"] as const) : (["extracted", "canonical"] as const);
            for (const stage of stages) {
              const data = files.read(row.run_id, row.seq, stage);
              if (data !== undefined) yield `${row.run_id}\t${row.seq}\t${stage}\t${copyField(data)}\n`;
            }
          }
        } finally {
          staging?.close();
        }
      });

      // new runs continue after the moved ones, and after any id SQLite ever gave (AUTOINCREMENT never reuses one)
      const sequence = source.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").get() as
        | { seq: number }
        | undefined;
      const maxId = Number((source.prepare("SELECT max(id) AS id FROM runs").get() as { id: number | null }).id ?? 0);
      const lastId = Math.max(maxId, Number(sequence?.seq ?? 0));
      if (lastId > 0) {
        await client.query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)", [`${s}.runs`, lastId]);
      }
      return counts;
    });
  } catch (error) {
    if (error instanceof FrancaError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new FrancaError(ErrorCode.StoreError, `moving the store failed: ${redactSecrets(message)}`, { cause: error });
  } finally {
    if (source.isTransaction) source.exec("ROLLBACK");
    source.close();
    await target?.close();
  }
}

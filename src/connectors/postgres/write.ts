import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { batchColumns, quoteIdent, quoteQualified, toParam } from "../sql.ts";
import type { ItemResult, WriteRequest } from "../types.ts";
import { type ColumnKind, copyNull, encodeField } from "./copy-text.ts";
import type { PostgresSession, Query } from "./driver.ts";
import { isDataError, postgresError, sqlState } from "./errors.ts";
import type { PostgresBindingOptions } from "./options.ts";

/** Most bind parameters one statement may carry: the protocol counts them in 16 bits. */
export const maxParameters = 65_535;

/** Encoded rows are sent to COPY in pieces of about this many characters (back-pressure, no string per batch). */
const copyPiece = 64 * 1024;

interface ColumnInfo extends ColumnKind {
  /** The column's type as SQL (`numeric(12,2)`, `sales.code_domain`), for the staging table. */
  sqlType: string;
}
type TableColumns = ReadonlyMap<string, ColumnInfo>;

/** Column types of the target tables, read once per table and connection. */
export interface ColumnCache {
  get(table: string, query: Query, fresh?: boolean): Promise<TableColumns>;
  /** Forgets a table's columns: the next write describes it again. */
  forget(table: string): void;
  clear(): void;
  /** Set when the server refused a staging table (no TEMP privilege): writes go through INSERT from then on. */
  noStaging: boolean;
  /** Whether rows whose keys are all new may be COPYed straight into the table (see directCopySql). */
  direct(table: string, key: readonly string[], columns: readonly string[], query: Query): Promise<boolean>;
}

// to_regclass resolves the name like the INSERT will (search_path included) and gives NULL, not an error, when
// the table does not exist. Domains are described by their base type (and named as themselves in sqltype).
const columnsSql = `
  SELECT r.oid IS NOT NULL AS found, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS sqltype,
         coalesce(b.typname, t.typname) AS type, coalesce(b.typcategory, t.typcategory) AS category
    FROM (SELECT to_regclass($1) AS oid) r
    LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'`;

/**
 * When a COPY straight into the target lands exactly what the upsert would, for rows whose keys are not there yet:
 * a plain or partitioned table with an immediate, non-partial unique index on exactly the key columns (so that a key
 * written meanwhile fails the COPY instead of duplicating the row), no row-level security (COPY refuses it), no
 * rules (COPY ignores them), no triggers of its own (COPY fires INSERT triggers only, where the upsert's statement
 * also fires UPDATE ones), and none of the written columns GENERATED ALWAYS AS IDENTITY (COPY overrides those, INSERT
 * refuses). $1: the table, $2: the key columns, $3: the columns written.
 */
const directCopySql = `
  SELECT c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
     AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type <> '1')
     AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
     AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attidentity = 'a' AND a.attname = ANY($3::text[]))
     AND EXISTS (
       SELECT 1 FROM pg_index i
        WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL
          AND i.indnkeyatts = cardinality($2::text[])
          AND NOT EXISTS (
            SELECT 1 FROM unnest($2::text[]) AS k(name)
             WHERE NOT EXISTS (
               SELECT 1 FROM generate_series(0, i.indnkeyatts - 1) AS n
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[n]
                WHERE a.attname = k.name))) AS direct
    FROM pg_class c WHERE c.oid = to_regclass($1)`;

export function columnCache(system: string): ColumnCache {
  const tables = new Map<string, TableColumns>();
  const direct = new Map<string, boolean>();
  return {
    noStaging: false,
    async direct(table, key, columns, query) {
      const id = JSON.stringify([table, key, [...columns].sort()]);
      let known = direct.get(id);
      if (known === undefined) {
        const rows = (await query(directCopySql, [quoteQualified(table), key, columns])).rows;
        known = rows[0]?.direct === true;
        direct.set(id, known);
      }
      return known;
    },
    async get(table, query, fresh = false) {
      const known = fresh ? undefined : tables.get(table);
      if (known !== undefined) return known;
      const rows = (await query(columnsSql, [quoteQualified(table)])).rows;
      if (rows[0]?.found !== true) {
        throw new FrancaError(ErrorCode.SystemError, `cannot write '${table}': the table does not exist`, {
          status: "42P01",
          system,
        });
      }
      const columns = new Map<string, ColumnInfo>();
      for (const row of rows) {
        if (typeof row.name !== "string") continue;
        columns.set(row.name, {
          json: row.type === "json" || row.type === "jsonb",
          array: row.category === "A",
          sqlType: String(row.sqltype),
        });
      }
      tables.set(table, columns);
      return columns;
    },
    forget(table) {
      tables.delete(table);
      for (const id of direct.keys()) if ((JSON.parse(id) as string[])[0] === table) direct.delete(id);
    },
    clear() {
      tables.clear();
      direct.clear();
      this.noStaging = false;
    },
  };
}

/** Canonical value → parameter for a column of this type. */
function toPostgres(value: unknown, column: ColumnInfo): unknown {
  if (value === undefined || value === null) return null;
  if (column.json && typeof value === "object" && !(value instanceof Date) && !(value instanceof Uint8Array))
    return JSON.stringify(value);
  if (column.array && Array.isArray(value)) return value;
  return toParam(value);
}

/** `ON CONFLICT (key) DO UPDATE SET` every other column (`DO NOTHING` when every column is a key column). */
function onConflict(columns: readonly string[], key: readonly string[]): string {
  const updates = columns.filter((column) => !key.includes(column));
  const action =
    updates.length === 0
      ? "DO NOTHING"
      : `DO UPDATE SET ${updates.map((column) => `${quoteIdent(column)} = EXCLUDED.${quoteIdent(column)}`).join(", ")}`;
  return `ON CONFLICT (${key.map((column) => quoteIdent(column)).join(", ")}) ${action}`;
}

function upsertSql(relation: string, columns: readonly string[], key: readonly string[], rowCount: number): string {
  const names = columns.map((column) => quoteIdent(column)).join(", ");
  const tuples: string[] = [];
  let next = 0;
  for (let row = 0; row < rowCount; row++) tuples.push(`(${columns.map(() => `$${++next}`).join(", ")})`);
  return `INSERT INTO ${relation} (${names}) VALUES ${tuples.join(", ")} ${onConflict(columns, key)}`;
}

/**
 * Groups rows into statements: under the parameter limit, and never the same key twice in one statement (an
 * upsert cannot touch a row twice; in separate statements the later row simply wins, as in row order).
 */
function planStatements(rows: readonly number[], values: readonly unknown[][], keyAt: readonly number[]): number[][] {
  const width = (values[rows[0] as number] as unknown[]).length;
  const perStatement = Math.max(1, Math.floor(maxParameters / width));
  const groups: number[][] = [];
  let group: number[] = [];
  let keys = new Set<string>();
  for (const row of rows) {
    const params = values[row] as unknown[];
    const key = JSON.stringify(keyAt.map((index) => String(params[index])));
    if (group.length === perStatement || keys.has(key)) {
      groups.push(group);
      group = [];
      keys = new Set();
    }
    group.push(row);
    keys.add(key);
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/**
 * The column a row-level data error is about, when the server did not name it: a value that does not parse is
 * reported against its parameter (`unnamed portal parameter $3`); a value that parses but does not fit (too long,
 * numeric overflow) against nothing, so its column is found by inserting the row's values one at a time into an
 * empty copy of the table without constraints, triggers or defaults, all rolled back.
 */
async function columnAtFault(
  query: Query,
  error: unknown,
  relation: string,
  columns: readonly string[],
  values: readonly unknown[],
): Promise<string | undefined> {
  if (typeof (error as { column?: unknown }).column === "string") return undefined; // the server named it
  const where = (error as { where?: unknown }).where;
  const parameter = typeof where === "string" ? /parameter \$(\d+)/.exec(where) : null;
  if (parameter !== null) return columns[(Number(parameter[1]) - 1) % columns.length];
  if (!sqlState(error)?.startsWith("22")) return undefined;
  await query("SAVEPOINT franca_probe");
  try {
    await query(`CREATE TEMP TABLE franca_probe (LIKE ${relation})`);
    for (let i = 0; i < columns.length; i++) {
      if (values[i] === null) continue;
      await query("SAVEPOINT franca_probe_column");
      try {
        await query(`INSERT INTO franca_probe (${quoteIdent(columns[i] as string)}) VALUES ($1)`, [values[i]]);
      } catch (probe) {
        // Another column's NOT NULL (class 23) says nothing about this one.
        if (sqlState(probe)?.startsWith("22")) return columns[i];
        if (sqlState(probe) === undefined) throw probe;
      } finally {
        await query("ROLLBACK TO SAVEPOINT franca_probe_column");
      }
    }
    return undefined;
  } catch (failure) {
    // The probe is a courtesy (it needs the TEMP privilege): a SQL error leaves the server's message as it is.
    if (sqlState(failure) === undefined) throw failure;
    return undefined;
  } finally {
    await query("ROLLBACK TO SAVEPOINT franca_probe");
    await query("RELEASE SAVEPOINT franca_probe");
  }
}

/**
 * Rolls back after `failure`. When even that fails, the connection is lost or in doubt: the first failure is
 * reported, caused by the rollback's error, which tells withClient to close the connection rather than reuse it.
 */
async function rollback(query: Query, failure: unknown, system: string, what: string): Promise<void> {
  try {
    await query("ROLLBACK");
  } catch (error) {
    const first = postgresError(failure, system, what);
    throw new FrancaError(first.code, first.message, { errorClass: first.errorClass, system, cause: error });
  }
}

/** A write call's batch, once its columns are known. */
interface Batch {
  table: string;
  relation: string;
  system: string;
  columns: string[];
  key: readonly string[];
  keyAt: number[];
  rows: Row[];
  types: TableColumns;
  signal: AbortSignal;
}

type Results = (ItemResult | undefined)[];

/** A row whose values cannot be sent at all (JSON.stringify of a BigInt in a json column): this row only. */
function unsendable(batch: Batch, error: unknown): ItemResult {
  const message = `'${batch.table}' refused the row: ${(error as Error).message}`;
  return { ok: false, error: new FrancaError(ErrorCode.TargetRejected, message, { system: batch.system }) };
}

// ── COPY ────────────────────────────────────────────────────────────────────────────────────────────────────────

/** Staging tables of one connection: one per target and set of columns written, in creation order. */
interface Staging {
  tables: Map<string, string>;
  next: number;
}
const stagingOf = new WeakMap<object, Staging>();
/** Staging tables kept per connection; beyond, the oldest is dropped (a mapping that varies its columns a lot). */
const maxStaging = 16;

/**
 * The staging table of a target and set of columns on this connection, made on first use and reused by every later
 * write on it: `CREATE TEMP TABLE … (<the columns written, of the target's types>) ON COMMIT DELETE ROWS`. It is made
 * outside any transaction, so that a rolled back write does not undo it; its rows vanish at each commit. Its identity
 * includes the column types, so a target described anew after a change gets a new one.
 * Rather than `LIKE target INCLUDING DEFAULTS`: only the columns written, with exactly the target's types (typmods,
 * domains) and none of its constraints or defaults. LIKE would copy the NOT NULL of columns the rows do not carry
 * (so defaults would be needed) and evaluate those defaults on every copied row (a serial's nextval would burn
 * sequence values); the INSERT … SELECT applies the target's defaults and constraints, as the INSERT path does.
 */
async function stagingTable(query: Query, client: object, batch: Batch): Promise<{ name: string; created: boolean }> {
  let staging = stagingOf.get(client);
  if (staging === undefined) {
    staging = { tables: new Map(), next: 0 };
    stagingOf.set(client, staging);
  }
  const definitions = batch.columns.map(
    (column) => `${quoteIdent(column)} ${(batch.types.get(column) as ColumnInfo).sqlType}`,
  );
  const signature = JSON.stringify([batch.relation, ...[...definitions].sort()]);
  const known = staging.tables.get(signature);
  if (known !== undefined) return { name: known, created: false };
  if (staging.tables.size >= maxStaging) {
    const [oldest, name] = staging.tables.entries().next().value as [string, string];
    await query(`DROP TABLE IF EXISTS ${name}`);
    staging.tables.delete(oldest);
  }
  const name = `pg_temp.franca_copy_${++staging.next}`;
  await query(`CREATE TEMP TABLE ${name} (${definitions.join(", ")}) ON COMMIT DELETE ROWS`);
  staging.tables.set(signature, name);
  return { name, created: true };
}

/** Drops a staging table that may no longer match its target (it is made again on next use). */
async function dropStaging(query: Query, client: object, name: string): Promise<void> {
  const staging = stagingOf.get(client);
  for (const [signature, known] of staging?.tables ?? []) if (known === name) staging?.tables.delete(signature);
  await query(`DROP TABLE IF EXISTS ${name}`);
}

/**
 * The encoded lines to send, in row order, as UTF-8 pieces of about `copyPiece` characters: the COPY stream takes one
 * at a time, as the socket drains (a batch is never one giant string).
 */
function* pieces(lines: readonly (string | undefined)[], send: readonly number[]): Generator<Buffer> {
  let piece: string[] = [];
  let length = 0;
  for (const i of send) {
    const line = lines[i] as string;
    piece.push(line);
    length += line.length;
    if (length >= copyPiece) {
      yield Buffer.from(piece.join(""));
      piece = [];
      length = 0;
    }
  }
  if (piece.length > 0) yield Buffer.from(piece.join(""));
}

/**
 * The fast path of a write whose keys are all new: `COPY target FROM STDIN` in one transaction, after one
 * `SELECT … JOIN unnest(<the batch's keys>) … LIMIT 1` in the same transaction found none of them in the target
 * (the table qualifies: see directCopySql). A key written by someone else in between fails the COPY on the unique
 * index: rolled back, "exists", and the batch is upserted instead. Returns "isolate" on a data problem (rolled back).
 */
async function copyDirect(
  query: Query,
  client: pg.ClientBase,
  batch: Batch,
  lines: readonly (string | undefined)[],
  send: readonly number[],
): Promise<"done" | "exists" | "isolate"> {
  const { rows, columns, types, relation, system } = batch;
  const keyColumns = batch.key.map((column) => quoteIdent(column));
  const unnest = batch.key.map((column, k) => `$${k + 1}::${(types.get(column) as ColumnInfo).sqlType}[]`);
  const probe =
    `SELECT 1 FROM ${relation} AS t JOIN unnest(${unnest.join(", ")}) AS k(${keyColumns.join(", ")}) ` +
    `ON ${keyColumns.map((column) => `t.${column} = k.${column}`).join(" AND ")} LIMIT 1`;
  const keys = batch.key.map((column) => {
    const kind = types.get(column) as ColumnInfo;
    return send.map((i) => toPostgres((rows[i] as Row)[column], kind));
  });
  const names = columns.map((column) => quoteIdent(column)).join(", ");
  try {
    await query("BEGIN");
    if ((await query(probe, keys)).rows.length > 0) {
      await query("ROLLBACK");
      return "exists";
    }
    batch.signal.throwIfAborted();
    await pipeline(
      Readable.from(pieces(lines, send)),
      client.query(copyFrom(`COPY ${relation} (${names}) FROM STDIN`)),
    );
    await query("COMMIT");
    return "done";
  } catch (error) {
    const what = `write to '${batch.table}' failed`;
    await rollback(query, error, system, what);
    if (batch.signal.aborted) throw postgresError(error, system, what);
    if (sqlState(error) === "23505") return "exists"; // unique_violation: a key came in meanwhile, or another index
    if (isDataError(error)) return "isolate";
    throw postgresError(error, system, what);
  }
}

/**
 * Upserts through COPY, in one transaction: COPY the rows into the connection's staging table, then one
 * `INSERT INTO target SELECT … FROM staging ON CONFLICT (key) DO UPDATE`, then COMMIT. Of rows with the same key only
 * the last is copied (an upsert cannot touch a row twice; the later row wins, as in the INSERT path). Returns
 * "isolate" when the batch failed on a data problem (rolled back), for the row-by-row path to find the bad rows,
 * "insert" when the role may not create temporary tables, and (when `retry`) "stale" when a staging table made
 * earlier no longer fits its target (its types changed): nothing was written then, and the batch is worth one more
 * try with the target described anew.
 */
async function upsertByCopy(
  query: Query,
  client: pg.ClientBase,
  batch: Batch,
  results: Results,
  cache: ColumnCache,
  retry: boolean,
): Promise<"done" | "isolate" | "insert" | "stale"> {
  const { rows, columns, types, keyAt, relation, system } = batch;
  const kinds = columns.map((column) => types.get(column) as ColumnInfo);
  const isKey = columns.map((_, index) => keyAt.includes(index));
  const lines: (string | undefined)[] = new Array(rows.length);
  // The key's text, or undefined when a key column is NULL: NULLs never conflict (two rows may both be inserted),
  // so such rows are never taken for duplicates.
  const keys: (string | undefined)[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as Row;
    try {
      let line = "";
      let key: string | undefined = "";
      for (let c = 0; c < columns.length; c++) {
        const field = encodeField(row[columns[c] as string], kinds[c] as ColumnInfo);
        line = c === 0 ? field : `${line}\t${field}`;
        if (isKey[c] && key !== undefined) key = field === copyNull ? undefined : `${key}${field}\t`;
      }
      lines[i] = `${line}\n`;
      keys[i] = key;
    } catch (error) {
      results[i] = unsendable(batch, error);
    }
  }
  const send: number[] = [];
  const seen = new Set<string>();
  for (let i = rows.length - 1; i >= 0; i--) {
    if (lines[i] === undefined) continue;
    const key = keys[i];
    if (key !== undefined) {
      if (seen.has(key)) continue;
      seen.add(key);
    }
    send.push(i);
  }
  if (send.length === 0) return "done";
  send.reverse();

  const names = columns.map((column) => quoteIdent(column)).join(", ");
  const what = `write to '${batch.table}' failed`;
  if (await cache.direct(batch.table, batch.key, columns, query)) {
    const direct = await copyDirect(query, client, batch, lines, send);
    if (direct === "done") {
      for (let i = 0; i < rows.length; i++) results[i] ??= { ok: true };
      return "done";
    }
    if (direct === "isolate") return "isolate";
    // "exists": some keys are there already (or were written meanwhile): the upsert below.
  }
  let staging: { name: string; created: boolean };
  try {
    staging = await stagingTable(query, client, batch);
  } catch (error) {
    if (sqlState(error) === "42501" && !batch.signal.aborted) return "insert"; // no TEMP privilege on the database
    throw error;
  }
  let phase: "copy" | "insert" = "copy";
  try {
    await query("BEGIN");
    batch.signal.throwIfAborted();
    await pipeline(
      Readable.from(pieces(lines, send)),
      client.query(copyFrom(`COPY ${staging.name} (${names}) FROM STDIN`)),
    );
    phase = "insert";
    await query(
      `INSERT INTO ${relation} (${names}) SELECT ${names} FROM ${staging.name} ${onConflict(columns, batch.key)}`,
    );
    await query("COMMIT");
    for (let i = 0; i < rows.length; i++) results[i] ??= { ok: true };
    return "done";
  } catch (error) {
    await rollback(query, error, system, what);
    if (batch.signal.aborted) throw postgresError(error, system, what);
    if (isDataError(error)) {
      // A value the staging table refused may be one its target would take (a column widened since it was
      // described): the next write describes the target anew.
      if (phase === "copy") {
        await dropStaging(query, client, staging.name);
        cache.forget(batch.table);
      }
      return "isolate";
    }
    // A staging table made before the target changed (a column's type) fails the INSERT … SELECT. Only statement
    // errors (class 42) qualify; the system's own (connection, timeout) go to the engine.
    if (retry && !staging.created && sqlState(error)?.startsWith("42")) {
      await dropStaging(query, client, staging.name);
      return "stale";
    }
    throw postgresError(error, system, what);
  }
}

// ── INSERT ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** The parameters of the rows not refused yet, and the rows they are for. */
function parameters(batch: Batch, results: Results): { values: unknown[][]; good: number[] } {
  const values: unknown[][] = new Array(batch.rows.length);
  const good: number[] = [];
  for (let i = 0; i < batch.rows.length; i++) {
    if (results[i] !== undefined) continue;
    const row = batch.rows[i] as Row;
    try {
      values[i] = batch.columns.map((column) => toPostgres(row[column], batch.types.get(column) as ColumnInfo));
      good.push(i);
    } catch (error) {
      results[i] = unsendable(batch, error);
    }
  }
  return { values, good };
}

/**
 * Multi-row `INSERT … ON CONFLICT (key) DO UPDATE` in one transaction, split into several statements when the
 * parameters would exceed the protocol's limit. Returns "isolate" when the batch failed on a data problem.
 */
async function upsertByInsert(
  query: Query,
  batch: Batch,
  values: readonly unknown[][],
  good: readonly number[],
  results: Results,
): Promise<"done" | "isolate"> {
  const what = `write to '${batch.table}' failed`;
  try {
    await query("BEGIN");
    for (const group of planStatements(good, values, batch.keyAt)) {
      await query(
        upsertSql(batch.relation, batch.columns, batch.key, group.length),
        group.flatMap((i) => values[i] as unknown[]),
      );
    }
    await query("COMMIT");
    for (const i of good) results[i] = { ok: true };
    return "done";
  } catch (error) {
    await rollback(query, error, batch.system, what);
    if (!isDataError(error) || batch.signal.aborted) throw postgresError(error, batch.system, what);
    return "isolate";
  }
}

/**
 * Row by row under savepoints, in one transaction: the good rows land, each bad one gets its own TARGET_REJECTED
 * with the server's reason (and the column at fault). Deferred constraints are checked per statement here, so each
 * one fails on its own row.
 */
async function isolateRows(
  query: Query,
  batch: Batch,
  values: readonly unknown[][],
  good: readonly number[],
  results: Results,
): Promise<void> {
  const { relation, columns, table, system } = batch;
  const single = upsertSql(relation, columns, batch.key, 1);
  try {
    await query("BEGIN");
    await query("SET CONSTRAINTS ALL IMMEDIATE");
    for (const i of good) {
      await query("SAVEPOINT franca_row");
      try {
        await query(single, values[i] as unknown[]);
        results[i] = { ok: true };
      } catch (error) {
        if (!isDataError(error)) throw error;
        await query("ROLLBACK TO SAVEPOINT franca_row");
        const column = await columnAtFault(query, error, relation, columns, values[i] as unknown[]);
        const refused = postgresError(error, system, `'${table}' refused the row`, true, column);
        results[i] = { ok: false, error: refused };
      }
      await query("RELEASE SAVEPOINT franca_row");
    }
    await query("COMMIT");
  } catch (error) {
    await rollback(query, error, system, `write to '${table}' failed`);
    throw postgresError(error, system, `write to '${table}' failed`);
  }
}

/**
 * Upserts a batch in one transaction, through COPY into a staging table (the default) or, with the binding setting
 * `copy: false`, through multi-row INSERTs. When the batch fails on a data problem (bad value, constraint), it is
 * written again row by row under savepoints, so the good rows land and each bad one gets its own TARGET_REJECTED.
 */
export async function writePostgres(
  session: PostgresSession,
  cache: ColumnCache,
  request: WriteRequest,
): Promise<ItemResult[]> {
  const options = request.options as PostgresBindingOptions;
  const table = options.table as string;
  const system = session.system;
  const relation = quoteQualified(table);
  const rows: Row[] = request.items.map((item) => item.row);
  if (rows.length === 0) return [];
  const columns = batchColumns(rows);
  const missingKey = request.key.filter((column) => !columns.includes(column));
  if (missingKey.length > 0) {
    throw new FrancaError(
      ErrorCode.SystemError,
      `cannot write '${table}': the rows have no value for key column '${missingKey[0]}', the upsert's conflict target`,
      { system },
    );
  }
  const keyAt = request.key.map((column) => columns.indexOf(column));
  try {
    return await session.withClient(request.signal, async (query, client) => {
      const describe = async (fresh: boolean): Promise<TableColumns> => {
        let types = await cache.get(table, query, fresh);
        // The table may have gained a column since it was described: look again before refusing.
        if (columns.some((column) => !types.has(column))) types = await cache.get(table, query, true);
        const unknown = columns.find((column) => !types.has(column));
        if (unknown !== undefined) {
          throw new FrancaError(ErrorCode.SystemError, `table '${table}' has no column '${unknown}'`, {
            system,
            path: `/${unknown}`,
          });
        }
        return types;
      };
      const batch: Batch = {
        table,
        relation,
        system,
        columns,
        key: request.key,
        keyAt,
        rows,
        types: await describe(false),
        signal: request.signal,
      };
      const results: Results = new Array(rows.length);
      if (options.copy !== false && !cache.noStaging) {
        let outcome = await upsertByCopy(query, client, batch, results, cache, true);
        if (outcome === "stale") {
          // Once, with the target described anew (and the rows encoded for its types as they are now).
          batch.types = await describe(true);
          results.fill(undefined);
          outcome = await upsertByCopy(query, client, batch, results, cache, false);
        }
        if (outcome === "done") return results as ItemResult[];
        if (outcome === "isolate") {
          const { values, good } = parameters(batch, results);
          await isolateRows(query, batch, values, good, results);
          return results as ItemResult[];
        }
        cache.noStaging = true;
        results.fill(undefined);
      }
      const { values, good } = parameters(batch, results);
      if (good.length === 0) return results as ItemResult[];
      if ((await upsertByInsert(query, batch, values, good, results)) === "done") return results as ItemResult[];
      await isolateRows(query, batch, values, good, results);
      return results as ItemResult[];
    });
  } catch (error) {
    if (request.signal.aborted && !(error instanceof FrancaError)) throw error;
    throw postgresError(error, system, `cannot write '${table}'`);
  }
}

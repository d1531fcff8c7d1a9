import { finished } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { strictlyAscending } from "../../core/key-order.ts";
import { batchColumns, quoteIdent, quoteQualified, toParam } from "../sql.ts";
import type { ItemResult, WriteRequest } from "../types.ts";
import { type ColumnKind, numberText, signedZeros } from "./copy-text.ts";
import type { PostgresSession, Query } from "./driver.ts";
import { isDataError, postgresError, sqlState } from "./errors.ts";
import type { PostgresBindingOptions } from "./options.ts";
import { type CopyRows, encodeCopyRows, kindCode, preparedFormat, type TargetDescription } from "./prepare.ts";

/** Most bind parameters one statement may carry: the protocol counts them in 16 bits. */
export const maxParameters = 65_535;

/**
 * Encoded rows go to COPY in CopyData messages of at most this many bytes (message boundaries need not fall between
 * rows): views of the encoded bytes, so the server never has to take one huge message.
 */
const copyMessage = 1024 * 1024;

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
  /**
   * Whether a batch for the direct COPY should first look for its keys in the table (see copyDirect): after a
   * direct COPY found a key there, for the next `probedWrites` writes to the table, and again whenever a probe finds
   * one; otherwise the COPY goes first and the unique index finds them.
   */
  probing(table: string): boolean;
  /** What the last attempt found: keys already in the table, or none. */
  found(table: string, existing: boolean): void;
}

/** Direct COPYs preceded by a probe after a key was found in the table, before the COPY goes first again. */
export const probedWrites = 64;

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
  /** Tables whose direct COPYs are probed first, and for how many more writes. */
  const probes = new Map<string, number>();
  return {
    noStaging: false,
    probing(table) {
      return (probes.get(table) ?? 0) > 0;
    },
    found(table, existing) {
      if (existing) probes.set(table, probedWrites);
      else {
        const left = (probes.get(table) ?? 0) - 1;
        if (left > 0) probes.set(table, left);
        else probes.delete(table);
      }
    },
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
      probes.clear();
      this.noStaging = false;
    },
  };
}

/** The columns of a table as `prepare` needs them: what `describeTarget` returns. */
export function targetDescription(table: string, types: TableColumns): TargetDescription {
  return {
    table,
    columns: [...types].map(([name, info]) => ({ name, type: info.sqlType, kind: kindCode(info) })),
  };
}

/**
 * `describeTarget`: the target table's columns, read anew (and kept by the cache, so that the writes that follow
 * describe the table as the rows were prepared for, until it changes).
 */
export async function describeTarget(
  session: PostgresSession,
  cache: ColumnCache,
  options: Readonly<Record<string, unknown>>,
  signal: AbortSignal,
): Promise<TargetDescription> {
  const table = (options as PostgresBindingOptions).table as string;
  try {
    return await session.withClient(signal, async (query) =>
      targetDescription(table, await cache.get(table, query, true)),
    );
  } catch (error) {
    if (signal.aborted && !(error instanceof FrancaError)) throw error;
    throw postgresError(error, session.system, `cannot describe '${table}'`);
  }
}

/** Canonical value → parameter for a column of this type. */
function toPostgres(value: unknown, column: ColumnInfo): unknown {
  if (value === undefined || value === null) return null;
  if (column.json && typeof value === "object" && !(value instanceof Date) && !(value instanceof Uint8Array))
    return JSON.stringify(value);
  if (column.array && Array.isArray(value)) return signedZeros(value);
  if (typeof value === "number") return numberText(value);
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

/** Rows `prepare` encoded, usable for a write: the data, and the index in it of each item's row. */
interface Prepared {
  data: CopyRows;
  at: readonly number[];
}

/** A write call's batch, once its columns are known. */
interface Batch {
  table: string;
  relation: string;
  system: string;
  columns: string[];
  key: readonly string[];
  keyAt: number[];
  /** How many items. */
  count: number;
  /**
   * The items' rows, read on first use: a write whose rows came prepared reads them on its slow paths only (a batch
   * to isolate, INSERTs, a table described differently since), as reading one may cost a decode and a mapping.
   */
  rows(): Row[];
  prepared: Prepared | undefined;
  types: TableColumns;
  signal: AbortSignal;
}

type Results = (ItemResult | undefined)[];

/** A row whose values cannot be sent at all (JSON.stringify of a BigInt in a json column): this row only. */
function unsendable(batch: Batch, error: unknown): ItemResult {
  return refusedRow(batch, error instanceof Error ? error.message : String(error));
}

/** The result of every row written: one object for all (a chunk's results live as long as its load). */
const written: ItemResult = Object.freeze({ ok: true });

function refusedRow(batch: Batch, reason: string): ItemResult {
  const message = `'${batch.table}' refused the row: ${reason}`;
  return { ok: false, error: new FrancaError(ErrorCode.TargetRejected, message, { system: batch.system }) };
}

/**
 * The prepared rows of a request, when they fit it: encoded by this driver for this table and key, an index in range
 * for every item, and the same columns as the items' rows have (a write of some of a chunk's rows writes the columns
 * of those only; the column order may differ, which changes nothing). Otherwise undefined: the rows are encoded here.
 * Whether they were encoded for the table as it is described now is checked per attempt (`copyRowsOf`).
 */
function preparedOf(request: WriteRequest, table: string): Prepared | undefined {
  const prepared = request.prepared;
  if (prepared === undefined) return undefined;
  const data = prepared.data as CopyRows | null | undefined;
  if (typeof data !== "object" || data === null || data.format !== preparedFormat || data.table !== table)
    return undefined;
  if (data.key.length !== request.key.length || data.key.some((column, k) => column !== request.key[k]))
    return undefined;
  const at = prepared.rows;
  const count = data.ends.length;
  if (at.length !== request.items.length) return undefined;
  for (const index of at) if (!Number.isInteger(index) || index < 0 || index >= count) return undefined;
  if (data.gaps.length > 0) {
    // Some rows lack some columns: those written are the ones at least one of the items' rows has.
    const gaps = new Map(data.gaps);
    let lacking: number[] | undefined;
    for (const index of at) {
      const lacks = gaps.get(index);
      lacking = lacks === undefined ? [] : (lacking ?? lacks).filter((column) => lacks.includes(column));
      if (lacking.length === 0) break;
    }
    if (lacking !== undefined && lacking.length > 0) return undefined;
  }
  return { data, at };
}

/** The KindCodes of the columns as the table is described now. */
function kindsOf(batch: Batch): string {
  return batch.columns.map((column) => kindCode(batch.types.get(column))).join("");
}

/**
 * The batch's rows encoded for COPY, and the index in them of each item's row (undefined: the same index). The
 * prepared ones when they were encoded for the columns' kinds as the table is described now (a column that became
 * json or an array since, or that the description lacked, is encoded differently); else the rows encoded here.
 */
function copyRowsOf(batch: Batch): { copy: CopyRows; at: readonly number[] | undefined } {
  const kinds = kindsOf(batch);
  if (batch.prepared !== undefined && batch.prepared.data.kinds === kinds)
    return { copy: batch.prepared.data, at: batch.prepared.at };
  return { copy: encodeCopyRows(batch.rows(), batch.table, batch.key, batch.columns, kinds), at: undefined };
}

/** A row's key as text (its key columns' array elements), or undefined when a key column is NULL. */
function keyText(copy: CopyRows, row: number): string | undefined {
  const { keys } = copy;
  if (keys.length === 1) {
    const element = (keys[0] as string[])[row] as string;
    return element === "NULL" ? undefined : element;
  }
  let text = "";
  for (const elements of keys) {
    const element = elements[row] as string;
    if (element === "NULL") return undefined;
    text += `${element},`;
  }
  return text;
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
 * Runs `COPY … FROM STDIN` (`sql`) with the lines of rows `send` (indexes into `copy`, in order). The lines of
 * consecutive rows are one slice of the encoded bytes, so in the usual case (every row, in order) the bytes go as
 * they are, in views of `copyMessage` bytes, with no copy; otherwise the slices are joined into one buffer first.
 * Written at once rather than through a Readable: the bytes are in memory already, and the COPY stream queues them
 * for the socket (`bench/pg-copy-part.ts send`: 0.31–0.34 µs of main-thread CPU a 330-byte row, against 0.61–0.73
 * for Readable.from + pipeline of 64 kB pieces of the same bytes).
 */
async function sendCopy(client: pg.ClientBase, sql: string, copy: CopyRows, send: readonly number[]): Promise<void> {
  const { bytes, ends } = copy;
  const slices: Buffer[] = [];
  let from = 0;
  let to = 0;
  for (const row of send) {
    const start = row === 0 ? 0 : (ends[row - 1] as number);
    if (start !== to) {
      if (to > from) slices.push(Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from));
      from = start;
    }
    to = ends[row] as number;
  }
  if (to > from) slices.push(Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from));
  const data = slices.length === 1 ? (slices[0] as Buffer) : Buffer.concat(slices);
  const stream = client.query(copyFrom(sql));
  for (let at = 0; at < data.length; at += copyMessage) stream.write(data.subarray(at, at + copyMessage));
  stream.end();
  await finished(stream);
}

/**
 * The fast path of a write whose keys are all new: `COPY target FROM STDIN`, in one transaction (the statement's own,
 * or the probe's: below; the table qualifies: see directCopySql). A key already in the table fails the COPY on the unique index
 * (unique_violation): rolled back, "exists", and the batch is upserted instead; so is a key another session writes
 * meanwhile. Returns "isolate" on a data problem (rolled back).
 *
 * A batch of a table where keys were found lately is probed first instead (`cache.probing`): one
 * `SELECT … JOIN unnest(<the batch's keys>) … LIMIT 1` in the same transaction, and the COPY only when it finds none,
 * so that a run over a table that holds its keys does not send every batch twice. The probe is not the first step
 * always because it costs the server about as much again as the COPY's own index checks (a 1,000-key probe took
 * ~1 ms of server time on a 1,000,000-row table), and a bulk load into an empty or append-only table never needs it.
 */
async function copyDirect(
  query: Query,
  client: pg.ClientBase,
  batch: Batch,
  copy: CopyRows,
  send: readonly number[],
  cache: ColumnCache,
): Promise<"done" | "exists" | "isolate"> {
  const { columns, types, relation, system } = batch;
  const names = columns.map((column) => quoteIdent(column)).join(", ");
  // Without a probe the COPY is the write's one statement, which the server runs as a transaction of its own: no
  // BEGIN and COMMIT, two of a chunk's three round trips (docs/benchmarks.md, stop 25). A COPY that fails is rolled
  // back by the server then, with nothing to roll back here.
  const probing = cache.probing(batch.table);
  try {
    if (probing) {
      await query("BEGIN");
      const keyColumns = batch.key.map((column) => quoteIdent(column));
      const unnest = batch.key.map((column, k) => `$${k + 1}::${(types.get(column) as ColumnInfo).sqlType}[]`);
      const probe =
        `SELECT 1 FROM ${relation} AS t JOIN unnest(${unnest.join(", ")}) AS k(${keyColumns.join(", ")}) ` +
        `ON ${keyColumns.map((column) => `t.${column} = k.${column}`).join(" AND ")} LIMIT 1`;
      const keys = copy.keys.map((elements) => `{${send.map((row) => elements[row]).join(",")}}`);
      const existing = (await query(probe, keys)).rows.length > 0;
      cache.found(batch.table, existing);
      if (existing) {
        await query("ROLLBACK");
        return "exists";
      }
    }
    batch.signal.throwIfAborted();
    await sendCopy(client, `COPY ${relation} (${names}) FROM STDIN`, copy, send);
    if (probing) await query("COMMIT");
    return "done";
  } catch (error) {
    const what = `write to '${batch.table}' failed`;
    if (probing) await rollback(query, error, system, what);
    if (batch.signal.aborted) throw postgresError(error, system, what);
    if (sqlState(error) === "23505") {
      // unique_violation: a key was there (or came in meanwhile), or another unique index refused a row
      cache.found(batch.table, true);
      return "exists";
    }
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
 * try with the target described anew. The rows go as `prepare` encoded them when they fit the table as described
 * now; then no item's row is read.
 */
async function upsertByCopy(
  query: Query,
  client: pg.ClientBase,
  batch: Batch,
  results: Results,
  cache: ColumnCache,
  retry: boolean,
): Promise<"done" | "isolate" | "insert" | "stale"> {
  const { count, columns, types, relation, system } = batch;
  const { copy, at } = copyRowsOf(batch);
  const refused = copy.refused.length === 0 ? undefined : new Map(copy.refused);
  // The rows to send, by index in `copy`: of rows with the same key, the last. A row with a NULL key column is never
  // taken for a duplicate: NULLs never conflict (two such rows may both be inserted). A single key column whose
  // values ascend strictly (rows read in key order, as most are) holds no duplicate: no set of its keys is made.
  const send: number[] = [];
  const single = copy.keys.length === 1 ? (copy.keys[0] as string[]) : undefined;
  const distinct = single !== undefined && strictlyAscending(single, count, at, (row) => refused?.has(row) === true);
  const seen = distinct ? undefined : new Set<string>();
  for (let i = count - 1; i >= 0; i--) {
    const row = at === undefined ? i : (at[i] as number);
    const reason = refused?.get(row);
    if (reason !== undefined) {
      results[i] = refusedRow(batch, reason);
      continue;
    }
    if (seen !== undefined) {
      const key = keyText(copy, row);
      if (key !== undefined) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
    }
    send.push(row);
  }
  if (send.length === 0) return "done";
  send.reverse();

  const names = columns.map((column) => quoteIdent(column)).join(", ");
  const what = `write to '${batch.table}' failed`;
  // An array key column would be unnested into its elements by the probe: such tables take the upsert.
  const arrayKey = batch.key.some((column) => types.get(column)?.array === true);
  if (!arrayKey && (await cache.direct(batch.table, batch.key, columns, query))) {
    const direct = await copyDirect(query, client, batch, copy, send, cache);
    if (direct === "done") {
      for (let i = 0; i < count; i++) results[i] ??= written;
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
    await sendCopy(client, `COPY ${staging.name} (${names}) FROM STDIN`, copy, send);
    phase = "insert";
    await query(
      `INSERT INTO ${relation} (${names}) SELECT ${names} FROM ${staging.name} ${onConflict(columns, batch.key)}`,
    );
    await query("COMMIT");
    for (let i = 0; i < count; i++) results[i] ??= written;
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
  const rows = batch.rows();
  const values: unknown[][] = new Array(rows.length);
  const good: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    if (results[i] !== undefined) continue;
    const row = rows[i] as Row;
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
  const { items } = request;
  if (items.length === 0) return [];
  const prepared = options.copy === false ? undefined : preparedOf(request, table);
  let rows: Row[] | undefined;
  const rowsOf = (): Row[] => {
    rows ??= items.map((item) => item.row);
    return rows;
  };
  const columns = prepared?.data.columns ?? batchColumns(rowsOf());
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
        count: items.length,
        rows: rowsOf,
        prepared,
        types: await describe(false),
        signal: request.signal,
      };
      const results: Results = new Array(items.length);
      if (options.copy !== false && !cache.noStaging) {
        let outcome = await upsertByCopy(query, client, batch, results, cache, true);
        if (outcome === "stale") {
          // Once, with the target described anew (and the rows encoded for its types as they are now: prepared rows
          // encoded otherwise are set aside).
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

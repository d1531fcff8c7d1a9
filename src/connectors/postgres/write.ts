import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { batchColumns, quoteIdent, quoteQualified, toParam } from "../sql.ts";
import type { ItemResult, WriteRequest } from "../types.ts";
import type { PostgresSession, Query } from "./driver.ts";
import { isDataError, postgresError, sqlState } from "./errors.ts";
import type { PostgresBindingOptions } from "./options.ts";

/** Most bind parameters one statement may carry: the protocol counts them in 16 bits. */
export const maxParameters = 65_535;

interface ColumnInfo {
  /** json or jsonb (or a domain over them): objects and arrays are sent as JSON text. */
  json: boolean;
  /** An array type: JS arrays are sent as they are, pg formats them as array literals. */
  array: boolean;
}
type TableColumns = ReadonlyMap<string, ColumnInfo>;

/** Column types of the target tables, read once per table and connection. */
export interface ColumnCache {
  get(table: string, query: Query, fresh?: boolean): Promise<TableColumns>;
  clear(): void;
}

// to_regclass resolves the name like the INSERT will (search_path included) and gives NULL, not an error, when
// the table does not exist. Domains are described by their base type.
const columnsSql = `
  SELECT r.oid IS NOT NULL AS found, a.attname AS name,
         coalesce(b.typname, t.typname) AS type, coalesce(b.typcategory, t.typcategory) AS category
    FROM (SELECT to_regclass($1) AS oid) r
    LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'`;

export function columnCache(system: string): ColumnCache {
  const tables = new Map<string, TableColumns>();
  return {
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
        columns.set(row.name, { json: row.type === "json" || row.type === "jsonb", array: row.category === "A" });
      }
      tables.set(table, columns);
      return columns;
    },
    clear() {
      tables.clear();
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

function upsertSql(relation: string, columns: readonly string[], key: readonly string[], rowCount: number): string {
  const names = columns.map((column) => quoteIdent(column)).join(", ");
  const tuples: string[] = [];
  let next = 0;
  for (let row = 0; row < rowCount; row++) tuples.push(`(${columns.map(() => `$${++next}`).join(", ")})`);
  const updates = columns.filter((column) => !key.includes(column));
  const action =
    updates.length === 0
      ? "DO NOTHING"
      : `DO UPDATE SET ${updates.map((column) => `${quoteIdent(column)} = EXCLUDED.${quoteIdent(column)}`).join(", ")}`;
  const conflict = key.map((column) => quoteIdent(column)).join(", ");
  return `INSERT INTO ${relation} (${names}) VALUES ${tuples.join(", ")} ON CONFLICT (${conflict}) ${action}`;
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

/**
 * Upserts a batch in one transaction: multi-row `INSERT … ON CONFLICT (key) DO UPDATE`, split into several
 * statements when the parameters would exceed the protocol's limit. When the batch fails on a data problem (bad
 * value, constraint), it is written again row by row under savepoints, so the good rows land and each bad one gets
 * its own TARGET_REJECTED.
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
    return await session.withClient(request.signal, async (query) => {
      let types = await cache.get(table, query);
      // The table may have gained a column since it was described: look again before refusing.
      if (columns.some((column) => !types.has(column))) types = await cache.get(table, query, true);
      const unknown = columns.find((column) => !types.has(column));
      if (unknown !== undefined) {
        throw new FrancaError(ErrorCode.SystemError, `table '${table}' has no column '${unknown}'`, {
          system,
          path: `/${unknown}`,
        });
      }
      const results: (ItemResult | undefined)[] = new Array(rows.length);
      const values: unknown[][] = new Array(rows.length);
      const good: number[] = [];
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i] as Row;
        try {
          values[i] = columns.map((column) => toPostgres(row[column], types.get(column) as ColumnInfo));
          good.push(i);
        } catch (error) {
          // A value that cannot be sent at all (JSON.stringify of a BigInt in a json column): this row only.
          const message = `'${table}' refused the row: ${(error as Error).message}`;
          results[i] = { ok: false, error: new FrancaError(ErrorCode.TargetRejected, message, { system }) };
        }
      }
      if (good.length === 0) return results as ItemResult[];

      try {
        await query("BEGIN");
        for (const group of planStatements(good, values, keyAt)) {
          await query(
            upsertSql(relation, columns, request.key, group.length),
            group.flatMap((i) => values[i] as unknown[]),
          );
        }
        await query("COMMIT");
        for (const i of good) results[i] = { ok: true };
        return results as ItemResult[];
      } catch (error) {
        await rollback(query, error, system, `write to '${table}' failed`);
        if (!isDataError(error) || request.signal.aborted)
          throw postgresError(error, system, `write to '${table}' failed`);
      }

      // Row by row. Deferred constraints are checked per statement here, so each one fails on its own row.
      const single = upsertSql(relation, columns, request.key, 1);
      try {
        await query("BEGIN");
        await query("SET CONSTRAINTS ALL IMMEDIATE");
        for (const i of good) {
          await query("SAVEPOINT franca_row");
          try {
            await query(single, values[i]);
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
      return results as ItemResult[];
    });
  } catch (error) {
    if (request.signal.aborted && !(error instanceof FrancaError)) throw error;
    throw postgresError(error, system, `cannot write '${table}'`);
  }
}

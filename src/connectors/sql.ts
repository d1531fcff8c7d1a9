/**
 * What the SQL connectors (sqlite, postgres, mysql) share: identifier quoting, the keyset order that makes reads
 * resumable, and the conversion of canonical values to parameters.
 */
import type { Row } from "../core/binding.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { SettingIssue } from "../core/system.ts";
import type { ReadRequest } from "./types.ts";

export function quoteIdent(name: string, quote: '"' | "`" = '"'): string {
  return quote + name.replaceAll(quote, quote + quote) + quote;
}

/** `schema.table` → `"schema"."table"`. */
export function quoteQualified(name: string, quote: '"' | "`" = '"'): string {
  return name
    .split(".")
    .map((part) => quoteIdent(part, quote))
    .join(".");
}

/**
 * The columns a read is ordered by: the cursor first (when incremental), then the key as tie-breaker, so that the
 * order is total and "everything after position P" is well defined.
 */
export function orderColumns(cursor: string | undefined, key: readonly string[]): string[] {
  return cursor === undefined || key.includes(cursor) ? [...key] : [cursor, ...key];
}

/** Position of a row: its values of the order columns. Null values would break the order, so they are refused. */
export function positionOf(row: Row, columns: readonly string[]): unknown[] {
  return columns.map((column) => {
    const value = row[column];
    if (value === null || value === undefined) {
      throw new FrancaError(
        ErrorCode.SystemError,
        `column '${column}' is NULL or missing in a source row; key and cursor columns must be non-null for ordered, resumable reads`,
        { path: `/${column}` },
      );
    }
    return typeof value === "bigint" ? value.toString() : value instanceof Date ? value.toISOString() : value;
  });
}

/**
 * `WHERE` predicate for "after position": `(a, b) > ($1, $2)` where row values compare (SQLite, PostgreSQL), or
 * the expanded `a > ? OR (a = ? AND b > ?)` that MySQL/MariaDB optimise with their indexes.
 */
export function afterPredicate(
  columns: readonly string[],
  placeholder: (index: number) => string,
  quote: '"' | "`",
  style: "row" | "expanded",
): { sql: string; arity: number } {
  if (style === "row") {
    const left = columns.map((column) => quoteIdent(column, quote)).join(", ");
    const right = columns.map((_, index) => placeholder(index)).join(", ");
    return { sql: `(${left}) > (${right})`, arity: columns.length };
  }
  let next = 0;
  const clauses: string[] = [];
  for (let i = 0; i < columns.length; i++) {
    const equal = columns.slice(0, i).map((column) => `${quoteIdent(column, quote)} = ${placeholder(next++)}`);
    equal.push(`${quoteIdent(columns[i] as string, quote)} > ${placeholder(next++)}`);
    clauses.push(`(${equal.join(" AND ")})`);
  }
  return { sql: `(${clauses.join(" OR ")})`, arity: next };
}

/** Parameters for the expanded predicate: the position's values repeated as the clauses use them. */
export function expandedParams(position: readonly unknown[]): unknown[] {
  const params: unknown[] = [];
  for (let i = 0; i < position.length; i++) params.push(...position.slice(0, i + 1));
  return params;
}

/** The relation read: a table, or a user query used as a subquery. */
export function sourceRelation(options: { table?: string; query?: string }, quote: '"' | "`"): string {
  if (options.query !== undefined) return `(${options.query}) AS franca_source`;
  return quoteQualified(options.table as string, quote);
}

/**
 * Warns (`ReadRequest.warn`) when an incremental keyset read of a table has no index for its order: `unindexed` asks
 * the system whether no index of the table starts with the order's first column. Without one the server scans and
 * sorts the whole table for every batch (a 1,000,000-row MariaDB table read 73,550 rows in 15 minutes that way; with
 * an index on its order, all of them in ~40 s: docs/benchmarks.md, stop 14). Best effort: a catalog that cannot be
 * read (privileges, a lost connection) reports nothing, and the read goes on.
 */
export async function warnUnindexedOrder(
  request: ReadRequest,
  table: string | undefined,
  columns: readonly string[],
  unindexed: (signal: AbortSignal) => Promise<boolean>,
): Promise<void> {
  if (request.cursor === undefined || table === undefined || request.warn === undefined) return;
  if (!(await request.call(unindexed).catch(() => false))) return;
  const order = columns.join(", ");
  request.warn(
    `'${table}' is read by (${order}), but no index of the table starts with ${columns[0]}: every batch scans and ` +
      `sorts the whole table (create one: CREATE INDEX … ON ${table} (${order}))`,
  );
}

/**
 * SQL: the order columns are all non-null. Every read takes only such rows (the first page's `WHERE`, and ANDed to
 * the predicate after a position): a row with a NULL key or cursor has no position (a read could not go on after
 * it), and a row comparison with a NULL is not reliably false (`(2, NULL) > (1, 5)` is true). `warnNullOrder` tells.
 */
export function orderNotNull(columns: readonly string[], quote: '"' | "`"): string {
  return columns.map((column) => `${quoteIdent(column, quote)} IS NOT NULL`).join(" AND ");
}

/** SQL: how many rows of `relation` no read returns (`orderNotNull`), as `n`. */
export function nullOrderCountSql(relation: string, columns: readonly string[], quote: '"' | "`"): string {
  // `a IS NULL OR b IS NULL`, not `NOT (a IS NOT NULL AND …)`: SQLite answers this form from the columns' indexes
  // (`npm run bench:json-numbers`, 2,000,000 rows: 0.13 ms against 88 ms for a scan)
  return `SELECT count(*) AS n FROM ${relation} WHERE ${columns.map((column) => `${quoteIdent(column, quote)} IS NULL`).join(" OR ")}`;
}

/**
 * On a read of a table from its start (a flow's first run, a resend), warns of the rows whose cursor or key is NULL,
 * which no read returns (`orderNotNull`): `count` answers how many (`nullOrderCountSql`). Reads after a position,
 * query bindings and flows without a cursor do not ask.
 */
export async function warnNullOrder(
  request: ReadRequest,
  table: string | undefined,
  count: (signal: AbortSignal) => Promise<number>,
): Promise<void> {
  if (table === undefined || request.from !== undefined || request.warn === undefined) return;
  // a flow read by its key alone reads from the start every run: its key is its table's, rarely NULL, not counted
  if (request.cursor === undefined || request.key.includes(request.cursor)) return;
  const rows = await request.call(count).catch(() => 0);
  if (rows === 0) return;
  const columns = orderColumns(request.cursor, request.key).join(" or ");
  request.warn(
    `${rows} ${rows === 1 ? "row" : "rows"} of '${table}' ${rows === 1 ? "has" : "have"} a NULL ${columns}, which no ` +
      `read returns: give ${rows === 1 ? "it a value" : "them values"}, or read by columns that are never NULL`,
  );
}

/** Columns of a batch: the union of the rows' fields, in first-seen order. */
export function batchColumns(rows: readonly Row[]): string[] {
  const first = rows[0];
  if (first === undefined) return [];
  const columns = Object.keys(first);
  // Rows of one mapping mostly have the same fields in the same order: compared with the first row's, they need no
  // set of names (a set lookup per field and row otherwise); from the first row that differs on, the union.
  let seen: Set<string> | undefined;
  for (let i = 1; i < rows.length; i++) {
    const names = Object.keys(rows[i] as Row);
    if (seen === undefined) {
      let same = names.length === columns.length;
      for (let c = 0; same && c < names.length; c++) same = names[c] === columns[c];
      if (same) continue;
      seen = new Set(columns);
    }
    for (const name of names) {
      if (seen.has(name)) continue;
      seen.add(name);
      columns.push(name);
    }
  }
  return columns;
}

/** Canonical value → driver parameter: objects and arrays as JSON text, dates as ISO text, undefined as NULL. */
export function toParam(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object" && !(value instanceof Uint8Array)) return JSON.stringify(value);
  return value;
}

/** The rule every SQL binding follows: a table, or (sources only) a query, never both. */
export function tableOrQueryIssues(options: unknown, role: "source" | "target"): SettingIssue[] {
  const { table, query } = (options ?? {}) as { table?: string; query?: string };
  const issues: SettingIssue[] = [];
  if (role === "target" && query !== undefined)
    issues.push({ setting: "query", message: "a target writes to a table, not a query" });
  if (table === undefined && query === undefined)
    issues.push({ setting: "table", message: "is required (or query, for a source)" });
  if (table !== undefined && query !== undefined)
    issues.push({ setting: "query", message: "give either table or query, not both" });
  return issues;
}

/** How a database system is reached: a `url`, or the discrete settings (never both). */
export interface ConnectionSettings {
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
}

const discreteSettings = ["host", "port", "user", "password", "database"] as const;

/** The static checks of a database system's connection settings: a url or host/database, not a mix. */
export function connectionSettingsIssues(settings: ConnectionSettings): SettingIssue[] {
  const issues: SettingIssue[] = [];
  const discrete = discreteSettings.filter((name) => settings[name] !== undefined);
  if (settings.url !== undefined && discrete.length > 0)
    issues.push({ setting: discrete[0] as string, message: "give either url or host/port/user/password/database" });
  if (settings.url === undefined && settings.host === undefined)
    issues.push({ setting: "url", message: "is required (or host and database)" });
  return issues;
}

/**
 * The preflight of a database system's connection settings: a url that parses and has one of `protocols` (`checkUrl`
 * adds the connector's own rules), or host and database.
 */
export function connectionPreflightIssues(
  settings: ConnectionSettings,
  protocols: readonly string[],
  checkUrl: (url: URL) => SettingIssue[] = () => [],
): SettingIssue[] {
  if (settings.url === undefined) {
    const issues: SettingIssue[] = [];
    if (settings.host === undefined) issues.push({ setting: "host", message: "is required (or url)" });
    if (settings.database === undefined) issues.push({ setting: "database", message: "is required (or url)" });
    return issues;
  }
  let url: URL;
  try {
    url = new URL(settings.url);
  } catch {
    return [{ setting: "url", message: "is not a valid URL" }];
  }
  if (!protocols.includes(url.protocol)) {
    const names = protocols.map((protocol) => `${protocol}//`).join(" or ");
    return [{ setting: "url", message: `must start with ${names} (not ${url.protocol}//)` }];
  }
  return checkUrl(url);
}

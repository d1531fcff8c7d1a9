import { createRequire } from "node:module";
import type { Readable } from "node:stream";
import type { ConnectionOptions, FieldPacket, Pool, PoolConnection, ResultSetHeader } from "mysql2/promise";
import type { Row } from "../../core/binding.ts";
import { parseJsonExact } from "../../core/canonical-json.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { SettingIssue, System } from "../../core/system.ts";
import { cutLines } from "../lines.ts";
import { acquire, probeHealth } from "../pooled.ts";
import { settingsChecker } from "../settings.ts";
import {
  connectionPreflightIssues,
  connectionSettingsIssues,
  quoteQualified,
  sourceRelation,
  tableOrQueryIssues,
} from "../sql.ts";
import type { Connection, Driver } from "../types.ts";
import { joinEncodedRows, prepareRows, sqlString } from "./encode.ts";
import { mysqlError, serverErrno } from "./errors.ts";
import { MysqlBindingOptions, MysqlSystemOptions } from "./options.ts";
import { readMysql, readMysqlEncoded } from "./read.ts";
import { decodeRows } from "./rows-text.ts";
import { type TableCache, tableCache, writeMysql } from "./write.ts";

const checkSystem = settingsChecker(MysqlSystemOptions);
const checkBinding = settingsChecker(MysqlBindingOptions);

export interface MysqlClient {
  /**
   * Runs a statement on a pooled connection (session in UTC, strict mode) and returns its rows (none for a statement
   * that returns no result set). `?` placeholders take `params`, escaped by mysql2 on the client.
   */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** The mysql2 pool (promise API), for what `query` does not cover. */
  readonly pool: Pool;
}

export interface MysqlResult {
  /** The rows of a result set, JSON columns parsed; empty for a statement without one. */
  rows: Row[];
  fields: readonly FieldPacket[];
}

export type Query = (sql: string, params?: readonly unknown[]) => Promise<MysqlResult>;

/** A result set's rows as arrays of values in the fields' order (mysql2's `rowsAsArray`), JSON columns as their text. */
export interface MysqlArrays {
  rows: unknown[][];
  fields: readonly FieldPacket[];
}

/** What a LOAD DATA statement did: rows inserted, and the warnings it raised (notes included). */
export interface LoadResult {
  affectedRows: number;
  warnings: number;
}

/** One pooled connection, prepared for Franca: what read.ts and write.ts use. */
export interface SessionConnection {
  query: Query;
  /** Runs a statement without values and returns its rows as arrays (see MysqlArrays): what encoded reads send on. */
  queryArrays(sql: string): Promise<MysqlArrays>;
  /** Runs a `LOAD DATA LOCAL INFILE` statement, whatever file it names reading `data()` (no file is ever read). */
  load(sql: string, data: () => Readable): Promise<LoadResult>;
  /** The server's max_allowed_packet: no statement may be longer. */
  readonly maxPacket: number;
}

/** What read.ts and write.ts need of a connection: a pooled session whose statements stop when the signal aborts. */
export interface MysqlSession {
  readonly system: string;
  /** Most bytes of SQL in one INSERT (the maxStatementBytes setting). */
  readonly maxStatementBytes: number;
  withConnection<T>(signal: AbortSignal, work: (connection: SessionConnection) => Promise<T>): Promise<T>;
}

export const defaultMaxStatementBytes = 1024 * 1024;

type Mysql2 = typeof import("mysql2/promise");
let loadedMysql2: Mysql2 | undefined;
/**
 * mysql2, loaded when a connection first needs it rather than with this module: the hub's module is imported by the
 * engine's transform threads too, which only encode rows (encode.ts) and would each carry the client library (~24 MB
 * of resident memory a thread). Synchronous (`require` of the CommonJS package), so opening stays synchronous.
 */
function mysql2(): Mysql2 {
  loadedMysql2 ??= createRequire(import.meta.url)("mysql2/promise") as Mysql2;
  return loadedMysql2;
}

// Field types of a JSON value: MySQL's JSON (245); MariaDB's JSON is LONGTEXT, known by its extended metadata.
const jsonType = 245;

function formatQuery(
  this: { config: { stringifyObjects?: boolean; timezone?: string } },
  sql: string,
  values: unknown,
): string {
  if (values === undefined || values === null || (Array.isArray(values) && values.length === 0)) return sql;
  const { stringifyObjects, timezone } = this.config;
  return mysql2().format(sql, values as Parameters<Mysql2["format"]>[1], stringifyObjects, timezone as never);
}

/** mysql2 options for exact values (see options.ts), from the system's settings. */
function connectionOptions(options: MysqlSystemOptions): ConnectionOptions {
  const base: ConnectionOptions = {
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    // JSON arrives as text and is parsed here (parseJsonExact: numbers a double cannot hold as raw JSON values of
    // their text): mysql2's own parser, JSON.parse, turns them into other numbers.
    jsonStrings: true,
    // Dates given as `?` parameters to client().query are written as UTC, the sessions' zone.
    timezone: "Z",
    charset: "UTF8MB4_UNICODE_CI",
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    multipleStatements: false,
    // mysql2 formats every statement, scanning its whole text for `?` even when there are no values: a multi-row
    // INSERT of a megabyte was scanned for nothing. Only statements with values are formatted (as mysql2 would).
    queryFormat: formatQuery,
    ...(options.ssl === true ? { ssl: {} } : {}),
  };
  if (options.url !== undefined) {
    try {
      const url = new URL(options.url);
      return {
        ...base,
        host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
        ...(url.port === "" ? {} : { port: Number(url.port) }),
        ...(url.username === "" ? {} : { user: decodeURIComponent(url.username) }),
        ...(url.password === "" ? {} : { password: decodeURIComponent(url.password) }),
        ...(url.pathname.length > 1 ? { database: decodeURIComponent(url.pathname.slice(1)) } : {}),
      };
    } catch (error) {
      // preflight reports it before a run; never fall back to a default host
      throw new FrancaError(ErrorCode.ConfigInvalid, "url: is not a valid URL", { setting: "url", cause: error });
    }
  }
  return {
    ...base,
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.user === undefined ? {} : { user: options.user }),
    ...(options.password === undefined ? {} : { password: options.password }),
    ...(options.database === undefined ? {} : { database: options.database }),
  };
}

/** Runs a statement and parses the JSON columns of its rows. */
async function run(connection: PoolConnection, sql: string, params?: readonly unknown[]): Promise<MysqlResult> {
  const [result, fields] = await connection.query(
    params === undefined || params.length === 0 ? { sql } : { sql, values: params as unknown[] },
  );
  if (!Array.isArray(result)) return { rows: [], fields: [] };
  const rows = result as Row[];
  for (const field of fields ?? []) {
    if (field.columnType !== jsonType && field.extendedFormat !== "json") continue;
    for (const row of rows) {
      const value = row[field.name];
      if (typeof value !== "string") continue;
      try {
        row[field.name] = parseJsonExact(value);
      } catch {
        // not JSON after all (an expression the server typed JSON): the text as it is
      }
    }
  }
  return { rows, fields: fields ?? [] };
}

/**
 * Stops the statement a connection runs, with KILL QUERY from a separate short-lived connection (the pool may be
 * full). If that fails, the connection itself is destroyed, which ends the wait for the statement at once (the server
 * notices the closed socket later). Either way the connection is never reused.
 */
async function killQuery(config: ConnectionOptions, connection: PoolConnection): Promise<void> {
  try {
    const killer = await mysql2().createConnection(config);
    try {
      await killer.query(`KILL QUERY ${Number(connection.threadId)}`);
    } finally {
      await killer.end().catch(() => killer.destroy());
    }
  } catch {
    connection.destroy();
  }
}

/**
 * The session every connection gets before its first use: UTC (so TIMESTAMP values and NOW() are UTC), strict mode
 * (a value that does not fit is an error, not a warning), backslash escapes on (the client escapes strings with
 * them). Returns the server's max_allowed_packet.
 */
async function prepareSession(connection: PoolConnection): Promise<number> {
  const [found] = (await run(connection, "SELECT @@SESSION.sql_mode AS mode, @@SESSION.max_allowed_packet AS packet"))
    .rows;
  const modes = String(found?.mode ?? "")
    .split(",")
    .filter((mode) => mode !== "" && mode !== "NO_BACKSLASH_ESCAPES");
  if (!modes.includes("STRICT_ALL_TABLES")) modes.push("STRICT_ALL_TABLES");
  await run(connection, `SET SESSION time_zone = '+00:00', SESSION sql_mode = ${sqlString(modes.join(","))}`);
  return Number(found?.packet ?? 4 * 1024 * 1024);
}

function open(system: System): Connection {
  const options = system.options as MysqlSystemOptions;
  let config: ConnectionOptions = {};
  let invalid: FrancaError | undefined;
  try {
    config = connectionOptions(options);
  } catch (error) {
    invalid = new FrancaError(ErrorCode.SystemError, `${system.name}: ${(error as Error).message}`, {
      system: system.name,
      setting: "url",
    });
  }
  const tables: TableCache = tableCache(system.name);
  // The prepared session of each connection, by mysql2's underlying connection object.
  const sessions = new WeakMap<object, number>();
  let pool: Pool | undefined;
  const getPool = (): Pool => {
    if (invalid !== undefined) throw invalid;
    if (pool === undefined) {
      pool = mysql2().createPool({
        ...config,
        connectionLimit: options.poolSize ?? 10,
        maxIdle: options.poolSize ?? 10,
        waitForConnections: true,
        queueLimit: 0,
        enableKeepAlive: true,
      });
      // A connection that breaks while idle (server restart) is dropped by the pool; without a listener a second
      // error event would crash the process. The next statement reports the problem to its caller.
      pool.pool.on("connection", (connection) => connection.on("error", () => {}));
    }
    return pool;
  };

  const session: MysqlSession = {
    system: system.name,
    maxStatementBytes: options.maxStatementBytes ?? defaultMaxStatementBytes,
    async withConnection(signal, work) {
      const pool = getPool();
      const connection = await acquire(
        () => pool.getConnection(),
        (late) => late.release(),
        signal,
      );
      // A connection whose statement was killed, or that failed outside SQL, is closed rather than reused: a late
      // kill must never reach another caller's statement.
      let broken = false;
      const onAbort = () => {
        broken = true;
        void killQuery(config, connection);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        signal.throwIfAborted();
        let maxPacket = sessions.get(connection.connection);
        if (maxPacket === undefined) {
          maxPacket = await prepareSession(connection);
          sessions.set(connection.connection, maxPacket);
        }
        const query: Query = async (sql, params) => {
          signal.throwIfAborted();
          const result = await run(connection, sql, params);
          // A killed statement may still end normally (the server stops some functions quietly): discard it.
          signal.throwIfAborted();
          return result;
        };
        const queryArrays = async (sql: string): Promise<MysqlArrays> => {
          signal.throwIfAborted();
          const [result, fields] = await connection.query({ sql, rowsAsArray: true });
          signal.throwIfAborted();
          return Array.isArray(result)
            ? { rows: result as unknown[][], fields: fields ?? [] }
            : { rows: [], fields: [] };
        };
        const load = async (sql: string, data: () => Readable): Promise<LoadResult> => {
          signal.throwIfAborted();
          const [result] = await connection.query({ sql, infileStreamFactory: data });
          signal.throwIfAborted();
          const header = result as ResultSetHeader;
          return { affectedRows: header.affectedRows, warnings: header.warningStatus };
        };
        return await work({ query, queryArrays, load, maxPacket });
      } catch (error) {
        const raw = error instanceof FrancaError ? error.cause : error;
        if (raw !== undefined && serverErrno(raw) === undefined) broken = true;
        throw error;
      } finally {
        signal.removeEventListener("abort", onAbort);
        if (broken) connection.destroy();
        else connection.release();
      }
    },
  };

  const never = new AbortController().signal;
  return {
    read(request) {
      return readMysql(session, request);
    },
    readEncoded(request) {
      return readMysqlEncoded(session, request);
    },
    async describeTarget(options, signal) {
      const table = (options as MysqlBindingOptions).table as string;
      try {
        return await session.withConnection(signal, async (connection) => {
          const info = await tables.get(table, connection.query, true);
          const any = await connection.query(`SELECT 1 FROM ${quoteQualified(table, "`")} LIMIT 1`);
          return { ...info, empty: any.rows.length === 0 };
        });
      } catch (error) {
        if (signal.aborted && !(error instanceof FrancaError)) throw error;
        throw mysqlError(error, system.name, `cannot describe '${table}'`);
      }
    },
    async columns(options, signal) {
      const relation = sourceRelation(options as MysqlBindingOptions, "`");
      try {
        const names = await session.withConnection(signal, async (connection) =>
          (await connection.query(`SELECT * FROM ${relation} LIMIT 0`)).fields.map((field) => field.name),
        );
        return { names, caseSensitive: false };
      } catch (error) {
        throw mysqlError(error, system.name, `cannot read ${relation}`);
      }
    },
    write(request) {
      return writeMysql(session, tables, request);
    },
    client(): MysqlClient {
      return {
        async query<R extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
          try {
            return await session.withConnection(never, async (connection) => {
              return (await connection.query(sql, params)).rows as R[];
            });
          } catch (error) {
            throw mysqlError(error, system.name, "query failed");
          }
        },
        get pool() {
          return getPool();
        },
      };
    },
    health(signal) {
      return probeHealth(
        () => session.withConnection(signal, (connection) => connection.query("SELECT 1")),
        (error) => mysqlError(error, system.name, "health check failed").message,
      );
    },
    async close() {
      const open = pool;
      pool = undefined;
      tables.clear();
      await open?.end();
    },
  };
}

export const mysqlDriver: Driver = {
  type: "mysql",
  canRead: true,
  canWrite: true,
  writeTuning: ["load"],
  validateSystem: (options) => [
    ...checkSystem(options),
    ...connectionSettingsIssues((options ?? {}) as MysqlSystemOptions),
  ],
  validateBinding: (options, role) => [...checkBinding(options), ...tableOrQueryIssues(options, role)],
  // a target table is written by upsert on the binding's key
  replacesByKey: () => true,
  // a query's rows carry each of its columns
  fieldsInEveryRow: () => true,
  decode: decodeRows,
  cut: (_encoding, text, rows) => cutLines(text, rows, "MariaDB/MySQL rows"),
  prepare: prepareRows,
  join: joinEncodedRows,
  preflight: (system) =>
    connectionPreflightIssues(system.options as MysqlSystemOptions, ["mysql:", "mariadb:"], (url) => {
      const issues: SettingIssue[] = [];
      if (url.hostname === "") issues.push({ setting: "url", message: "names no host" });
      else if (url.pathname.length <= 1)
        issues.push({ setting: "url", message: "names no database (mysql://host:3306/database)" });
      if (url.search !== "")
        issues.push({
          setting: "url",
          message: "takes no query parameters: use the ssl and connectTimeoutMs settings",
        });
      return issues;
    }),
  open,
};

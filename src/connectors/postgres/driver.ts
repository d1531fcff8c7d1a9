import pg from "pg";
import type { Row } from "../../core/binding.ts";
import { FrancaError } from "../../core/errors.ts";
import type { System } from "../../core/system.ts";
import { acquire, probeHealth } from "../pooled.ts";
import { settingsChecker } from "../settings.ts";
import { connectionPreflightIssues, connectionSettingsIssues, sourceRelation, tableOrQueryIssues } from "../sql.ts";
import type { Connection, Driver } from "../types.ts";
import { cutCopy, decodeCopy } from "./copy-text.ts";
import { postgresError, sqlState } from "./errors.ts";
import { PostgresBindingOptions, PostgresSystemOptions } from "./options.ts";
import { exactTypes } from "./parsers.ts";
import { joinCopyRows, prepareCopy } from "./prepare.ts";
import { readPostgres } from "./read.ts";
import { readPostgresCopy, readPostgresCopyEncoded } from "./read-copy.ts";
import { type ColumnCache, columnCache, describeTarget, writePostgres } from "./write.ts";

const checkSystem = settingsChecker(PostgresSystemOptions);
const checkBinding = settingsChecker(PostgresBindingOptions);

export interface PostgresClient {
  /** Runs a statement on a pooled connection and returns its rows. */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  readonly pool: pg.Pool;
}

export type Query = (sql: string, params?: readonly unknown[]) => Promise<pg.QueryResult<Row>>;

/** What read.ts and write.ts need of a connection: a pooled session whose statements stop when the signal aborts. */
export interface PostgresSession {
  readonly system: string;
  /** Runs `work` on a pooled connection (`client` for COPY); an abort cancels its statement and closes it. */
  withClient<T>(signal: AbortSignal, work: (query: Query, client: pg.ClientBase) => Promise<T>): Promise<T>;
  /** A connection of its own, outside the pool, for a stream that outlives one call (a COPY read). */
  dedicated(signal: AbortSignal): Promise<DedicatedClient>;
}

export interface DedicatedClient {
  readonly client: pg.Client;
  /** Asks the server to cancel the statement running on this connection (best effort; resolves once asked). */
  cancel(): Promise<void>;
  /** Closes the connection: politely when idle, by closing its socket when a statement is still running. */
  close(): Promise<void>;
}

/**
 * Session settings sent at connect. TimeZone and DateStyle are pinned so that the text of a timestamp does not
 * depend on the server's defaults: the same row reads the same (same hash, same position) from any server.
 */
function sessionOptions(options: PostgresSystemOptions): string {
  const settings = ["-c TimeZone=UTC", "-c DateStyle=ISO"];
  // Sent as an option rather than pg's statement_timeout setting, which skips 0 ("no limit").
  if (options.statementTimeoutMs !== undefined) settings.push(`-c statement_timeout=${options.statementTimeoutMs}`);
  return settings.join(" ");
}

/** A URL's own `options` parameter would replace ours: put ours first, so that the URL's still win. */
function urlWithOptions(url: string, session: string): string {
  try {
    const parsed = new URL(url);
    const own = parsed.searchParams.get("options");
    if (own === null) return url;
    parsed.searchParams.set("options", `${session} ${own}`);
    return parsed.toString();
  } catch {
    return url; // preflight reports the bad URL; pg reports it again on connect
  }
}

function clientConfig(options: PostgresSystemOptions): pg.ClientConfig {
  const session = sessionOptions(options);
  const base: pg.ClientConfig = {
    application_name: options.applicationName ?? "franca",
    options: session,
    types: exactTypes,
    connectionTimeoutMillis: 30_000,
    ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
  };
  if (options.url !== undefined) return { ...base, connectionString: urlWithOptions(options.url, session) };
  return {
    ...base,
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.user === undefined ? {} : { user: options.user }),
    ...(options.password === undefined ? {} : { password: options.password }),
    ...(options.database === undefined ? {} : { database: options.database }),
  };
}

/**
 * Cancels the statement a backend is running, from a separate short-lived connection (the pool may be full).
 * Best effort: if it fails, the statement runs on until it ends (or reaches statement_timeout), on a connection that
 * is closed afterwards rather than reused.
 */
async function cancelBackend(config: pg.ClientConfig, pid: number): Promise<void> {
  const client = new pg.Client(config);
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT pg_cancel_backend($1)", [pid]);
  } catch {
    // see above
  } finally {
    await client.end().catch(() => {});
  }
}

function open(system: System): Connection {
  const options = system.options as PostgresSystemOptions;
  const config = clientConfig(options);
  const columns: ColumnCache = columnCache(system.name);
  let pool: pg.Pool | undefined;
  const getPool = (): pg.Pool => {
    if (pool === undefined) {
      pool = new pg.Pool({ ...config, max: options.poolSize ?? 10, allowExitOnIdle: true });
      // An idle connection that breaks (server restart) is dropped by the pool; without a listener it would crash
      // the process. The next statement reports the problem to its caller.
      pool.on("error", () => {});
    }
    return pool;
  };

  const session: PostgresSession = {
    system: system.name,
    async withClient(signal, work) {
      const pool = getPool();
      const client = await acquire(
        () => pool.connect(),
        (late) => late.release(),
        signal,
      );
      // A connection whose statement was cancelled, or that failed outside SQL, is closed rather than reused: a late
      // cancel must never reach another caller's statement.
      let broken = false;
      const pid = (client as unknown as { processID?: number | null }).processID;
      const onAbort = () => {
        broken = true;
        if (typeof pid === "number") void cancelBackend(config, pid);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const query: Query = async (sql, params) => {
        signal.throwIfAborted();
        return client.query<Row>(sql, params as unknown[] | undefined);
      };
      try {
        return await work(query, client);
      } catch (error) {
        const raw = error instanceof FrancaError ? error.cause : error;
        if (raw !== undefined && sqlState(raw) === undefined) broken = true;
        throw error;
      } finally {
        signal.removeEventListener("abort", onAbort);
        client.release(broken);
      }
    },
    async dedicated(signal) {
      signal.throwIfAborted();
      const client = new pg.Client(config);
      // Errors of an idle connection (the server restarted) would crash the process without a listener; the next
      // statement, or the stream, reports them.
      client.on("error", () => {});
      const onAbort = () => void client.end().catch(() => {});
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await client.connect();
        signal.throwIfAborted();
      } catch (error) {
        void client.end().catch(() => {});
        throw error;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
      const pid = (client as unknown as { processID?: number | null }).processID;
      return {
        client,
        async cancel() {
          if (typeof pid === "number") await cancelBackend(config, pid);
        },
        async close() {
          // pg's end(): a Terminate message when idle, the socket closed when a statement (a COPY) is running.
          await client.end().catch(() => {});
        },
      };
    },
  };

  return {
    read(request) {
      return (request.options as PostgresBindingOptions).copy === false
        ? readPostgres(session, request)
        : readPostgresCopy(session, request);
    },
    readEncoded(request) {
      // Keyset reads come as pg's rows, not text: `read` only.
      return (request.options as PostgresBindingOptions).copy === false
        ? undefined
        : readPostgresCopyEncoded(session, request);
    },
    describeTarget(options, signal) {
      return describeTarget(session, columns, options, signal);
    },
    async columns(options, signal) {
      const relation = sourceRelation(options as PostgresBindingOptions, '"');
      try {
        const names = await session.withClient(signal, async (query) =>
          (await query(`SELECT * FROM ${relation} LIMIT 0`)).fields.map((field) => field.name),
        );
        // the connector quotes every name: `updatedAt` is not the column `updatedat`
        return { names, caseSensitive: true };
      } catch (error) {
        throw postgresError(error, system.name, `cannot read ${relation}`);
      }
    },
    write(request) {
      return writePostgres(session, columns, request);
    },
    client(): PostgresClient {
      return {
        async query<R extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
          try {
            return (await getPool().query<R>(sql, params as unknown[])).rows;
          } catch (error) {
            throw postgresError(error, system.name, "query failed");
          }
        },
        get pool() {
          return getPool();
        },
      };
    },
    health(signal) {
      return probeHealth(
        () => session.withClient(signal, (query) => query("SELECT 1")),
        (error) => postgresError(error, system.name, "health check failed").message,
      );
    },
    async close() {
      const open = pool;
      pool = undefined;
      columns.clear();
      await open?.end();
    },
  };
}

export const postgresDriver: Driver = {
  type: "postgres",
  canRead: true,
  canWrite: true,
  writeTuning: ["copy"],
  validateSystem: (options) => [
    ...checkSystem(options),
    ...connectionSettingsIssues((options ?? {}) as PostgresSystemOptions),
  ],
  validateBinding: (options, role) => [...checkBinding(options), ...tableOrQueryIssues(options, role)],
  preflight: (system) =>
    connectionPreflightIssues(system.options as PostgresSystemOptions, ["postgres:", "postgresql:"]),
  // a target table is written by upsert on the binding's key
  replacesByKey: () => true,
  // a query's rows carry each of its columns
  fieldsInEveryRow: () => true,
  open,
  decode: decodeCopy,
  cut: cutCopy,
  prepare: prepareCopy,
  join: joinCopyRows,
};

import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { transientNetworkCode } from "../../core/network-errors.ts";
import { redactSecrets } from "../../core/redact.ts";

/** The fields of a mysql2 error that classification and messages use. */
interface ServerError {
  code?: unknown;
  errno?: unknown;
  sqlState?: unknown;
  sqlMessage?: unknown;
  sql?: unknown;
  fatal?: unknown;
}

/**
 * Server error numbers a later attempt can get past: a concurrent transaction won or held a lock (deadlock 1213,
 * lock wait timeout 1205), the server is busy, restarting or dropped us (too many connections 1040/1203/1226, server
 * gone 2006/2013, shutdown 1053, killed 1927, out of memory 1037/1038/1041, network errors 1152–1161/1184), or the
 * statement was interrupted (1317, MariaDB's max_statement_time 1969, MySQL's max_execution_time 3024, idle client
 * timeout 4031).
 */
const transientErrnos = new Set([
  1037, 1038, 1040, 1041, 1053, 1152, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161, 1184, 1203, 1205, 1213, 1226,
  1317, 1927, 1969, 2002, 2003, 2006, 2013, 2055, 3024, 4031,
]);

// mysql2's own codes for a connection that broke or never answered.
const transientCodes = new Set(["PROTOCOL_CONNECTION_LOST", "PROTOCOL_SEQUENCE_TIMEOUT", "ETIMEDOUT"]);
const lostConnection = /closed state|connection lost|connection is closed/i;

/**
 * Errors about the data of one row, in strict mode: SQLSTATE class 22 (data exception: too long, out of range, bad
 * value) and 23 (integrity: NOT NULL, CHECK, UNIQUE, foreign key), and those MariaDB reports under other states
 * (bad value for a column 1366, truncated ENUM/SET value 1265, no default 1364, bad date 1292, BIGINT out of range
 * 1690, MySQL's bad JSON 3140 and CHECK 3819, NULL into NOT NULL 1263). Such a batch is worth redoing row by row.
 */
const dataErrnos = new Set([
  1048, 1062, 1263, 1264, 1265, 1292, 1364, 1366, 1367, 1406, 1411, 1452, 1690, 3140, 3819, 4025,
]);

/** The server's error number (MariaDB/MySQL `ER_…` codes are positive numbers), when there is one. */
export function serverErrno(error: unknown): number | undefined {
  const errno = (error as ServerError | null)?.errno;
  return typeof errno === "number" && errno > 0 && typeof (error as ServerError).sqlState === "string"
    ? errno
    : undefined;
}

export function isDataError(error: unknown): boolean {
  const errno = serverErrno(error);
  if (errno === undefined) return false;
  const state = String((error as ServerError).sqlState);
  return dataErrnos.has(errno) || state.startsWith("22") || state.startsWith("23");
}

export function isTransient(error: unknown): boolean {
  const errno = serverErrno(error);
  if (errno !== undefined) {
    const state = String((error as ServerError).sqlState);
    return transientErrnos.has(errno) || state.startsWith("08") || state === "40001";
  }
  if (transientNetworkCode(error) !== undefined) return true;
  const code = (error as ServerError | null)?.code;
  if (typeof code === "string" && transientCodes.has(code)) return true;
  if (!(error instanceof Error)) return false;
  // A call stopped by its signal (timeout, cancelled run) was not refused: it may succeed another time.
  if (error.name === "AbortError" || error.name === "TimeoutError") return true;
  return lostConnection.test(error.message);
}

/**
 * The column a row-level error names, among `columns` (matched without regard to case, as MariaDB does): `Data too
 * long for column 'name'`, `Column 'name' cannot be null`, `Incorrect integer value: 'x' for column `db`.`t`.`qty``,
 * `Field 'name' doesn't have a default value`, and MariaDB's column-level CHECK (JSON validity included), named
 * `table.column` or after the column: `CONSTRAINT `t.doc` failed`.
 */
export function columnNamed(error: unknown, columns: readonly string[]): string | undefined {
  const message = (error as ServerError | null)?.sqlMessage;
  if (typeof message !== "string") return undefined;
  const find = (name: string | undefined) =>
    name === undefined ? undefined : columns.find((column) => column.toLowerCase() === name.toLowerCase());
  const named = /(?:for column|Column|Field) (?:(?:`[^`]*`\.)*`([^`]*)`|'([^']*)')/.exec(message);
  if (named !== null) return find(named[1] ?? named[2]);
  const constraint = /CONSTRAINT [`']([^`']*)[`'] failed/.exec(message);
  if (constraint !== null) {
    const name = constraint[1] as string;
    return find(name) ?? find(name.slice(name.lastIndexOf(".") + 1));
  }
  return undefined;
}

/**
 * Classifies a mysql2 error: transient (network, lost connection, deadlock, lock wait timeout, too many
 * connections, interrupted statement) → SYSTEM_UNAVAILABLE; permanent otherwise, TARGET_REJECTED when `rowLevel` (the
 * error is about one row, so that record alone is quarantined), else SYSTEM_ERROR. `column` names the column at fault
 * when the caller found it. Messages go through redactSecrets; the statement text mysql2 attaches (`sql`, which
 * carries the rows' data) is dropped from the cause.
 */
export function mysqlError(
  error: unknown,
  system: string,
  what: string,
  rowLevel = false,
  column?: string,
): FrancaError {
  if (error instanceof FrancaError) return error;
  if (error !== null && typeof error === "object" && "sql" in error) delete (error as ServerError).sql;
  const transient = isTransient(error);
  const errno = serverErrno(error);
  const raw = (error as ServerError | null)?.code;
  const status = errno ?? (typeof raw === "string" ? raw : undefined);
  let message = error instanceof Error ? error.message : String(error);
  if (message === "" && status !== undefined) message = String(status);
  if (column !== undefined && !message.includes(`'${column}'`) && !message.includes(`\`${column}\``))
    message += ` (column '${column}')`;
  const code = transient ? ErrorCode.SystemUnavailable : rowLevel ? ErrorCode.TargetRejected : ErrorCode.SystemError;
  return new FrancaError(code, redactSecrets(`${what}: ${message}`), {
    errorClass: transient ? "transient" : "permanent",
    system,
    ...(status === undefined ? {} : { status }),
    ...(column === undefined ? {} : { path: `/${column}` }),
    cause: error,
  });
}

import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { transientNetworkCode } from "../../core/network-errors.ts";
import { redactSecrets } from "../../core/redact.ts";

/** The fields of a server error (pg's DatabaseError) that classification and messages use. */
interface ServerError {
  code?: unknown;
  constraint?: unknown;
  column?: unknown;
  table?: unknown;
  cause?: unknown;
  errors?: unknown;
}

// SQLSTATEs a later attempt can get past (beside a lost connection's): a concurrent transaction won, the statement
// timed out, a lock was not available, the server is short of resources.
const transientStates = new Set(["40001", "40P01", "57014", "55P03"]);
const transientClasses = new Set(["53"]);
// SQLSTATEs of a connection the server ended or refused: the shutdowns (57P01–57P03) and connection exceptions (08).
const lostStates = new Set(["57P01", "57P02", "57P03"]);

// pg reports a lost or never-made connection with a plain Error and no code.
const lostConnection =
  /connection terminated|timeout exceeded when trying to connect|not queryable|connection timeout/i;

/** The SQLSTATE of a server error, when there is one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as ServerError | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * A problem with the data of a row rather than with the system: a data exception (class 22: bad value, overflow),
 * an integrity constraint (class 23: NOT NULL, CHECK, UNIQUE, foreign key), or one statement hitting the same key
 * twice (21000). Such a batch is worth redoing row by row.
 */
export function isDataError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && (state.startsWith("22") || state.startsWith("23") || state === "21000");
}

/**
 * The connection is gone, or was never made: the server ended it (shutdown, administrator), a connection exception,
 * a network error, or pg's plain Error for a closed socket. What a session held on it (locks) went with it.
 */
export function connectionLost(error: unknown): boolean {
  const state = sqlState(error);
  if (state !== undefined) return lostStates.has(state) || state.startsWith("08");
  if (transientNetworkCode(error) !== undefined) return true;
  return error instanceof Error && lostConnection.test(error.message);
}

export function isTransient(error: unknown): boolean {
  if (connectionLost(error)) return true;
  const state = sqlState(error);
  if (state !== undefined) return transientStates.has(state) || transientClasses.has(state.slice(0, 2));
  // A call stopped by its signal (timeout, cancelled run) was not refused: it may succeed another time.
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

/**
 * Classifies a pg error by SQLSTATE: transient (connection, serialization, deadlock, resources, shutdown, statement
 * timeout, lock not available, network) → SYSTEM_UNAVAILABLE; permanent otherwise, TARGET_REJECTED when `rowLevel`
 * (the error is about one row, so that record alone is quarantined), else SYSTEM_ERROR. `column` names the column at
 * fault when the caller found it and the server did not say. Messages go through redactSecrets because pg may quote
 * a connection string.
 */
export function postgresError(
  error: unknown,
  system: string,
  what: string,
  rowLevel = false,
  column?: string,
): FrancaError {
  if (error instanceof FrancaError) return error;
  const transient = isTransient(error);
  const state = sqlState(error) ?? transientNetworkCode(error);
  const server = (error ?? {}) as ServerError;
  let message = error instanceof Error ? error.message : String(error);
  if (message === "" && state !== undefined) message = state;
  // Name the constraint and column when the message does not (a foreign key message may only give the table, a bad
  // value only its type). PostgreSQL quotes the names it mentions.
  if (typeof server.constraint === "string" && !message.includes(`"${server.constraint}"`))
    message += ` (constraint "${server.constraint}")`;
  const at = typeof server.column === "string" ? server.column : column;
  if (at !== undefined && !message.includes(`"${at}"`)) message += ` (column "${at}")`;
  const code = transient ? ErrorCode.SystemUnavailable : rowLevel ? ErrorCode.TargetRejected : ErrorCode.SystemError;
  return new FrancaError(code, redactSecrets(`${what}: ${message}`), {
    errorClass: transient ? "transient" : "permanent",
    system,
    ...(state === undefined ? {} : { status: state }),
    ...(at === undefined ? {} : { path: `/${at}` }),
    cause: error,
  });
}

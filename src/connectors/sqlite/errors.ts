import { ErrorCode, FrancaError } from "../../core/errors.ts";

// SQLite primary result codes (the low byte of an extended code) that a later attempt can get past.
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

/**
 * Classifies a node:sqlite error: busy and locked databases are transient, everything else permanent. `rowLevel`
 * marks an error about one row (a constraint, a bad value): TARGET_REJECTED, so that record alone is quarantined.
 */
export function sqliteError(error: unknown, system: string, what: string, rowLevel = false): FrancaError {
  if (error instanceof FrancaError) return error;
  const errcode = (error as { errcode?: number }).errcode;
  const primary = typeof errcode === "number" ? errcode & 0xff : undefined;
  const transient = primary === SQLITE_BUSY || primary === SQLITE_LOCKED;
  const message = error instanceof Error ? error.message : String(error);
  const code = transient ? ErrorCode.SystemUnavailable : rowLevel ? ErrorCode.TargetRejected : ErrorCode.SystemError;
  return new FrancaError(code, `${what}: ${message}`, {
    errorClass: transient ? "transient" : "permanent",
    system,
    ...(errcode === undefined ? {} : { status: errcode }),
    cause: error,
  });
}

const SQLITE_ERROR = 1;
/** What SQLite says of a statement whose table or column is not (or no longer) there. */
const missingRelation = /no such table|no such column|has no column named/;
/**
 * Primary codes of a database that cannot take any write: no permission, read-only, out of memory, I/O error,
 * corrupt, full, cannot open, schema changed, not a database.
 */
const databaseCodes = new Set([3, 7, 8, 10, 11, 13, 14, 17, 26]);

/**
 * The error is the table's or the database's, not the row's: the table or a column it writes is not there (gone
 * since the statement was prepared, by another connection), or the database cannot be written at all (read-only,
 * full, an I/O error, corrupt), which fails every row alike. Any other error of a row (a constraint, a CHECK or
 * trigger, a type mismatch, a value too big, malformed JSON for a generated column, a value node:sqlite cannot bind)
 * is that row's.
 */
export function isTableError(error: unknown): boolean {
  const errcode = (error as { errcode?: number }).errcode;
  const primary = typeof errcode === "number" ? errcode & 0xff : undefined;
  if (primary !== undefined && databaseCodes.has(primary)) return true;
  return primary === SQLITE_ERROR && missingRelation.test(error instanceof Error ? error.message : String(error));
}

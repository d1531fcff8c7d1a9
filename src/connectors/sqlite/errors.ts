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
const SQLITE_SCHEMA = 17;
/** What SQLite says of a statement whose table or column is not (or no longer) there. */
const missingRelation = /no such table|no such column|has no column named/;

/**
 * The error is the table's, not the row's: the table or a column it writes is not there (gone since the statement
 * was prepared, by another connection), which fails every row alike. Any other error of a row (a constraint, a CHECK
 * or trigger, a type mismatch, a value too big, malformed JSON for a generated column) is that row's.
 */
export function isTableError(error: unknown): boolean {
  const errcode = (error as { errcode?: number }).errcode;
  const primary = typeof errcode === "number" ? errcode & 0xff : undefined;
  if (primary === SQLITE_SCHEMA) return true;
  return primary === SQLITE_ERROR && missingRelation.test(error instanceof Error ? error.message : String(error));
}

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

const SQLITE_TOOBIG = 18;
const SQLITE_CONSTRAINT = 19;
const SQLITE_MISMATCH = 20;

/**
 * The error is about the row written (a constraint, a CHECK or trigger refusal, a type mismatch, a value too big),
 * not the statement: a table or column that is not there (gone since the statement was prepared, by another
 * connection) fails every row alike and is the system's.
 */
export function isRowError(error: unknown): boolean {
  const errcode = (error as { errcode?: number }).errcode;
  const primary = typeof errcode === "number" ? errcode & 0xff : undefined;
  return primary === SQLITE_CONSTRAINT || primary === SQLITE_MISMATCH || primary === SQLITE_TOOBIG;
}

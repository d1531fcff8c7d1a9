import { ErrorCode, FrancaError } from "../../core/errors.ts";

// File system errors a later attempt can get past: a full or failing disk, a busy file, too many open files.
const transientCodes = new Set([
  "ENOSPC",
  "EDQUOT",
  "EIO",
  "EAGAIN",
  "EBUSY",
  "EMFILE",
  "ENFILE",
  "ETIMEDOUT",
  "ESTALE",
]);

function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Classifies a file system error: a full disk, an I/O error or a busy file is transient; a missing file, a
 * permission problem and anything else is permanent. `what` says what was being done, with the path.
 */
export function fileError(error: unknown, system: string, what: string): FrancaError {
  if (error instanceof FrancaError) return error;
  const code = errnoCode(error);
  const transient = code !== undefined && transientCodes.has(code);
  const message = error instanceof Error ? error.message : String(error);
  return new FrancaError(transient ? ErrorCode.SystemUnavailable : ErrorCode.SystemError, `${what}: ${message}`, {
    errorClass: transient ? "transient" : "permanent",
    system,
    ...(code === undefined ? {} : { status: code }),
    cause: error,
  });
}

/** A permanent problem with a file's content or place (a missing source file, a broken header). */
export function filePermanent(system: string, message: string, cause?: unknown): FrancaError {
  return new FrancaError(ErrorCode.SystemError, message, {
    errorClass: "permanent",
    system,
    ...(cause === undefined ? {} : { cause }),
  });
}

export function isNotFound(error: unknown): boolean {
  return errnoCode(error) === "ENOENT";
}

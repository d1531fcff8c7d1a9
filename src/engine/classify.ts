import { BrokenCircuitError, TaskCancelledError } from "cockatiel";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { transientNetworkCode } from "../core/network-errors.ts";

/**
 * Classifies anything a system call threw: FrancaErrors keep their class; timeouts and network failures are
 * transient; anything else (a bug in a mapping, an unexpected exception) is permanent.
 */
export function classify(error: unknown, system: string): FrancaError {
  if (error instanceof FrancaError) return error;
  if (error instanceof TaskCancelledError) {
    return new FrancaError(ErrorCode.SystemTimeout, `${system}: call timed out`, {
      errorClass: "transient",
      system,
      cause: error,
    });
  }
  if (error instanceof BrokenCircuitError) {
    return new FrancaError(ErrorCode.CircuitOpen, `${system}: circuit open after repeated failures`, {
      errorClass: "transient",
      system,
      cause: error,
    });
  }
  const code = transientNetworkCode(error);
  if (code !== undefined) {
    return new FrancaError(ErrorCode.SystemUnavailable, `${system}: ${code} ${(error as Error).message ?? ""}`.trim(), {
      errorClass: "transient",
      system,
      status: code,
      cause: error,
    });
  }
  if (error instanceof Error && error.name === "TimeoutError") {
    return new FrancaError(ErrorCode.SystemTimeout, `${system}: ${error.message}`, {
      errorClass: "transient",
      system,
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new FrancaError(ErrorCode.SystemError, `${system}: ${message}`, { system, cause: error });
}

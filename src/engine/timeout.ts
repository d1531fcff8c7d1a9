import { ErrorCode, FrancaError } from "../core/errors.ts";
import { whenAborted } from "./when-aborted.ts";

/**
 * Runs `fn` with a deadline: at `ms` the call's signal is aborted and the call given up with a transient
 * SYSTEM_TIMEOUT (it may still be running; loads are idempotent). Hand-written rather than cockatiel's timeout
 * policy because that one aborts its controller after every *successful* call too, and each abort builds a
 * DOMException: measured at ~40 µs a call, a fifth of a lookup's whole cost at thousands of lookups a second.
 */
export async function withTimeout<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  ms: number,
  parent: AbortSignal,
  system: string,
): Promise<T> {
  const controller = new AbortController();
  const forget = whenAborted(parent, () => controller.abort(parent.reason));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new FrancaError(ErrorCode.SystemTimeout, `${system}: no answer within ${ms} ms`, {
        errorClass: "transient",
        system,
      });
      controller.abort(error);
      reject(error);
    }, ms);
  });
  try {
    return await Promise.race([fn(controller.signal), deadline]);
  } finally {
    clearTimeout(timer);
    forget();
  }
}

import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { errorCode } from "../../core/network-errors.ts";

/** What a request was for: a 4xx on a write is the record's problem, on a read or a client call the system's. */
export type HttpOperation = "read" | "write" | "client";

/** Statuses a later attempt may get past. */
const transientStatuses = new Set([408, 425, 429, 500, 502, 503, 504]);

/** Longest excerpt of a response body kept in an error message. */
const excerptLength = 300;

/**
 * `Retry-After` as milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3). Undefined when absent or
 * unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The start of a response body, on one line, for an error message. */
export function excerpt(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > excerptLength ? `${line.slice(0, excerptLength)}…` : line;
}

/** The server's reason in a JSON error body (`error`, `message`, `detail`…), or the body's excerpt. */
export function reasonOf(text: string): string {
  try {
    const body = JSON.parse(text) as unknown;
    const reason = errorText(body);
    if (reason !== undefined) return excerpt(reason);
  } catch {
    // not JSON: the text itself
  }
  return excerpt(text);
}

/** An error text in a result or body: a string, or `error`/`message`/`detail`/`title` of an object. */
export function errorText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value !== "object" || value === null) return undefined;
  for (const field of ["error", "message", "detail", "title", "errors"]) {
    const inner = (value as Record<string, unknown>)[field];
    if (inner === undefined || inner === null) continue;
    if (typeof inner === "string") return inner;
    const nested = errorText(inner);
    return nested ?? JSON.stringify(inner);
  }
  return undefined;
}

export interface StatusErrorInput {
  system: string;
  operation: HttpOperation;
  /** `GET /invoices?page=2`, secrets already removed. */
  request: string;
  status: number;
  retryAfter?: string | null;
  body: string;
}

/**
 * Classifies an HTTP answer that is not a success:
 * - 408, 425, 429, 500, 502, 503, 504 and other 5xx but 501 and 505: transient (429 SYSTEM_RATE_LIMITED, 408 and
 *   504 SYSTEM_TIMEOUT, the rest SYSTEM_UNAVAILABLE), with Retry-After as `retryAfterMs`;
 * - 401, 403: permanent SYSTEM_ERROR, "authentication refused": the whole system, never a record;
 * - other 4xx on a write: permanent TARGET_REJECTED with the status and the server's reason (the engine splits a
 *   refused batch to find the records at fault);
 * - anything else (4xx on a read or a client call, 501, 505, an unfollowed redirect): permanent SYSTEM_ERROR.
 */
export function statusError(input: StatusErrorInput): FrancaError {
  const { system, operation, request, status } = input;
  const reason = reasonOf(input.body);
  const said = reason === "" ? "" : `: ${reason}`;
  const retryAfterMs = parseRetryAfter(input.retryAfter);
  const common = { system, status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  const transient =
    transientStatuses.has(status) || (status >= 500 && status < 600 && status !== 501 && status !== 505);
  if (transient) {
    const code =
      status === 429
        ? ErrorCode.SystemRateLimited
        : status === 408 || status === 504
          ? ErrorCode.SystemTimeout
          : ErrorCode.SystemUnavailable;
    return new FrancaError(code, `${system}: ${request} answered ${status}${said}`, {
      ...common,
      errorClass: "transient",
    });
  }
  if (status === 401 || status === 403) {
    return new FrancaError(
      ErrorCode.SystemError,
      `authentication refused by ${system} (${status} on ${request})`,
      common,
    );
  }
  if (status >= 400 && status < 500 && operation === "write") {
    return new FrancaError(ErrorCode.TargetRejected, `${system} refused the record (${status})${said}`, common);
  }
  const what = status >= 300 && status < 400 ? " (redirects are not followed: set baseUrl to the final address)" : "";
  return new FrancaError(ErrorCode.SystemError, `${system}: ${request} answered ${status}${what}${said}`, common);
}

/**
 * A request that got no answer: aborted (the call's timeout, a cancelled run) or a network failure, both transient.
 * Anything else fetch throws (a header value it refuses, say) is permanent. `redact` removes secrets from the text
 * of errors that may quote the request; the raw error is kept as cause only for network failures, whose messages
 * name an address, never a credential.
 */
export function requestFailure(
  system: string,
  request: string,
  error: unknown,
  signal: AbortSignal,
  redact: (text: string) => string,
): FrancaError {
  if (signal.aborted) {
    return new FrancaError(ErrorCode.SystemTimeout, `${system}: ${request} aborted (timeout or cancellation)`, {
      errorClass: "transient",
      system,
    });
  }
  const code = errorCode(error);
  const network = code !== undefined || (error instanceof TypeError && error.cause !== undefined);
  if (network) {
    const detail = code ?? redact(String((error as TypeError).cause));
    return new FrancaError(ErrorCode.SystemUnavailable, `${system}: ${request} failed: ${detail}`, {
      errorClass: "transient",
      system,
      ...(code === undefined ? {} : { status: code, cause: error }),
    });
  }
  const message = redact(error instanceof Error ? error.message : String(error));
  return new FrancaError(ErrorCode.SystemError, `${system}: ${request} could not be sent: ${message}`, { system });
}

/** A success answer the connector cannot use (not JSON, no records array, too few results): permanent. */
export function responseError(system: string, request: string, problem: string): FrancaError {
  return new FrancaError(ErrorCode.SystemError, `${system}: ${request}: ${problem}`, { system });
}

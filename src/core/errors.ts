/**
 * Every error Franca raises is a FrancaError with a stable `code`. Codes are part of the public contract: they are
 * stored in the ledger, printed by the CLI and matched by users' alerting, so they never change meaning.
 *
 * `errorClass` says what a retry can do: a transient error (network, timeout, 429, 5xx, deadlock) may succeed later,
 * a permanent one (bad data, 4xx, configuration) will not, so the record is quarantined at once.
 */

export const ErrorCode = {
  // configuration: stops before anything is written, exit code 2
  ConfigInvalid: "CONFIG_INVALID",
  ConfigNotFound: "CONFIG_NOT_FOUND",
  ConfigDuplicateName: "CONFIG_DUPLICATE_NAME",
  ConfigUnknownReference: "CONFIG_UNKNOWN_REFERENCE",
  ConfigBadCron: "CONFIG_BAD_CRON",
  ConfigUnreachable: "CONFIG_UNREACHABLE",
  Usage: "USAGE",
  // records: quarantined with a field path
  MappingFailed: "MAPPING_FAILED",
  /** The source could not parse the record (a bad line in a file): quarantined with the raw text. */
  SourceRecordInvalid: "SOURCE_RECORD_INVALID",
  ValidationFailed: "VALIDATION_FAILED",
  KeyMissing: "KEY_MISSING",
  LookupFailed: "LOOKUP_FAILED",
  TargetRejected: "TARGET_REJECTED",
  // systems
  SystemUnavailable: "SYSTEM_UNAVAILABLE",
  SystemTimeout: "SYSTEM_TIMEOUT",
  SystemRateLimited: "SYSTEM_RATE_LIMITED",
  SystemError: "SYSTEM_ERROR",
  CircuitOpen: "CIRCUIT_OPEN",
  /** The system's breaker stayed open longer than the run may pause: the run stops, resumable once it is back. */
  SystemDown: "SYSTEM_DOWN",
  SourceDrift: "SOURCE_DRIFT",
  // runs
  RunNotFound: "RUN_NOT_FOUND",
  RunLocked: "RUN_LOCKED",
  RunNotResumable: "RUN_NOT_RESUMABLE",
  RunAbandoned: "RUN_ABANDONED",
  RunCancelled: "RUN_CANCELLED",
  /**
   * A record whose write was in flight when its run stopped (a cancel, or another stage's or target's failure): not
   * its system's failure. Transient: the resume writes it again.
   */
  WriteInterrupted: "WRITE_INTERRUPTED",
  /**
   * Distributed: the queue gave up on one of the run's jobs (its attempts ran out without a worker ending it: each
   * worker that took it died or stalled). The run stops, resumable: continuing it sends the job again.
   */
  JobGivenUp: "JOB_GIVEN_UP",
  FailureThreshold: "FAILURE_THRESHOLD",
  /** A replay found no quarantined or failed record to go through again: no replay run is recorded. */
  NothingToReplay: "NOTHING_TO_REPLAY",
  StoreError: "STORE_ERROR",
  Internal: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export type ErrorClass = "transient" | "permanent";

export interface FrancaErrorOptions {
  errorClass?: ErrorClass;
  /** JSON path of the offending field in a record, e.g. `/lines/2/amount`. */
  path?: string;
  /** Dotted path of the offending configuration setting, e.g. `flows.invoices.to[1].system`. */
  setting?: string;
  /** HTTP status or driver code, when a system gave one. */
  status?: number | string;
  /** Milliseconds the system asked us to wait (Retry-After). */
  retryAfterMs?: number;
  system?: string;
  /** Structured detail, e.g. every configuration issue found at once. */
  details?: unknown;
  cause?: unknown;
}

export class FrancaError extends Error {
  readonly code: ErrorCode;
  readonly errorClass: ErrorClass;
  readonly path?: string;
  readonly setting?: string;
  readonly status?: number | string;
  readonly retryAfterMs?: number;
  readonly system?: string;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, options: FrancaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FrancaError";
    this.code = code;
    this.errorClass = options.errorClass ?? "permanent";
    if (options.path !== undefined) this.path = options.path;
    if (options.setting !== undefined) this.setting = options.setting;
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.system !== undefined) this.system = options.system;
    if (options.details !== undefined) this.details = options.details;
  }

  get transient(): boolean {
    return this.errorClass === "transient";
  }

  /** The error as plain data: what logs show, and what crosses threads (`fromJSON` makes it an error again). */
  toJSON(): FrancaErrorJson {
    return {
      code: this.code,
      class: this.errorClass,
      message: this.message,
      ...(this.path === undefined ? {} : { path: this.path }),
      ...(this.setting === undefined ? {} : { setting: this.setting }),
      ...(this.status === undefined ? {} : { status: this.status }),
      ...(this.system === undefined ? {} : { system: this.system }),
    };
  }

  static fromJSON(json: FrancaErrorJson): FrancaError {
    return new FrancaError(json.code, json.message, {
      errorClass: json.class,
      ...(json.path === undefined ? {} : { path: json.path }),
      ...(json.setting === undefined ? {} : { setting: json.setting }),
      ...(json.status === undefined ? {} : { status: json.status }),
      ...(json.system === undefined ? {} : { system: json.system }),
    });
  }
}

/** A FrancaError as plain data (`toJSON`). */
export interface FrancaErrorJson {
  code: ErrorCode;
  class: ErrorClass;
  message: string;
  path?: string;
  setting?: string;
  status?: number | string;
  system?: string;
}

/** A configuration problem: always names the setting. */
export function configError(code: ErrorCode, setting: string, message: string, cause?: unknown): FrancaError {
  return new FrancaError(code, `${setting}: ${message}`, { setting, cause });
}

export function isFrancaError(error: unknown): error is FrancaError {
  return error instanceof FrancaError;
}

/** Wraps anything thrown into a FrancaError, keeping FrancaErrors as they are. */
export function toFrancaError(error: unknown, fallback: ErrorCode = ErrorCode.Internal): FrancaError {
  if (error instanceof FrancaError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new FrancaError(fallback, message, { cause: error });
}

/** Ledger and CLI exit codes, in one place so schedulers can rely on them. */
export const ExitCode = {
  Succeeded: 0,
  Failed: 1,
  Usage: 2,
  Partial: 3,
} as const;

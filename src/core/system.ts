/**
 * A system is a platform the hub talks to: a connector type, its connection settings, an owner and its limits.
 * Systems are created by the connector modules (`sqlite(...)`, `postgres(...)`, `http(...)`, `file(...)`), which
 * fill in `driver`; core only knows the driver's static contract below.
 */

/** How hard the hub may press on one system. Shared by every flow and lookup that uses the system. */
export interface Limits {
  /** Calls in flight at once: in this process, and with the distributed executor across every worker. */
  concurrency?: number;
  /** With the distributed executor, this process's own cap on calls in flight (a worker sized for one machine). */
  processConcurrency?: number;
  /** At most `requests` calls per `perMs` milliseconds (token bucket). */
  rateLimit?: { requests: number; perMs: number };
  /** Time allowed for one call, in milliseconds. */
  timeoutMs?: number;
  retry?: RetryLimits;
  breaker?: BreakerLimits;
}

export interface RetryLimits {
  /** Attempts in all, the first included. 1 disables retries. */
  maxAttempts?: number;
  /** First backoff delay; doubles each attempt, with full jitter. */
  initialDelayMs?: number;
  /** Cap on one delay. */
  maxDelayMs?: number;
  /** Cap on the sum of delays for one call; when the next delay would cross it, the call fails. */
  maxTotalDelayMs?: number;
}

export interface BreakerLimits {
  /** Consecutive transient failures that open the breaker. */
  consecutiveFailures?: number;
  /** How long the breaker stays open before one probe call is let through. */
  halfOpenAfterMs?: number;
}

export interface SettingIssue {
  /** Setting path relative to the object validated, e.g. `options.file`. */
  setting: string;
  message: string;
}

/** The connector-independent settings of a binding, as a driver's checks see them. */
export interface BindingShape {
  key: readonly string[];
  cursor?: string;
}

/** What core needs of a connector driver: its name and static validation of its settings (no I/O). */
export interface DriverContract {
  readonly type: string;
  validateSystem(options: unknown): SettingIssue[];
  /** `binding` carries the connector-independent settings some checks need (a cursor that needs a `since`…). */
  validateBinding(options: unknown, role: "source" | "target", binding?: BindingShape): SettingIssue[];
  /** True when the connector can read as a source / write as a target. */
  readonly canRead: boolean;
  readonly canWrite: boolean;
  /** False when a source is read whole at every run (files): a binding `cursor` would mean nothing and is refused. */
  readonly incremental?: boolean;
  /**
   * Binding settings that change how a target's rows are written (a bulk path, batch sizes, headers) but not what the
   * target holds: left out of the target's mapping digest (core/target-mapping.ts), so tuning one sends nothing again.
   */
  readonly writeTuning?: readonly string[];
}

export interface System<BindingOptions = Record<string, unknown>, Client = unknown> {
  readonly kind: "system";
  readonly name: string;
  readonly type: string;
  readonly options: Readonly<Record<string, unknown>>;
  readonly owner?: string;
  readonly description?: string;
  readonly limits: Readonly<Limits>;
  readonly driver: DriverContract;
  /** Phantom fields for type inference only: never set at runtime. */
  readonly __binding?: BindingOptions;
  readonly __client?: Client;
}

export type BindingOptionsOf<S> = S extends System<infer B, unknown> ? B : never;
export type ClientOf<S> = S extends System<Record<string, unknown>, infer C> ? C : never;

/** Settings every system accepts besides its connector's own. */
export interface CommonSystemSettings {
  owner?: string;
  description?: string;
  limits?: Limits;
}

export const commonSystemSettingNames = ["owner", "description", "limits"] as const;

/** Used by connector modules to build their `System` objects. */
export function defineSystem<B, C>(
  driver: DriverContract,
  name: string,
  settings: Record<string, unknown> & CommonSystemSettings,
): System<B, C> {
  const { owner, description, limits, ...options } = settings;
  return Object.freeze({
    kind: "system" as const,
    name,
    type: driver.type,
    options: Object.freeze(options),
    ...(owner === undefined ? {} : { owner }),
    ...(description === undefined ? {} : { description }),
    limits: Object.freeze({ ...(limits ?? {}) }),
    driver,
  });
}

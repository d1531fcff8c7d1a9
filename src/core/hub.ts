import { Cron } from "croner";
import { type Binding, mappingSettingNames } from "./binding.ts";
import { type Entity, entitySpecNames, fieldNoteNames } from "./entity.ts";
import { ErrorCode, FrancaError } from "./errors.ts";
import { type Flow, flowSpecNames } from "./flow.ts";
import { type AnyLookup, lookupSpecNames } from "./lookup.ts";
import { nonJsonTypesOf } from "./schema-json.ts";
import { closestSetting, didYouMean, notKnownSetting, shown } from "./suggest.ts";
import type { Limits, System } from "./system.ts";
import { unknownSettingsOf } from "./unknown-settings.ts";

export interface HubSpec {
  /** The hub's name, on every log line the engine writes (`hub`). Default `franca`. */
  name?: string;
  systems: readonly System[];
  entities: readonly Entity[];
  flows: readonly Flow[];
  lookups?: readonly AnyLookup[];
  /**
   * Where runs, staging and the ledger live: a SQLite file path (default `.franca/franca.db` beside the
   * configuration), the same as `sqlite:<path>`, or a `postgres://` (`postgresql://`) URL. Any other `scheme://…`
   * is refused (storeProblem), not taken for a file path.
   */
  store?: string;
  /** Where lookups with a `ttlMs` keep values across runs: the store (default) or a `redis://` URL. */
  cache?: string;
  /** How often a running process records that it is alive. Default 2,000 ms. */
  heartbeatMs?: number;
  /**
   * A run whose heartbeat is older than this is taken as abandoned by a dead process: at least three heartbeats.
   * Default 15,000 ms, or three heartbeats when `heartbeatMs` is longer than 5,000.
   */
  staleAfterMs?: number;
}

/** The settings `defineHub` knows. */
const hubSpecNames: ReadonlySet<string> = new Set([
  "name",
  "systems",
  "entities",
  "flows",
  "lookups",
  "store",
  "cache",
  "heartbeatMs",
  "staleAfterMs",
]);

const defaultHeartbeatMs = 2000;

/** The heartbeat age after which a run is taken as abandoned: `staleAfterMs`, else 15 s or three heartbeats. */
function staleAfterOf(spec: HubSpec): number {
  return spec.staleAfterMs ?? Math.max(15_000, (spec.heartbeatMs ?? defaultHeartbeatMs) * 3);
}

export interface Hub {
  readonly kind: "hub";
  readonly name: string;
  readonly systems: ReadonlyMap<string, System>;
  readonly entities: ReadonlyMap<string, Entity>;
  readonly flows: ReadonlyMap<string, Flow>;
  readonly lookups: ReadonlyMap<string, AnyLookup>;
  /** Every binding used by a flow, by name. */
  readonly bindings: ReadonlyMap<string, Binding>;
  readonly store?: string;
  readonly cache?: string;
  readonly heartbeatMs: number;
  readonly staleAfterMs: number;
}

export interface ConfigIssue {
  code: ErrorCode;
  setting: string;
  message: string;
}

/**
 * The URL schemes a store may be given with (store/open.ts opens them); a value without one is a SQLite file path.
 */
export const storeSchemes: readonly string[] = Object.freeze(["postgres", "postgresql", "sqlite"]);

/**
 * Why `store` cannot be a store, or undefined when it can: not a non-empty string, or a URL (`scheme://…`) of a
 * scheme no store has. Such a value would otherwise be taken for a file path, and a typo (`postgress://db`) would
 * silently make a new, empty SQLite store at `./postgress:/db`. Checked by defineHub (so every command, `franca
 * check` too, reports it before anything is written) and again by openStore. Names the scheme only: the rest of a
 * URL may hold a password.
 */
export function storeProblem(store: unknown): string | undefined {
  const supported = "a SQLite file path (or sqlite:<path>) or a postgres:// (postgresql://) URL";
  if (typeof store !== "string" || store.trim() === "") return `must be ${supported}, got ${shown(store)}`;
  // two letters at least: `C://…` is a Windows drive, not a scheme
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]+):/.exec(store)?.[1];
  if (scheme === undefined || scheme === "sqlite" || /^postgres(ql)?:\/\//.test(store)) return undefined;
  const given = /^[^:]*:\/*/.exec(store)?.[0] as string;
  // a PostgreSQL URL with one slash or in capitals would be taken for a file name
  if (/^postgres(ql)?$/i.test(scheme))
    return `a PostgreSQL store is a postgres:// or postgresql:// URL, not '${given}…'`;
  // a scheme without `//` (`my:data.db`) may be a file name
  if (!store.startsWith(`${scheme}://`)) return undefined;
  return `'${given}' is not a store scheme${didYouMean(scheme, storeSchemes)}: a store is ${supported}`;
}

const namePattern = /^[A-Za-z][A-Za-z0-9_.-]*$/;
/** What a Flow object holds: the spec's settings and the entity derived from its source. */
const flowSettingNames = new Set([...flowSpecNames, "kind", "name", "entity"]);
/** What an Entity and a Lookup object hold: their spec's settings, their kind and name. */
const entitySettingNames = new Set([...entitySpecNames, "kind", "name"]);
const lookupSettingNames = new Set([...lookupSpecNames, "kind", "name"]);

/**
 * Reports, as `<base>.<name>`, each setting its factory kept as unknown (unknown-settings.ts) and each own key of
 * `item` that is not in `known` (an object made by hand, or a plain settings object: a hub's, a failure policy),
 * with the setting of `settings` (default `known`) it most likely meant.
 */
function checkKnown(
  item: object,
  known: ReadonlySet<string>,
  base: string,
  what: string,
  add: (code: ErrorCode, setting: string, message: string) => void,
  settings: ReadonlySet<string> = known,
): void {
  const unknown = new Set(unknownSettingsOf(item));
  for (const name of Object.keys(item)) if (!known.has(name)) unknown.add(name);
  for (const name of unknown) {
    const setting = base === "" ? name : `${base}.${name}`;
    add(ErrorCode.ConfigInvalid, setting, `is not ${what}${didYouMean(name, settings)}`);
  }
}

/** Collects every problem of a hub definition, so a user fixes them in one go rather than one per attempt. */
export function checkHub(spec: HubSpec): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (code: ErrorCode, setting: string, message: string) => issues.push({ code, setting, message });

  if (spec === null || typeof spec !== "object") {
    add(
      ErrorCode.ConfigInvalid,
      "(hub)",
      "the configuration must default-export defineHub({ systems, entities, flows })",
    );
    return issues;
  }
  // first: a misspelled `entites` is the reason `entities` is missing, reported below
  checkKnown(spec, hubSpecNames, "", "a hub setting", add);
  const known = issues.length;
  for (const field of ["systems", "entities", "flows"] as const) {
    if (!Array.isArray(spec[field])) add(ErrorCode.ConfigInvalid, field, `must be an array, got ${shown(spec[field])}`);
  }
  if (spec.lookups !== undefined && !Array.isArray(spec.lookups))
    add(ErrorCode.ConfigInvalid, "lookups", `must be an array, got ${shown(spec.lookups)}`);
  if (issues.length > known) return issues;
  if (spec.name !== undefined && !(typeof spec.name === "string" && spec.name.trim() !== "")) {
    add(ErrorCode.ConfigInvalid, "name", "must be a non-empty string");
  }

  const systems = checkNamed(spec.systems, "systems", "system", add);
  const entities = checkNamed(spec.entities, "entities", "entity", add);
  const lookups = checkNamed(spec.lookups ?? [], "lookups", "lookup", add);
  checkNamed(spec.flows, "flows", "flow", add);

  for (const system of systems.values()) checkSystem(system, add);
  for (const entity of entities.values()) checkEntity(entity, add);
  for (const item of lookups.values()) {
    checkKnown(item, lookupSettingNames, `lookups.${item.name}`, "a lookup setting", add, lookupSpecNames);
    const setting = `lookups.${item.name}.system`;
    checkSystemReference(item.system, setting, systems, add);
    checkPositive(item.ttlMs, `lookups.${item.name}.ttlMs`, add);
    if (!(Number.isInteger(item.maxBatch) && item.maxBatch > 0)) {
      add(ErrorCode.ConfigInvalid, `lookups.${item.name}.maxBatch`, "must be a positive integer");
    }
  }
  const seenBindings = new Map<string, Binding>();
  for (const item of spec.flows) {
    if (item?.kind === "flow") checkFlow(item, systems, entities, seenBindings, add);
  }
  checkPositive(spec.heartbeatMs, "heartbeatMs", add);
  checkPositive(spec.staleAfterMs, "staleAfterMs", add);
  const heartbeatMs = spec.heartbeatMs ?? defaultHeartbeatMs;
  if (spec.staleAfterMs !== undefined && spec.staleAfterMs < heartbeatMs * 3) {
    add(
      ErrorCode.ConfigInvalid,
      "staleAfterMs",
      `must be at least three heartbeats: ${heartbeatMs * 3} (3 × heartbeatMs${spec.heartbeatMs === undefined ? `, ${defaultHeartbeatMs} by default` : ""}), got ${shown(spec.staleAfterMs)}`,
    );
  }
  if (spec.cache !== undefined && (typeof spec.cache !== "string" || !/^rediss?:\/\//.test(spec.cache))) {
    add(ErrorCode.ConfigInvalid, "cache", "must be a redis:// URL (or left out: the store keeps the lookup cache)");
  }
  const store = spec.store === undefined ? undefined : storeProblem(spec.store);
  if (store !== undefined) add(ErrorCode.ConfigInvalid, "store", store);
  return issues;
}

function checkNamed<T extends { kind: string; name: string }>(
  items: readonly T[],
  group: string,
  kind: string,
  add: (code: ErrorCode, setting: string, message: string) => void,
): Map<string, T> {
  const byName = new Map<string, T>();
  items.forEach((item, index) => {
    if (item === null || typeof item !== "object" || item.kind !== kind) {
      add(ErrorCode.ConfigInvalid, `${group}[${index}]`, `must be a ${kind} (made with ${kind}(...))`);
      return;
    }
    if (typeof item.name !== "string" || !namePattern.test(item.name)) {
      add(
        ErrorCode.ConfigInvalid,
        `${group}[${index}].name`,
        `${shown(item.name)} is not a valid name (letters, digits, _ . -, starting with a letter)`,
      );
      return;
    }
    if (byName.has(item.name)) {
      add(ErrorCode.ConfigDuplicateName, `${group}.${item.name}`, `the name '${item.name}' is used twice`);
      return;
    }
    byName.set(item.name, item);
  });
  return byName;
}

function checkPositive(
  value: unknown,
  setting: string,
  add: (code: ErrorCode, setting: string, message: string) => void,
  integer = false,
): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    add(ErrorCode.ConfigInvalid, setting, `must be a positive ${integer ? "integer" : "number"}, got ${shown(value)}`);
  }
}

function checkLimits(limits: Limits, base: string, add: (code: ErrorCode, setting: string, message: string) => void) {
  const known = new Set(["concurrency", "processConcurrency", "rateLimit", "timeoutMs", "retry", "breaker"]);
  checkKnown(limits, known, base, "a known limit", add);
  checkPositive(limits.concurrency, `${base}.concurrency`, add, true);
  checkPositive(limits.processConcurrency, `${base}.processConcurrency`, add, true);
  checkPositive(limits.timeoutMs, `${base}.timeoutMs`, add);
  if (limits.rateLimit !== undefined) {
    checkPositive(limits.rateLimit.requests, `${base}.rateLimit.requests`, add, true);
    checkPositive(limits.rateLimit.perMs, `${base}.rateLimit.perMs`, add);
  }
  if (limits.retry !== undefined) {
    checkPositive(limits.retry.maxAttempts, `${base}.retry.maxAttempts`, add, true);
    checkPositive(limits.retry.initialDelayMs, `${base}.retry.initialDelayMs`, add);
    checkPositive(limits.retry.maxDelayMs, `${base}.retry.maxDelayMs`, add);
    checkPositive(limits.retry.maxTotalDelayMs, `${base}.retry.maxTotalDelayMs`, add);
  }
  if (limits.breaker !== undefined) {
    checkPositive(limits.breaker.consecutiveFailures, `${base}.breaker.consecutiveFailures`, add, true);
    checkPositive(limits.breaker.halfOpenAfterMs, `${base}.breaker.halfOpenAfterMs`, add);
  }
}

function checkSystem(system: System, add: (code: ErrorCode, setting: string, message: string) => void) {
  const base = `systems.${system.name}`;
  if (system.driver === undefined || typeof system.driver.validateSystem !== "function") {
    add(ErrorCode.ConfigInvalid, `${base}.type`, `unknown connector type '${system.type}'`);
    return;
  }
  for (const issue of system.driver.validateSystem(system.options)) {
    add(ErrorCode.ConfigInvalid, `${base}.${issue.setting}`, issue.message);
  }
  checkLimits(system.limits, `${base}.limits`, add);
}

const keyTypes = new Set(["string", "integer", "number"]);

function checkEntity(entity: Entity, add: (code: ErrorCode, setting: string, message: string) => void) {
  const base = `entities.${entity.name}`;
  checkKnown(entity, entitySettingNames, base, "an entity setting", add, entitySpecNames);
  for (const [field, note] of Object.entries(entity.fields)) {
    if (note !== null && typeof note === "object")
      checkKnown(note, fieldNoteNames, `${base}.fields.${field}`, "a field note (owner, pii, description)", add);
  }
  if (!Number.isInteger(entity.version) || entity.version < 1) {
    add(ErrorCode.ConfigInvalid, `${base}.version`, "must be a positive integer");
  }
  const schema = entity.schema as {
    type?: unknown;
    properties?: Record<string, { type?: unknown }>;
    required?: string[];
  };
  if (schema?.type !== "object" || schema.properties === undefined) {
    add(ErrorCode.ConfigInvalid, `${base}.schema`, "must be an object schema (Type.Object({...}))");
    return;
  }
  if (entity.key.length === 0) add(ErrorCode.ConfigInvalid, `${base}.key`, "must name at least one field");
  for (const field of entity.key) {
    const property = schema.properties[field];
    if (property === undefined) {
      add(ErrorCode.ConfigInvalid, `${base}.key`, `key field '${field}' is not in the schema`);
    } else {
      if (!(schema.required ?? []).includes(field)) {
        add(ErrorCode.ConfigInvalid, `${base}.key`, `key field '${field}' must be required, not optional`);
      }
      if (typeof property.type !== "string" || !keyTypes.has(property.type)) {
        add(ErrorCode.ConfigInvalid, `${base}.key`, `key field '${field}' must be a string, integer or number`);
      }
    }
  }
  for (const field of Object.keys(entity.fields)) {
    if (schema.properties[field] === undefined) {
      add(ErrorCode.ConfigInvalid, `${base}.fields.${field}`, `'${field}' is not a field of the schema`);
    }
  }
  for (const { path, made } of nonJsonTypesOf(schema)) {
    add(
      ErrorCode.ConfigInvalid,
      `${base}.schema.${path}`,
      `is ${made}, which JSON cannot hold: canonical records are JSON (hashed, staged and exported as JSON); ` +
        "a big integer or a decimal goes as a string (Decimal(), Money()), a date as Timestamp() or DateOnly()",
    );
  }
}

function checkSystemReference(
  system: System | undefined,
  setting: string,
  systems: Map<string, System>,
  add: (code: ErrorCode, setting: string, message: string) => void,
): boolean {
  if (system === undefined || system === null || system.kind !== "system") {
    add(ErrorCode.ConfigInvalid, setting, "must be a system");
    return false;
  }
  const known = systems.get(system.name);
  if (known === undefined) {
    add(ErrorCode.ConfigUnknownReference, setting, `unknown system '${system.name}': add it to the hub's systems`);
    return false;
  }
  if (known !== system) {
    add(ErrorCode.ConfigUnknownReference, setting, `system '${system.name}' is not the one declared in systems`);
    return false;
  }
  return true;
}

function checkBinding(
  binding: Binding,
  role: "source" | "target",
  setting: string,
  flowEntity: Entity | undefined,
  systems: Map<string, System>,
  entities: Map<string, Entity>,
  seen: Map<string, Binding>,
  add: (code: ErrorCode, setting: string, message: string) => void,
) {
  if (binding === undefined || binding === null || binding.kind !== "binding") {
    add(ErrorCode.ConfigInvalid, setting, "must be a binding (made with bind(system, entity, {...}))");
    return;
  }
  const previous = seen.get(binding.name);
  if (previous !== undefined && previous !== binding) {
    add(ErrorCode.ConfigDuplicateName, `${setting}.name`, `the binding name '${binding.name}' is used twice`);
  }
  seen.set(binding.name, binding);
  if (!checkSystemReference(binding.system, `${setting}.system`, systems, add)) return;
  const entity = entities.get(binding.entity?.name);
  if (entity === undefined || entity !== binding.entity) {
    add(
      ErrorCode.ConfigUnknownReference,
      `${setting}.entity`,
      `unknown entity '${binding.entity?.name}': add it to the hub's entities`,
    );
  } else if (flowEntity !== undefined && entity !== flowEntity) {
    add(
      ErrorCode.ConfigInvalid,
      `${setting}.entity`,
      `is '${entity.name}' but the flow's source is '${flowEntity.name}'`,
    );
  }
  const driver = binding.system.driver;
  if (role === "source" && !driver.canRead) {
    add(ErrorCode.ConfigInvalid, setting, `a ${driver.type} system cannot be read as a source`);
  }
  if (role === "target" && !driver.canWrite) {
    add(ErrorCode.ConfigInvalid, setting, `a ${driver.type} system cannot be written as a target`);
  }
  if (role === "source" && binding.cursor !== undefined && driver.incremental === false) {
    add(
      ErrorCode.ConfigInvalid,
      `${setting}.cursor`,
      `a ${driver.type} source is read whole at every run; unchanged records are skipped by content hash, so a cursor has no effect`,
    );
  }
  if (role === "target" && binding.cursor !== undefined) {
    add(ErrorCode.ConfigInvalid, `${setting}.cursor`, "has no effect on a target; set it on the flow's source binding");
  }
  if (role === "target" && binding.hasToCanonical && !binding.hasFromCanonical) {
    add(
      ErrorCode.ConfigInvalid,
      `${setting}.toCanonical`,
      "is only used when reading; a target needs fromCanonical (or no mapping at all)",
    );
  }
  if (role === "source" && binding.hasFromCanonical && !binding.hasToCanonical) {
    add(
      ErrorCode.ConfigInvalid,
      `${setting}.fromCanonical`,
      "is only used when writing; a source needs toCanonical (or no mapping at all)",
    );
  }
  if (binding.key.length === 0) add(ErrorCode.ConfigInvalid, `${setting}.key`, "must name at least one field");
  const shape = { key: binding.key, ...(binding.cursor === undefined ? {} : { cursor: binding.cursor }) };
  for (const issue of driver.validateBinding(binding.options, role, shape)) {
    // a connector knows only its own settings: a typo of bind()'s own (`cursr`) is suggested here
    const meant =
      issue.message === notKnownSetting && Object.hasOwn(binding.options, issue.setting)
        ? closestSetting(issue.setting, mappingSettingNames)
        : undefined;
    const message = meant === undefined ? issue.message : `${issue.message} (did you mean '${meant}'?)`;
    add(ErrorCode.ConfigInvalid, `${setting}.${issue.setting}`, message);
  }
}

function checkFlow(
  item: Flow,
  systems: Map<string, System>,
  entities: Map<string, Entity>,
  seen: Map<string, Binding>,
  add: (code: ErrorCode, setting: string, message: string) => void,
) {
  const base = `flows.${item.name}`;
  checkKnown(item, flowSettingNames, base, "a flow setting", add, flowSpecNames);
  checkBinding(item.from, "source", `${base}.from`, undefined, systems, entities, seen, add);
  if (item.to.length === 0) add(ErrorCode.ConfigInvalid, `${base}.to`, "needs at least one target binding");
  const targetNames = new Set<string>();
  item.to.forEach((target, index) => {
    checkBinding(target, "target", `${base}.to[${index}]`, item.from?.entity, systems, entities, seen, add);
    if (target?.name !== undefined) {
      if (targetNames.has(target.name)) {
        add(ErrorCode.ConfigDuplicateName, `${base}.to[${index}]`, `target '${target.name}' is listed twice`);
      }
      targetNames.add(target.name);
    }
    if (target === item.from) add(ErrorCode.ConfigInvalid, `${base}.to[${index}]`, "is the flow's own source");
  });
  if (item.schedule !== undefined) {
    try {
      new Cron(item.schedule, { paused: true }).stop();
    } catch (error) {
      add(
        ErrorCode.ConfigBadCron,
        `${base}.schedule`,
        `${typeof item.schedule === "string" ? `'${item.schedule}'` : shown(item.schedule)} is not a valid cron expression: ${(error as Error).message}`,
      );
    }
  }
  if (!Number.isInteger(item.chunkSize) || item.chunkSize < 1 || item.chunkSize > 100_000) {
    add(
      ErrorCode.ConfigInvalid,
      `${base}.chunkSize`,
      `must be an integer from 1 to 100000, got ${shown(item.chunkSize)}`,
    );
  }
  if (!Number.isInteger(item.loadConcurrency) || item.loadConcurrency < 1 || item.loadConcurrency > 256) {
    add(
      ErrorCode.ConfigInvalid,
      `${base}.loadConcurrency`,
      `must be an integer from 1 to 256, got ${shown(item.loadConcurrency)}`,
    );
  }
  if (
    !Number.isInteger(item.transformConcurrency) ||
    item.transformConcurrency < 1 ||
    item.transformConcurrency > 256
  ) {
    add(
      ErrorCode.ConfigInvalid,
      `${base}.transformConcurrency`,
      `must be an integer from 1 to 256, got ${shown(item.transformConcurrency)}`,
    );
  }
  const failure = item.failure;
  const failureNames = new Set(["maxFailed", "maxFailedRatio", "minRecordsForRatio"]);
  checkKnown(failure, failureNames, `${base}.failure`, "a failure-policy setting", add);
  if (failure.maxFailed !== undefined && !(Number.isInteger(failure.maxFailed) && failure.maxFailed >= 0)) {
    add(ErrorCode.ConfigInvalid, `${base}.failure.maxFailed`, "must be a non-negative integer");
  }
  if (
    failure.maxFailedRatio !== undefined &&
    !(typeof failure.maxFailedRatio === "number" && failure.maxFailedRatio >= 0 && failure.maxFailedRatio <= 1)
  ) {
    add(ErrorCode.ConfigInvalid, `${base}.failure.maxFailedRatio`, "must be a number from 0 to 1");
  }
  if (failure.minRecordsForRatio !== undefined && failure.maxFailedRatio === undefined) {
    add(ErrorCode.ConfigInvalid, `${base}.failure.minRecordsForRatio`, "has no effect without maxFailedRatio");
  }
  checkPositive(failure.minRecordsForRatio, `${base}.failure.minRecordsForRatio`, add, true);
  if (!["warn", "fail", "ignore"].includes(item.drift)) {
    add(ErrorCode.ConfigInvalid, `${base}.drift`, "must be 'warn', 'fail' or 'ignore'");
  }
  checkPositive(item.deadlineMs, `${base}.deadlineMs`, add);
}

/** Turns issues into the one error the CLI prints (exit code 2). */
export function configIssuesError(issues: readonly ConfigIssue[]): FrancaError {
  const first = issues[0] as ConfigIssue;
  const lines = issues.map((issue) => `  - ${issue.setting}: ${issue.message}`).join("\n");
  return new FrancaError(
    first.code,
    `invalid configuration (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n${lines}`,
    { setting: first.setting, details: issues },
  );
}

/**
 * Declares the hub: its systems, entities, flows and lookups. Checks the whole definition and throws one
 * FrancaError listing every problem, each naming its setting, before anything runs.
 */
export function defineHub(spec: HubSpec): Hub {
  const issues = checkHub(spec);
  if (issues.length > 0) throw configIssuesError(issues);
  const bindings = new Map<string, Binding>();
  for (const item of spec.flows) {
    bindings.set(item.from.name, item.from);
    for (const target of item.to) bindings.set(target.name, target);
  }
  return Object.freeze({
    kind: "hub" as const,
    name: spec.name ?? "franca",
    systems: new Map(spec.systems.map((system) => [system.name, system])),
    entities: new Map(spec.entities.map((item) => [item.name, item])),
    flows: new Map(spec.flows.map((item) => [item.name, item])),
    lookups: new Map((spec.lookups ?? []).map((item) => [item.name, item])),
    bindings,
    ...(spec.store === undefined ? {} : { store: spec.store }),
    ...(spec.cache === undefined ? {} : { cache: spec.cache }),
    heartbeatMs: spec.heartbeatMs ?? defaultHeartbeatMs,
    staleAfterMs: staleAfterOf(spec),
  });
}

import type { Row } from "../core/binding.ts";
import { isRawJson } from "../core/canonical-json.ts";

/** Field name → JSON type seen in the source ('string', 'number', 'boolean', 'object', 'array', 'null'; several as 'number|string'). */
export type Profile = Record<string, string>;

export interface Drift {
  added: string[];
  missing: string[];
  retyped: { field: string; from: string; to: string }[];
}

function typeOf(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof Date) return "string";
  // a number a double cannot hold, read from a JSON column as JSON.rawJSON (a frozen object), is a number
  if (typeof value === "bigint" || isRawJson(value)) return "number";
  return typeof value;
}

/**
 * Adds the fields of up to `sample` rows to `profile`, counting only rows the source could read (a row it could not
 * says nothing of its fields). A field seen only as null stays 'null' until a value shows.
 */
export function profileRows(rows: readonly Row[], profile: Profile = {}, sample = 100): Profile {
  let seen = 0;
  for (let i = 0; i < rows.length && seen < sample; i++) {
    const row = rows[i] as Row;
    if (typeof row.$error === "string") continue;
    seen++;
    for (const field of Object.keys(row)) {
      const type = typeOf(row[field]);
      const known = profile[field];
      if (known === undefined || known === "null") profile[field] = type;
      else if (type !== "null" && known !== type && !known.split("|").includes(type))
        profile[field] = `${known}|${type}`;
    }
  }
  return profile;
}

/**
 * Notes in `profile` every field of every readable row that it does not hold yet, as 'null' (no type seen: a sample
 * gives the types, profileRows), so that new and missing fields are judged on every row read.
 */
export function noteFields(rows: readonly Row[], profile: Profile): void {
  for (const row of rows) {
    if (typeof row.$error === "string") continue;
    for (const field of Object.keys(row)) if (profile[field] === undefined) profile[field] = "null";
  }
}

/** A finding of these fields, or undefined when there are none. */
function finding(added: string[], missing: string[], retyped: Drift["retyped"]): Drift | undefined {
  return added.length + retyped.length + missing.length === 0 ? undefined : { added, missing, retyped };
}

/** The JSON types a profile's entry names, null left out ('number|string' → number, string). */
function typesOf(type: string): string[] {
  return type.split("|").filter((item) => item !== "null");
}

/**
 * New, retyped and (when `complete`: the whole source was seen) missing fields of `current` against `previous`. A
 * field is retyped when it shows a type `previous` never saw for it; one that shows fewer (a sample of `number|string`
 * that held only numbers) is not. Null is no type: a field seen only as null on either side is not retyped.
 */
export function compareProfiles(previous: Profile, current: Profile, complete: boolean): Drift | undefined {
  const added: string[] = [];
  const retyped: Drift["retyped"] = [];
  const missing: string[] = [];
  for (const [field, type] of Object.entries(current)) {
    const before = previous[field];
    if (before === undefined) added.push(field);
    else {
      const known = typesOf(before);
      if (known.length > 0 && typesOf(type).some((item) => !known.includes(item)))
        retyped.push({ field, from: before, to: type });
    }
  }
  if (complete) {
    for (const field of Object.keys(previous)) if (current[field] === undefined) missing.push(field);
  }
  return finding(added, missing, retyped);
}

/**
 * What `later` finds that `told` does not have: fields new or missing beyond those it names, and fields retyped to a
 * type it does not name for them (a field told retyped from number to string, found with a boolean too, is told
 * again).
 */
export function untold(later: Drift, told: Drift | undefined): Drift | undefined {
  const added = later.added.filter((field) => !told?.added.includes(field));
  const missing = later.missing.filter((field) => !told?.missing.includes(field));
  const retyped = later.retyped.filter((change) => {
    const named = told?.retyped.filter((item) => item.field === change.field) ?? [];
    const types = new Set(named.flatMap((item) => [...typesOf(item.from), ...typesOf(item.to)]));
    return typesOf(change.to).some((type) => !types.has(type));
  });
  return finding(added, missing, retyped);
}

/** What a run's record holds of its source's drift: these keys of its stats. */
export interface DriftStats {
  /** What the run's executions found and loaded, and what stopped the latest one. */
  drift?: Drift;
  /** The execution that last wrote `drift` (the run's `resumes` then). */
  driftExecution?: number;
  /** The part of `drift` that stopped that execution (the policy 'fail'): the rows that showed it were not loaded. */
  driftStopped?: Drift;
}

/** A run's stats as its drift stats and the others. */
export function splitDriftStats(stats: Record<string, unknown>): {
  drift: DriftStats;
  others: Record<string, unknown>;
} {
  const { drift, driftExecution, driftStopped, ...others } = stats;
  return {
    drift: {
      ...(drift === undefined ? {} : { drift: drift as Drift }),
      ...(typeof driftExecution === "number" ? { driftExecution } : {}),
      ...(driftStopped === undefined ? {} : { driftStopped: driftStopped as Drift }),
    },
    others,
  };
}

/**
 * The drift stats once execution `execution` (the run's `resumes`) has compared the source's fields: its finding
 * (`found`) with the earlier ones (keptFinding), and the part of it that stopped it, if one did (`stopped`).
 */
export function comparedDriftStats(
  earlier: DriftStats,
  execution: number,
  found: Drift | undefined,
  stopped?: Drift,
): DriftStats {
  const drift = keptFinding(earlier, execution, found);
  return {
    ...(drift === undefined ? {} : { drift }),
    driftExecution: execution,
    ...(stopped === undefined ? {} : { driftStopped: stopped }),
  };
}

/** `drift` without the fields `part` names (retyped ones as `part` tells them); undefined when nothing is left. */
function without(drift: Drift, part: Drift): Drift | undefined {
  const added = drift.added.filter((field) => !part.added.includes(field));
  const missing = drift.missing.filter((field) => !part.missing.includes(field));
  const retyped = drift.retyped.filter(
    (change) =>
      !part.retyped.some((item) => item.field === change.field && item.from === change.from && item.to === change.to),
  );
  return finding(added, missing, retyped);
}

/**
 * The finding a run's record keeps once an extraction of execution `execution` (the run's `resumes`) has compared the
 * source's fields (`found`: undefined when nothing changed) against what the record held. What an earlier execution
 * found and loaded stays, with what this one adds; what stopped an earlier execution goes (its rows were not loaded: a
 * run continued once the source was set right records nothing); an attempt of the same execution (a retried
 * extraction job) adds to what an earlier attempt found.
 */
export function keptFinding(earlier: DriftStats, execution: number, found: Drift | undefined): Drift | undefined {
  let kept = earlier.drift;
  if (kept !== undefined && earlier.driftStopped !== undefined && earlier.driftExecution !== execution)
    kept = without(kept, earlier.driftStopped);
  if (kept === undefined) return found;
  const more = found === undefined ? undefined : untold(found, kept);
  return more === undefined ? kept : joinDrift(kept, more);
}

/** Two findings as one. */
export function joinDrift(first: Drift | undefined, second: Drift): Drift {
  if (first === undefined) return second;
  return {
    added: [...first.added, ...second.added],
    missing: [...first.missing, ...second.missing],
    retyped: [...first.retyped, ...second.retyped],
  };
}

/**
 * The profile a run leaves for the next: the fields it saw, each with every type it or the profile before saw for it,
 * so that a later sample that happens to hold fewer of them reads as no change; and, unless what it saw was the whole
 * source (`whole`: a field it did not see is gone), the earlier profile's fields it did not see (an incremental read of
 * documents that leave optional fields out).
 */
export function nextProfile(previous: Profile | undefined, current: Profile, whole: boolean): Profile {
  const next: Profile = whole ? {} : { ...previous };
  for (const [field, type] of Object.entries(current)) {
    const types = [...new Set([...typesOf(previous?.[field] ?? "null"), ...typesOf(type)])].sort();
    next[field] = types.length === 0 ? "null" : types.join("|");
  }
  return next;
}

export function describeDrift(drift: Drift): string {
  const parts: string[] = [];
  if (drift.added.length > 0) parts.push(`new field(s) ${drift.added.join(", ")}`);
  if (drift.missing.length > 0) parts.push(`missing field(s) ${drift.missing.join(", ")}`);
  for (const change of drift.retyped) parts.push(`${change.field} changed from ${change.from} to ${change.to}`);
  return parts.join("; ");
}

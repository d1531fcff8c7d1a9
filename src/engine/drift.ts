import type { Row } from "../core/binding.ts";

/** Field name → JSON type seen in the source ('string', 'number', 'boolean', 'object', 'array', 'null'). */
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
  if (typeof value === "bigint") return "number";
  return typeof value;
}

/** Adds the fields of up to `sample` rows to `profile`. A field seen only as null stays 'null' until a value shows. */
export function profileRows(rows: readonly Row[], profile: Profile = {}, sample = 100): Profile {
  const limit = Math.min(rows.length, sample);
  for (let i = 0; i < limit; i++) {
    const row = rows[i] as Row;
    if (typeof row.$error === "string") continue; // a row the source could not parse says nothing of its fields
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

/** New and retyped fields of `current` against `previous`; `missing` only when `complete` (the whole run seen). */
export function compareProfiles(previous: Profile, current: Profile, complete: boolean): Drift | undefined {
  const added: string[] = [];
  const retyped: Drift["retyped"] = [];
  const missing: string[] = [];
  for (const [field, type] of Object.entries(current)) {
    const before = previous[field];
    if (before === undefined) added.push(field);
    else if (before !== "null" && type !== "null" && before !== type) retyped.push({ field, from: before, to: type });
  }
  if (complete) {
    for (const field of Object.keys(previous)) if (current[field] === undefined) missing.push(field);
  }
  return added.length + retyped.length + missing.length === 0 ? undefined : { added, missing, retyped };
}

export function describeDrift(drift: Drift): string {
  const parts: string[] = [];
  if (drift.added.length > 0) parts.push(`new field(s) ${drift.added.join(", ")}`);
  if (drift.missing.length > 0) parts.push(`missing field(s) ${drift.missing.join(", ")}`);
  for (const change of drift.retyped) parts.push(`${change.field} changed from ${change.from} to ${change.to}`);
  return parts.join("; ");
}

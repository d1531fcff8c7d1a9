import { ErrorCode, FrancaError } from "./errors.ts";

/**
 * Record keys travel as one string: the field's value for a single-field key, a JSON array for a composite one
 * (`["EU","1001"]`), so that a composite key can never collide with a single one and decodes unambiguously.
 */
export type KeyOf = (value: Record<string, unknown>) => string;

function part(value: unknown, field: string): string | number {
  if (typeof value === "string") {
    if (value.length === 0) throw keyMissing(field, "is empty");
    return value;
  }
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "bigint") return value.toString();
  if (value === undefined || value === null) throw keyMissing(field, "is missing");
  throw keyMissing(field, `must be a string or a number, got ${typeof value}`);
}

function keyMissing(field: string, why: string): FrancaError {
  return new FrancaError(ErrorCode.KeyMissing, `key field '${field}' ${why}`, { path: `/${field}` });
}

/** Builds the key function for the given field names. */
export function keyOf(fields: readonly string[]): KeyOf {
  if (fields.length === 1) {
    const [field] = fields as [string];
    return (value) => String(part(value[field], field));
  }
  return (value) => JSON.stringify(fields.map((field) => part(value[field], field)));
}

/** Parses a key typed by a user on the command line: `1001` or `["EU","1001"]`. */
export function normalizeKeyInput(input: string): string {
  const trimmed = input.trim();
  if (trimmed.startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (Array.isArray(parsed)) return JSON.stringify(parsed);
    } catch {
      // not JSON: taken as a plain key below
    }
  }
  return trimmed;
}

import { isRawJson, rawJson } from "./canonical-json.ts";

/**
 * Raw JSON values (`JSON.rawJSON`: a number a double cannot hold, read from a JSON column) across the places that
 * cannot take them as they are: structured clone refuses them (a lookup's value sent to a transform thread, or to
 * the SQLite store's thread), and a cache that keeps values as JSON text gives plain numbers back. Each becomes a
 * plain object `{ "\u0000franca:rawJSON": "<digits>" }` on the way out and a raw value again on the way in.
 * Hand-written: structured clone has no hook for a type of its own, and the walk copies only the parts that hold a
 * raw value (most values hold none and go as they are).
 */
const tag = "\u0000franca:rawJSON";

/** `value` with every raw JSON value in it tagged (a copy of the parts that hold one; `value` itself otherwise). */
export function tagRawJson(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (isRawJson(value)) return { [tag]: value.rawJSON };
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, index) => {
      const tagged = tagRawJson(item);
      if (tagged === item) return;
      copy ??= [...value];
      copy[index] = tagged;
    });
    return copy ?? value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const tagged = tagRawJson(item);
    if (tagged !== item) {
      copy ??= { ...value };
      copy[key] = tagged;
    }
  }
  return copy ?? value;
}

/** `value` with every tag of tagRawJson a raw JSON value again (in place: `value` is a copy just received). */
export function untagRawJson(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = untagRawJson(value[i]);
    return value;
  }
  const record = value as Record<string, unknown>;
  const digits = record[tag];
  if (typeof digits === "string" && Object.keys(record).length === 1) return rawJson(digits);
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
  for (const key of Object.keys(record)) record[key] = untagRawJson(record[key]);
  return value;
}

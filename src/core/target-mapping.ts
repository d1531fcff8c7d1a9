/**
 * What a target binding makes of a canonical record, as a short digest: its `fromCanonical` (the function's source
 * text), its settings (table, columns, paths, request shapes; a function among them by its source text), its key
 * and its system's type. The load stage files a record's content hash for a target together with this digest
 * (`loadHash`), so that "unchanged" means "the same content through the same mapping": after a change to the mapping
 * or to the binding's settings, records whose canonical content did not change are sent again, once, instead of
 * being skipped while the target keeps what the old mapping wrote. An API target's idempotency keys (made from that
 * hash) change with it, so the API does not take the new rows for replays of the old ones.
 *
 * The source text of a function does not show what it calls: a change inside a helper that `fromCanonical` imports
 * is not seen. `franca run --resend` (`StartOptions.resend`) sends every record whatever was loaded before.
 */
import type { Binding } from "./binding.ts";
import { digest } from "./hash.ts";

const digests = new WeakMap<Binding, string>();

/**
 * A setting as plain data that says what it is: functions by their source text, object keys sorted, dates and
 * patterns as text, an instance of a class by its class's name only (its state is not the mapping), a cycle cut.
 */
function describe(value: unknown, seen: WeakSet<object>): unknown {
  if (typeof value === "function") return `function ${value.toString()}`;
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return value;
  if (seen.has(value)) return "[cycle]";
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => describe(item, seen));
  if (value instanceof Date) return `date ${value.toISOString()}`;
  if (value instanceof RegExp) return `regexp ${String(value)}`;
  const prototype = Object.getPrototypeOf(value) as object | null;
  if (prototype !== Object.prototype && prototype !== null)
    return `instance of ${(value as { constructor?: { name?: string } }).constructor?.name ?? "an object"}`;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = describe((value as Record<string, unknown>)[key], seen);
  return out;
}

/** The digest of what `binding` makes of a canonical record (11 characters, base64url). Bindings are frozen: cached. */
export function targetMappingDigest(binding: Binding): string {
  let known = digests.get(binding);
  if (known === undefined) {
    const settings = JSON.stringify(describe(binding.options, new WeakSet())) ?? "null";
    const mapping = binding.hasFromCanonical ? binding.fromCanonical.toString() : "";
    known = digest(binding.system.type, JSON.stringify(binding.key), settings, mapping).slice(0, 11);
    digests.set(binding, known);
  }
  return known;
}

/** The hash a load files for a record in a target: its content hash and the target's mapping digest. */
export function loadHash(contentHash: string, mappingDigest: string): string {
  return `${contentHash}.${mappingDigest}`;
}

/**
 * What a target binding makes of a canonical record, as a short digest: its `fromCanonical` (the function's source
 * text), its settings (table, columns, paths, request shapes; a function among them by its source text), its key
 * and its system's type. The load stage files a record's content hash for a target together with this digest
 * (`loadHash`), so that "unchanged" means "the same content through the same mapping": after a change to the mapping
 * or to the binding's settings, records whose canonical content did not change are sent again, once, instead of
 * being skipped while the target keeps what the old mapping wrote. An API target's idempotency keys (made from that
 * hash) change with it, so the API does not take the new rows for replays of the old ones.
 *
 * Settings the driver names in `writeTuning` (PostgreSQL's `copy`, an API's `batchSize`…) change how rows are
 * written, not what the target holds: they are left out. The source text of a function does not show what it calls
 * or the values it closed over: a change inside a helper that `fromCanonical` imports, or two mappings made by one
 * factory with different arguments, are not seen. Nor does a changed mapping read anything again: an incremental
 * source's next run maps the rows changed since the cursor only. `franca run --resend` (`StartOptions.resend`) reads
 * the source whole and sends every record, whatever was loaded before.
 */
import type { Binding } from "./binding.ts";
import { digest } from "./hash.ts";

const digests = new WeakMap<Binding, string>();

/**
 * A setting as plain data that says what it is: functions by their source text, object keys sorted, dates and
 * patterns as text, an instance of a class by its class's name only (its state is not the mapping), a cycle cut (an
 * object met again inside itself; one shared by two settings is described twice, as two equal copies would be).
 */
function describe(value: unknown, path: Set<object>): unknown {
  if (typeof value === "function") return `function ${value.toString()}`;
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return value;
  if (path.has(value)) return "[cycle]";
  if (value instanceof Date) return `date ${Number.isNaN(value.getTime()) ? "invalid" : value.toISOString()}`;
  if (value instanceof RegExp) return `regexp ${String(value)}`;
  const prototype = Object.getPrototypeOf(value) as object | null;
  if (!Array.isArray(value) && prototype !== Object.prototype && prototype !== null)
    return `instance of ${(value as { constructor?: { name?: string } }).constructor?.name ?? "an object"}`;
  path.add(value);
  let out: unknown;
  if (Array.isArray(value)) out = value.map((item) => describe(item, path));
  else {
    const described: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort())
      described[key] = describe((value as Record<string, unknown>)[key], path);
    out = described;
  }
  path.delete(value);
  return out;
}

/** The digest of what `binding` makes of a canonical record (11 characters, base64url). Bindings are frozen: cached. */
export function targetMappingDigest(binding: Binding): string {
  let known = digests.get(binding);
  if (known === undefined) {
    const tuning = new Set(binding.system.driver.writeTuning ?? []);
    const options = Object.fromEntries(Object.entries(binding.options).filter(([name]) => !tuning.has(name)));
    const settings = JSON.stringify(describe(options, new Set())) ?? "null";
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

import { distance } from "fastest-levenshtein";

/** Whether `a` is `b` with two neighbouring characters swapped (`tabel`, `table`): one slip of the fingers. */
function swapped(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let at = 0;
  while (at < a.length && a[at] === b[at]) at++;
  return at < a.length - 1 && a[at] === b[at + 1] && a[at + 1] === b[at] && a.slice(at + 2) === b.slice(at + 2);
}

/**
 * The known setting a misspelled one most likely meant: the same name in another case (`heartbeatMS`), one that
 * starts with it (`ttl` → `ttlMs`), or the closest by edit distance (two swapped neighbours count as one edit:
 * `tabel`) within a third of its length (`descripton`); undefined when none is that close, so that a suggestion is
 * made only where it is likely right.
 */
export function closestSetting(name: string, known: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const candidate of known) {
    // the name itself, known elsewhere (another branch of a union of settings), is not what was meant here
    if (candidate === name) continue;
    const other = candidate.toLowerCase();
    if (other === lower) return candidate;
    const apart = (lower.length >= 3 && other.startsWith(lower)) || swapped(lower, other) ? 1 : distance(lower, other);
    if (apart < bestDistance) {
      best = candidate;
      bestDistance = apart;
    }
  }
  return best;
}

/** ` (did you mean 'x'?)` for `closestSetting`'s answer; empty without one. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const closest = closestSetting(name, known);
  return closest === undefined ? "" : ` (did you mean '${closest}'?)`;
}

/**
 * What a connector's checks say of a setting they do not know (connectors/settings.ts), before any suggestion: a
 * check that knows other settings (defineHub: bind()'s own) recognises it to suggest one of those.
 */
export const notKnownSetting = "is not a known setting";

/**
 * A value given in a configuration, as a message shows it: as JSON, so that the string `"500"` is told from the
 * number `500` (`got "500"`); as JavaScript writes it where JSON cannot (`NaN`, `undefined`, `12n`, a function).
 * Long values are cut at 80 characters.
 */
export function shown(value: unknown): string {
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "symbol" || value === undefined) return String(value);
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    // a cycle: what it is, at least
  }
  if (json === undefined) return Object.prototype.toString.call(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

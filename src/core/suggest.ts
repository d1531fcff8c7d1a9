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

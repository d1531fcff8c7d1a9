/**
 * An order of keys as text in which non-negative decimal integers without leading zeros go in numeric order: shorter
 * first, then by code units. Keys read in key order (a table's keyset, an API's pages by id) come out ascending in it,
 * which lets a chunk's keys be told apart, or its key range be compared with another chunk's, without a set of them
 * (key-locks.ts, the PostgreSQL write's duplicate check). Keys it does not put in their source's order (negative
 * numbers, say) are still ordered by it, strictly: they only take those checks' slower way more often.
 */

/** Whether `a` comes before `b`. */
export function keyBefore(a: string, b: string): boolean {
  return a.length < b.length || (a.length === b.length && a < b);
}

/**
 * Whether `keys[at[0]]`, `keys[at[1]]`, … (every key, in order, without `at`) ascend strictly, so that no two are
 * equal. Keys `skip` says to leave out are not compared.
 */
export function strictlyAscending(
  keys: readonly string[],
  count: number,
  at?: readonly number[],
  skip?: (index: number) => boolean,
): boolean {
  let previous: string | undefined;
  for (let i = 0; i < count; i++) {
    const index = at === undefined ? i : (at[i] as number);
    if (skip?.(index) === true) continue;
    const key = keys[index] as string;
    if (previous !== undefined && !keyBefore(previous, key)) return false;
    previous = key;
  }
  return true;
}

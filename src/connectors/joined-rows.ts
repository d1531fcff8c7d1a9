/**
 * What the database connectors' joins of prepared pieces (`Driver.join`: postgres/prepare.ts, mysql/encode.ts) share:
 * whether two pieces were prepared for the same columns, their per-row lists (refused rows, gaps) as one, and their
 * offsets shifted to where each piece lands in the joined bytes or text.
 */

/** The same column names in the same order. */
export function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((column, c) => column === b[c]);
}

/**
 * The `[row, …]` entries of each piece's list (`listOf`), their rows counted from the first piece's first row (each
 * piece has `rowsOf` rows).
 */
export function joinedRowLists<P, T>(
  pieces: readonly P[],
  listOf: (piece: P) => readonly (readonly [number, T])[],
  rowsOf: (piece: P) => number,
): [number, T][] {
  const joined: [number, T][] = [];
  let first = 0;
  for (const piece of pieces) {
    for (const [row, value] of listOf(piece)) joined.push([row + first, value]);
    first += rowsOf(piece);
  }
  return joined;
}

/** `from`'s offsets written into `into` from index `at` on, each plus `shift` (where its piece starts when joined). */
export function shiftInto(into: Uint32Array, at: number, from: Uint32Array, shift: number): void {
  for (let i = 0; i < from.length; i++) into[at + i] = (from[i] as number) + shift;
}

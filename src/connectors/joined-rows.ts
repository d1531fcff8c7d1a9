/**
 * What the database connectors' joins of prepared pieces (`Driver.join`: postgres/prepare.ts, mysql/encode.ts) share:
 * whether two pieces were prepared for the same columns, and their per-row lists (refused rows, gaps) as one.
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

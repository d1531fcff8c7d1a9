/**
 * How the SQLite store keeps a record's key in its ledger (`outcomes`, `target_hashes`): a key that is a decimal
 * integer as `String(n)` writes one (no sign, no leading zero, at most 15 digits, so exact as a double) as an
 * INTEGER, any other key as TEXT. The key columns have no declared type (no affinity), so SQLite keeps each value as
 * it is given: "007" stays text and never meets the integer 7; integers sort before text.
 *
 * Why: ids are mostly such integers, and a run reads them ascending. As text, "10" sorts before "9", so the B-trees
 * took each chunk's keys in the middle of the tree and split pages half full, chunk after chunk; as integers they go
 * to the tree's end (`npm run bench:ledger`: 1.62 CPU-s per 1,000,000 loaded records before, 1.00–1.03 after).
 *
 * Every statement that writes a key takes it through `ledgerKey` (or `ledgerKeysJson` for json_each), every one that
 * compares with a stored key too, and every read gives it back as text (`keyText`).
 */

const integerKey = /^(?:0|[1-9][0-9]{0,14})$/;

/** The value the ledger stores for `key` in JSON: the number for a plain decimal one (json_each: INTEGER), else the text. */
export function ledgerKeyJson(key: string): string | number {
  return integerKey.test(key) ? Number(key) : key;
}

/**
 * The value the ledger stores for `key`, as a statement's parameter: a plain decimal one as a bigint (node:sqlite
 * binds a number as REAL, which would be kept as REAL and read back as "7.0"), else the text.
 */
export function ledgerKey(key: string): string | bigint {
  return integerKey.test(key) ? BigInt(key) : key;
}

/** The JSON array of the keys' ledger values, for json_each (its `value` is then INTEGER or TEXT as stored). */
export function ledgerKeysJson(keys: readonly string[]): string {
  return JSON.stringify(keys.map(ledgerKeyJson));
}

/** A ledger key column read back as the key's text (`CAST(… AS TEXT) AS key`). */
export function keyText(column: string): string {
  return `CAST(${column} AS TEXT) AS key`;
}

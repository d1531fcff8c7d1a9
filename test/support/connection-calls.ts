/**
 * The calls the connector tests make of a connection as the engine would: read all of a binding, write rows, and
 * what a failed call threw.
 */
import assert from "node:assert/strict";
import type {
  Connection,
  EncodedBatch,
  ItemResult,
  ReadBatch,
  ReadRequest,
  WriteItem,
  WriteRequest,
} from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { FrancaError } from "../../src/core/errors.ts";

/** Every batch of a read, 1,000 rows asked at a time unless `request` says otherwise. */
export async function readAll(
  from: Connection,
  request: Pick<ReadRequest, "options" | "key"> & Partial<ReadRequest>,
): Promise<ReadBatch[]> {
  const signal = new AbortController().signal;
  const batches: ReadBatch[] = [];
  const read = from.read as NonNullable<Connection["read"]>;
  for await (const batch of read({ batchSize: 1000, signal, call: (fn) => fn(signal), ...request })) {
    batches.push(batch);
    // A read that stops progressing (a position compared inexactly, or that loses precision) would loop forever.
    if (batches.length > 10_000) assert.fail("the read does not progress");
  }
  return batches;
}

/** Every batch of the binding's encoded read (`readEncoded`), asked as `readAll` asks; fails when it has none. */
export async function readAllEncoded(
  from: Connection,
  request: Pick<ReadRequest, "options" | "key"> & Partial<ReadRequest>,
): Promise<EncodedBatch[]> {
  const signal = new AbortController().signal;
  const read = from.readEncoded?.({ batchSize: 1000, signal, call: (fn) => fn(signal), ...request });
  assert.ok(read !== undefined, "the binding reads encoded");
  const batches: EncodedBatch[] = [];
  for await (const batch of read) {
    batches.push(batch);
    if (batches.length > 10_000) assert.fail("the read does not progress");
  }
  return batches;
}

export function rowsOf(batches: readonly ReadBatch[]): Row[] {
  return batches.flatMap((batch) => batch.rows);
}

/** A write of `items` to `table` as one chunk of run 1. */
export function writeRequest(
  table: string,
  key: string[],
  items: WriteItem[],
  options: Record<string, unknown> = {},
): WriteRequest {
  return {
    options: { table, ...options },
    key,
    target: "test.target",
    run: 1,
    chunk: 0,
    items,
    signal: new AbortController().signal,
  };
}

/** Writes `rows` to `table` as one chunk's items, each keyed by its key columns' values. */
export function write(
  to: Connection,
  table: string,
  key: string[],
  rows: readonly Row[],
  options: Record<string, unknown> = {},
): Promise<ItemResult[]> {
  const items = rows.map((row, index) => ({
    key: JSON.stringify(key.map((column) => row[column])),
    row,
    idempotencyKey: `idem-${index}`,
    hash: `hash-${index}`,
  }));
  return (to.write as NonNullable<Connection["write"]>)(writeRequest(table, key, items, options));
}

/** What a call that must fail threw: a FrancaError, or the test fails. */
export async function rejection(promise: Promise<unknown>): Promise<FrancaError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof FrancaError, `expected a FrancaError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

/** The results of a write whose `count` items all went through. */
export const allOk = (count: number): { ok: true }[] => Array.from({ length: count }, () => ({ ok: true }));

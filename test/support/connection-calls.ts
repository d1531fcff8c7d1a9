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

/** What a test asks a read for: the binding, and any of the rest of a ReadRequest. */
export type ReadAsked = Pick<ReadRequest, "options" | "key"> & Partial<ReadRequest>;

const never = new AbortController().signal;

/**
 * A read request with defaults: 1,000 rows at a time, never aborted, calls made at once. One that has its own `call`
 * is taken as it is: spreading it would fix a `batchSize` getter's value.
 */
export function readRequest(request: ReadAsked): ReadRequest {
  return request.call !== undefined
    ? (request as ReadRequest)
    : { batchSize: 1000, signal: never, call: (fn) => fn(never), ...request };
}

/** Every batch of `batches`, failing a read that stops progressing (a position compared inexactly would loop forever). */
async function collect<B>(batches: AsyncIterable<B>): Promise<B[]> {
  const all: B[] = [];
  for await (const batch of batches) {
    all.push(batch);
    if (all.length > 10_000) assert.fail("the read does not progress");
  }
  return all;
}

/** Every batch of a read (readRequest's defaults). */
export function readAll(from: Connection, request: ReadAsked): Promise<ReadBatch[]> {
  return collect((from.read as NonNullable<Connection["read"]>)(readRequest(request)));
}

/** Every batch of the binding's encoded read (`readEncoded`, readRequest's defaults); fails when it has none. */
export function readAllEncoded(from: Connection, request: ReadAsked): Promise<EncodedBatch[]> {
  const read = from.readEncoded?.(readRequest(request));
  assert.ok(read !== undefined, "the binding reads encoded");
  return collect(read);
}

/** Encoded batches decoded one by one with the driver's `decode`, as the engine would: the batches `read` yields. */
export function decodedBatches(
  batches: readonly EncodedBatch[],
  decode: (encoding: string, text: string | Uint8Array) => Row[],
): ReadBatch[] {
  return batches.map((batch) => {
    const rows = decode(batch.encoding, batch.text);
    assert.equal(rows.length, batch.count);
    return { rows, position: batch.position };
  });
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

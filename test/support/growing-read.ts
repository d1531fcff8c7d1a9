import type { Connection, ReadRequest } from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";

/**
 * Reads all of `request` from `connection` as the engine's extraction does over a run's first chunks, with a batch
 * size that grows after each batch: 2, 4, 8, then 16 (slow start, in small). Returns each batch's row count and
 * every row, in order.
 */
export async function readGrowing(
  connection: Connection,
  request: Pick<ReadRequest, "options" | "key"> & Partial<Pick<ReadRequest, "cursor" | "fullBatchSize">>,
): Promise<{ sizes: number[]; rows: Row[] }> {
  const signal = new AbortController().signal;
  const read = connection.read as NonNullable<Connection["read"]>;
  const sizes: number[] = [];
  const rows: Row[] = [];
  let batches = 0;
  const growing: ReadRequest = {
    ...request,
    signal,
    call: (fn) => fn(signal),
    get batchSize() {
      return 2 * 2 ** Math.min(batches, 3);
    },
  };
  for await (const batch of read(growing)) {
    batches++;
    sizes.push(batch.rows.length);
    rows.push(...batch.rows);
  }
  return { sizes, rows };
}

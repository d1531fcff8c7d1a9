import { AsyncLocalStorage } from "node:async_hooks";

/**
 * The chunk a piece of work is for, carried through its awaits (AsyncLocalStorage: lookups reach the system's gates
 * through DataLoader's batching and the policy's retries, which no explicit parameter survives). The gates serve
 * waiting calls earliest chunk first, so that with several chunks mapped or loaded at once the first chunk's lookups
 * are not queued behind those of the chunks after it: it finishes first, and the targets get work sooner.
 */
const currentChunk = new AsyncLocalStorage<number>();

/** Runs `work` on behalf of chunk `seq`. */
export function forChunk<T>(seq: number, work: () => T): T {
  return currentChunk.run(seq, work);
}

/**
 * The order of the call being made: its chunk's sequence number. Calls made outside any chunk's transform or load
 * (reading the source, publishing a target) come first: the extraction feeds every later stage, and the channel
 * after it bounds how far it runs ahead.
 */
export function chunkOrder(): number {
  return currentChunk.getStore() ?? Number.NEGATIVE_INFINITY;
}

import type { ChunkState } from "../store/types.ts";

/** A chunk is done when it was transformed and every target has a final outcome for each of its records. */
export function chunkDone(chunk: ChunkState, targets: readonly string[]): boolean {
  return chunk.transformed && targets.every((target) => chunk.loaded[target] === true);
}

/**
 * Where the flow's cursor may move after a run: to the position of the last chunk of the longest run of done
 * chunks from the start. Anything after a chunk with a failed record stays ahead of the cursor and is read again by
 * the next run, so a failure never skips data. Returns undefined when the cursor must not move.
 */
export function advancedCursor(chunks: readonly ChunkState[], targets: readonly string[]): unknown | undefined {
  let position: unknown;
  for (const chunk of chunks) {
    if (!chunkDone(chunk, targets)) break;
    position = chunk.position;
  }
  return position;
}

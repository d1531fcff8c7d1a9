import type { Logger } from "pino";
import { toFrancaError } from "../core/errors.ts";

/**
 * Runs `release`, which releases a chunk's staged output (`Store.releaseStaged`) once the run needs it no more. That
 * is housekeeping: a failure is logged, never the run's, and the output then stays until the run's end discards it.
 * Both executors release through here.
 */
export async function releaseQuietly(
  logger: Logger,
  runId: number,
  seq: number,
  release: () => Promise<void>,
): Promise<void> {
  try {
    await release();
  } catch (error) {
    logger.warn(
      { run: runId, chunk: seq, err: toFrancaError(error).message },
      "could not release a chunk's staged output",
    );
  }
}

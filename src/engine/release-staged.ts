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

/**
 * A chunk's staged output (`staged`, as the store returned it), read for work planned on the chunk; undefined when it
 * is gone because that work was done meanwhile by another execution (an earlier owner of the run that had not
 * noticed yet that it lost it, a duplicate of a job), which then released the chunk: `doneNow` reads whether the work
 * is done by now. Gone with the work not done, the store lost it: `lost()` is thrown. Both executors read through here.
 */
export async function stagedUnlessDone(
  staged: string | undefined,
  doneNow: () => Promise<boolean>,
  lost: () => Error,
): Promise<string | undefined> {
  if (staged !== undefined) return staged;
  if (await doneNow()) return undefined;
  throw lost();
}

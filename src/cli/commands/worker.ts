import type { Cli } from "../context.ts";
import { usageError } from "../context.ts";

/**
 * Stops on the first SIGTERM or SIGINT by finishing the jobs in flight, and on a second one at once, handing them back
 * to the queue (another worker takes them up when their heartbeat is missed).
 */
export function shutdownSignal(
  cli: Cli,
  what: string,
): { signal: AbortSignal; handBack: AbortSignal; graceful: () => boolean } {
  const controller = new AbortController();
  const handBack = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      cli.warn(`${name} again: handing the jobs in flight back to the queue`);
      handBack.abort();
      return;
    }
    cli.warn(`${name}: ${what} stops after the jobs in flight (again to hand them back at once)`);
    controller.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return { signal: controller.signal, handBack: handBack.signal, graceful: () => !handBack.signal.aborted };
}

/** `franca worker [--jobs n]`: works the distributed hub's jobs until stopped. */
export async function workerCommand(cli: Cli): Promise<number> {
  const jobs = cli.values.jobs === undefined ? undefined : Number(cli.values.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0))
    throw usageError("--jobs must be a positive integer");
  const { engine } = await cli.open({ longRunning: true, worker: true });
  if (!engine.distributed)
    throw usageError('franca worker needs a hub whose store is PostgreSQL (store: "postgres://…")');
  const { signal, handBack, graceful } = shutdownSignal(cli, "the worker");
  cli.warn(
    `worker ${engine.owner} working jobs of ${engine.store.location}${jobs === undefined ? "" : ` (${jobs} at once per stage)`}`,
  );
  await engine.work({ signal, handBack, graceful, ...(jobs === undefined ? {} : { jobs }) });
  // exit 1 when jobs were handed back rather than finished: the stop was not clean
  return graceful() ? 0 : 1;
}

import { Cron } from "croner";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { Cli } from "../context.ts";
import { shutdownSignal } from "./worker.ts";

/**
 * `franca serve`: runs every flow that has a `schedule` on its cron. Distributed (a PostgreSQL store): it queues the
 * runs and works jobs too, so a hub with no other worker still runs. In one process: it runs them here. A flow whose
 * previous run is still going is not started twice (the tick is skipped and logged).
 */
export async function serveCommand(cli: Cli): Promise<number> {
  const { engine, hub } = await cli.open({ longRunning: true, worker: true });
  const log = engine.logger.child({ component: "scheduler" });
  const { signal, handBack, graceful } = shutdownSignal(cli, "serve");
  const running = new Set<string>();
  const trigger = async (flow: string) => {
    if (running.has(flow)) return log.warn({ flow }, "previous run still going: this tick is skipped");
    running.add(flow);
    try {
      if (engine.distributed) {
        const run = await engine.enqueue(flow, { trigger: "schedule" });
        log.info({ flow, run: run.id }, "run queued");
      } else {
        const summary = await engine.run(flow, { trigger: "schedule", signal });
        log.info({ flow, run: summary.run.id, status: summary.run.status }, "run ended");
      }
    } catch (error) {
      const locked = error instanceof FrancaError && error.code === ErrorCode.RunLocked;
      log[locked ? "warn" : "error"](
        { flow, err: (error as Error).message },
        locked ? "flow busy: this tick is skipped" : "could not start the run",
      );
    } finally {
      running.delete(flow);
    }
  };
  const scheduled = [...hub.flows.values()].filter((flow) => flow.schedule !== undefined);
  if (scheduled.length === 0 && !engine.distributed)
    throw new FrancaError(
      ErrorCode.Usage,
      "no flow has a schedule: 'franca serve' has nothing to run in one process (give a flow a `schedule`, or run one with 'franca run <flow>')",
    );
  const jobs = scheduled.map(
    (flow) => new Cron(flow.schedule as string, { protect: true }, () => void trigger(flow.name)),
  );
  for (const job of jobs) cli.warn(`${job.getPattern()} → next run ${job.nextRun()?.toISOString() ?? "never"}`);
  if (jobs.length === 0) cli.warn("no flow has a schedule: serving jobs only");
  if (engine.distributed) await engine.work({ signal, handBack, graceful });
  else if (!signal.aborted) {
    // held open by a timer of its own: a schedule with no next tick stops its timer, and a process with nothing
    // pending would end here with the wait unsettled
    const alive = setInterval(() => {}, 2 ** 31 - 1);
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    clearInterval(alive);
  }
  for (const job of jobs) job.stop();
  return graceful() ? 0 : 1;
}

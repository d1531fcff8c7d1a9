import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { normalizeKeyInput } from "../../core/key.ts";
import type { RunProgress } from "../../engine/context.ts";
import type { RunSummary } from "../../engine/run.ts";
import { type Cli, usageError } from "../context.ts";
import { ProgressView } from "../progress.ts";
import { describeRun, nextSteps, summaryJson } from "../summary.ts";

/**
 * Runs `work` with progress bars on a terminal and Ctrl-C / SIGTERM wired to cancel the run cleanly: the first
 * signal stops the run (the run ends 'cancelled', resumable): the calls in flight are cut, and the chunks they were
 * loading are left to the resume, recorded neither loaded nor failed. A second signal exits at once.
 */
async function withProgress<T extends RunSummary>(
  cli: Cli,
  work: (signal: AbortSignal, onProgress: (progress: RunProgress) => void) => Promise<T>,
): Promise<T> {
  const view = cli.interactive ? new ProgressView(process.stderr) : undefined;
  let last: RunProgress | undefined;
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    cli.warn(`\n${signal}: stopping; the chunks in flight are left to 'franca resume' (again to quit at once)…`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await work(controller.signal, (progress) => {
      last = progress;
      view?.update(progress);
    });
  } finally {
    view?.finish(last);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function report(cli: Cli, summary: RunSummary): Promise<number> {
  const { engine, logFile } = await cli.open();
  if (cli.values.json === true) {
    cli.printJson(summaryJson(summary));
  } else {
    cli.print(describeRun(summary.run, summary.counts));
    cli.print(nextSteps(summary.run, engine.store.location, summary.counts));
    if (logFile !== undefined) cli.print(`  logs: ${logFile}`);
  }
  return summary.exitCode;
}

export async function runCommand(cli: Cli): Promise<number> {
  const flow = cli.positionals[1];
  if (flow === undefined)
    throw usageError("usage: franca run <flow> [--fresh] [--resend] [--accept-drift] [--wait] [--json]");
  const { engine } = await cli.open({ longRunning: true, flows: [flow] });
  const resend = cli.values.resend === true;
  const acceptDrift = cli.values["accept-drift"] === true;
  if (engine.distributed && cli.values.wait !== true) {
    const run = await engine.enqueue(flow, { trigger: "cli", resend, fresh: cli.values.fresh === true, acceptDrift });
    const workers = await engine.workerAlive();
    // `run` is the run's record, as with --wait (a script reads run.id, run.status either way)
    if (cli.values.json === true) cli.printJson({ run, queued: true, workers });
    else cli.print(`run ${run.id} of ${flow} queued for the workers · follow it: franca runs show ${run.id}`);
    // queued with no one to take it, the run reads failed (abandoned) once staleAfterMs pass, until a worker starts
    if (!workers)
      cli.warn(
        `no worker is alive: run ${run.id} waits for one ('franca worker'), and shows as failed (RUN_ABANDONED) until one takes it up; 'franca run ${flow} --wait' works it in this process`,
      );
    return 0;
  }
  const summary = await withProgress(cli, (signal, onProgress) =>
    engine.run(flow, { trigger: "cli", fresh: cli.values.fresh === true, resend, acceptDrift, signal, onProgress }),
  );
  return report(cli, summary);
}

export async function resumeCommand(cli: Cli): Promise<number> {
  const id = Number(cli.positionals[1]);
  if (!Number.isInteger(id) || id <= 0) throw usageError("usage: franca resume <run-id> [--accept-drift] [--json]");
  const { engine } = await cli.open({ longRunning: true });
  const acceptDrift = cli.values["accept-drift"] === true;
  const summary = await withProgress(cli, (signal, onProgress) =>
    engine.resume(id, { signal, onProgress, acceptDrift }),
  );
  return report(cli, summary);
}

export async function replayCommand(cli: Cli): Promise<number> {
  const id = Number(cli.positionals[1]);
  const status = cli.values.status;
  if (!Number.isInteger(id) || id <= 0 || (status !== undefined && status !== "quarantined" && status !== "failed")) {
    throw usageError("usage: franca replay <run-id> [--status quarantined|failed] [--key <key>]... [--json]");
  }
  const { engine } = await cli.open({ longRunning: true });
  const keys = cli.values.key?.map(normalizeKeyInput);
  let summary: Awaited<ReturnType<typeof engine.replay>>;
  try {
    summary = await withProgress(cli, (signal, onProgress) =>
      engine.replay(id, {
        trigger: "cli",
        signal,
        onProgress,
        ...(status === undefined ? {} : { statuses: [status] }),
        ...(keys === undefined ? {} : { keys }),
      }),
    );
  } catch (error) {
    // nothing failed, so nothing to do: not an error for a script that replays after every fix
    if (!(error instanceof FrancaError && error.code === ErrorCode.NothingToReplay)) throw error;
    if (cli.values.json === true) cli.printJson({ replayOf: id, replayed: false, message: error.message });
    else cli.print(error.message);
    return 0;
  }
  if (cli.values.json !== true) {
    const reloads = Object.entries(summary.plan.reload)
      .filter(([, count]) => count > 0)
      .map(([target, count]) => `${count} to ${target}`);
    // the plan, said as one (the summary below says what each record came to: one may be refused again)
    const what = [
      summary.plan.retransform > 0 ? `${summary.plan.retransform} to transform again` : "",
      reloads.length > 0 ? `to load again: ${reloads.join(", ")}` : "",
    ].filter((part) => part !== "");
    cli.print(`replaying run ${id}${what.length === 0 ? "" : `: ${what.join("; ")}`}`);
  }
  return report(cli, summary);
}

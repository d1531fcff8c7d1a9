import type { RunProgress } from "../../engine/context.ts";
import type { RunSummary } from "../../engine/run.ts";
import { type Cli, usageError } from "../context.ts";
import { ProgressView } from "../progress.ts";
import { describeRun, nextSteps, summaryJson } from "../summary.ts";

/**
 * Runs `work` with progress bars on a terminal and Ctrl-C / SIGTERM wired to cancel the run cleanly: the first
 * signal stops the run after the chunks in flight (the run ends 'cancelled', resumable), a second one exits at once.
 */
async function withProgress(
  cli: Cli,
  work: (signal: AbortSignal, onProgress: (progress: RunProgress) => void) => Promise<RunSummary>,
) {
  const view = cli.interactive ? new ProgressView(process.stderr) : undefined;
  let last: RunProgress | undefined;
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    cli.warn(`\n${signal}: stopping after the chunks in flight (again to quit at once)…`);
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
    cli.print(nextSteps(summary.run, engine.store.location));
    if (logFile !== undefined) cli.print(`  logs: ${logFile}`);
  }
  return summary.exitCode;
}

export async function runCommand(cli: Cli): Promise<number> {
  const flow = cli.positionals[1];
  if (flow === undefined) throw usageError("usage: franca run <flow> [--fresh] [--json]");
  const { engine } = await cli.open({ longRunning: true, flows: [flow] });
  const summary = await withProgress(cli, (signal, onProgress) =>
    engine.run(flow, { trigger: "cli", fresh: cli.values.fresh === true, signal, onProgress }),
  );
  return report(cli, summary);
}

export async function resumeCommand(cli: Cli): Promise<number> {
  const id = Number(cli.positionals[1]);
  if (!Number.isInteger(id) || id <= 0) throw usageError("usage: franca resume <run-id> [--json]");
  const { engine } = await cli.open({ longRunning: true });
  const summary = await withProgress(cli, (signal, onProgress) => engine.resume(id, { signal, onProgress }));
  return report(cli, summary);
}

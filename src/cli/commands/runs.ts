import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { RunStatus } from "../../core/record.ts";
import { didYouMean } from "../../core/suggest.ts";
import { type Cli, usageError, wholeNumber } from "../context.ts";
import { count, duration, table, timestamp } from "../output.ts";
import { describeRun, workedMs } from "../summary.ts";

const statuses = new Set(["running", "succeeded", "partial", "failed", "cancelled"]);

/** `franca runs [--flow f] [--status s] [--limit n]` and `franca runs show <run>`. */
export async function runsCommand(cli: Cli): Promise<number> {
  if (cli.positionals[1] === "show") return showCommand(cli, cli.positionals[2]);
  if (cli.positionals[1] !== undefined)
    throw usageError("usage: franca runs [--flow <flow>] [--status <status>] [--limit <n>] | franca runs show <run>");
  const status = cli.values.status;
  if (status !== undefined && !statuses.has(status))
    throw usageError(`--status must be one of ${[...statuses].join(", ")}${didYouMean(status, statuses)}`);
  const { engine, hub } = await cli.open();
  await engine.reapAbandoned();
  const flow = cli.values.flow;
  const limit = wholeNumber(cli.values, "limit") ?? 20;
  const runs = await engine.store.listRuns({
    ...(flow === undefined ? {} : { flow }),
    ...(status === undefined ? {} : { status: status as RunStatus }),
    limit,
  });
  // a flow no longer in the configuration still has its runs listed; one that never had a run and is not declared
  // is a typing error
  if (runs.length === 0 && flow !== undefined && !hub.flows.has(flow)) {
    if ((await engine.store.listRuns({ flow, limit: 1 })).length === 0)
      throw usageError(
        `unknown flow '${flow}'${didYouMean(flow, hub.flows.keys())} (flows: ${[...hub.flows.keys()].join(", ") || "none"})`,
      );
  }
  const rows = [];
  for (const run of runs) {
    const counts = await engine.store.counts(run.id);
    let problems = counts.quarantined + counts.failed;
    for (const target of Object.values(counts.targets)) problems += target.quarantined + target.failed;
    // per target, not summed: a record loaded into two targets is one record ("10,000 + 10,000")
    const loaded = Object.values(counts.targets)
      .map((target) => count(target.loaded))
      .join(" + ");
    // a run whose problems were replayed says by which runs (the replays' own rows say how that went)
    const replays = problems > 0 ? await engine.store.listRuns({ parentId: run.id, limit: 100 }) : [];
    rows.push({ run, counts, loaded, problems, replays });
  }
  if (cli.values.json === true) {
    cli.printJson(
      rows.map(({ run, counts, replays }) => ({
        ...run,
        counts,
        replays: replays.map((replay) => ({ id: replay.id, status: replay.status })),
      })),
    );
    return 0;
  }
  if (rows.length === 0) {
    cli.print(noRuns([...hub.flows.keys()], flow, status, limit));
    return 0;
  }
  cli.print(
    table(
      rows.map(({ run, counts, loaded, problems, replays }) => [
        run.id,
        run.flow,
        run.status,
        run.trigger,
        timestamp(run.startedAt),
        duration(workedMs(run)),
        counts.extracted,
        loaded,
        replays.length === 0
          ? problems
          : `${count(problems)} (replayed: ${replays
              .map((replay) => replay.id)
              .sort((a, b) => a - b)
              .join(", ")})`,
      ]),
      ["run", "flow", "status", "trigger", "started", "took", "extracted", "loaded", "problems"],
    ),
  );
  return 0;
}

/** What is true when `franca runs` lists none: the filters matched nothing, or the hub has no run yet. */
function noRuns(flows: readonly string[], flow: string | undefined, status: string | undefined, limit: number): string {
  if (limit === 0) return "no runs shown: --limit 0";
  if (status !== undefined) return `no ${status} runs${flow === undefined ? "" : ` of flow '${flow}'`}`;
  if (flow !== undefined) return `no runs of flow '${flow}' yet: start one with 'franca run ${flow}'`;
  return `no runs yet: start one with 'franca run <flow>' (flows: ${flows.join(", ") || "none"})`;
}

async function showCommand(cli: Cli, idText: string | undefined): Promise<number> {
  const id = Number(idText);
  if (!Number.isInteger(id) || id <= 0) throw usageError("usage: franca runs show <run-id>");
  const { engine } = await cli.open();
  await engine.reapAbandoned();
  const run = await engine.store.getRun(id);
  if (run === undefined) throw new FrancaError(ErrorCode.RunNotFound, `run ${id} does not exist`);
  const counts = await engine.store.counts(id);
  // the runs that replayed its problems since: what may be fixed already
  const replays = await engine.store.listRuns({ parentId: id, limit: 100 });
  if (cli.values.json === true)
    cli.printJson({ ...run, counts, replays: replays.map((replay) => ({ id: replay.id, status: replay.status })) });
  else cli.print(describeRun(run, counts, replays));
  return 0;
}

import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { RunStatus } from "../../core/record.ts";
import { type Cli, usageError } from "../context.ts";
import { duration, table, timestamp } from "../output.ts";
import { describeRun } from "../summary.ts";

const statuses = new Set(["running", "succeeded", "partial", "failed", "cancelled"]);

/** `franca runs [--flow f] [--status s] [--limit n]` and `franca runs show <run>`. */
export async function runsCommand(cli: Cli): Promise<number> {
  if (cli.positionals[1] === "show") return showCommand(cli, cli.positionals[2]);
  if (cli.positionals[1] !== undefined)
    throw usageError("usage: franca runs [--flow <flow>] [--status <status>] [--limit <n>] | franca runs show <run>");
  const { engine } = await cli.open();
  await engine.reapAbandoned();
  const status = cli.values.status;
  if (status !== undefined && !statuses.has(status))
    throw usageError(`--status must be one of ${[...statuses].join(", ")}`);
  const runs = await engine.store.listRuns({
    ...(cli.values.flow === undefined ? {} : { flow: cli.values.flow }),
    ...(status === undefined ? {} : { status: status as RunStatus }),
    limit: Number(cli.values.limit ?? 20),
  });
  const rows = [];
  for (const run of runs) {
    const counts = await engine.store.counts(run.id);
    let loaded = 0;
    let problems = counts.quarantined + counts.failed;
    for (const target of Object.values(counts.targets)) {
      loaded += target.loaded;
      problems += target.quarantined + target.failed;
    }
    rows.push({ run, counts, loaded, problems });
  }
  if (cli.values.json === true) {
    cli.printJson(rows.map(({ run, counts }) => ({ ...run, counts })));
    return 0;
  }
  if (rows.length === 0) {
    cli.print("no runs yet: start one with 'franca run <flow>'");
    return 0;
  }
  cli.print(
    table(
      rows.map(({ run, counts, loaded, problems }) => [
        run.id,
        run.flow,
        run.status,
        run.trigger,
        timestamp(run.startedAt),
        duration((run.endedAt ?? Date.now()) - run.startedAt),
        counts.extracted,
        loaded,
        problems,
      ]),
      ["run", "flow", "status", "trigger", "started", "took", "extracted", "loaded", "problems"],
    ),
  );
  return 0;
}

async function showCommand(cli: Cli, idText: string | undefined): Promise<number> {
  const id = Number(idText);
  if (!Number.isInteger(id) || id <= 0) throw usageError("usage: franca runs show <run-id>");
  const { engine } = await cli.open();
  await engine.reapAbandoned();
  const run = await engine.store.getRun(id);
  if (run === undefined) throw new FrancaError(ErrorCode.RunNotFound, `run ${id} does not exist`);
  const counts = await engine.store.counts(id);
  if (cli.values.json === true) cli.printJson({ ...run, counts });
  else cli.print(describeRun(run, counts));
  return 0;
}

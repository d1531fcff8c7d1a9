import { parseArgs } from "node:util";
import { ErrorCode, ExitCode, FrancaError, toFrancaError } from "../core/errors.ts";
import { redactSecrets } from "../core/redact.ts";
import { checkCommand } from "./commands/check.ts";
import { initCommand } from "./commands/init.ts";
import { recordsCommand } from "./commands/records.ts";
import { replayCommand, resumeCommand, runCommand } from "./commands/run.ts";
import { runsCommand } from "./commands/runs.ts";
import { schemaCommand } from "./commands/schema.ts";
import { serveCommand } from "./commands/serve.ts";
import { storeCommand } from "./commands/store.ts";
import { workerCommand } from "./commands/worker.ts";
import { type Cli, type CliValues, createCli } from "./context.ts";

const help = `franca — an integration hub: canonical model, durable staged runs, a ledger of every record.

usage: franca <command> [options]

commands
  run <flow> [--fresh] [--wait] run a flow (continues the flow's unfinished run unless --fresh); on a PostgreSQL
                                store it is queued for the workers, and --wait waits for it (working it here too
                                when no worker is alive)
  run <flow> --resend           a new run that reads the source whole and sends every record, even those unchanged
                                since they were last loaded (a target restored, emptied or edited by hand)
  run <flow> --accept-drift     go on although the source's fields changed under the drift policy 'fail' (the
                                change is recorded; read whole, the source as it is becomes the flow's profile)
  resume <run> [--accept-drift] continue a failed, cancelled or abandoned run from its last persisted chunk
  replay <run> [--status quarantined|failed] [--key k]...
                                run again only the records that were quarantined or failed, from their staged stage
  runs [--flow f] [--status s]  recent runs
  runs show <run>               one run: status, timings, counts per stage and target, lookups, drift, error
  records <run> [--status s] [--key k] [--target t] [--limit n] [--offset n]
                                every record's outcome in a run: loaded, unchanged, quarantined, failed
  check                         validate the configuration and reach every system
  schema [entity] [--out dir]   entities as JSON Schema; 'schema check <old.json>' checks compatibility
  init [dir]                    create a starter project
  worker [--jobs n]             PostgreSQL store: work the queued chunk jobs until SIGTERM (finishes the jobs in
                                flight; a second SIGTERM hands them back)
  serve                         run every flow that has a schedule on its cron (and work jobs, on PostgreSQL)
  store migrate --to <url>      move the embedded SQLite store into an empty PostgreSQL database

options
  -c, --config <file>           configuration (default: franca.config.ts here or in a parent directory)
  --json                        machine-readable output
  --log <file|->                where JSON logs go (default: .franca/logs/franca.log on a terminal, else stderr)
  --log-level <level>           trace, debug, info, warn, error (default info for runs)
  --threads <n>                 transform threads of in-process runs (default: the cores less one, at most 4;
                                0: none, every chunk is transformed on the main thread)

exit codes: 0 succeeded · 1 failed · 2 usage or configuration error · 3 partial (some records quarantined)`;

const commands: Record<string, (cli: Cli) => Promise<number>> = {
  run: runCommand,
  resume: resumeCommand,
  replay: replayCommand,
  runs: runsCommand,
  records: recordsCommand,
  check: checkCommand,
  schema: schemaCommand,
  init: initCommand,
  worker: workerCommand,
  serve: serveCommand,
  store: storeCommand,
};

const usageCodes = new Set<string>([
  ErrorCode.Usage,
  ErrorCode.ConfigInvalid,
  ErrorCode.ConfigNotFound,
  ErrorCode.ConfigDuplicateName,
  ErrorCode.ConfigUnknownReference,
  ErrorCode.ConfigBadCron,
  ErrorCode.ConfigUnreachable,
]);

export async function main(argv: readonly string[], cwd = process.cwd()): Promise<number> {
  let parsed: { values: CliValues; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: "string", short: "c" },
        json: { type: "boolean" },
        log: { type: "string" },
        "log-level": { type: "string" },
        flow: { type: "string" },
        status: { type: "string" },
        key: { type: "string", multiple: true },
        target: { type: "string" },
        limit: { type: "string" },
        offset: { type: "string" },
        fresh: { type: "boolean" },
        resend: { type: "boolean" },
        "accept-drift": { type: "boolean" },
        out: { type: "string" },
        jobs: { type: "string" },
        to: { type: "string" },
        wait: { type: "boolean" },
        threads: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }) as { values: CliValues; positionals: string[] };
  } catch (error) {
    process.stderr.write(`franca: ${(error as Error).message}\n\n${help}\n`);
    return ExitCode.Usage;
  }
  const name = parsed.positionals[0];
  if (parsed.values.help === true || name === undefined || name === "help") {
    process.stdout.write(`${help}\n`);
    return name === undefined && parsed.values.help !== true ? ExitCode.Usage : ExitCode.Succeeded;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`franca: unknown command '${name}'\n\n${help}\n`);
    return ExitCode.Usage;
  }
  const cli = createCli(parsed.values, parsed.positionals, cwd);
  try {
    return await command(cli);
  } catch (raw) {
    const error = raw instanceof FrancaError ? raw : toFrancaError(raw);
    if (parsed.values.json === true) {
      process.stdout.write(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
    } else {
      process.stderr.write(`franca: ${error.code}: ${redactSecrets(error.message)}\n`);
    }
    return usageCodes.has(error.code) ? ExitCode.Usage : ExitCode.Failed;
  } finally {
    await cli.close();
  }
}

process.exitCode = await main(process.argv.slice(2));

import { parseArgs } from "node:util";
import { ErrorCode, ExitCode, FrancaError, toFrancaError } from "../core/errors.ts";
import { redactSecrets } from "../core/redact.ts";
import { closestSetting, didYouMean } from "../core/suggest.ts";
import { checkCommand } from "./commands/check.ts";
import { initCommand } from "./commands/init.ts";
import { recordsCommand } from "./commands/records.ts";
import { replayCommand, resumeCommand, runCommand } from "./commands/run.ts";
import { runsCommand } from "./commands/runs.ts";
import { schemaCommand } from "./commands/schema.ts";
import { serveCommand } from "./commands/serve.ts";
import { storeCommand } from "./commands/store.ts";
import { workerCommand } from "./commands/worker.ts";
import { type Cli, type CliValues, checkLogLevel, createCli, usageError, wholeNumber } from "./context.ts";

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
  runs [--flow f] [--status s] [--limit n]
                                recent runs (20 unless --limit)
  runs show <run>               one run: status, timings, counts per stage and target, lookups, drift, error
  records <run> [--status s] [--key k] [--target t] [--limit n] [--offset n]
                                every record's outcome in a run: loaded, unchanged, quarantined, failed (100 a
                                page unless --limit; --offset n skips the first n)
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
  --log-level <level>           trace, debug, info, warn, error, fatal, silent (default info for runs)
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

const options = {
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
} as const;

/** One command's lines of the help (`franca <command> --help`), with the options every command takes. */
function commandHelp(name: string): string {
  const lines = help.split("\n");
  const entries: string[] = [];
  let inCommands = false;
  let mine = false;
  for (const line of lines) {
    if (line === "commands") inCommands = true;
    else if (inCommands && line === "") break;
    else if (inCommands) {
      // an entry starts at two spaces; its description may go on at the column of descriptions
      if (/^ {2}\S/.test(line)) mine = line.slice(2).split(" ")[0] === name;
      if (mine) entries.push(line);
    }
  }
  const optionsAt = lines.indexOf("options");
  return [`usage: franca ${name} …`, ...entries, "", ...lines.slice(optionsAt), "", "all commands: franca --help"].join(
    "\n",
  );
}

/** Where to read more, for a usage error: the command's help when the command is known, else the whole help. */
function helpHint(command: string | undefined): string {
  return command !== undefined && Object.hasOwn(commands, command) ? `franca ${command} --help` : "franca --help";
}

/**
 * The arguments as options and positionals. Parsed leniently first (so that every problem is known with the command
 * it was given to), then checked here: one usage error naming the option, not the parser's wording. An option's
 * value may start with '-' when it is a number (`--limit -5`, refused afterwards as not ≥ 0, not as "ambiguous"), and
 * may be '-' itself (`--log -`: the logs on stderr).
 */
function parseCommandLine(argv: readonly string[]): { values: CliValues; positionals: string[] } {
  const { tokens } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: false, tokens: true });
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  let problem: string | undefined;
  for (const token of tokens) {
    if (token.kind === "positional") positionals.push(token.value);
    if (token.kind !== "option" || problem !== undefined) continue;
    const spec = Object.hasOwn(options, token.name) ? options[token.name as keyof typeof options] : undefined;
    if (spec === undefined) {
      const known = token.rawName.startsWith("--") ? closestSetting(token.name, Object.keys(options)) : undefined;
      problem = `unknown option '${token.rawName}'${known === undefined ? "" : ` (did you mean '--${known}'?)`}`;
    } else if (spec.type === "boolean") {
      if (token.value !== undefined) problem = `option '${token.rawName}' takes no value (got '${token.value}')`;
      else values[token.name] = true;
    } else if (token.value === undefined || (!token.inlineValue && /^-[^\d]/.test(token.value))) {
      problem = `option '${token.rawName}' needs a value${
        token.value === undefined ? "" : ` (for one that starts with '-', write --${token.name}=${token.value})`
      }`;
    } else if ("multiple" in spec)
      values[token.name] = [...((values[token.name] as string[] | undefined) ?? []), token.value];
    else values[token.name] = token.value;
  }
  if (problem !== undefined) throw usageError(`${problem}; see '${helpHint(positionals[0])}'`);
  return { values: values as CliValues, positionals };
}

/** Option values checked before any command starts: counts and offsets are whole numbers, log levels known. */
function checkValues(values: CliValues, command: string): void {
  try {
    for (const option of ["limit", "offset", "threads"] as const) wholeNumber(values, option);
    wholeNumber(values, "jobs", 1);
    if (values["log-level"] !== undefined) checkLogLevel(values["log-level"], "--log-level");
  } catch (error) {
    throw usageError(`${(error as Error).message}; see '${helpHint(command)}'`);
  }
}

/** Prints the error (JSON on stdout with --json, one line on stderr otherwise) and gives the exit code. */
function reportError(raw: unknown, json: boolean): number {
  const error = raw instanceof FrancaError ? raw : toFrancaError(raw);
  if (json) process.stdout.write(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
  else process.stderr.write(`franca: ${error.code}: ${redactSecrets(error.message)}\n`);
  return usageCodes.has(error.code) ? ExitCode.Usage : ExitCode.Failed;
}

export async function main(argv: readonly string[], cwd = process.cwd()): Promise<number> {
  let parsed: { values: CliValues; positionals: string[] };
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    return reportError(error, argv.includes("--json"));
  }
  const json = parsed.values.json === true;
  // `franca help <command>` and `franca <command> --help` say the same; `franca` alone shows the help as an error
  const asked = parsed.positionals[0] === "help" || parsed.values.help === true;
  const name = parsed.positionals[0] === "help" ? parsed.positionals[1] : parsed.positionals[0];
  if (name === undefined) {
    process.stdout.write(`${help}\n`);
    return asked ? ExitCode.Succeeded : ExitCode.Usage;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined)
    return reportError(
      usageError(`unknown command '${name}'${didYouMean(name, Object.keys(commands))}; see 'franca --help'`),
      json,
    );
  if (asked) {
    process.stdout.write(`${commandHelp(name)}\n`);
    return ExitCode.Succeeded;
  }
  try {
    checkValues(parsed.values, name);
  } catch (error) {
    return reportError(error, json);
  }
  const cli = createCli(parsed.values, parsed.positionals, cwd);
  try {
    return await command(cli);
  } catch (error) {
    return reportError(error, json);
  } finally {
    await cli.close();
  }
}

process.exitCode = await main(process.argv.slice(2));

import { join } from "node:path";
import pino from "pino";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { Hub } from "../core/hub.ts";
import { didYouMean } from "../core/suggest.ts";
import { Engine } from "../engine/engine.ts";
import { preflight } from "../engine/preflight.ts";
import { createLogger, type Logger } from "../observe/logger.ts";
import { findConfig, loadHub } from "./load-config.ts";

export interface CliValues {
  config?: string;
  json?: boolean;
  log?: string;
  "log-level"?: string;
  flow?: string;
  status?: string;
  key?: string[];
  target?: string;
  limit?: string;
  offset?: string;
  fresh?: boolean;
  resend?: boolean;
  "accept-drift"?: boolean;
  out?: string;
  jobs?: string;
  to?: string;
  wait?: boolean;
  threads?: string;
  help?: boolean;
}

export interface Cli {
  readonly values: CliValues;
  readonly positionals: readonly string[];
  readonly cwd: string;
  /** Human-readable text or JSON for machines (--json). */
  print(text: string): void;
  printJson(value: unknown): void;
  warn(text: string): void;
  readonly interactive: boolean;
  /**
   * Loads the configuration and opens the engine (once); `flows` are preflighted before the store is opened. A hub
   * whose store is PostgreSQL gets the distributed executor; `worker` marks this process as one that works jobs.
   */
  open(options?: {
    longRunning?: boolean;
    flows?: readonly string[];
    worker?: boolean;
  }): Promise<{ engine: Engine; hub: Hub; baseDir: string; file: string; logFile?: string }>;
  close(): Promise<void>;
}

export function usageError(message: string): FrancaError {
  return new FrancaError(ErrorCode.Usage, message);
}

/** The levels `--log-level` and FRANCA_LOG_LEVEL take (pino's). */
export const logLevels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** `value` when it is a log level; a usage error naming `what` (the option or variable it came from) otherwise. */
export function checkLogLevel(value: string, what: string): string {
  if ((logLevels as readonly string[]).includes(value)) return value;
  throw usageError(`${what} must be one of ${logLevels.join(", ")} (got '${value}')${didYouMean(value, logLevels)}`);
}

/**
 * The option's value as a whole number of at least `min` (undefined when the option was not given); a usage error
 * naming the option otherwise. Given as typed: `2.5`, `1e3`, `0x10`, `-1` and ` 7` are all refused.
 */
export function wholeNumber(
  values: CliValues,
  option: "limit" | "offset" | "threads" | "jobs",
  min = 0,
): number | undefined {
  const text = values[option];
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min)
    throw usageError(`--${option} must be a whole number ≥ ${min} (got '${text}')`);
  return value;
}

/** The level asked for (`--log-level`, else FRANCA_LOG_LEVEL), checked; else info for long-running commands, warn. */
function logLevel(values: CliValues, longRunning: boolean): string {
  if (values["log-level"] !== undefined) return checkLogLevel(values["log-level"], "--log-level");
  const variable = process.env.FRANCA_LOG_LEVEL;
  if (variable !== undefined && variable !== "") return checkLogLevel(variable, "FRANCA_LOG_LEVEL");
  return longRunning ? "info" : "warn";
}

/**
 * Where logs go: `--log <file>` or `--log -` (stderr) when given; otherwise, for long-running commands on a terminal,
 * to .franca/logs/franca.log (the terminal shows progress bars instead), and to stderr everywhere else.
 */
function loggerFor(
  values: CliValues,
  baseDir: string,
  longRunning: boolean,
  interactive: boolean,
): { logger: Logger; logFile?: string } {
  const level = logLevel(values, longRunning);
  const target = values.log ?? (longRunning && interactive ? join(baseDir, ".franca", "logs", "franca.log") : "-");
  if (target === "-")
    return { logger: createLogger({ level, destination: pino.destination({ dest: 2, sync: true }) }) };
  return {
    logger: createLogger({ level, destination: pino.destination({ dest: target, mkdir: true, sync: true }) }),
    logFile: target,
  };
}

export function createCli(values: CliValues, positionals: readonly string[], cwd: string): Cli {
  let opened: Awaited<ReturnType<Cli["open"]>> | undefined;
  const interactive = process.stderr.isTTY === true && values.json !== true;
  return {
    values,
    positionals,
    cwd,
    interactive,
    print: (text) => process.stdout.write(`${text}\n`),
    printJson: (value) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    warn: (text) => process.stderr.write(`${text}\n`),
    async open(options = {}) {
      if (opened !== undefined) return opened;
      const file = findConfig(values.config, cwd);
      const { hub, baseDir } = await loadHub(file);
      for (const name of options.flows ?? []) {
        const flow = hub.flows.get(name);
        if (flow === undefined)
          throw usageError(
            `unknown flow '${name}'${didYouMean(name, hub.flows.keys())} (flows: ${[...hub.flows.keys()].join(", ") || "none"})`,
          );
        preflight(flow, baseDir);
      }
      const { logger, logFile } = loggerFor(values, baseDir, options.longRunning === true, interactive);
      const distributed = hub.store !== undefined && /^postgres(ql)?:\/\//.test(hub.store);
      const threads = wholeNumber(values, "threads");
      const engine = await Engine.open({
        hub,
        baseDir,
        logger,
        executor: distributed ? "distributed" : "local",
        workerProcess: options.worker === true,
        // the threads import the configuration file, as this process did
        threads: { module: file, ...(threads === undefined ? {} : { count: threads }) },
      });
      opened = { engine, hub, baseDir, file, ...(logFile === undefined ? {} : { logFile }) };
      return opened;
    },
    async close() {
      await opened?.engine.close();
    },
  };
}

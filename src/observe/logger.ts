import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger };

/**
 * Paths pino removes from every log line. Connection strings are also scrubbed by `redactSecrets` wherever a
 * message may quote one (driver errors do).
 */
const redactPaths = [
  "password",
  "*.password",
  "token",
  "*.token",
  "apiKey",
  "*.apiKey",
  "secret",
  "*.secret",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "options.password",
  "options.auth",
  "auth",
  "*.auth",
];

export interface LoggerOptions {
  level?: string;
  /** A pino destination (pino.destination(file), a stream); default stderr. */
  destination?: DestinationStream;
}

/** JSON lines: every line carries what the caller bound (run, flow, stage, system, key) and never a secret. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.FRANCA_LOG_LEVEL ?? "info",
      base: { app: "franca" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactPaths, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination(2),
  );
}

/** A logger that writes nothing, for library use and tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

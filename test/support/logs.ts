import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/observe/logger.ts";

/** A logger writing JSON lines into a string, as the CLI's would into its file: `text` is all it wrote so far. */
export function captureLogs(level = "debug"): { logger: Logger; text: () => string } {
  let text = "";
  const sink = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { logger: createLogger({ level, destination: sink as never }), text: () => text };
}

/**
 * A process that starts transform threads, waits until they are ready, and then has nothing left to do: it must exit
 * on its own (idle threads do not keep a process alive). Prints "ready" first. Used by test/engine/threads.test.ts.
 */
import { fileURLToPath } from "node:url";
import { TransformThreads } from "../../src/engine/threads/pool.ts";
import { createLogger } from "../../src/observe/logger.ts";

const module = fileURLToPath(new URL("./threads-hub.ts", import.meta.url));
const threads = new TransformThreads({
  module,
  count: 1,
  logger: createLogger({ level: "error" }),
  lookups: new Map(),
});
console.log((await threads.ready()) ? "ready" : "unusable");

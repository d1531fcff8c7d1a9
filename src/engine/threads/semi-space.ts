/**
 * The young generation of the engine's threads. V8 sizes a thread's young generation (its semi-spaces) when the
 * thread starts: from the process's `--max-semi-space-size` when it has one (a Worker's `resourceLimits` are then
 * ignored), else from the Worker's `resourceLimits`, else from the machine's memory (up to 64 MB semi-spaces, which
 * lets short-lived data pile up to hundreds of MB). The `franca` command starts Node with 4 MB semi-spaces, enough for
 * the engine's thread and the store's; a transform thread keeps a chunk's records alive across several collections
 * and is given 8 MB. With 8 MB for every thread, a 10,000,000-row PostgreSQL → MariaDB run peaked at 317–323 MB
 * against 268–293 MB, at the same CPU; with 2 MB, 278–292 MB, but the process spent ~6 % more CPU
 * (docs/benchmarks.md, stop 17).
 *
 * Hand-written: no library sets V8's sizes per thread. The flag is raised while the threads start and put back once
 * each of them runs (`online`), when V8 has sized its heap; threads started meanwhile by others get the raised size.
 */
import { setFlagsFromString } from "node:v8";
import type { Worker } from "node:worker_threads";

/** The process's `--max-semi-space-size` in MB (its arguments, then NODE_OPTIONS); undefined when it has none. */
export function semiSpaceFlag(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): number | undefined {
  const args = [...execArgv, ...nodeOptions.split(/\s+/).filter((arg) => arg !== "")];
  let found: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = arg === "--max-semi-space-size" ? args[i + 1] : /^--max-semi-space-size=(.*)$/.exec(arg)?.[1];
    if (value !== undefined && /^\d+$/.test(value)) found = Number(value);
  }
  return found;
}

let raised = 0;

/**
 * Creates threads (`create`) with semi-spaces of `mb` MB whatever the process's own: returns them once created; the
 * process's flag is back as it was once every thread of every such call has started (or failed to).
 */
export function startWithSemiSpace(mb: number, create: () => Worker[]): Worker[] {
  if (raised++ === 0) setFlagsFromString(`--max-semi-space-size=${mb}`);
  let workers: Worker[] = [];
  try {
    workers = create();
  } finally {
    const started = workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          worker.once("online", () => resolve());
          worker.once("error", () => resolve());
          worker.once("exit", () => resolve());
        }),
    );
    void Promise.all(started).then(() => {
      // 0: V8's own sizing (resourceLimits, then the machine's memory), as when the process was started without it
      if (--raised === 0) setFlagsFromString(`--max-semi-space-size=${semiSpaceFlag() ?? 0}`);
    });
  }
  return workers;
}

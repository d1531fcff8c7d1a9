import { tmpdir } from "node:os";
import { join } from "node:path";
import { mallocEnv, v8Flags } from "../bin/settings.js";

/**
 * The settings bin/franca.js runs Franca with (bin/settings.js), for benchmarks that start their measured parts as
 * processes of their own: they measure what a `franca` command would do.
 */

/** V8's flags (transform threads start with 8 MB semi-spaces whatever these say). */
export const cliNodeFlags: readonly string[] = v8Flags;

/**
 * glibc's malloc settings, unless set; Node's module compile cache in its default place, unless set (the franca
 * command enables it with module.enableCompileCache(), which uses the same directory).
 */
export const cliEnv: NodeJS.ProcessEnv = {
  ...process.env,
  ...mallocEnv(process.env),
  NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), "node-compile-cache"),
};

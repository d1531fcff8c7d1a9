import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The settings bin/franca.js runs Franca with (keep in step with it), for benchmarks that start their measured parts
 * as processes of their own: they measure what a `franca` command would do.
 */

/**
 * V8: a 4 MB young generation (semi-space; transform threads start with 8 MB whatever this is), an old generation
 * that grows at most 100 % between full collections.
 */
export const cliNodeFlags: readonly string[] = ["--max-semi-space-size=4", "--heap-growing-percent=100"];

/**
 * At most 2 glibc malloc arenas and a fixed 128 KB mmap threshold, unless set; Node's module compile cache in its
 * default place, unless set (the franca command enables it with module.enableCompileCache(), which uses the same
 * directory).
 */
export const cliEnv: NodeJS.ProcessEnv = {
  ...process.env,
  MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? "2",
  MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? "131072",
  NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), "node-compile-cache"),
};

/**
 * The settings bin/franca.js runs Franca with (keep in step with it), for benchmarks that start their measured parts
 * as processes of their own: they measure what a `franca` command would do.
 */

/** V8: a 16 MB young generation. */
export const cliNodeFlags: readonly string[] = ["--max-semi-space-size=16"];

/** At most 2 glibc malloc arenas, unless set. */
export const cliEnv: NodeJS.ProcessEnv = { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? "2" };

// The settings the franca command starts Franca with (bin/franca.js says why each), in one place: the benchmarks
// that start their measured parts as processes of their own take them from here (bench/cli-settings.ts), so that
// they measure what a `franca` command would do. Plain JavaScript: bin/franca.js may run on an older Node first.

/** V8: a 4 MB young generation (semi-space), an old generation that grows at most 100 % between full collections. */
export const v8Flags = ["--max-semi-space-size=4", "--heap-growing-percent=100"];

/** glibc's malloc: at most 2 arenas, a fixed 128 KB mmap threshold; each unless `env` sets it. */
export function mallocEnv(env) {
  return {
    MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? "2",
    MALLOC_MMAP_THRESHOLD_: env.MALLOC_MMAP_THRESHOLD_ ?? "131072",
  };
}

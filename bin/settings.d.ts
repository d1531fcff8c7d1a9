/** The franca command's settings (bin/settings.js). */
export declare const v8Flags: readonly string[];
export declare function mallocEnv(env: NodeJS.ProcessEnv): { MALLOC_ARENA_MAX: string; MALLOC_MMAP_THRESHOLD_: string };

#!/usr/bin/env node
// The `franca` command. Plain JavaScript so that any Node can start it. It makes sure Franca runs on:
// - Node 24 or newer (Franca is TypeScript run by Node's type stripping): on an older Node it re-executes itself
//   with the Node 24 the project pins (node_modules/node);
// - a 4 MB V8 young generation (semi-space): Node 24 sizes it from the machine's memory (up to 64 MB semi-spaces),
//   which lets each chunk's short-lived data pile up to hundreds of MB before it is collected. Every thread has its
//   own: the engine's and the store's take this one; transform threads, which keep a chunk's records alive across
//   collections, are started with 8 MB (src/engine/threads/semi-space.ts). With 8 MB for every thread, a
//   10,000,000-row PostgreSQL → MariaDB run peaked at 317–323 MB against 268–293 MB, at the same CPU
//   (docs/benchmarks.md);
// - an old generation that grows at most 100 % over what survived its last collection (--heap-growing-percent=100):
//   V8 otherwise lets it grow up to 4× (and, in about one run in three, to ~400 MB before its first full
//   collection), which took a 1,000,000-row database run to 490–585 MB of resident memory where ~30 MB were live;
//   with the flag the same runs peak at 231–247 MB (docs/benchmarks.md);
// - at most 2 glibc malloc arenas (MALLOC_ARENA_MAX, unless set): the store's thread and Node's own threads would
//   otherwise each grow an arena, and their fragmentation added ~30 MB of resident memory over a 100,000-record run
//   (bench:api), for no speed;
// - glibc's mmap threshold fixed at 128 KB (MALLOC_MMAP_THRESHOLD_, unless set): a chunk's byte arrays (source text,
//   staged text, prepared rows: a few hundred KB each, alive while their chunk is in flight) are then mapped and
//   unmapped whole. glibc otherwise raises the threshold to the largest block freed, puts such arrays in its main
//   heap, and the holes they leave are not given back. A 10,000,000-row MariaDB → PostgreSQL run's main heap grew to
//   71 MB (17 MB with the setting), its peak to 313–322 MB (282–305 with it), at the same speed (docs/benchmarks.md,
//   stop 19);
// - Node's module compile cache (module.enableCompileCache: NODE_COMPILE_CACHE, else a directory in the system's
//   temporary directory), also for the store's thread: each thread that loads TypeScript otherwise starts Node's type
//   stripper first (~50 ms), and each run's store thread did, before the run could start.
// Arguments, signals and the exit code are passed through.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
// a namespace, not named imports: Node before 22.1 has no enableCompileCache, and a named import of it would fail
// this file before it can say which Node it needs
import * as nodeModule from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { mallocEnv, v8Flags } from "./settings.js";

const major = Number(process.versions.node.split(".")[0]);
const hasFlag = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].some((arg) =>
  arg.startsWith("--max-semi-space-size"),
);

if (major >= 24 && hasFlag) {
  // a quiet optimisation: it never throws, and NODE_DISABLE_COMPILE_CACHE turns it off
  nodeModule.enableCompileCache();
  const cacheDir = nodeModule.getCompileCacheDir();
  // worker threads take the setting from the environment
  if (cacheDir !== undefined) process.env.NODE_COMPILE_CACHE ??= cacheDir;
  if (process.env.FRANCA_LAUNCHER_PID !== undefined && process.channel !== undefined) {
    // started by the franca command below: when it dies, even by SIGKILL (which it cannot hand on), this process
    // dies with it, as one process would. Its channel closes then; unreferenced, it holds nothing open meanwhile.
    delete process.env.FRANCA_LAUNCHER_PID;
    process.channel.unref();
    process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
  }
  await import("../src/cli/main.ts");
} else {
  let node = process.execPath;
  if (major < 24) {
    const root = dirname(dirname(fileURLToPath(import.meta.url)));
    node = join(root, "node_modules", "node", "bin", "node");
    if (!existsSync(node)) {
      process.stderr.write(
        `franca needs Node.js 24 or newer (this is ${process.version}). Run 'npm install' in ${root} to get the pinned Node 24, or put Node 24 first on your PATH.\n`,
      );
      process.exit(2);
    }
  }
  const child = spawn(node, [...v8Flags, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    // a channel, for the child to see this process die (above)
    stdio: ["inherit", "inherit", "inherit", "ipc"],
    env: { ...process.env, ...mallocEnv(process.env), FRANCA_LAUNCHER_PID: String(process.pid) },
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => {
    if (signal !== null) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}

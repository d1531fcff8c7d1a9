#!/usr/bin/env node
// The `franca` command. Plain JavaScript so that any Node can start it. It makes sure Franca runs on:
// - Node 24 or newer (Franca is TypeScript run by Node's type stripping): on an older Node it re-executes itself
//   with the Node 24 the project pins (node_modules/node);
// - a 16 MB V8 young generation: Node 24 sizes it from the machine's memory (up to 64 MB semi-spaces), which lets
//   each chunk's short-lived data pile up to hundreds of MB before it is collected; 16 MB keeps a run's memory
//   flat at no measurable cost in speed (docs/benchmarks.md);
// - at most 2 glibc malloc arenas (MALLOC_ARENA_MAX, unless set): the store's thread and Node's own threads would
//   otherwise each grow an arena, and their fragmentation added ~30 MB of resident memory over a 100,000-record run
//   (bench:api), for no speed.
// Arguments, signals and the exit code are passed through.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const youngGeneration = "--max-semi-space-size=16";
const major = Number(process.versions.node.split(".")[0]);
const hasFlag = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].some((arg) =>
  arg.startsWith("--max-semi-space-size"),
);

if (major >= 24 && hasFlag) {
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
  const child = spawn(node, [youngGeneration, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? "2" },
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => {
    if (signal !== null) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}

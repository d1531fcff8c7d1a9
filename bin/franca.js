#!/usr/bin/env node
// The `franca` command. Plain JavaScript so that any Node can start it: Franca's code is TypeScript run by Node 24's
// type stripping, so on an older Node this re-executes itself with the Node 24 that the project pins
// (node_modules/node), forwarding arguments, signals and the exit code.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major >= 24) {
  await import("../src/cli/main.ts");
} else {
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  const pinned = join(root, "node_modules", "node", "bin", "node");
  if (!existsSync(pinned)) {
    process.stderr.write(
      `franca needs Node.js 24 or newer (this is ${process.version}). Run 'npm install' in ${root} to get the pinned Node 24, or put Node 24 first on your PATH.\n`,
    );
    process.exit(2);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => {
    if (signal !== null) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}

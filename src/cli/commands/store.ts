import { resolve } from "node:path";
import { defaultStoreFile } from "../../store/open.ts";
import { type Cli, usageError } from "../context.ts";
import { findConfig, loadHub } from "../load-config.ts";
import { count } from "../output.ts";

/**
 * `franca store migrate --to postgres://…`: moves the hub's embedded store (runs, the ledger, staging, cursors,
 * content hashes, the lookup cache) into an empty PostgreSQL store, in one transaction. Then set `store` to that URL.
 */
export async function storeCommand(cli: Cli): Promise<number> {
  const to = cli.values.to;
  if (cli.positionals[1] !== "migrate" || to === undefined || !/^postgres(ql)?:\/\//.test(to)) {
    throw usageError("usage: franca store migrate --to postgres://user@host:5432/database[?schema=franca]");
  }
  const file = findConfig(cli.values.config, cli.cwd);
  const { hub, baseDir } = await loadHub(file);
  const from = hub.store ?? defaultStoreFile;
  if (/^postgres(ql)?:\/\//.test(from)) throw usageError("the hub's store is PostgreSQL already");
  const { moveStore } = await import("../../store/move.ts");
  // On a terminal, the table being copied and its rows so far, on one line rewritten in place (a large ledger takes
  // minutes); the counts themselves are printed once, below, when the move has committed.
  const moved = await moveStore(resolve(baseDir, from.replace(/^sqlite:/, "")), to, {
    onProgress: (progress) => {
      if (!cli.interactive) return;
      process.stderr.write(
        progress.done ? "\r\x1b[K" : `\r\x1b[K  copying ${progress.table}: ${count(progress.rows)} rows so far…`,
      );
    },
  });
  cli.print(`moved ${resolve(baseDir, from)} to PostgreSQL:`);
  for (const [table, rows] of Object.entries(moved)) cli.print(`  ${table.padEnd(14)} ${count(rows)}`);
  cli.print(
    `now set store: ${JSON.stringify(to.replace(/:[^:@/]+@/, ":…@"))} in ${file} (the SQLite file is left as it was)`,
  );
  return 0;
}

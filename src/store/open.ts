import { resolve } from "node:path";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { storeProblem } from "../core/hub.ts";
import { ThreadedSqliteStore } from "./sqlite/threaded.ts";
import type { Store } from "./types.ts";

export const defaultStoreFile = ".franca/franca.db";

/**
 * Opens the store a hub names: a `postgres://` URL, or a SQLite file (relative to the configuration's directory;
 * default `.franca/franca.db`), also given as `sqlite:<path>`. Migrations run before it is returned. Any other
 * `scheme://…` (a typo: `postgress://`) is refused with CONFIG_INVALID before anything is made, rather than taken
 * for a file path (defineHub refuses it already; this is for a location that did not come through it).
 */
export async function openStore(location: string | undefined, baseDir: string): Promise<Store> {
  const spec = location ?? defaultStoreFile;
  const problem = storeProblem(spec);
  if (problem !== undefined) throw new FrancaError(ErrorCode.ConfigInvalid, `store: ${problem}`, { setting: "store" });
  if (/^postgres(ql)?:\/\//.test(spec)) {
    // loaded on demand: a hub on SQLite does not load pg
    const { PostgresStore } = await import("./postgres/store.ts");
    const store = new PostgresStore(spec);
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }
  const file = spec.startsWith("sqlite:") ? spec.slice("sqlite:".length) : spec;
  const store = new ThreadedSqliteStore(file === ":memory:" ? file : resolve(baseDir, file));
  await store.migrate();
  return store;
}

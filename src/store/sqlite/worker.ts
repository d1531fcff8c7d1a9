/**
 * The SQLite store's thread: runs a SqliteStore and answers the calls ThreadedSqliteStore posts, one at a time and
 * in order, so the store's transactions stay serial exactly as on the main thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { FrancaError } from "../../core/errors.ts";
import { SqliteStore, type SqliteStoreOptions } from "./store.ts";

interface Call {
  id: number;
  method: string;
  args: unknown[];
}

const { file, options } = workerData as { file: string; options: SqliteStoreOptions };
const store = new SqliteStore(file, options);
const port = parentPort as NonNullable<typeof parentPort>;
let queue = Promise.resolve();

port.on("message", (call: Call) => {
  queue = queue.then(async () => {
    try {
      const method = (store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[call.method];
      if (typeof method !== "function") throw new Error(`store has no method ${call.method}`);
      const result = await method.apply(store, call.args);
      port.postMessage({ id: call.id, ok: true, result });
    } catch (error) {
      const failure =
        error instanceof FrancaError
          ? { ...error.toJSON(), francaCode: error.code, details: error.details }
          : { message: (error as Error).message ?? String(error) };
      port.postMessage({ id: call.id, ok: false, error: failure });
    }
  });
});

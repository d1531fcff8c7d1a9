import { join } from "node:path";
import { after } from "node:test";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { ThreadedSqliteStore } from "../../src/store/sqlite/threaded.ts";
import { tempDir } from "../support/fixtures.ts";
import { storeContract } from "./contract.ts";

const tmp = tempDir();
after(() => tmp[Symbol.dispose]());
let next = 0;

storeContract("SQLite", async () => {
  const store = new SqliteStore(join(tmp.dir, `store-${next++}.db`));
  await store.migrate();
  return store;
});

storeContract("SQLite on its own thread", async () => {
  const store = new ThreadedSqliteStore(join(tmp.dir, `threaded-${next++}.db`));
  await store.migrate();
  return store;
});

import assert from "node:assert/strict";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { type Migration, migrations } from "../../src/store/sqlite/migrations.ts";
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

describe("SQLite store's write-ahead log", () => {
  it("is checkpointed once it holds 4,000 pages (SQLite's default: 1,000), and restarted from its beginning", async () => {
    const file = join(tmp.dir, `wal-${next++}.db`);
    const store = new SqliteStore(file);
    await store.migrate();
    const run = await store.startRun({
      flow: "wal",
      kind: "flow",
      trigger: "test",
      targets: ["warehouse"],
      owner: "test",
      now: Date.now(),
    });
    // The WAL's header (https://sqlite.org/fileformat.html#wal_file_format): page size at byte 8, and at byte 12 a
    // checkpoint sequence number, which changes when a checkpoint has copied every frame back and the next write
    // starts the log again from its beginning. The file keeps its size; its frames are page size + 24 bytes.
    const header = Buffer.alloc(32);
    const wal = (): { seq: number; frames: number } => {
      const fd = openSync(`${file}-wal`, "r");
      try {
        readSync(fd, header, 0, 32, 0);
        return { seq: header.readUInt32BE(12), frames: (fstatSync(fd).size - 32) / (header.readUInt32BE(8) + 24) };
      } finally {
        closeSync(fd);
      }
    };
    const hash = "q1w2e3r4t5y6u7i8o9p0a1s2d3f";
    let first: { seq: number; frames: number } | undefined;
    let before = 0;
    for (let seq = 0; seq < 1000; seq++) {
      const loaded = Array.from({ length: 1000 }, (_, i) => `key-${seq * 1000 + i}`);
      await store.saveLoad(
        run.id,
        seq,
        "warehouse",
        { loaded, hashes: loaded.map(() => hash), unchanged: [], problems: [], attempts: 1 },
        Date.now(),
      );
      const now = wal();
      first ??= now;
      if (now.seq !== first.seq) break; // restarted: `before` is how many frames the log reached
      before = now.frames;
    }
    await store.close();
    assert.ok(first !== undefined);
    assert.ok(before >= 4000, `the log was restarted after ${before} frames`);
    assert.ok(before < 4000 + 500, `the log grew to ${before} frames before a checkpoint`);
  });
});

describe("SQLite store on its own thread: staged chunks", () => {
  it("closes only once the chunks staged before are in their files, and discards a run's chunks only once written", async () => {
    const file = join(tmp.dir, `staging-${next++}.db`);
    const store = new ThreadedSqliteStore(file);
    await store.migrate();
    const text = (seq: number) => `chunk ${seq} ${"x".repeat(200_000)}`;
    // not awaited before the close: the store waits for them, and they succeed
    const staged = [0, 1, 2].map((seq) => store.stage(1, seq, "extracted", text(seq)));
    await store.close();
    await Promise.all(staged);
    const reopened = new ThreadedSqliteStore(file);
    await reopened.migrate();
    try {
      for (const seq of [0, 1, 2]) assert.equal(await reopened.readStaged(1, seq, "extracted"), text(seq));
      const more = [3, 4].map((seq) => reopened.stage(2, seq, "canonical", text(seq)));
      await reopened.discardStaged(2);
      await Promise.all(more);
      assert.equal(await reopened.readStaged(2, 3, "canonical"), undefined);
      // another run's chunks stay
      assert.equal(await reopened.readStaged(1, 0, "extracted"), text(0));
    } finally {
      await reopened.close();
    }
  });
});

describe("SQLite store on its own thread: memory", () => {
  it("gives its thread a young generation of 12 MB (4 MB semi-spaces) when the process sets none", async () => {
    // this process sets no --max-semi-space-size (which V8 would take over a thread's resourceLimits)
    assert.ok(!process.execArgv.some((arg) => arg.startsWith("--max-semi-space-size")));
    await using store = new ThreadedSqliteStore(join(tmp.dir, `heap-${next++}.db`));
    await store.migrate();
    // the same thread with the limit V8 sizes by itself and with the store's: heap_size_limit adds the young generation
    // a thread that says it runs, then waits (its port listened to) until terminated
    const idle =
      "const { parentPort } = require('node:worker_threads'); parentPort.on('message', () => {}); parentPort.postMessage(1);";
    const plain = new Worker(idle, { eval: true });
    const limited = new Worker(idle, {
      eval: true,
      resourceLimits: { maxYoungGenerationSizeMb: 12 },
    });
    try {
      await Promise.all([plain, limited].map((worker) => new Promise((resolve) => worker.once("message", resolve))));
      const [own, unlimited, expected] = await Promise.all([
        store.heapStatistics(),
        plain.getHeapStatistics(),
        limited.getHeapStatistics(),
      ]);
      assert.equal(own.heap_size_limit, expected.heap_size_limit);
      assert.ok(own.heap_size_limit < unlimited.heap_size_limit, "a smaller young generation than V8's own sizing");
    } finally {
      await Promise.all([plain.terminate(), limited.terminate()]);
    }
  });
});

/** Runs `work` on the store file through a connection of its own, closed after. */
function onFile<T>(file: string, work: (db: DatabaseSync) => T, readOnly = true): T {
  const db = new DatabaseSync(file, { readOnly });
  try {
    return work(db);
  } finally {
    db.close();
  }
}

/** A store file at schema version 1 (before ledger-key.ts) with one run, filled by `fill`. */
function versionOne(fill: (db: DatabaseSync) => void): string {
  const file = join(tmp.dir, `v1-${next++}.db`);
  onFile(
    file,
    (db) => {
      db.exec((migrations[0] as Migration).sql);
      db.exec("CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
      db.prepare("INSERT INTO migrations VALUES (1, 'v1', 0)").run();
      db.prepare(
        "INSERT INTO runs (flow, kind, trigger, status, owner, targets, started_at, heartbeat_at, stats) VALUES ('k', 'flow', 'test', 'succeeded', 'o', '[\"t\"]', 1, 1, '{}')",
      ).run();
      fill(db);
    },
    false,
  );
  return file;
}

describe("SQLite store's ledger keys", () => {
  const typesOf = (file: string, table: string): Record<string, string> =>
    onFile(file, (db) => {
      const rows = db.prepare(`SELECT CAST(key AS TEXT) AS key, typeof(key) AS type FROM ${table}`).all();
      return Object.fromEntries(rows.map((row) => [String(row.key), String(row.type)]));
    });

  it("keeps decimal integer keys as integers (the order ids come in), and every other key as text", async () => {
    const file = join(tmp.dir, `keys-${next++}.db`);
    const store = new SqliteStore(file);
    await store.migrate();
    const run = await store.startRun({ flow: "k", kind: "flow", trigger: "test", targets: ["t"], owner: "o", now: 1 });
    const loaded = ["1", "9", "10", "0", "123456789012345", "1234567890123456", "007", "-1", "1.5", "a"];
    await store.saveLoad(
      run.id,
      0,
      "t",
      { loaded, hashes: loaded.map(() => "h"), unchanged: [], problems: [], attempts: 1 },
      1,
    );
    await store.close();
    const integers = new Set(["1", "9", "10", "0", "123456789012345"]);
    const expected = Object.fromEntries(loaded.map((key) => [key, integers.has(key) ? "integer" : "text"]));
    assert.deepEqual(typesOf(file, "outcomes"), expected);
    assert.deepEqual(typesOf(file, "target_hashes"), expected);
  });

  it("migrates a version 1 store's keys: the same outcomes and hashes, decimal integer keys as integers", async () => {
    const keys = ["10", "9", "007", "x"];
    const file = versionOne((db) => {
      for (const key of keys) {
        db.prepare("INSERT INTO outcomes (run_id, key, target, status, seq) VALUES (1, ?, 't', 'loaded', 0)").run(key);
        db.prepare("INSERT INTO target_hashes (target, key, hash, run_id) VALUES ('t', ?, ?, 1)").run(key, `h ${key}`);
      }
      db.prepare(
        "INSERT INTO outcomes (run_id, key, target, status, seq, code, message) VALUES (1, '9', '', 'quarantined', 0, 'VALIDATION_FAILED', 'bad')",
      ).run();
    });
    const store = new SqliteStore(file);
    await store.migrate();
    const hashes = await store.getHashes("t", [...keys, "07"]);
    assert.deepEqual(
      [...hashes.entries()].map(([key, found]) => [key, found.hash]).sort(),
      keys.map((key) => [key, `h ${key}`]).sort(),
    );
    assert.deepEqual(
      (await store.records(1, { key: "9" })).map((outcome) => [
        outcome.target,
        outcome.status,
        outcome.message ?? null,
      ]),
      [
        [null, "quarantined", "bad"],
        ["t", "loaded", null],
      ],
    );
    assert.equal((await store.records(1)).length, 5);
    await store.close();
    const expected = { "10": "integer", "9": "integer", "007": "text", x: "text" };
    assert.deepEqual(typesOf(file, "target_hashes"), expected);
    assert.deepEqual(typesOf(file, "outcomes"), expected);
    const indexes = onFile(file, (db) =>
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outcomes'").all(),
    );
    assert.ok(
      indexes.some((row) => row.name === "outcomes_problems"),
      "the problems index is made again",
    );
  });
});

describe("SQLite store's migration 3", () => {
  it("tells, for the runs that may be resumed, which chunk last loaded each key: what their rows say", async () => {
    const file = versionOne((db) => {
      db.prepare(
        "INSERT INTO runs (flow, kind, trigger, status, owner, targets, started_at, heartbeat_at, stats) VALUES ('k', 'flow', 'test', 'failed', 'o', '[\"t\"]', 2, 2, '{}')",
      ).run();
      for (const run of [1, 2]) {
        db.prepare(
          `INSERT INTO outcomes (run_id, key, target, status, seq) VALUES (${run}, 'a', 't', 'loaded', 4)`,
        ).run();
        db.prepare(
          `INSERT INTO outcomes (run_id, key, target, status, seq) VALUES (${run}, 'b', 't', 'unchanged', 4)`,
        ).run();
        db.prepare(
          `INSERT INTO outcomes (run_id, key, target, status, seq) VALUES (${run}, 'c', 't', 'quarantined', 4)`,
        ).run();
      }
    });
    const store = new SqliteStore(file);
    await store.migrate();
    assert.deepEqual([...(await store.laterInTarget(2, "t", 3, ["a", "b", "c"]))].sort(), ["a", "b"]);
    assert.equal((await store.laterInTarget(2, "t", 4, ["a", "b", "c"])).size, 0);
    assert.equal(
      (await store.laterInTarget(1, "t", 3, ["a", "b", "c"])).size,
      0,
      "a run that succeeded is left as it was",
    );
    await store.close();
  });
});

describe("SQLite store's migrations", () => {
  it("applies each migration once when processes open a store at once: the second finds it applied", async () => {
    const file = versionOne((db) =>
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
        INSERT INTO outcomes (run_id, key, target, status, seq) SELECT 1, CAST(i AS TEXT), 't', 'loaded', i / 1000 FROM n`),
    );
    // each on a thread of its own, as two processes would be: the second waits on the first's write lock
    const stores = [new ThreadedSqliteStore(file), new ThreadedSqliteStore(file)];
    try {
      const results = await Promise.allSettled(stores.map((store) => store.migrate()));
      assert.deepEqual(
        results.map((result) => (result.status === "rejected" ? String(result.reason) : result.status)),
        ["fulfilled", "fulfilled"],
      );
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
    onFile(file, (db) => {
      assert.deepEqual(
        db
          .prepare("SELECT version FROM migrations ORDER BY version")
          .all()
          .map((row) => row.version),
        migrations.map((migration) => migration.version),
      );
      assert.deepEqual(
        { ...db.prepare("SELECT count(*) AS n, typeof(max(key)) AS type FROM outcomes").get() },
        {
          n: 300_000,
          type: "integer",
        },
      );
    });
  });

  it("refuses a store of a newer schema version than it knows, naming both", async () => {
    const file = join(tmp.dir, `newer-${next++}.db`);
    const first = new SqliteStore(file);
    await first.migrate();
    await first.close();
    onFile(file, (db) => db.prepare("INSERT INTO migrations VALUES (999, 'from the future', 0)").run(), false);
    const store = new SqliteStore(file);
    try {
      await assert.rejects(
        store.migrate(),
        (error: unknown) =>
          error instanceof FrancaError &&
          error.code === ErrorCode.StoreError &&
          /schema version 999, newer than this Franca knows \(\d+\)/.test(error.message),
      );
    } finally {
      await store.close();
    }
  });
});

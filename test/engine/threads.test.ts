import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { describeRun } from "../../src/cli/summary.ts";
import { copyEncoding } from "../../src/connectors/postgres/copy-text.ts";
import type { Row } from "../../src/core/binding.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import type { Hub } from "../../src/core/hub.ts";
import type { RunContext } from "../../src/engine/context.ts";
import { Engine, type EngineOptions } from "../../src/engine/engine.ts";
import { TransformThreads } from "../../src/engine/threads/pool.ts";
import { createLogger, type Logger } from "../../src/observe/logger.ts";
import type { SqliteStore } from "../../src/store/sqlite/store.ts";
import type { RunCounts } from "../../src/store/types.ts";
import { openStore, tempDir } from "../support/fixtures.ts";

// One schema for this file (the hub module reads it when imported, here and in the threads).
const schema = `franca_threads_${randomBytes(4).toString("hex")}`;
process.env.FRANCA_THREADS_SCHEMA = schema;
const hubModule = fileURLToPath(new URL("../support/threads-hub.ts", import.meta.url));
const {
  default: hub,
  pauses,
  threadsSetupSql,
  threadsUrl,
} = (await import(hubModule)) as typeof import("../support/threads-hub.ts") & { default: Hub };

const rows = 1000;
const emptyNames = [150, 160, 170, 180, 190];
const db = new pg.Client({ connectionString: threadsUrl });

before(async () => {
  await db.connect();
  for (const statement of threadsSetupSql(rows, emptyNames)) await db.query(statement);
});

after(async () => {
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

async function emptyTargets(): Promise<void> {
  await db.query(`TRUNCATE ${schema}.dst, ${schema}.audit`);
}

/** A logger that keeps the lines it writes: the warnings and notices a test looks for. */
function keptLogger(level: "info" | "warn"): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = { write: (line: string) => void lines.push(line) } as never;
  return { logger: createLogger({ level, destination }), lines };
}

/**
 * An engine on `store` (the test hub; one thread of its module unless `threads` says otherwise, null: none) for
 * `work`, closed after it.
 */
async function withEngine<T>(
  store: SqliteStore,
  dir: string,
  options: { threads?: EngineOptions["threads"] | null; logger?: Logger },
  work: (engine: Engine) => Promise<T>,
): Promise<T> {
  const threads = options.threads === undefined ? { module: hubModule, count: 1 } : options.threads;
  await using engine = await Engine.open({
    hub,
    baseDir: dir,
    store,
    ...(threads === null ? {} : { threads }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  return await work(engine);
}

/** The same on a new store in a new directory, closed after `work`. */
async function withNewEngine<T>(
  options: { threads?: EngineOptions["threads"] | null; logger?: Logger },
  work: (engine: Engine, store: SqliteStore) => Promise<T>,
): Promise<T> {
  using temp = tempDir();
  await using store = await openStore(temp.dir);
  return await withEngine(store, temp.dir, options, (engine) => work(engine, store));
}

/** Records loaded per target. */
function loadedOf(counts: RunCounts): Record<string, number> {
  return Object.fromEntries(Object.entries(counts.targets).map(([name, target]) => [name, target.loaded]));
}

/** What the targets hold, lineage apart (it names the run). */
async function targets(): Promise<{ dst: unknown[]; audit: unknown[] }> {
  const dst = await db.query(
    `SELECT id, name, amount::text, updated_at::text, region, tag, doc::text FROM ${schema}.dst ORDER BY id`,
  );
  const audit = await db.query(`SELECT id, region FROM ${schema}.audit ORDER BY id`);
  return { dst: dst.rows, audit: audit.rows };
}

interface Ran {
  status: string;
  threaded: unknown;
  problems: { key: string; target: string | null; code?: string; path?: string }[];
  /** The target problems' messages, `key: message`, in key order. */
  refusals: string[];
  loaded: Record<string, number>;
  lineage: string;
  lookups: unknown;
  /** The run as `franca runs show` prints it. */
  described: string;
}

/** Runs `flow` on a new store, with transform threads (waited for, so that they take the chunks) or without. */
async function runFlow(flow: string, threads: number | string): Promise<Ran> {
  const settings =
    threads === 0 ? null : typeof threads === "string" ? { module: threads } : { module: hubModule, count: threads };
  return withNewEngine({ threads: settings }, async (engine, store) => {
    if (typeof threads === "number" && threads > 0) assert.equal(await engine.threadsReady(), true);
    const summary = await engine.run(flow, { trigger: "test" });
    const quarantined = await store.records(summary.run.id, { status: "quarantined", limit: 100 });
    const problems = quarantined.map((outcome) => ({
      key: outcome.key,
      target: outcome.target,
      ...(outcome.code === undefined ? {} : { code: outcome.code }),
      ...(outcome.path === undefined ? {} : { path: outcome.path }),
    }));
    const lineage = (await db.query(`SELECT lineage FROM ${schema}.dst WHERE id = '1'`)).rows[0]?.lineage;
    return {
      status: summary.run.status,
      threaded: summary.run.stats.threaded,
      problems,
      refusals: quarantined
        .filter((outcome) => outcome.target !== null)
        .map((outcome) => `${outcome.key}: ${outcome.message}`)
        .sort(),
      loaded: loadedOf(summary.counts),
      lineage: `${lineage}`.replace(`@${summary.run.id}/`, "@RUN/"),
      lookups: summary.run.stats.lookups,
      described: describeRun(summary.run, summary.counts),
    };
  });
}

/** Target rows without their tag (a record's place in its run of mapping calls: a piece's on a thread, a chunk's here). */
const untagged = (rows: unknown[]) => rows.map((row) => ({ ...(row as object), tag: undefined }));

/** The target row of an id. */
const rowWithId = (rows: unknown[], id: string) => rows.find((row) => (row as { id: string }).id === id) as Row;

/** The flow run on a transform thread, then on the engine's thread, each into empty targets: both runs and targets. */
async function bothWays(flow: string) {
  await emptyTargets();
  const threaded = await runFlow(flow, 1);
  const onThreads = await targets();
  await emptyTargets();
  const inline = await runFlow(flow, 0);
  const onMain = await targets();
  return { threaded, onThreads, inline, onMain };
}

describe("transform threads", () => {
  it("load what the engine's own thread loads: records, problems with their paths, lookups, lineage", async () => {
    const { threaded, onThreads, inline, onMain } = await bothWays("items");

    assert.equal(onThreads.dst.length, rows - emptyNames.length);
    assert.deepEqual(onThreads, onMain);
    // a lookup's Buffer is a Buffer on the threads too (structured clone makes it a plain Uint8Array)
    assert.equal((onThreads.dst[0] as { tag: string }).tag, Buffer.from("south").toString("base64"));
    // the threads took every chunk: they were ready before the run
    assert.equal(threaded.threaded, rows);
    assert.equal(inline.threaded, undefined);
    assert.match(threaded.described, /1,000 mapped on transform threads/);
    assert.doesNotMatch(inline.described, /transform threads/);
    const expectedProblems = [
      ...emptyNames.map((id) => ({ key: String(id), target: null, code: ErrorCode.ValidationFailed, path: "/name" })),
      // audit's mapping throws for ids ending in 13 (emptyNames are not among them)
      ...Array.from({ length: rows }, (_, i) => String(i + 1))
        .filter((id) => id.endsWith("13"))
        .map((key) => ({ key, target: "audit", code: ErrorCode.MappingFailed })),
    ];
    const byKey = (a: { key: string; target: string | null }, b: { key: string; target: string | null }) =>
      `${a.key}/${a.target}`.localeCompare(`${b.key}/${b.target}`);
    assert.deepEqual([...threaded.problems].sort(byKey), [...expectedProblems].sort(byKey));
    assert.deepEqual([...inline.problems].sort(byKey), [...expectedProblems].sort(byKey));
    assert.deepEqual(threaded.loaded, inline.loaded);
    assert.equal(threaded.lineage, "crm:1@RUN/0");
    assert.equal(inline.lineage, "crm:1@RUN/0");
    // the threads' lookups went through the engine's run cache: 5 regions asked once each
    const lookups = threaded.lookups as Record<string, { calls: number; requests: number }>;
    assert.equal(lookups.regionOf?.calls, rows);
    assert.equal(lookups.regionOf?.requests, 5);
  });

  it("stop at the record that crosses the failure budget, as the engine's own thread does", async () => {
    for (const threads of [1, 0]) {
      await emptyTargets();
      const ran = await runFlow("strict", threads);
      assert.equal(ran.status, "failed");
      // maxFailed 2: the third empty name stops the run; the two after it are never judged
      assert.deepEqual(
        ran.problems.map((problem) => problem.key).sort(),
        emptyNames.slice(0, 3).map(String),
        `threads: ${threads}`,
      );
    }
  });

  it("keep two chunks per thread in hand: two threads map four chunks at once, the engine's thread two", async () => {
    // each chunk's mapping first waits on a lookup of its own, until `most` of them wait (or 10 s), then 200 ms: the
    // most running at once is how many chunks were being mapped at once (the flow's transformConcurrency, 2, or two
    // per thread when threads map them)
    for (const [threads, most] of [
      [2, 4],
      [1, 2],
      [0, 2],
    ] as const) {
      await emptyTargets();
      pauses.expect(most);
      const ran = await runFlow("paused", threads);
      assert.equal(ran.status, "partial", `threads: ${threads}`);
      assert.equal(ran.threaded, threads === 0 ? undefined : rows, `threads: ${threads}`);
      assert.equal(pauses.most, most, `threads: ${threads}`);
      assert.equal((await targets()).dst.length, rows - emptyNames.length);
    }
  });

  it("chunks of more rows than a piece: decoded and mapped a piece at a time, the same outcome as on the engine's thread", async () => {
    const { threaded, onThreads, inline, onMain } = await bothWays("pieces");
    // the tag is the record's place in its run of mapping calls: a piece's on the thread, a chunk's here
    const most = (rows: unknown[]) => Math.max(...rows.map((row) => Number((row as { tag: string }).tag)));
    assert.equal(most(onThreads.dst), 100);
    assert.equal(most(onMain.dst), 250);
    assert.deepEqual(untagged(onThreads.dst), untagged(onMain.dst));
    assert.equal(onThreads.dst.length, rows - emptyNames.length);
    assert.equal(threaded.threaded, rows);
    assert.equal(threaded.status, "partial");
    assert.deepEqual(threaded.loaded, inline.loaded);
    const keys = (ran: Ran) => ran.problems.map((problem) => problem.key).sort();
    assert.deepEqual(keys(threaded), emptyNames.map(String));
    assert.deepEqual(keys(inline), emptyNames.map(String));
  });

  it("a chunk whose later piece repeats keys of an earlier one: transformed whole on the thread, the later row winning", async () => {
    const { threaded, onThreads, inline, onMain } = await bothWays("repeats");
    assert.equal(threaded.threaded, rows);
    assert.deepEqual(onThreads, onMain);
    assert.equal(onThreads.dst.length, 130);
    // every key's row is its last source row's: key 91 is ids 90, 220, … 1000's
    assert.equal(rowWithId(onThreads.dst, "91").tag, "1000");
    assert.deepEqual(threaded.loaded, inline.loaded);
    assert.deepEqual(threaded.problems, inline.problems);
  });

  it("a chunk whose pieces' rows were prepared for different columns: its rows encoded where they are written, landing alike", async () => {
    const { threaded, onThreads, inline, onMain } = await bothWays("gaps");
    assert.equal(threaded.threaded, rows);
    // the tag is the record's place in its run of mapping calls, which differs (see above): compared untagged
    assert.deepEqual(untagged(onThreads.dst), untagged(onMain.dst));
    assert.equal(rowWithId(onThreads.dst, "400").doc, null);
    assert.match(String(rowWithId(onThreads.dst, "451").doc), /^\{"i": 451, /);
    assert.deepEqual(threaded.loaded, inline.loaded);
  });

  it("after a chunk whose pieces did not join, the rest of that run's chunks are prepared whole on the thread; the next run streams again", async () => {
    await emptyTargets();
    using temp = tempDir();
    await using store = await openStore(temp.dir);
    /** The most a target mapping call's place in its run of calls (its `tag`) reached, over rows from..to. */
    const mostTag = async (from: number, to: number): Promise<number> => {
      const found = await db.query(`SELECT max(tag::int) AS most FROM ${schema}.dst WHERE id::int BETWEEN $1 AND $2`, [
        from,
        to,
      ]);
      return Number(found.rows[0].most);
    };
    // the last 400 source rows changed after the first run, so that the second reads them only (none lacks a field)
    const later = (sign: string) =>
      db.query(`UPDATE ${schema}.src SET updated_at = updated_at ${sign} interval '1 day' WHERE id > 600`);
    let moved = false;
    try {
      await withEngine(store, temp.dir, {}, async (engine) => {
        assert.equal(await engine.threadsReady(), true);
        // chunks of 50, 100, 200, 250, 250, 150 rows: the 4th (ids 351–600) holds the rows without a doc
        const first = await engine.run("gapsCalls", { trigger: "test" });
        assert.equal(first.run.stats.threaded, rows);
        assert.equal(await mostTag(1, 350), 100, "streamed: a piece's records mapped together");
        assert.equal(await mostTag(851, 1000), 150, "prepared whole: the chunk's 150 records mapped together");
        await later("+");
        moved = true;
        // chunks of 50, 100, 200, 50 rows
        const second = await engine.run("gapsCalls", { trigger: "test" });
        assert.equal(second.counts.targets.gappyCalls?.loaded, 400);
        assert.equal(await mostTag(601, 1000), 100, "streamed again: the chunk of 200 rows in two pieces");
      });
    } finally {
      // the source as the other tests expect it, whatever failed
      if (moved) await later("-");
    }
  });

  it("a target mapping failing in every piece of a chunk: each failure filed for its own record, the rest landing", async () => {
    const { threaded, onThreads, inline, onMain } = await bothWays("picky");
    assert.equal(threaded.threaded, rows);
    assert.deepEqual(untagged(onThreads.dst), untagged(onMain.dst));
    const refused = (ran: Ran) =>
      ran.problems
        .filter((problem) => problem.target !== null)
        .map((problem) => problem.key)
        .sort((a, b) => Number(a) - Number(b));
    // 77, 177, … 977, of which none has an empty name
    assert.deepEqual(
      refused(threaded),
      Array.from({ length: 10 }, (_, i) => String(i * 100 + 77)),
    );
    assert.deepEqual(refused(threaded), refused(inline));
    // each with its own mapping's error, which the thread passed on by the record's index in the chunk
    assert.ok(threaded.refusals.includes("477: picky.fromCanonical threw: no 477 here"), threaded.refusals.join("; "));
    assert.deepEqual(threaded.refusals, inline.refusals);
    assert.equal(onThreads.dst.length, rows - emptyNames.length - 10);
    assert.deepEqual(threaded.loaded, inline.loaded);
  });

  it("decoded rows (a source read without COPY): sent to the threads as their staged text, the same outcome as on the engine's thread", async () => {
    const { threaded, onThreads, inline, onMain } = await bothWays("decoded");
    assert.equal(threaded.threaded, rows);
    assert.equal(inline.threaded, undefined);
    assert.equal(onThreads.dst.length, rows - emptyNames.length);
    assert.deepEqual(onThreads, onMain);
    // the bytea came back a Buffer on the thread (staged tagged), as it is on the engine's thread
    const first = onThreads.dst[0] as { name: string; tag: string };
    assert.equal(first.tag, Buffer.from(first.name).toString("base64"));
    assert.equal(threaded.status, "partial");
    assert.deepEqual(threaded.loaded, inline.loaded);
    const keys = (ran: Ran) => ran.problems.map((problem) => `${problem.key}/${problem.target}`).sort();
    assert.deepEqual(keys(threaded), keys(inline));
    assert.ok(keys(threaded).includes("150/null"));
    const lookups = threaded.lookups as Record<string, { calls: number; requests: number }>;
    assert.equal(lookups.regionOf?.calls, rows);
  });

  it("a flow whose mappings wait: its chunks mapped whole on the thread once it has seen that, so lookups go out together", async () => {
    await emptyTargets();
    const threaded = await runFlow("waits", 1);
    const { dst } = await targets();
    assert.equal(threaded.threaded, rows);
    assert.equal(dst.length, rows - emptyNames.length);
    // chunks of 50, 100, 200, 250, 250, 150 rows: the first two are one piece each, the 200 are a piece of 100 that
    // waited then the rest in one; later chunks are mapped whole
    assert.equal(Math.max(...dst.map((row) => Number((row as { tag: string }).tag))), 250);
  });

  it("a hub module the threads cannot load: the run transforms on the engine's thread, with a warning", async () => {
    await emptyTargets();
    using elsewhere = tempDir();
    const { logger, lines } = keptLogger("warn");
    const threads = { module: join(elsewhere.dir, "missing-config.ts"), count: 1 };
    await withNewEngine({ threads, logger }, async (engine) => {
      assert.equal(await engine.threadsReady(), false);
      const summary = await engine.run("items", { trigger: "test" });
      assert.equal(summary.run.status, "partial");
      assert.equal(summary.run.stats.threaded, undefined);
      assert.equal(summary.counts.targets[`erp.Item`]?.loaded, rows - emptyNames.length);
      assert.ok(lines.some((line) => line.includes("transform threads unavailable")));
    });
  });

  /**
   * Runs `items` on threads that decline its chunks (`threads`: the engine's thread settings) and checks the run is
   * what it is without threads, with one warning matching `reason`, however many chunks the thread was offered.
   */
  async function assertDeclined(threads: EngineOptions["threads"] | undefined, reason: RegExp): Promise<void> {
    await emptyTargets();
    const alone = await runFlow("items", 0);
    const aloneTargets = await targets();
    await emptyTargets();
    const { logger, lines } = keptLogger("warn");
    await withNewEngine({ ...(threads === undefined ? {} : { threads }), logger }, async (engine) => {
      // the module loads: the threads are ready, and only the chunks they are given show that they cannot take them
      assert.equal(await engine.threadsReady(), true);
      const summary = await engine.run("items", { trigger: "test" });
      assert.equal(summary.run.status, alone.status);
      assert.equal(summary.run.stats.threaded, undefined);
      assert.deepEqual(loadedOf(summary.counts), alone.loaded);
      assert.deepEqual(await targets(), aloneTargets);
      const declined = lines.filter((line) => line.includes("declined a chunk"));
      assert.equal(declined.length, 1);
      assert.match(declined[0] as string, reason);
    });
  }

  it("a hub module without the run's flow: its chunks are declined and transformed on the engine's thread", async () => {
    const module = fileURLToPath(new URL("../support/threads-foreign-hub.ts", import.meta.url));
    await assertDeclined({ module, count: 1 }, /has no flow 'items'/);
  });

  it("a chunk's transform that cannot cross threads: declined, the flow transformed on the engine's thread", async () => {
    process.env.FRANCA_THREADS_UNCLONABLE = "1"; // the threads' erp driver prepares rows holding a function
    try {
      await assertDeclined(undefined, /cannot be passed back from a transform thread: .*could not be cloned/);
    } finally {
      delete process.env.FRANCA_THREADS_UNCLONABLE;
    }
  });

  it("a thread that dies mid-run: its chunks and the rest are transformed on the engine's thread, nothing lost", async () => {
    await emptyTargets();
    process.env.FRANCA_THREADS_EXIT_AT = "700"; // the thread mapping row 700 exits (threads see it when they start)
    try {
      await withNewEngine({}, async (engine) => {
        assert.equal(await engine.threadsReady(), true);
        const summary = await engine.run("items", { trigger: "test" });
        assert.equal(summary.run.status, "partial");
        assert.equal(summary.counts.targets["erp.Item"]?.loaded, rows - emptyNames.length);
        // the thread took the first chunks, then died; the engine's thread did the rest, row 700 included
        const threaded = Number(summary.run.stats.threaded);
        assert.ok(threaded > 0 && threaded < 700, `threaded ${threaded}`);
        assert.equal((await targets()).dst.length, rows - emptyNames.length);
      });
    } finally {
      delete process.env.FRANCA_THREADS_EXIT_AT;
    }
  });

  for (const [flow, what] of [
    ["items", "source text decoded again"],
    ["decoded", "decoded rows parsed again from their staged text"],
  ] as const) {
    it(`a run cancelled midway resumes from its staged chunks, ${what} on the threads (${flow})`, async () => {
      await emptyTargets();
      using temp = tempDir();
      await using store = await openStore(temp.dir);
      // dst is locked: the run extracts and transforms, but loads nothing there until it is cancelled
      const locker = new pg.Client({ connectionString: threadsUrl });
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${schema}.dst IN ACCESS EXCLUSIVE MODE`);
      const controller = new AbortController();
      let runId: number;
      try {
        runId = await withEngine(store, temp.dir, {}, async (first) => {
          assert.equal(await first.threadsReady(), true);
          const summary = await first.run(flow, {
            trigger: "test",
            signal: controller.signal,
            onProgress: (progress) => {
              if (progress.transformed >= 500) controller.abort();
            },
          });
          assert.equal(summary.run.status, "cancelled");
          assert.ok(Number(summary.run.stats.threaded) > 0, "the threads transformed chunks before the cancel");
          return summary.run.id;
        });
      } finally {
        await locker.query("ROLLBACK");
        await locker.end();
      }
      assert.equal((await targets()).dst.length, 0);
      const states = await store.chunkStates(runId);
      assert.ok(
        states.some((chunk) => !chunk.transformed),
        "chunks extracted before the cancel wait to be transformed from their staged text",
      );
      await withEngine(store, temp.dir, {}, async (second) => {
        assert.equal(await second.threadsReady(), true);
        const resumed = await second.resume(runId);
        assert.equal(resumed.run.status, "partial");
        assert.equal(resumed.counts.targets["erp.Item"]?.loaded, rows - emptyNames.length);
        assert.equal(resumed.counts.quarantined, emptyNames.length);
        assert.equal((await targets()).dst.length, rows - emptyNames.length);
        // every row of both runs was mapped on a thread, the chunks read back from the store included
        assert.equal(resumed.run.stats.threaded, rows);
      });
    });
  }

  it("start only for a run of more than a few chunks: a small one is done on the engine's thread", async () => {
    await emptyTargets();
    using temp = tempDir();
    const { logger, lines } = keptLogger("info");
    const store = await openStore(temp.dir);
    const started = () => lines.filter((line) => line.includes("starting transform threads")).length;
    try {
      await withEngine(store, temp.dir, { logger }, async (engine) => {
        const first = await engine.run("items", { trigger: "test" });
        assert.equal(first.counts.extracted, rows);
        assert.equal(started(), 1, "a run of 1,000 records (5 chunks) starts them");
        // the next runs read only what changed since: 300 records (3 chunks), then none
        await db.query(`UPDATE ${schema}.src SET updated_at = updated_at + interval '1 day' WHERE id <= 300`);
        const small = await engine.run("items", { trigger: "test" });
        assert.equal(small.counts.extracted, 300);
        assert.equal(small.run.stats.threaded, undefined);
        const none = await engine.run("items", { trigger: "test" });
        assert.equal(none.counts.extracted, 0);
      });
    } finally {
      await store.close();
    }
    // one engine, one start; and an engine whose runs were all small never starts them
    assert.equal(started(), 1);
    lines.length = 0;
    const again = await openStore(temp.dir);
    try {
      await withEngine(again, temp.dir, { logger }, async (quiet) => {
        await db.query(`UPDATE ${schema}.src SET updated_at = updated_at + interval '1 day' WHERE id <= 100`);
        const tiny = await quiet.run("items", { trigger: "test" });
        assert.equal(tiny.counts.extracted, 100);
      });
    } finally {
      await again.close();
    }
    assert.equal(started(), 0, "100 records: no thread started");
  });
});

describe("the transform threads' pool", () => {
  const encoding = copyEncoding([
    { name: "id", type: 20 },
    { name: "name", type: 25 },
    { name: "amount", type: 1700 },
    { name: "updated_at", type: 1184 },
    { name: "doc", type: 3802 },
  ]);
  const chunk = (ids: number[]) => ({
    encoding,
    text: ids.map((id) => `${id}\tname ${id}\t1.5\t2024-01-01 00:00:00+00\t{}\n`).join(""),
    count: ids.length,
  });
  /** Just what the pool reads of a run: its targets (one, described after `describeMs`), signal, logger, lookups. */
  function runOf(id: number, describeMs?: number): RunContext {
    const targets =
      describeMs === undefined
        ? []
        : [
            {
              binding: { name: "erp.Item", system: { driver: { prepare: () => ({}) } }, options: {} },
              connection: {
                describeTarget: () => new Promise((done) => setTimeout(() => done({ columns: [] }), describeMs)),
              },
              policy: {
                execute: async (fn: (signal: AbortSignal) => Promise<unknown>) => ({
                  value: await fn(never),
                  attempts: 1,
                }),
              },
            },
          ];
    return {
      run: { id },
      flow: { name: "items" },
      targets,
      signal: new AbortController().signal,
      logger: createLogger({ level: "silent" }),
      lookups: { call: async () => "north" },
    } as unknown as RunContext;
  }
  const never = new AbortController().signal;

  it("hand back a chunk that waited for its target's description while its thread died", async () => {
    process.env.FRANCA_THREADS_EXIT_AT = "5"; // the thread mapping row 5 exits
    const threads = new TransformThreads({
      module: hubModule,
      count: 1,
      logger: createLogger({ level: "silent" }),
      lookups: new Map(),
    });
    try {
      assert.equal(await threads.ready(), true);
      const waiting = threads.remote(runOf(2, 300))?.(0, chunk([1, 2, 3])); // describes its target for 300 ms
      const dying = threads.remote(runOf(1))?.(0, chunk([4, 5, 6]));
      assert.equal(await dying, undefined, "the chunk whose thread died goes back to its run");
      const late = await Promise.race([waiting, sleep(5000).then(() => "still waiting")]);
      assert.equal(late, undefined, "the one that was describing its target goes back too, instead of waiting forever");
    } finally {
      delete process.env.FRANCA_THREADS_EXIT_AT;
      await threads.close();
    }
  });

  it("keep a process alive while they start, and not once they are idle", () => {
    const child = spawnSync(
      process.execPath,
      [fileURLToPath(new URL("../support/threads-idle-child.ts", import.meta.url))],
      {
        encoding: "utf8",
        timeout: 30_000,
      },
    );
    assert.equal(child.stdout.trim(), "ready");
    assert.equal(child.status, 0, `exit status ${child.status}, signal ${child.signal}: ${child.stderr}`);
  });
});

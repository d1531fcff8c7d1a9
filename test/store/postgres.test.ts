import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { PgBoss } from "pg-boss";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import type { RecordOutcome } from "../../src/core/record.ts";
import { openStore } from "../../src/store/open.ts";
import { migrations } from "../../src/store/postgres/migrations.ts";
import { PostgresStore } from "../../src/store/postgres/store.ts";
import type { FinishRun, NewRun } from "../../src/store/types.ts";
import { tempDir } from "../support/fixtures.ts";
import { until } from "../support/poll.ts";
import { storeContract } from "./contract.ts";

const url = "postgres://postgres@127.0.0.1:5432/test";
const prefix = `franca_t${randomBytes(4).toString("hex")}`;
const schemas: string[] = [];
/** A schema of its own for one store (or several sharing it), dropped after the file's tests. */
function newSchema(): string {
  const schema = `${prefix}_${schemas.length}`;
  schemas.push(schema);
  return schema;
}

after(async () => {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
});

async function openNew(schema = newSchema()): Promise<PostgresStore> {
  const store = new PostgresStore(url, { schema });
  await store.migrate();
  return store;
}

const isCode = (code: string) => (error: unknown) => error instanceof FrancaError && error.code === code;

const newRun = (flow: string, owner = "host:1:a", now = 1_000): NewRun => ({
  flow,
  kind: "flow",
  trigger: "test",
  targets: ["t1"],
  owner,
  now,
});

/** A chunk's load into a target: `keys` loaded (hash "h"), and `problems`. */
const load = (keys: string[], problems: RecordOutcome[] = []) => ({
  loaded: keys,
  hashes: keys.map(() => "h"),
  unchanged: [],
  problems,
  attempts: 1,
});

storeContract("PostgreSQL", () => openNew());

describe("PostgreSQL store", () => {
  it("lets exactly one of two stores (separate pools) start a flow they both start at once", async () => {
    const schema = newSchema();
    const a = await openNew(schema);
    const b = new PostgresStore(url, { schema, poolSize: 4 });
    try {
      for (let round = 0; round < 20; round++) {
        const flow = `race-${round}`;
        const results = await Promise.allSettled([
          a.startRun(newRun(flow, "host:1:a")),
          b.startRun(newRun(flow, "host:2:b")),
        ]);
        const won = results.filter((result) => result.status === "fulfilled");
        const lost = results.filter((result) => result.status === "rejected");
        assert.equal(won.length, 1, `round ${round}: one winner`);
        assert.ok(isCode(ErrorCode.RunLocked)((lost[0] as PromiseRejectedResult).reason), "the other is RUN_LOCKED");
        assert.equal((await a.listRuns({ flow, status: "running" })).length, 1);
      }
      // claiming: two stores resume the same failed run at once
      const run = await a.startRun(newRun("claimed"));
      await a.finishRun(run.id, "host:1:a", { status: "failed" }, 2_000);
      const claims = await Promise.allSettled([
        a.claimRun(run.id, "host:1:a", 3_000),
        b.claimRun(run.id, "host:2:b", 3_000),
      ]);
      assert.equal(claims.filter((claim) => claim.status === "fulfilled").length, 1);
      const lost = claims.find((claim) => claim.status === "rejected") as PromiseRejectedResult;
      assert.ok(isCode(ErrorCode.RunLocked)(lost.reason));
      assert.equal((await b.getRun(run.id))?.stats.resumes, 1, "claimed once");
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("lets exactly one of two processes start each flow both start at once", async () => {
    const schema = newSchema();
    await using store = await openNew(schema);
    const flows = 40;
    const child = (owner: string) => {
      // the child connects, says so, waits for the go, then starts every flow at once
      const code = `
        import { PostgresStore } from ${JSON.stringify(new URL("../../src/store/postgres/store.ts", import.meta.url).href)};
        const [url, schema, owner, flows] = process.argv.slice(1);
        const store = new PostgresStore(url, { schema });
        await store.executeSql("SELECT 1");
        process.stdout.write("ready\\n");
        await new Promise((resolve) => process.stdin.once("data", resolve));
        const results = await Promise.all(Array.from({ length: Number(flows) }, (_, i) =>
          store.startRun({ flow: "flow-" + i, kind: "flow", trigger: "test", targets: [], owner, now: Date.now() }).then(
            () => "won",
            (error) => { if (error.code !== "RUN_LOCKED") throw error; return "locked"; })));
        await store.close();
        process.stdout.write(JSON.stringify(results) + "\\n");
        process.exit(0);`;
      const proc = spawn(process.execPath, ["--input-type=module", "-e", code, url, schema, owner, String(flows)], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      let output = "";
      const ready = new Promise<void>((resolve) => {
        proc.stdout.on("data", (data: Buffer) => {
          output += data.toString();
          if (output.includes("ready\n")) resolve();
        });
      });
      const done = new Promise<string[]>((resolve, reject) => {
        // "close", not "exit": a process can have exited before its last output was read from the pipe
        proc.on("close", (exitCode) => {
          if (exitCode !== 0) reject(new Error(`child ${owner} exited with ${exitCode}`));
          else resolve(JSON.parse(output.slice(output.indexOf("ready\n") + 6)) as string[]);
        });
      });
      return { proc, ready, done };
    };
    const children = [child("one:1:a"), child("two:2:b")];
    await Promise.all(children.map((item) => item.ready));
    for (const item of children) item.proc.stdin.end("go\n");
    const [one, two] = (await Promise.all(children.map((item) => item.done))) as [string[], string[]];
    for (let i = 0; i < flows; i++) {
      assert.deepEqual([one[i], two[i]].sort(), ["locked", "won"], `flow-${i}: exactly one process won`);
    }
    const running = await store.listRuns({ status: "running", limit: 1000 });
    assert.equal(running.length, flows);
    assert.equal(new Set(running.map((run) => run.flow)).size, flows, "one running run per flow");
  });

  it("never holds two running runs of a flow, even when written around the store", async () => {
    await using store = await openNew();
    await store.startRun(newRun("f"));
    await assert.rejects(
      store.executeSql(
        `INSERT INTO "${store.schema}".runs (flow, kind, trigger, status, targets, started_at) VALUES ('f', 'flow', 'x', 'running', '[]', 1)`,
      ),
      (error: unknown) => isCode(ErrorCode.RunLocked)(error) && /flow 'f' already has a run/.test(String(error)),
    );
  });

  it("keeps a message holding NUL, which PostgreSQL text cannot hold, as U+FFFD", async () => {
    await using store = await openNew();
    const run = await store.startRun(newRun("f"));
    await store.saveOutcomes(run.id, [
      { key: "k", target: null, status: "quarantined", chunk: 0, attempts: 1, message: "bad byte \0 here" },
    ]);
    assert.equal((await store.records(run.id))[0]?.message, "bad byte \uFFFD here");
  });

  it("tells a chunk loaded into every target with no problem from one that has a problem or a load to go", async () => {
    await using store = await openNew();
    const run = await store.startRun({ ...newRun("f"), targets: ["t1", "t2"] });
    const problem = (key: string, target: string | null): RecordOutcome => ({
      key,
      target,
      status: "quarantined",
      chunk: 0,
      attempts: 1,
      message: `${key} refused`,
    });
    for (const seq of [0, 1, 2]) await store.saveExtracted(run.id, seq, [seq], 2, 1);
    const clean = (seq: number) => store.chunkLoadedClean(run.id, seq, ["t1", "t2"]);
    assert.equal(await clean(0), false, "not transformed");
    await store.saveCanonical(run.id, 0, 2, [], 2);
    await store.saveCanonical(run.id, 1, 2, [], 2);
    await store.saveCanonical(run.id, 2, 1, [problem("c", null)], 2);
    await store.saveLoad(run.id, 0, "t1", load(["a", "b"]), 3);
    assert.equal(await clean(0), false, "t2 has not loaded it");
    await store.saveLoad(run.id, 0, "t2", load(["a", "b"]), 3);
    assert.equal(await clean(0), true);
    await store.saveLoad(run.id, 1, "t1", load(["a"], [problem("b", "t1")]), 3);
    await store.saveLoad(run.id, 1, "t2", load(["a", "b"]), 3);
    assert.equal(await clean(1), false, "t1 refused a record");
    for (const target of ["t1", "t2"]) await store.saveLoad(run.id, 2, target, load(["a"]), 3);
    assert.equal(await clean(2), false, "the transform quarantined a record");
    assert.equal(await clean(3), false, "no such chunk");
  });

  it("keeps a chunk's loads pending per target from its extraction to its load, with its keys' digest once transformed", async () => {
    await using store = await openNew();
    const run = await store.startRun({ ...newRun("f"), targets: ["t1", "t2"] });
    for (const seq of [0, 1, 2]) await store.expectLoads(run.id, seq, ["t1", "t2"]);
    await store.savePendingKeys(run.id, 0, ["t1", "t2"], Uint8Array.of(1, 2, 3, 4));
    const before = async (target: string, seq: number) =>
      (await store.pendingLoadsBefore(run.id, target, seq)).map((load) => [
        load.seq,
        load.digests === null ? null : [...load.digests],
      ]);
    assert.deepEqual(await before("t1", 2), [
      [0, [1, 2, 3, 4]],
      [1, null],
    ]);
    assert.deepEqual(await before("t1", 0), []);
    await store.loadDone(run.id, 0, "t1");
    assert.deepEqual(await before("t1", 2), [[1, null]], "chunk 0 is loaded into t1");
    assert.deepEqual(await before("t2", 2), [
      [0, [1, 2, 3, 4]],
      [1, null],
    ]);
    // extracted again (a chunk redone): its digest stays; transformed again: pending again, with the new digest
    await store.expectLoads(run.id, 0, ["t1", "t2"]);
    assert.deepEqual(await before("t2", 1), [[0, [1, 2, 3, 4]]]);
    await store.savePendingKeys(run.id, 0, ["t1", "t2"], Uint8Array.of(9, 9, 9, 9));
    assert.deepEqual(await before("t1", 1), [[0, [9, 9, 9, 9]]]);
    // a replay of the flow leaves them; a new run of the flow supersedes the run, and its pending loads go
    await store.finishRun(run.id, "host:1:a", { status: "failed" }, 2);
    const replay = await store.startRun({ ...newRun("f"), kind: "replay", parentId: run.id });
    assert.equal((await store.pendingLoadsBefore(run.id, "t2", 3)).length, 3);
    await store.finishRun(replay.id, "host:1:a", { status: "succeeded" }, 3);
    await store.startRun(newRun("f"));
    assert.deepEqual(await store.pendingLoadsBefore(run.id, "t2", 3), []);
  });

  it("counts a run's spent failure budget and its completion with the loads still pending left open", async () => {
    await using store = await openNew();
    const run = await store.startRun(newRun("f"));
    const failed = (key: string, target: string | null): RecordOutcome => ({
      key,
      target,
      status: "failed",
      chunk: 0,
      attempts: 3,
      message: `${key} timed out`,
    });
    for (const seq of [0, 1]) {
      await store.saveExtracted(run.id, seq, [seq], 10, 1);
      await store.expectLoads(run.id, seq, ["t1"]);
    }
    await store.markExtractDone(run.id);
    await store.saveCanonical(run.id, 0, 9, [{ ...failed("a", null), status: "quarantined" }], 2);
    await store.saveCanonical(run.id, 1, 10, [], 2);
    assert.deepEqual(await store.budgetSpent(run.id), { processed: 20, problems: 1 });
    // chunk 0's load failed on its system: its records are in the ledger while pg-boss retries the job
    await store.saveLoad(run.id, 0, "t1", load([], [failed("b", "t1"), failed("c", "t1")]), 3);
    assert.deepEqual(await store.budgetSpent(run.id), { processed: 20, problems: 1 }, "a load to retry is not spent");
    await store.saveLoad(run.id, 1, "t1", load(["d"]), 3);
    await store.loadDone(run.id, 1, "t1");
    assert.equal(await store.runComplete(run.id, ["t1"]), false, "chunk 0's load is still pending");
    // the retry ends with one record failed again: the job is done, the run has nothing more to do
    await store.saveLoad(run.id, 0, "t1", load(["b"], [failed("c", "t1")]), 4);
    await store.loadDone(run.id, 0, "t1");
    assert.deepEqual(await store.budgetSpent(run.id), { processed: 20, problems: 2 });
    assert.equal(await store.runComplete(run.id, ["t1"]), true);
  });

  it("takes a pending load whose load is recorded with no failure for done (a worker from before pending loads)", async () => {
    await using store = await openNew();
    const run = await store.startRun(newRun("f"));
    for (const seq of [0, 1]) {
      await store.saveExtracted(run.id, seq, [seq], 1, 1);
      await store.expectLoads(run.id, seq, ["t1"]);
      await store.saveCanonical(run.id, seq, 1, [], 2);
    }
    await store.markExtractDone(run.id);
    // an older worker transformed and loaded chunk 0 without giving it a digest or ending its pending load
    await store.saveLoad(
      run.id,
      0,
      "t1",
      { loaded: ["a"], hashes: ["h"], unchanged: [], problems: [], attempts: 1 },
      3,
    );
    assert.deepEqual(await store.pendingLoadsBefore(run.id, "t1", 2), [{ seq: 1, digests: null }]);
    await store.saveLoad(
      run.id,
      1,
      "t1",
      { loaded: ["b"], hashes: ["h"], unchanged: [], problems: [], attempts: 1 },
      3,
    );
    assert.equal(await store.runComplete(run.id, ["t1"]), true);
  });

  it("reopens a chunk transformed with failed records; a load of its transform of then, committing, holds it off", async () => {
    await using store = await openNew();
    const run = await store.startRun(newRun("f"));
    await store.saveExtracted(run.id, 0, [0], 2, 1);
    const failed: RecordOutcome = {
      key: "b",
      target: null,
      status: "failed",
      chunk: 0,
      attempts: 1,
      message: "timed out",
    };
    await store.saveCanonical(run.id, 0, 1, [failed], 5);
    await store.saveLoad(run.id, 0, "t1", load(["a"]), 6);
    // a load job of that transform (at 5) commits while the chunk is reopened: the reopening waits for its commit
    const events: string[] = [];
    const commit = Promise.withResolvers<void>();
    const checked = Promise.withResolvers<boolean>();
    const loading = store.withTransaction(async (tx) => {
      checked.resolve(await tx.stillTransformedAt(run.id, 0, 5));
      await commit.promise;
      events.push("load committed");
    });
    assert.equal(await checked.promise, true);
    assert.equal(
      await store.withTransaction((tx) => tx.stillTransformedAt(run.id, 0, 4)),
      false,
      "another transform's",
    );
    const reopening = store.reopenChunks(run.id, [0]).then((reopened) => events.push(`reopened ${reopened}`));
    try {
      await until(
        async () =>
          // the waiter for a row lock holds the row's tuple lock
          (
            await store.executeSql("SELECT 1 FROM pg_locks WHERE locktype = 'tuple' AND relation = $1::regclass", [
              `"${store.schema}".chunks`,
            ])
          ).rows.length > 0,
        "the reopening waiting for the load's lock on the chunk",
      );
    } finally {
      commit.resolve();
    }
    await Promise.all([loading, reopening]);
    assert.deepEqual(events, ["load committed", "reopened 0"]);
    // its outcomes, loads and transform are void; a load job of then finds it no longer its own
    assert.deepEqual(await store.records(run.id), []);
    assert.deepEqual((await store.chunkState(run.id, 0))?.loaded, {});
    assert.equal((await store.chunkState(run.id, 0))?.transformedAt, undefined);
    assert.equal(await store.withTransaction((tx) => tx.stillTransformedAt(run.id, 0, 5)), false);
    // a chunk transformed with no failed record is left as it is
    await store.saveCanonical(run.id, 0, 2, [], 9);
    assert.deepEqual(await store.reopenChunks(run.id, [0, 1]), [], "nothing to reopen (chunk 1 does not exist)");
    assert.equal((await store.chunkState(run.id, 0))?.transformedAt, 9);
  });

  it("lets one transaction at a time hold the lock on finishing a run, the next waiting for it", async () => {
    const schema = newSchema();
    await using a = await openNew(schema);
    await using b = new PostgresStore(url, { schema });
    const events: string[] = [];
    const end = Promise.withResolvers<void>();
    const locked = Promise.withResolvers<void>();
    const holding = a.withTransaction(async (tx) => {
      await tx.lockFinish(7);
      locked.resolve();
      await end.promise;
      events.push("first done");
    });
    await locked.promise;
    const backend = Promise.withResolvers<number>();
    const waiting = b.withTransaction(async (tx) => {
      backend.resolve(Number((await tx.executeSql("SELECT pg_backend_pid() AS pid")).rows[0]?.pid));
      await tx.lockFinish(7);
      events.push("second locked");
    });
    // the second waits on the server for the lock the first holds
    const pid = await backend.promise;
    try {
      await until(
        async () =>
          (await a.executeSql("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1", [pid]))
            .rows.length === 1,
        "the second transaction waiting for the lock",
      );
      // another run's lock, and run 7's of another schema, are free
      await b.withTransaction((tx) => tx.lockFinish(8));
      await using other = await openNew();
      await other.withTransaction((tx) => tx.lockFinish(7));
      assert.deepEqual(events, []);
    } finally {
      end.resolve();
    }
    await Promise.all([holding, waiting]);
    assert.deepEqual(events, ["first done", "second locked"]);
  });

  it("ends a run early only while it runs, under its finish lock: a finish that ended it keeps its end", async () => {
    await using store = await openNew();
    const run = await store.startRun(newRun("f"));
    await store.saveExtracted(run.id, 0, [1], 1, 2);
    const failure: FinishRun = {
      status: "failed",
      error: { code: ErrorCode.FailureThreshold, message: "stop", errorClass: "permanent" },
    };
    // a finish holds the lock: the early end waits for it, then finds the run ended and leaves it
    const end = Promise.withResolvers<void>();
    const locked = Promise.withResolvers<void>();
    const finishing = store.withTransaction(async (tx) => {
      await tx.lockFinish(run.id);
      locked.resolve();
      await end.promise;
      await tx.finishRun(run.id, "host:1:a", { status: "succeeded", cursor: [1] }, 5);
    });
    await locked.promise;
    const seen: number[] = [];
    let settled = false;
    const early = store
      .endRunning(run.id, "host:1:a", 6, undefined, () => {
        seen.push(1);
        return failure;
      })
      .finally(() => {
        settled = true;
      });
    // it tries the lock again and again, its connection given back between tries, and does not end while it is held
    await sleep(200);
    assert.equal(settled, false, "the early end did not wait for the finish lock");
    end.resolve();
    await finishing;
    assert.equal(await early, false);
    assert.deepEqual(seen, [], "the end was not even made");
    const finished = await store.getRun(run.id);
    assert.equal(finished?.status, "succeeded");
    assert.deepEqual(finished?.cursorTo, [1]);
    // a run still running is ended, from its chunk states as they are under the lock
    const other = await store.startRun(newRun("g"));
    await store.saveExtracted(other.id, 0, [1], 1, 2);
    // nor when the caller's condition, asked under the lock, says not to
    assert.equal(
      await store.endRunning(
        other.id,
        "host:1:a",
        7,
        async () => true,
        () => failure,
      ),
      false,
    );
    assert.equal((await store.getRun(other.id))?.status, "running");
    assert.equal(
      await store.endRunning(
        other.id,
        "host:1:a",
        7,
        async () => false,
        (_, chunks) => ({
          ...failure,
          cursor: [chunks.length],
        }),
      ),
      true,
    );
    const failed = await store.getRun(other.id);
    assert.equal(failed?.status, "failed");
    assert.equal(failed?.error?.message, "stop");
    assert.deepEqual(failed?.cursorTo, [1]);
  });

  it("takes up a run abandoned only while it still is, and not once a newer run of its flow superseded it", async () => {
    await using store = await openNew();
    const abandoned = { status: "failed" as const, error: { code: ErrorCode.RunAbandoned, message: "no worker" } };
    const run = await store.startRun(newRun("f", "queue"));
    await store.finishRun(run.id, "queue", abandoned, 2);
    assert.equal(await store.runEnded(run.id), false, "an abandoned run is to be taken up again");
    // ended for another reason meanwhile (a job given up on): a worker's takeover is refused, a resume is not
    await store.finishRun(run.id, "queue", { ...abandoned, error: { code: ErrorCode.JobGivenUp, message: "x" } }, 3);
    await assert.rejects(store.claimRun(run.id, "queue", 4, { onlyAbandoned: true }), {
      code: ErrorCode.RunNotResumable,
    });
    await store.finishRun(run.id, "queue", abandoned, 5);
    assert.equal((await store.claimRun(run.id, "queue", 6, { onlyAbandoned: true })).status, "running");
    // abandoned again, then superseded by a fresh run of the flow: ended for good, and not to be ended again
    await store.finishRun(run.id, "queue", abandoned, 7);
    const newer = await store.startRun(newRun("f", "queue", 8));
    assert.equal(await store.runEnded(run.id), true);
    assert.equal(await store.endRunning(run.id, "queue", 9, undefined, () => ({ status: "cancelled" })), false);
    assert.equal((await store.getRun(run.id))?.error?.code, ErrorCode.RunAbandoned);
    assert.equal((await store.getRun(newer.id))?.status, "running");
  });

  it("commits every call of withTransaction together, and rolls every one back when it throws", async () => {
    await using store = await openNew();
    await store.executeSql(`CREATE TABLE "${store.schema}".jobs (name TEXT NOT NULL)`);
    // rolled back: a run started, a chunk staged and recorded, its load, a cursor, and the caller's own row
    let started = 0;
    await assert.rejects(
      store.withTransaction(async (tx) => {
        const run = await tx.startRun(newRun("f"));
        started = run.id;
        await tx.stage(run.id, 0, "extracted", "[1]");
        await tx.saveExtracted(run.id, 0, [1], 1, 2);
        await tx.stage(run.id, 0, "canonical", "[]");
        await tx.saveCanonical(run.id, 0, 1, [], 3);
        await tx.saveLoad(
          run.id,
          0,
          "t1",
          { loaded: ["a"], hashes: ["h"], unchanged: [], problems: [], attempts: 1 },
          4,
        );
        await tx.finishRun(run.id, "host:1:a", { status: "succeeded", cursor: [1] }, 5);
        await tx.client.query(`INSERT INTO "${store.schema}".jobs (name) VALUES ('next chunk')`);
        assert.equal((await tx.getRun(run.id))?.status, "succeeded", "the transaction sees its own writes");
        assert.equal((await store.getRun(run.id))?.status, undefined, "other connections do not");
        throw new Error("the job queue refused");
      }),
      /the job queue refused/,
    );
    assert.ok(started > 0);
    assert.equal(await store.getRun(started), undefined);
    assert.equal(await store.readStaged(started, 0, "extracted"), undefined);
    assert.deepEqual(await store.chunkStates(started), []);
    assert.equal((await store.getHashes("t1", ["a"])).size, 0);
    assert.equal(await store.getCursor("f"), undefined);
    assert.deepEqual((await store.executeSql(`SELECT name FROM "${store.schema}".jobs`)).rows, []);
    assert.deepEqual(await store.listRuns(), []);

    // committed: the same calls, all visible afterwards
    const tx = await store.withTransaction(async (tx) => {
      const run = await tx.startRun(newRun("f"));
      await tx.stage(run.id, 0, "extracted", "[1]");
      await tx.saveExtracted(run.id, 0, [1], 1, 2);
      await tx.executeSql(`INSERT INTO "${store.schema}".jobs (name) VALUES ($1)`, [`run ${run.id}`]);
      return tx;
    });
    const [run] = await store.listRuns();
    assert.equal(run?.status, "running");
    assert.equal(await store.readStaged(run?.id as number, 0, "extracted"), "[1]");
    assert.deepEqual((await store.executeSql(`SELECT name FROM "${store.schema}".jobs`)).rows, [
      { name: `run ${run?.id}` },
    ]);
    await assert.rejects(tx.getRun(1), isCode(ErrorCode.StoreError), "a transaction's store is unusable after it");

    // a refusal inside leaves the transaction usable; a nested transaction rolls back alone
    await store.withTransaction(async (tx) => {
      await assert.rejects(tx.startRun(newRun("f")), isCode(ErrorCode.RunLocked));
      await assert.rejects(
        tx.withTransaction(async (inner) => {
          await inner.startRun(newRun("g"));
          await inner.executeSql("SELECT * FROM no_such_table");
        }),
        isCode(ErrorCode.StoreError),
      );
      await tx.startRun(newRun("h"));
    });
    assert.deepEqual((await store.listRuns()).map((item) => item.flow).sort(), ["f", "h"]);
  });

  it("sends a pg-boss job in the transaction of a chunk: both commit, or neither", async () => {
    const store = await openNew();
    const boss = new PgBoss({
      connectionString: url,
      schema: `${store.schema}_boss`,
      supervise: false,
      schedule: false,
    });
    schemas.push(`${store.schema}_boss`);
    boss.on("error", () => {});
    await boss.start();
    try {
      await boss.createQueue("load-chunk");
      const run = await store.startRun(newRun("f"));
      let jobId: string | null = null;
      await assert.rejects(
        store.withTransaction(async (tx) => {
          await tx.stage(run.id, 0, "extracted", "[]");
          await tx.saveExtracted(run.id, 0, [1], 0, 2);
          jobId = await boss.send("load-chunk", { run: run.id, seq: 0 }, { db: tx });
          throw new Error("crash before commit");
        }),
        /crash before commit/,
      );
      assert.ok(jobId !== null);
      assert.equal(await boss.getJobById("load-chunk", jobId), null, "the job went with the chunk");
      assert.deepEqual(await store.chunkStates(run.id), []);

      const sent = await store.withTransaction(async (tx) => {
        await tx.stage(run.id, 0, "extracted", "[]");
        await tx.saveExtracted(run.id, 0, [1], 0, 2);
        return boss.send("load-chunk", { run: run.id, seq: 0 }, { db: tx });
      });
      assert.deepEqual((await boss.getJobById("load-chunk", sent as string))?.data, { run: run.id, seq: 0 });
      assert.equal((await store.chunkStates(run.id)).length, 1);
    } finally {
      await boss.stop({ graceful: false });
      await store.close();
    }
  });

  it("migrates idempotently, and concurrent migrators apply each version once", async () => {
    const schema = newSchema();
    const stores = Array.from({ length: 6 }, () => new PostgresStore(url, { schema, poolSize: 2 }));
    try {
      await Promise.all(stores.map((store) => store.migrate()));
      const first = stores[0] as PostgresStore;
      await first.migrate();
      await first.migrate();
      const { rows } = await first.executeSql(`SELECT version FROM "${schema}".migrations ORDER BY version`);
      assert.deepEqual(
        rows.map((row) => row.version),
        migrations.map((migration) => migration.version),
      );
      const run = await first.startRun(newRun("f"));
      assert.equal((await (stores[5] as PostgresStore).getRun(run.id))?.flow, "f");

      // a schema from a newer Franca is refused rather than misread
      await first.executeSql(`INSERT INTO "${schema}".migrations VALUES (999, 'future', 0)`);
      await assert.rejects(first.migrate(), /schema version 999, newer than this Franca knows/);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it("opens from a postgres:// store spec, migrated, its location without the password", async () => {
    using tmp = tempDir();
    const schema = newSchema();
    const store = await openStore(`postgresql://postgres:s3cret@127.0.0.1:5432/test?schema=${schema}`, tmp.dir);
    try {
      assert.equal(store.kind, "postgres");
      assert.equal((store as PostgresStore).schema, schema);
      assert.doesNotMatch(store.location, /s3cret/);
      assert.match(store.location, new RegExp(`schema=${schema}`));
      const run = await store.startRun(newRun("f"));
      assert.equal((await store.getRun(run.id))?.status, "running");
    } finally {
      await store.close();
    }
    assert.throws(() => new PostgresStore(url, { schema: 'bad"name' }), isCode(ErrorCode.ConfigInvalid));
  });
});

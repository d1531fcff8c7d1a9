/**
 * The store contract: what every Store implementation must do, as one suite run against each (SQLite here,
 * PostgreSQL in its own file). `open` returns a fresh, migrated, empty store.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import type { RecordOutcome } from "../../src/core/record.ts";
import type { LoadResult, Store } from "../../src/store/types.ts";

const quarantined = (key: string, chunk: number, target: string | null = null): RecordOutcome => ({
  key,
  target,
  status: "quarantined",
  chunk,
  attempts: 1,
  code: ErrorCode.ValidationFailed,
  errorClass: "permanent",
  message: `${key} is wrong`,
  path: "/email",
  sourceId: `src-${key}`,
});

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`store contract: ${name}`, () => {
    const newRun = (store: Store, flow = "f", owner = "host:1:a", now = 1_000) =>
      store.startRun({
        flow,
        kind: "flow",
        trigger: "test",
        targets: ["t1", "t2"],
        owner,
        now,
        cursorFrom: ["2025", 1],
      });
    /** A chunk's load into a target: nothing but what `result` says. */
    const load = (result: Partial<LoadResult>): LoadResult => ({
      loaded: [],
      hashes: [],
      unchanged: [],
      problems: [],
      attempts: 1,
      ...result,
    });

    it("starts one running run per flow and locks out a second", async () => {
      await using store = await open();
      const run = await newRun(store);
      assert.equal(run.status, "running");
      assert.deepEqual(run.targets, ["t1", "t2"]);
      assert.deepEqual(run.cursorFrom, ["2025", 1]);
      await assert.rejects(
        newRun(store),
        (error: unknown) => error instanceof FrancaError && error.code === ErrorCode.RunLocked,
      );
      const other = await newRun(store, "g");
      assert.notEqual(other.id, run.id);
      assert.equal((await store.listRuns({ status: "running" })).length, 2);
    });

    it("heartbeats only for its owner, reaps dead and stale owners, and resumes only failed or cancelled runs", async () => {
      await using store = await open();
      const run = await newRun(store, "f", "host:1:a", 1_000);
      assert.equal(await store.heartbeat(run.id, "host:1:a", 2_000), true);
      assert.equal(await store.heartbeat(run.id, "intruder", 2_000), false);
      assert.deepEqual(await store.reapAbandoned(1_500, [], 3_000), [], "a fresh heartbeat keeps it");
      assert.deepEqual(await store.reapAbandoned(2_500, [], 3_000, ["host:1:a"]), [], "a live owner keeps it");
      assert.deepEqual(await store.reapAbandoned(2_500, [], 3_000), [run.id], "a stale one does not");
      const reaped = await store.getRun(run.id);
      assert.equal(reaped?.status, "failed");
      assert.equal(reaped?.error?.code, ErrorCode.RunAbandoned);
      const claimed = await store.claimRun(run.id, "host:2:b", 4_000);
      // where the continuing execution's time starts (its duration is its own, not since the run's first start)
      assert.equal(claimed.stats.resumedAt, 4_000);
      assert.equal(claimed.status, "running");
      assert.equal(claimed.owner, "host:2:b");
      assert.equal(claimed.stats.resumes, 1);
      await assert.rejects(
        store.claimRun(run.id, "host:3:c", 5_000),
        (e: unknown) => e instanceof FrancaError && e.code === ErrorCode.RunLocked,
      );
      assert.deepEqual(await store.reapAbandoned(0, ["host:2:b"], 5_000), [run.id], "a dead owner is reaped at once");
      await store.finishRun(run.id, "host:2:b", { status: "failed" }, 6_000).catch(() => {});
      const second = await store.claimRun(run.id, "host:4:d", 7_000);
      await store.finishRun(second.id, "host:4:d", { status: "succeeded" }, 8_000);
      await assert.rejects(
        store.claimRun(run.id, "x", 9_000),
        (e: unknown) => e instanceof FrancaError && e.code === ErrorCode.RunNotResumable,
      );
      assert.equal(await store.latestUnfinished("f"), undefined);
    });

    it("refuses to resume a run superseded by a newer run of the flow", async () => {
      await using store = await open();
      const old = await newRun(store);
      await store.finishRun(old.id, "host:1:a", { status: "failed" }, 2_000);
      assert.equal((await store.latestUnfinished("f"))?.id, old.id);
      const newer = await newRun(store, "f", "host:1:a", 3_000);
      await store.finishRun(newer.id, "host:1:a", { status: "succeeded" }, 4_000);
      await assert.rejects(
        store.claimRun(old.id, "x", 5_000),
        (e: unknown) => e instanceof FrancaError && e.code === ErrorCode.RunNotResumable,
      );
    });

    it("stages chunks, records the ledger, and derives counts and chunk states from it", async () => {
      await using store = await open();
      const run = await newRun(store);
      await store.stage(run.id, 0, "extracted", '[{"id":1},{"id":2},{"id":3}]');
      await store.saveExtracted(run.id, 0, ["2025-01-01", 3], 3, 1);
      await store.stage(run.id, 0, "canonical", '{"keys":["1","2"]}');
      // bytes, and parts (a header and bytes, one after the other), come back as the text they encode
      await store.stage(run.id, 1, "extracted", Buffer.from("héllo 😀"));
      await store.stage(run.id, 2, "extracted", ["\u0001head\n", Buffer.from("é 😀 bytes"), "tail"]);
      assert.equal(await store.readStaged(run.id, 1, "extracted"), "héllo 😀");
      assert.equal(await store.readStaged(run.id, 2, "extracted"), "\u0001head\né 😀 bytestail");
      await store.saveCanonical(run.id, 0, 2, [quarantined("3", 0)], 2);
      await store.saveLoad(
        run.id,
        0,
        "t1",
        { loaded: ["1"], hashes: ["h1"], targetIds: ["T-1"], unchanged: ["2"], problems: [], attempts: 2 },
        3,
      );
      await store.saveLoad(
        run.id,
        0,
        "t2",
        {
          loaded: ["1"],
          hashes: ["h1"],
          unchanged: [],
          problems: [
            {
              ...quarantined("2", 0, "t2"),
              status: "failed",
              errorClass: "transient",
              code: ErrorCode.SystemUnavailable,
            },
          ],
          attempts: 5,
        },
        4,
      );
      assert.equal(await store.readStaged(run.id, 0, "extracted"), '[{"id":1},{"id":2},{"id":3}]');
      assert.equal(await store.readStaged(run.id, 0, "canonical"), '{"keys":["1","2"]}');
      assert.equal(await store.readStaged(run.id, 1, "canonical"), undefined);
      const counts = await store.counts(run.id);
      assert.deepEqual(counts, {
        chunks: 1,
        extracted: 3,
        canonical: 2,
        quarantined: 1,
        failed: 0,
        targets: {
          t1: { loaded: 1, unchanged: 1, quarantined: 0, failed: 0 },
          t2: { loaded: 1, unchanged: 0, quarantined: 0, failed: 1 },
        },
      });
      assert.deepEqual(await store.chunkStates(run.id), [
        {
          seq: 0,
          position: ["2025-01-01", 3],
          records: 3,
          transformed: true,
          transformedAt: 2,
          loaded: { t1: true, t2: false },
          spent: { canonical: 2, quarantined: 1, loads: { t1: 0, t2: 0 } },
        },
      ]);
      const byKey = await store.records(run.id, { key: "1" });
      assert.deepEqual(
        byKey.map((r) => [r.target, r.status, r.attempts, r.targetId]),
        [
          ["t1", "loaded", 2, "T-1"],
          ["t2", "loaded", 5, undefined],
        ],
      );
      const problems = await store.records(run.id, { status: "quarantined" });
      assert.deepEqual(
        problems.map((r) => [r.key, r.target, r.code, r.path, r.sourceId]),
        [["3", null, ErrorCode.ValidationFailed, "/email", "src-3"]],
      );
      const failed = await store.records(run.id, { status: "failed", target: "t2" });
      assert.deepEqual(
        failed.map((r) => [r.key, r.errorClass]),
        [["2", "transient"]],
      );
      await store.discardStaged(run.id);
      assert.equal(await store.readStaged(run.id, 0, "extracted"), undefined);
    });

    it("drops released chunks' staged output, at the latest once 16 in a row are released, and keeps the rest", async () => {
      await using store = await open();
      const run = await newRun(store);
      const other = await newRun(store, "g");
      for (let seq = 0; seq < 40; seq++) {
        await store.stage(run.id, seq, "extracted", `rows ${seq}`);
        await store.stage(run.id, seq, "canonical", `records ${seq}`);
      }
      await store.stage(other.id, 0, "extracted", "another run's");
      for (let seq = 0; seq < 40; seq++) if (seq !== 20) await store.releaseStaged(run.id, seq);
      await store.releaseStaged(other.id, 1);
      // chunks 0–15 (SQLite: one segment file of 16 chunks) are gone; what is not released is all there
      for (let seq = 0; seq < 16; seq++) {
        assert.equal(await store.readStaged(run.id, seq, "extracted"), undefined);
        assert.equal(await store.readStaged(run.id, seq, "canonical"), undefined);
      }
      assert.equal(await store.readStaged(run.id, 20, "extracted"), "rows 20");
      assert.equal(await store.readStaged(run.id, 20, "canonical"), "records 20");
      assert.equal(await store.readStaged(other.id, 0, "extracted"), "another run's");
      await store.discardStaged(run.id);
      assert.equal(await store.readStaged(run.id, 20, "canonical"), undefined);
    });

    it("voids a chunk's earlier outcomes and loads when it is transformed again", async () => {
      await using store = await open();
      const run = await newRun(store);
      await store.stage(run.id, 0, "extracted", "[]");
      await store.saveExtracted(run.id, 0, [1], 2, 1);
      await store.saveCanonical(
        run.id,
        0,
        1,
        [{ ...quarantined("b", 0), status: "failed", errorClass: "transient" }],
        2,
      );
      await store.saveLoad(
        run.id,
        0,
        "t1",
        { loaded: ["a"], hashes: ["ha"], unchanged: [], problems: [], attempts: 1 },
        3,
      );
      assert.equal(
        (await store.chunkStates(run.id))[0]?.transformed,
        false,
        "a transient failure leaves the chunk to redo",
      );
      // chunk 0's failure of "c" written over chunk 3's load of it: voided, the load is what the ledger holds again
      await store.saveLoad(run.id, 3, "t1", load({ loaded: ["c"], hashes: ["hc"] }), 3);
      await store.saveLoad(
        run.id,
        0,
        "t1",
        load({ problems: [{ ...quarantined("c", 0, "t1"), status: "failed" }] }),
        3,
      );
      assert.deepEqual(
        (await store.records(run.id, { key: "c" })).map(({ status, chunk }) => ({ status, chunk })),
        [{ status: "failed", chunk: 0 }],
      );
      await store.saveCanonical(run.id, 0, 2, [], 4);
      assert.deepEqual(
        (await store.records(run.id, {})).map(({ key, status, chunk }) => ({ key, status, chunk })),
        [{ key: "c", status: "loaded", chunk: 3 }],
        "the failed outcome and the earlier load are gone",
      );
      assert.deepEqual([...(await store.laterInTarget(run.id, "t1", 0, ["a", "c"]))], ["c"]);
      assert.deepEqual((await store.chunkStates(run.id))[0], {
        seq: 0,
        position: [1],
        records: 2,
        transformed: true,
        transformedAt: 4,
        loaded: {},
        spent: { canonical: 2, quarantined: 0, loads: {} },
      });
    });

    it("moves the cursor and saves the profile with the end of the run, only for its owner", async () => {
      await using store = await open();
      const run = await newRun(store);
      await assert.rejects(
        store.finishRun(run.id, "someone else", { status: "succeeded" }, 2),
        (e: unknown) => e instanceof FrancaError && e.code === ErrorCode.RunLocked,
      );
      await store.finishRun(
        run.id,
        "host:1:a",
        {
          status: "partial",
          cursor: ["2025-02", 9],
          profile: { id: "number" },
          stats: { durationMs: 5 },
          error: { code: ErrorCode.FailureThreshold, message: "too many" },
        },
        3,
      );
      const done = await store.getRun(run.id);
      assert.equal(done?.status, "partial");
      assert.equal(done?.endedAt, 3);
      assert.deepEqual(done?.cursorTo, ["2025-02", 9]);
      assert.deepEqual(done?.stats, { durationMs: 5 });
      assert.equal(done?.error?.code, ErrorCode.FailureThreshold);
      assert.deepEqual(await store.getCursor("f"), ["2025-02", 9]);
      assert.deepEqual(await store.getProfile("f"), { id: "number" });
      assert.equal(await store.getCursor("g"), undefined);
      await store.markExtractDone(run.id);
      assert.equal((await store.getRun(run.id))?.extractDone, true);
    });

    it("keeps content hashes per target and key, current at once or only once committed", async () => {
      await using store = await open();
      const run = await newRun(store);
      await store.stage(run.id, 0, "extracted", "[]");
      await store.saveExtracted(run.id, 0, [1], 3, 1);
      await store.saveCanonical(run.id, 0, 3, [], 1);
      await store.saveLoad(
        run.id,
        0,
        "t1",
        {
          loaded: ["a", "b"],
          hashes: ["h1", "h2"],
          unchanged: [],
          problems: [],
          attempts: 1,
        },
        2,
      );
      await store.saveLoad(
        run.id,
        0,
        "t2",
        { loaded: ["a"], hashes: ["h1"], unchanged: [], problems: [], attempts: 1, deferHashes: true },
        2,
      );
      assert.equal(await store.hasHashes("t1"), true);
      assert.equal(await store.hasHashes("t2"), false, "deferred: none current before the commit");
      assert.equal(await store.hasHashes("nothing loaded here"), false);
      const t1 = await store.getHashes("t1", ["a", "b", "c"]);
      assert.deepEqual([...t1.entries()].sort(), [
        ["a", { hash: "h1", runId: run.id }],
        ["b", { hash: "h2", runId: run.id }],
      ]);
      // hashes of one width go as one run of bytes, others as pairs: each key gets its own hash either way, and
      // with the ids a target gave (t6)
      const keys = ['k"1', "é🙂", "z", "\\"];
      for (const [target, hashes] of [
        ["t3", ["h-1", "h-2", "h-3", "h-4"]],
        ["t4", ["long-1", "h2", "h-3", "h4"]],
        ["t5", ["hé1", "h-2", "h-3", "h-4"]],
        ["t6", ["h-1", "h-2", "h-3", "h-4"]],
      ] as const) {
        const targetIds = target === "t6" ? { targetIds: ["id-1", null, "id-3", null] } : {};
        await store.saveLoad(
          run.id,
          1,
          target,
          { loaded: keys, hashes: [...hashes], unchanged: [], problems: [], attempts: 1, ...targetIds },
          2,
        );
        const found = await store.getHashes(target, [...keys, "none"]);
        assert.deepEqual(
          keys.map((key) => found.get(key)?.hash),
          hashes,
          target,
        );
      }
      assert.equal((await store.getHashes("t2", ["a"])).size, 0, "deferred: not current before the commit");
      await store.commitHashes(run.id, "t2");
      assert.deepEqual(await store.getHashes("t2", ["a"]), new Map([["a", { hash: "h1", runId: run.id }]]));
      assert.equal(await store.hasHashes("t2"), true);
    });

    it("tells which of a chunk's keys a later chunk of the run loaded or found unchanged in a target (laterInTarget)", async () => {
      await using store = await open();
      const run = await newRun(store);
      const other = await newRun(store, "g");
      const failed: RecordOutcome = { ...quarantined("f", 2, "t1"), status: "failed", errorClass: "transient" };
      await store.saveLoad(run.id, 2, "t1", load({ loaded: ["a", "7"], hashes: ["h1", "h2"], unchanged: ["b"] }), 2);
      await store.saveLoad(run.id, 2, "t1", load({ problems: [quarantined("q", 2, "t1"), failed] }), 2);
      await store.saveLoad(run.id, 4, "t1", load({ loaded: ["d"], hashes: ["h4"] }), 2);
      await store.saveLoad(run.id, 4, "t2", load({ loaded: ["e"], hashes: ["h5"] }), 2);
      await store.saveLoad(other.id, 9, "t1", load({ loaded: ["x"], hashes: ["h9"] }), 2);
      // refused by a later chunk still: the outcome says so, the target still holds chunk 2's "a" and "b"
      await store.saveLoad(
        run.id,
        5,
        "t1",
        load({ problems: [quarantined("a", 5, "t1"), { ...failed, key: "b", chunk: 5 }] }),
        2,
      );
      const keys = ["a", "7", "07", "b", "q", "f", "d", "e", "x", "none"];
      const later = async (runId: number, target: string, seq: number) =>
        [...(await store.laterInTarget(runId, target, seq, keys))].sort();
      // loaded or unchanged, in a chunk after the one asked for, of this run, in this target, whatever a chunk after
      // that recorded; not quarantined or failed ("q", "f"); "07" is not "7"
      assert.deepEqual(await later(run.id, "t1", 0), ["7", "a", "b", "d"]);
      assert.deepEqual(await later(run.id, "t1", 2), ["d"], "the chunk itself is not later");
      const outcomeOf = async (key: string, target: string) =>
        (await store.records(run.id, { key, target })).map(({ status, chunk }) => ({ status, chunk }));
      assert.deepEqual(await outcomeOf("a", "t1"), [{ status: "quarantined", chunk: 5 }]);
      // an earlier chunk's outcome (a resumed run's chunk loaded again) does not replace a later one's; its load
      // still tells that the key was loaded after chunk 2
      await store.saveLoad(run.id, 3, "t1", load({ loaded: ["a"], hashes: ["h3"] }), 2);
      await store.saveLoad(run.id, 1, "t1", load({ problems: [quarantined("b", 1, "t1")] }), 2);
      assert.deepEqual(await outcomeOf("a", "t1"), [{ status: "quarantined", chunk: 5 }]);
      assert.deepEqual(await outcomeOf("b", "t1"), [{ status: "failed", chunk: 5 }]);
      assert.deepEqual(await later(run.id, "t1", 2), ["a", "d"]);
      // an earlier chunk's problem replaces a later chunk's load (kept for a replay: a target that keeps every version
      // wrote the later one), which laterInTarget still knows
      await store.saveLoad(run.id, 2, "t1", load({ problems: [quarantined("d", 2, "t1")] }), 2);
      assert.deepEqual(await outcomeOf("d", "t1"), [{ status: "quarantined", chunk: 2 }]);
      assert.deepEqual(await later(run.id, "t1", 2), ["a", "d"]);
      // a transform's problem (target '') is written over whatever chunk's: only its own chunk writes it again
      await store.saveOutcomes(run.id, [quarantined("z", 5)]);
      await store.saveOutcomes(run.id, [quarantined("z", 1)]);
      assert.deepEqual(await outcomeOf("z", ""), [{ status: "quarantined", chunk: 1 }]);
      assert.deepEqual(await later(run.id, "t1", 4), []);
      assert.deepEqual(await later(run.id, "t2", 0), ["e"]);
      assert.deepEqual(await later(other.id, "t1", 0), ["x"]);
      assert.equal((await store.laterInTarget(run.id, "t1", 0, [])).size, 0);
    });

    it("a chunk transformed after a transform that stopped before staging it keeps only its new problems", async () => {
      await using store = await open();
      const run = await newRun(store);
      await store.stage(run.id, 0, "extracted", "[]");
      await store.saveExtracted(run.id, 0, [1], 10, 1);
      // the failure budget crossed at record "c": the problems so far recorded, the chunk not staged
      await store.saveOutcomes(run.id, [quarantined("a", 0), quarantined("c", 0)]);
      assert.equal((await store.counts(run.id)).quarantined, 2);
      // transformed again (the mapping fixed) by the run's next execution: only "c" is still a problem
      await store.saveCanonical(run.id, 0, 9, [quarantined("c", 0)], 2, true);
      const problems = await store.records(run.id, { status: "quarantined" });
      assert.deepEqual(
        problems.map((record) => record.key),
        ["c"],
      );
      assert.equal((await store.counts(run.id)).quarantined, 1);
    });

    it("keeps keys that look like numbers as the texts they are: each its own outcomes and hashes", async () => {
      await using store = await open();
      const run = await newRun(store);
      // decimal integers as String(n) writes them, and texts a number parser would take for one of them
      const keys = ["7", "007", "07", "0", "-0", "-1", "1.5", "1e3", " 7", "10", "9", "123456789012345"];
      keys.push("1234567890123456", "9007199254740993", "18446744073709551616");
      const width = (i: number) => `h${String(i).padStart(3, "0")}`;
      await store.stage(run.id, 0, "extracted", "[]");
      await store.saveExtracted(run.id, 0, [1], keys.length, 1);
      await store.saveCanonical(run.id, 0, keys.length - 2, [quarantined("7", 0), quarantined("007", 0)], 1);
      const loads: [string, Partial<LoadResult>][] = [
        ["one width", { loaded: keys, hashes: keys.map((_, i) => width(i)) }],
        ["pairs", { loaded: keys, hashes: keys.map((_, i) => `hash ${"x".repeat(i)}`) }],
        ["ids", { loaded: keys, hashes: keys.map((_, i) => width(i)), targetIds: keys.map((key) => `id ${key}`) }],
        ["deferred", { loaded: keys, hashes: keys.map((_, i) => width(i)), deferHashes: true }],
        ["unchanged", { loaded: [], hashes: [], unchanged: keys }],
      ];
      for (const [target, load] of loads) {
        await store.saveLoad(
          run.id,
          0,
          target,
          { loaded: [], hashes: [], unchanged: [], problems: [], attempts: 1, ...load },
          2,
        );
      }
      await store.commitHashes(run.id, "deferred");
      for (const [target, load] of loads.slice(0, 4)) {
        const found = await store.getHashes(target, [...keys, "8", "7.0"]);
        assert.deepEqual(
          [...found.keys()].sort(),
          [...keys].sort(),
          `${target}: every key found under its own text, none under another`,
        );
        assert.deepEqual(
          keys.map((key) => found.get(key)?.hash),
          load.hashes,
          target,
        );
      }
      const outcomes = await store.records(run.id, { limit: 10_000 });
      const seen = outcomes.map((outcome) => `${outcome.target ?? ""}|${outcome.key}|${outcome.status}`).sort();
      const expected = [
        "|7|quarantined",
        "|007|quarantined",
        ...loads.flatMap(([target]) =>
          keys.map((key) => `${target}|${key}|${target === "unchanged" ? "unchanged" : "loaded"}`),
        ),
      ].sort();
      assert.deepEqual(seen, expected);
      for (const key of keys) {
        const found = await store.records(run.id, { key, target: "ids" });
        assert.deepEqual(
          found.map((outcome) => [outcome.key, outcome.targetId ?? null]),
          [[key, `id ${key}`]],
          `records of key ${JSON.stringify(key)}`,
        );
      }
      assert.deepEqual((await store.records(run.id, { key: "7" })).map((outcome) => outcome.target ?? "").sort(), [
        "",
        "deferred",
        "ids",
        "one width",
        "pairs",
        "unchanged",
      ]);
    });

    it("caches lookup values across runs until they expire", async () => {
      await using store = await open();
      await store.cacheSet(
        "taxRate",
        [
          { key: "DE", value: "0.19" },
          { key: "FR", value: { rate: "0.20" } },
        ],
        2_000,
        1_000,
      );
      assert.deepEqual(
        await store.cacheGet("taxRate", ["DE", "FR", "NL"], 1_500),
        new Map<string, unknown>([
          ["DE", "0.19"],
          ["FR", { rate: "0.20" }],
        ]),
      );
      assert.equal((await store.cacheGet("taxRate", ["DE"], 2_000)).size, 0, "expired at 2,000");
      assert.equal((await store.cacheGet("other", ["DE"], 1_500)).size, 0);
    });
  });
}

/**
 * The load stage's question to the store, "was anything ever loaded to this target?" (`Store.hasHashes`), asked once
 * per execution and target: a failed answer is not kept, so the next chunk of the same execution (a retried job, in a
 * distributed worker) asks again instead of failing for good. And the bytes of rows a transform thread prepared are
 * freed once written, but never while a write given up at its deadline may still be sending them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { stableStringify } from "../../src/core/canonical-json.ts";
import { entity } from "../../src/core/entity.ts";
import { contentHash } from "../../src/core/hash.ts";
import { loadHash, targetMappingDigest } from "../../src/core/target-mapping.ts";
import { CanonicalChunk } from "../../src/engine/canonical-chunk.ts";
import type { Endpoint, RunContext } from "../../src/engine/context.ts";
import { idempotencyKey, writeChunk } from "../../src/engine/load.ts";
import { SystemPolicy } from "../../src/engine/policy.ts";
import { encodeCanonical } from "../../src/engine/staging.ts";
import { Type } from "../../src/index.ts";
import { silentLogger } from "../../src/observe/logger.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import type { RunRecord, Store } from "../../src/store/types.ts";
import { tempDir } from "../support/fixtures.ts";

const tmp = tempDir();
after(() => tmp[Symbol.dispose]());

const Thing = entity("Thing", { version: 1, key: "id", schema: Type.Object({ id: Type.String(), n: Type.Number() }) });
const warehouse = sqlite("warehouse", { file: join(tmp.dir, "warehouse.db") });
const things = bind(warehouse, Thing, { table: "things", key: "id", fromCanonical: (thing) => thing });

/** What writeChunk reads of a run's context, for a run of `store`. */
function contextOf(run: RunRecord, store: Store): RunContext {
  return {
    run,
    store,
    signal: new AbortController().signal,
    logger: silentLogger(),
    source: { binding: { system: { name: "source" } } },
    mapContext: () => ({}),
  } as unknown as RunContext;
}

describe("load: whether the target was ever loaded", () => {
  it("a failed answer is asked again by the next chunk, which then finds its records unchanged", async () => {
    const store = new SqliteStore(join(tmp.dir, "store.db"));
    await store.migrate();
    try {
      const payload = { id: "a", n: 1 };
      const hash = contentHash(stableStringify(payload));
      const start = (flow: string, now: number) =>
        store.startRun({ flow, kind: "flow", trigger: "test", targets: [things.name], owner: "test", now });
      // an earlier run (another flow's: the content hashes are the target's) loaded "a" with this content
      const earlier = await start("other things", 1);
      await store.saveLoad(
        earlier.id,
        0,
        things.name,
        // as a load files it: with the target's mapping digest
        {
          loaded: ["a"],
          hashes: [loadHash(hash, targetMappingDigest(things))],
          unchanged: [],
          problems: [],
          attempts: 1,
        },
        2,
      );
      const run = await start("things", 3);
      // the store's first answer fails (a dropped connection, say); every later one is the store's own
      let asked = 0;
      const flaky = new Proxy(store, {
        get(target, property) {
          if (property === "hasHashes") {
            return (name: string) =>
              ++asked === 1 ? Promise.reject(new Error("connection lost")) : target.hasHashes(name);
          }
          const value = Reflect.get(target, property) as unknown;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const ctx = contextOf(run, flaky);
      // nothing is written (the record is unchanged), so the target is never connected to
      const target = { binding: things, connection: {}, policy: {} } as unknown as Endpoint;
      const chunk = () => CanonicalChunk.of([{ key: "a", hash, sourceId: "a", payload }]);

      await assert.rejects(writeChunk(ctx, target, 0, chunk()), /connection lost/);
      const { result } = await writeChunk(ctx, target, 1, chunk());
      assert.equal(asked, 2, "the failed answer was not kept");
      assert.deepEqual(result.unchanged, ["a"]);
      assert.deepEqual(result.loaded, []);
      // the answer that succeeded is kept: a third chunk does not ask again
      await writeChunk(ctx, target, 2, chunk());
      assert.equal(asked, 2);
    } finally {
      await store.close();
    }
  });
});

describe("load: what counts as unchanged", () => {
  it("compares old hashes by content, and a resend sends all but what it loaded itself, with keys of its own", async () => {
    const store = new SqliteStore(join(tmp.dir, "store-unchanged.db"));
    await store.migrate();
    try {
      // each run of its own flow: a store runs one run of a flow at a time
      let runs = 0;
      const start = (stats?: Record<string, unknown>) =>
        store.startRun({
          flow: `things ${++runs}`,
          kind: "flow",
          trigger: "test",
          targets: [things.name],
          owner: "test",
          now: 1,
          ...(stats === undefined ? {} : { stats }),
        });
      const payloads = ["a", "b", "c"].map((id) => ({ id, n: 1 }));
      const records = payloads.map((payload) => ({
        key: payload.id,
        hash: contentHash(stableStringify(payload)),
        sourceId: payload.id,
        payload,
      }));
      const filed = (i: number) => loadHash(records[i]?.hash as string, targetMappingDigest(things));
      const earlier = await start();
      // "a" as a store filed it before targets filed their mapping's digest; "b" as it is filed now
      const loaded = {
        loaded: ["a", "b"],
        hashes: [records[0]?.hash as string, filed(1)],
        unchanged: [],
        problems: [],
      };
      await store.saveLoad(earlier.id, 0, things.name, { ...loaded, attempts: 1 }, 2);
      const written: { key: string; idempotencyKey: string }[] = [];
      const connection = {
        async write(request: { items: { key: string; idempotencyKey: string }[] }) {
          written.push(...request.items.map((item) => ({ key: item.key, idempotencyKey: item.idempotencyKey })));
          return request.items.map(() => ({ ok: true }));
        },
      };
      const target = { binding: things, connection, policy: new SystemPolicy("warehouse", {}) } as unknown as Endpoint;

      const usual = await start();
      const plain = await writeChunk(contextOf(usual, store), target, 0, CanonicalChunk.of(records));
      assert.deepEqual(plain.result.unchanged, ["a", "b"], "an old hash is compared by its content");
      assert.deepEqual(plain.result.loaded, ["c"]);
      await store.saveLoad(usual.id, 0, things.name, plain.result, 3);

      const resending = await start({ resend: true });
      written.length = 0;
      const first = await writeChunk(contextOf(resending, store), target, 0, CanonicalChunk.of(records.slice(0, 2)));
      assert.deepEqual(first.result.loaded, ["a", "b"]);
      assert.deepEqual(
        written.map((item) => item.key),
        ["a", "b"],
      );
      assert.notEqual(
        written[1]?.idempotencyKey,
        idempotencyKey({ target: things.name }, "b", filed(1)),
        "a resend's writes carry keys of their own",
      );
      await store.saveLoad(resending.id, 0, things.name, first.result, 4);
      // the same chunk again in the same run (a resumed chunk): loaded by this run already, so not sent
      written.length = 0;
      const again = await writeChunk(contextOf(resending, store), target, 0, CanonicalChunk.of(records.slice(0, 2)));
      assert.deepEqual(again.result.loaded, ["a", "b"]);
      assert.deepEqual(written, []);
    } finally {
      await store.close();
    }
  });
});

describe("load: the prepared rows' bytes", () => {
  it("are freed after the load, once a write given up at its deadline has ended too", async () => {
    const store = new SqliteStore(join(tmp.dir, "store-prepared.db"));
    await store.migrate();
    try {
      const run = await store.startRun({
        flow: "things",
        kind: "flow",
        trigger: "test",
        targets: [things.name],
        owner: "test",
        now: 1,
      });
      const ctx = contextOf(run, store);
      const payload = { id: "a", n: 1 };
      const record = { key: "a", hash: contentHash(stableStringify(payload)), sourceId: "a", payload };
      // a chunk as a transform thread hands it over: record "a", with its row prepared for the target as bytes
      const preparedChunk = (bytes: Uint8Array) =>
        CanonicalChunk.transferred(
          ["a"],
          [record.hash],
          null,
          encodeCanonical([record]),
          new Map([[things.name, { data: { bytes }, rowOf: Int32Array.from([0]), failures: [], async: false }]]),
        );
      const bytes = new Uint8Array(256).fill(9);
      const chunk = preparedChunk(bytes);
      // the first write hangs past its deadline and runs on, reading the bytes; the retry writes at once
      const hanging = Promise.withResolvers<void>();
      const seen: number[] = [];
      const connection = {
        async write(request: { prepared?: { data: { bytes: Uint8Array } } }) {
          const attempt = seen.push(request.prepared?.data.bytes.byteLength ?? -1);
          if (attempt === 1) await hanging.promise;
          seen.push(request.prepared?.data.bytes.byteLength ?? -1);
          return [{ ok: true }];
        },
      };
      const policy = new SystemPolicy("warehouse", {
        timeoutMs: 50,
        retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
      });
      const target = { binding: things, connection, policy } as unknown as Endpoint;

      const { result } = await writeChunk(ctx, target, 0, chunk);
      assert.deepEqual(result.loaded, ["a"]);
      assert.equal(result.attempts, 2);
      assert.equal(bytes.byteLength, 256, "the write given up still runs: its bytes are kept");
      assert.notEqual(chunk.prepared(things.name), undefined);
      hanging.resolve();
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(seen, [256, 256, 256, 256], "every write read the bytes whole");
      assert.equal(bytes.byteLength, 0, "freed once the last write ended");
      assert.equal(chunk.prepared(things.name), undefined);

      // a write that failed may have left its bytes queued on a closing socket: they are left to the collector
      const kept = new Uint8Array(256).fill(9);
      const second = preparedChunk(kept);
      let calls = 0;
      const failing = {
        async write() {
          if (++calls === 1) throw Object.assign(new Error("connection reset"), { code: "ECONNRESET" });
          return [{ ok: true }];
        },
      };
      const retried = await writeChunk(ctx, { ...target, connection: failing } as unknown as Endpoint, 1, second);
      assert.deepEqual(retried.result.loaded, ["a"]);
      assert.equal(calls, 2);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(kept.byteLength, 256);
    } finally {
      await store.close();
    }
  });
});

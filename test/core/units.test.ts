import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Type from "typebox";
import { compileEntity } from "../../src/core/compiled-entity.ts";
import { entity } from "../../src/core/entity.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { checkCompatibility } from "../../src/core/schema-compat.ts";
import { entityJsonSchema } from "../../src/core/schema-export.ts";
import { Decimal, Money } from "../../src/core/types.ts";
import { Channel } from "../../src/engine/channel.ts";
import { advancedCursor } from "../../src/engine/cursor.ts";
import { FailureBudget } from "../../src/engine/failure-budget.ts";
import { KeyLocks } from "../../src/engine/key-locks.ts";
import { Sequencer } from "../../src/engine/sequencer.ts";
import { CanonicalStager, decodeCanonical, encodeCanonical } from "../../src/engine/staging.ts";

const invoiceProperties = {
  region: Type.String(),
  number: Type.Integer(),
  total: Money(),
  lines: Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer({ minimum: 1 }) })),
};
const Invoice = entity("Invoice", {
  version: 1,
  key: ["region", "number"],
  schema: Type.Object(invoiceProperties, { additionalProperties: false }),
  fields: { total: { owner: "finance" }, region: { pii: false } },
});

describe("canonical model", () => {
  it("validates with the path of the first problem and lists the others", () => {
    const compiled = compileEntity(Invoice);
    assert.equal(compiled.validate({ region: "EU", number: 1, total: "10.50", lines: [] }), undefined);
    const error = compiled.validate({ region: "EU", number: 1, total: 10.5, lines: [{ sku: "A", qty: 0 }], extra: 1 });
    assert.equal(error?.code, ErrorCode.ValidationFailed);
    assert.equal(error?.path, "/extra");
    assert.match(error?.message ?? "", /\/total must be string/);
    assert.match(error?.message ?? "", /\/lines\/0\/qty must be >= 1/);
  });

  it("keeps money exact: decimals are strings with a bounded scale", () => {
    const compiled = compileEntity(Invoice);
    assert.ok(compiled.validate({ region: "EU", number: 1, total: "10.505", lines: [] }) !== undefined);
    const check = (schema: ReturnType<typeof Decimal>, value: string) =>
      compileEntity(entity("D", { version: 1, key: "v", schema: Type.Object({ v: schema }) })).validate({
        v: value,
      }) === undefined;
    assert.equal(check(Decimal(), "-12345678901234567890.123456789"), true);
    assert.equal(check(Decimal({ scale: 0 }), "12.0"), false);
    assert.equal(check(Money(), "1e3"), false);
  });

  it("builds composite keys in field order", () => {
    assert.equal(compileEntity(Invoice).key({ region: "EU", number: 7 }), '["EU",7]');
  });

  it("exports entities as JSON Schema with key, version and field notes", () => {
    const schema = entityJsonSchema(Invoice);
    assert.equal(schema.$id, "urn:franca:entity:Invoice:v1");
    assert.deepEqual(schema["x-franca-key"], ["region", "number"]);
    const properties = schema.properties as Record<string, Record<string, unknown>>;
    assert.equal(properties.total?.["x-franca-owner"], "finance");
    assert.equal(properties.region?.["x-franca-pii"], false);
    assert.equal(
      (Invoice.schema as { properties: Record<string, object> }).properties.total &&
        "x-franca-owner" in (Invoice.schema.properties.total as object),
      false,
    );
  });

  it("tells compatible schema changes from breaking ones", () => {
    const v1 = entityJsonSchema(Invoice);
    const added = entityJsonSchema(
      entity("Invoice", {
        version: 1,
        key: ["region", "number"],
        schema: Type.Object({ ...invoiceProperties, memo: Type.Optional(Type.String()) }),
      }),
    );
    assert.equal(checkCompatibility(v1, added).compatible, true);
    const { total: _removed, ...rest } = invoiceProperties;
    const removed = entityJsonSchema(
      entity("Invoice", {
        version: 1,
        key: ["region", "number"],
        schema: Type.Object({ ...rest, total: Type.Number() }),
      }),
    );
    const result = checkCompatibility(v1, removed);
    assert.equal(result.compatible, false);
    assert.equal(result.versionTooLow, true);
    assert.deepEqual(
      result.changes.filter((change) => change.breaking).map((change) => change.path),
      ["/total"],
    );
  });
});

describe("engine building blocks", () => {
  it("staging round-trips canonical records", () => {
    const records = [
      { key: '["EU",1]', hash: "h1", sourceId: "1", cursor: "2025-01-01", payload: { a: 1 }, json: '{"a":1}' },
      { key: 'k"2', hash: "h2", sourceId: "2", payload: { b: "é" } },
    ];
    assert.deepEqual(decodeCanonical(encodeCanonical(records)), [
      { key: '["EU",1]', hash: "h1", sourceId: "1", cursor: "2025-01-01", payload: { a: 1 } },
      { key: 'k"2', hash: "h2", sourceId: "2", payload: { b: "é" } },
    ]);
    // source ids that are the keys are not staged twice
    const own = [
      { key: "7", hash: "h7", sourceId: "7", payload: { c: 7 } },
      { key: 'k"8', hash: "h8", sourceId: 'k"8', payload: {} },
    ];
    const staged = encodeCanonical(own);
    assert.match(Buffer.from(staged).toString("utf8"), /"sources":null/);
    assert.deepEqual(decodeCanonical(staged), own);
    // a buffer of its own (a transform thread transfers it), which the next encoding does not overwrite
    assert.equal(staged.byteLength, staged.buffer.byteLength);
    const again = encodeCanonical(records);
    assert.deepEqual(decodeCanonical(staged), own);
    assert.deepEqual(decodeCanonical(Buffer.from(again).toString("utf8")), decodeCanonical(encodeCanonical(records)));
    // staged a piece at a time (a transform thread streams a chunk): cursors and source ids that first differ from
    // the keys in a later piece are filled in for the earlier records
    const stager = new CanonicalStager();
    stager.add([{ key: "a", hash: "ha", sourceId: "a", payload: { n: 1 }, json: '{"n":1}' }]);
    stager.add([]);
    stager.add([{ key: "b", hash: "hb", sourceId: "row 2", cursor: 7, payload: { n: "é" } }]);
    assert.deepEqual(stager.columns, { keys: ["a", "b"], hashes: ["ha", "hb"], sourceIds: ["a", "row 2"] });
    assert.equal(
      Buffer.from(stager.bytes()).toString("utf8"),
      '{"payloads":[{"n":1},{"n":"é"}],"keys":["a","b"],"hashes":["ha","hb"],"sources":["a","row 2"],"cursors":[null,7]}',
    );
    assert.throws(() => stager.bytes(), /twice/);
    // a text staged by an earlier version (the columns before the payloads) reads the same
    const earlier = `{"keys":["7","k\\"8"],"hashes":["h7","h8"],"sources":null,"cursors":null,"payloads":[{"c":7},{}]}`;
    assert.deepEqual(decodeCanonical(earlier), own);
  });

  it("advances the cursor only over the unbroken prefix of done chunks", () => {
    const chunk = (seq: number, done: boolean) => ({
      seq,
      position: [seq],
      records: 1,
      transformed: true,
      loaded: { t: done },
      spent: { canonical: 1, quarantined: 0, loads: { t: 0 } },
    });
    assert.deepEqual(advancedCursor([chunk(0, true), chunk(1, true), chunk(2, false), chunk(3, true)], ["t"]), [1]);
    assert.equal(advancedCursor([chunk(0, false), chunk(1, true)], ["t"]), undefined);
    assert.equal(advancedCursor([{ ...chunk(0, true), transformed: false }], ["t"]), undefined);
  });

  it("stops a budget the moment it is crossed", () => {
    const budget = new FailureBudget({ maxFailed: 2 });
    assert.equal(budget.problem(true), undefined);
    assert.equal(budget.problem(true), undefined);
    assert.equal(budget.problem(true)?.code, ErrorCode.FailureThreshold);
  });

  it("a channel makes its sender wait when full and drains after close", async () => {
    const channel = new Channel<number>(2);
    await channel.send(1);
    await channel.send(2);
    let third = false;
    const sending = channel.send(3).then(() => {
      third = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(third, false, "the third send waits for room");
    assert.deepEqual(await channel.receive(), { done: false, value: 1 });
    await sending;
    channel.close();
    assert.deepEqual(
      [await channel.receive(), await channel.receive(), await channel.receive()],
      [{ done: false, value: 2 }, { done: false, value: 3 }, { done: true }],
    );
  });

  it("a sequencer hands chunks on in chunk order, whatever order they arrive in", async () => {
    const out: number[] = [];
    const sequencer = new Sequencer<string>([1, 3], 5, async (seq) => {
      out.push(seq);
    });
    await Promise.all([
      sequencer.offer(6, "f"),
      sequencer.offer(5, "e"),
      sequencer.offer(3, "c"),
      sequencer.offer(1, "a"),
    ]);
    assert.deepEqual(out, [1, 3, 5, 6]);
  });

  it("a sequencer that was aborted refuses the chunks offered later, rather than holding them forever", async () => {
    const out: number[] = [];
    const sequencer = new Sequencer<string>([], 0, async (seq) => {
      out.push(seq);
    });
    // chunk 0 never comes (its transform failed): chunk 1 waits for it, until the run stops
    const waiting = sequencer.offer(1, "b");
    const stop = new Error("the run stopped");
    sequencer.abort(stop);
    await assert.rejects(waiting, stop);
    // a chunk transformed meanwhile by another worker, offered after the stop
    await assert.rejects(sequencer.offer(2, "c"), stop);
    assert.deepEqual(out, []);
  });

  it("key locks order chunks that share a key and let others through", async () => {
    const locks = new KeyLocks();
    const first = locks.register(["a", "b"]);
    const second = locks.register(["b", "c"]);
    const third = locks.register(["d"]);
    const order: string[] = [];
    const done = Promise.all([
      second.ready.then(() => order.push("second")),
      third.ready.then(() => order.push("third")),
    ]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, ["third"], "a chunk with other keys is not held up");
    first.release();
    await done;
    assert.deepEqual(order, ["third", "second"]);
  });

  /** Whether `promise` settled within a turn of the event loop. */
  const settled = async (promise: Promise<void>): Promise<boolean> => {
    let done = false;
    void promise.then(() => {
      done = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    return done;
  };

  it("key locks: a chunk waits for a chunk in flight whose keys were never mapped (their range met nothing)", async () => {
    const locks = new KeyLocks();
    // keys in order, ranges apart: both registered by their range alone
    const first = locks.register(["1", "2", "3"]);
    const second = locks.register(["4", "5"]);
    assert.equal(await settled(first.ready), true);
    assert.equal(await settled(second.ready), true);
    assert.equal(locks.mappedKeys, 0, "chunks whose ranges are apart put no key in the map");
    // its range (2..9) meets both; it shares "2" with the first only
    const third = locks.register(["9", "2"]);
    assert.equal(locks.mappedKeys, 6, "the met chunks' keys and its own, once each");
    assert.equal(await settled(third.ready), false);
    // a fourth meets the first (mapped already) and the third; it shares "3" with the first only
    const fourth = locks.register(["3", "10"]);
    assert.equal(await settled(fourth.ready), false);
    second.release();
    assert.equal(await settled(third.ready), false, "the chunk that shares no key does not let it go");
    first.release();
    assert.equal(await settled(third.ready), true);
    assert.equal(await settled(fourth.ready), true);
    third.release();
    fourth.release();
    assert.equal(locks.mappedKeys, 0, "released chunks leave no key in the map");
    // decimal keys range shorter first: 9..10 does not meet 95, so a chunk of "95" goes at once; "10" waits
    const small = locks.register(["9", "10"]);
    assert.equal(await settled(locks.register(["95"]).ready), true);
    const again = locks.register(["10"]);
    assert.equal(await settled(again.ready), false);
    small.release();
    assert.equal(await settled(again.ready), true);
  });

  it("key locks: a key held by several chunks in flight waits for the latest of them", async () => {
    const locks = new KeyLocks();
    const a = locks.register(["5"]);
    const b = locks.register(["5", "6"]);
    const c = locks.register(["5"]);
    assert.equal(await settled(b.ready), false);
    a.release();
    assert.equal(await settled(b.ready), true);
    assert.equal(await settled(c.ready), false, "the latest holder of the key is still in flight");
    b.release();
    assert.equal(await settled(c.ready), true);
    c.release();
    assert.equal(locks.mappedKeys, 0, "released chunks leave no key in the map");
    // every key released: a chunk of the same keys goes at once
    assert.equal(await settled(locks.register(["5", "6"]).ready), true);
  });
});

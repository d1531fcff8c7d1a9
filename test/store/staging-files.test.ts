import assert from "node:assert/strict";
import { appendFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { StagingFiles, unwritten } from "../../src/store/staging-files.ts";
import { tempDir } from "../support/fixtures.ts";

const text = (seq: number, size: number) => `chunk ${seq} ${"é".repeat(size)}`;

describe("staging files", () => {
  it("appends asynchronously, in the order asked, each readable once its promise resolved, also by a new reader", async () => {
    using temp = tempDir();
    for (const fsync of [false, true]) {
      const dir = join(temp.dir, `fsync-${fsync}`);
      const staging = new StagingFiles(dir, { fsync });
      // not awaited one by one: the appends of a segment run one after another all the same
      const appends = Array.from({ length: 20 }, (_, seq) =>
        seq % 2 === 0
          ? staging.append(1, seq, "extracted", text(seq, seq * 10))
          : staging.append(1, seq, "extracted", [`head ${seq}|`, Buffer.from(text(seq, seq * 10))]),
      );
      await Promise.all(appends);
      const expected = (seq: number) => (seq % 2 === 0 ? text(seq, seq * 10) : `head ${seq}|${text(seq, seq * 10)}`);
      for (let seq = 0; seq < 20; seq++) assert.equal(staging.read(1, seq, "extracted"), expected(seq));
      // a chunk staged again: the latest copy wins
      await staging.append(1, 3, "extracted", "again");
      assert.equal(staging.read(1, 3, "extracted"), "again");
      staging.close();
      const reader = new StagingFiles(dir);
      for (let seq = 0; seq < 20; seq++)
        assert.equal(reader.read(1, seq, "extracted"), seq === 3 ? "again" : expected(seq));
      reader.close();
    }
  });

  it("discards a run's chunks, and closes, only once the appends asked for are done, refusing later ones", async () => {
    using temp = tempDir();
    const staging = new StagingFiles(temp.dir);
    const appends = [0, 1, 2].map((seq) => staging.append(7, seq, "canonical", text(seq, 50_000)));
    const other = staging.append(8, 0, "extracted", text(0, 50_000));
    // appends pending: a synchronous write would race them
    assert.throws(() => staging.write(7, 3, "canonical", "now"), /pending/);
    const discarding = staging.discardAfterAppends(7);
    await assert.rejects(staging.append(7, 4, "canonical", "late"), /being closed/);
    await discarding;
    await Promise.all(appends);
    assert.deepEqual(readdirSync(temp.dir), ["8.extracted.0"]);
    await other;
    assert.equal(staging.read(8, 0, "extracted"), text(0, 50_000));

    const last = staging.append(8, 1, "extracted", text(1, 50_000));
    const closing = staging.closeAfterAppends();
    await assert.rejects(staging.append(8, 2, "extracted", "late"), /being closed/);
    await closing;
    await last;
    const reader = new StagingFiles(temp.dir);
    assert.equal(reader.read(8, 1, "extracted"), text(1, 50_000));
    assert.equal(reader.read(8, 2, "extracted"), undefined);
    reader.close();
  });

  it("cuts off a torn append (a crash mid-write), so that the appends after it are found", async () => {
    using temp = tempDir();
    const first = new StagingFiles(temp.dir);
    first.write(2, 0, "extracted", text(0, 20));
    await first.append(2, 1, "extracted", text(1, 20));
    first.close();
    // a crash mid-append: a header that announces 100 bytes, and 10 of them
    const path = join(temp.dir, "2.extracted.0");
    const header = Buffer.alloc(8);
    header.writeUInt32LE(2, 0);
    header.writeUInt32LE(100, 4);
    appendFileSync(path, Buffer.concat([header, Buffer.from("0123456789")]));
    const complete = statSync(path).size - 18;

    const resumed = new StagingFiles(temp.dir);
    assert.equal(resumed.read(2, 2, "extracted"), undefined);
    // a reader leaves the file as it is (the torn bytes could be another process's append, still being written)
    assert.equal(statSync(path).size, complete + 18);
    // the chunk staged again, longer than the torn one announced
    await resumed.append(2, 2, "extracted", text(2, 200));
    assert.equal(statSync(path).size, complete + 8 + Buffer.byteLength(text(2, 200)), "cut off before the append");
    resumed.write(2, 3, "extracted", text(3, 5));
    resumed.close();

    const reader = new StagingFiles(temp.dir);
    for (const [seq, size] of [
      [0, 20],
      [1, 20],
      [2, 200],
      [3, 5],
    ] as const)
      assert.equal(reader.read(2, seq, "extracted"), text(seq, size));
    reader.close();
  });
});

describe("staging files: segments", () => {
  const files = (dir: string) => readdirSync(dir).sort();
  const header = (seq: number, length: number) => {
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32LE(seq, 0);
    bytes.writeUInt32LE(length, 4);
    return bytes;
  };

  it("removes a segment's files once every chunk in it is released, and no sooner", async () => {
    using temp = tempDir();
    const staging = new StagingFiles(temp.dir, { chunksPerSegment: 4 });
    for (let seq = 0; seq < 10; seq++) {
      await staging.append(3, seq, "extracted", text(seq, 10));
      await staging.append(3, seq, "canonical", text(seq, 20));
    }
    assert.deepEqual(files(temp.dir), [
      "3.canonical.0",
      "3.canonical.1",
      "3.canonical.2",
      "3.extracted.0",
      "3.extracted.1",
      "3.extracted.2",
    ]);
    for (const seq of [3, 1, 0]) await staging.release(3, seq);
    assert.equal(files(temp.dir).length, 6, "a chunk of the segment is not released yet");
    assert.equal(
      staging.read(3, 0, "canonical"),
      text(0, 20),
      "a released chunk stays readable until its segment goes",
    );
    await staging.release(3, 2);
    assert.deepEqual(files(temp.dir), ["3.canonical.1", "3.canonical.2", "3.extracted.1", "3.extracted.2"]);
    assert.equal(staging.read(3, 2, "extracted"), undefined);
    for (const seq of [4, 5, 7]) await staging.release(3, seq);
    for (const seq of [4, 6, 8, 9]) assert.equal(staging.read(3, seq, "canonical"), text(seq, 20));
    staging.close();
    // another instance (a resumed run): what was kept is read back; the releases before it are not remembered
    const resumed = new StagingFiles(temp.dir, { chunksPerSegment: 4 });
    assert.equal(resumed.read(3, 6, "extracted"), text(6, 10));
    await resumed.release(3, 6);
    assert.equal(files(temp.dir).length, 4);
    resumed.discard(3);
    assert.deepEqual(files(temp.dir), []);
    resumed.close();
  });

  it("removes a released segment only once every append to it is done, also those asked for while it waits", async () => {
    using temp = tempDir();
    const staging = new StagingFiles(temp.dir, { chunksPerSegment: 4 });
    for (let seq = 0; seq < 3; seq++) {
      await staging.append(6, seq, "extracted", text(seq, 10));
      await staging.release(6, seq);
    }
    const first = staging.append(6, 3, "extracted", text(3, 200_000));
    const releasing = staging.release(6, 3);
    const second = staging.append(6, 3, "extracted", text(3, 200_000));
    await Promise.all([first, releasing, second]);
    assert.deepEqual(files(temp.dir), []);
    staging.close();
  });

  it("reads, and discards, a run staged by an earlier version in one file per stage", async () => {
    using temp = tempDir();
    const legacy = Buffer.concat([0, 1, 2].flatMap((seq) => [header(seq, 6), Buffer.from(`old ${seq}!`)]));
    writeFileSync(join(temp.dir, "4.extracted"), legacy);
    writeFileSync(join(temp.dir, "40.extracted"), header(0, 0));
    const staging = new StagingFiles(temp.dir, { chunksPerSegment: 2 });
    assert.equal(staging.read(4, 2, "extracted"), "old 2!");
    // staged again by this version: the segment's copy is read, the old one left alone
    await staging.append(4, 2, "extracted", "new 2");
    assert.equal(staging.read(4, 2, "extracted"), "new 2");
    assert.equal(staging.read(4, 0, "extracted"), "old 0!");
    assert.equal(staging.read(4, 3, "extracted"), undefined);
    staging.discard(4);
    assert.deepEqual(files(temp.dir), ["40.extracted"], "another run's file is kept");
    staging.close();
  });

  it("keeps few segments open, opening again the ones it closed when they are read or appended to", async () => {
    using temp = tempDir();
    const openFiles = () => readdirSync("/proc/self/fd").length;
    const before = openFiles();
    const staging = new StagingFiles(temp.dir, { chunksPerSegment: 1 });
    for (let seq = 0; seq < 200; seq++) await staging.append(5, seq, "extracted", text(seq, 5));
    assert.ok(openFiles() - before <= 64, `${openFiles() - before} files open for 200 segments`);
    for (let seq = 0; seq < 200; seq++) assert.equal(staging.read(5, seq, "extracted"), text(seq, 5));
    await staging.append(5, 0, "extracted", "again");
    assert.equal(staging.read(5, 0, "extracted"), "again");
    staging.close();
    assert.ok(openFiles() <= before);
  });
});

describe("staging files: a write the system cut short", () => {
  it("continues with the bytes not written yet, across and inside the buffers", () => {
    const buffers = [Buffer.from("head"), Buffer.from("abc"), Buffer.from("defgh")];
    const text = (rest: Uint8Array[]) => Buffer.concat(rest).toString();
    assert.equal(text(unwritten(buffers, 0)), "headabcdefgh");
    assert.equal(text(unwritten(buffers, 2)), "adabcdefgh");
    assert.equal(text(unwritten(buffers, 4)), "abcdefgh");
    assert.equal(text(unwritten(buffers, 9)), "fgh");
    assert.deepEqual(unwritten(buffers, 12), []);
  });
});

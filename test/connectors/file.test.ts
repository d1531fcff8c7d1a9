import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { fileError } from "../../src/connectors/file/errors.ts";
import { file, fileDriver } from "../../src/connectors/file/index.ts";
import { maxRecordChars, type RawRecord, RecordSplitter } from "../../src/connectors/file/read.ts";
import { partsDirOf } from "../../src/connectors/file/write.ts";
import type { Connection, ReadBatch, WriteItem } from "../../src/connectors/types.ts";
import type { Row } from "../../src/core/binding.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { bind, defineHub, Engine, entity, flow, sqlite, Type } from "../../src/index.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { readGrowing } from "../support/growing-read.ts";

let root: string;
let counter = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "franca-file-"));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh directory under the test root, with a connection to a file system over it. */
async function fixture(settings: { create?: boolean } = {}): Promise<{ dir: string; conn: Connection }> {
  const base = join(root, `case-${++counter}`);
  await mkdir(join(base, "data"), { recursive: true });
  const system = file(`files${counter}`, { dir: "data", ...settings });
  return { dir: join(base, "data"), conn: fileDriver.open(system, { baseDir: base }) };
}

async function readBatches(
  conn: Connection,
  options: Record<string, unknown>,
  extra: { batchSize?: number; from?: unknown; signal?: AbortSignal } = {},
): Promise<ReadBatch[]> {
  const batches: ReadBatch[] = [];
  const stream = (conn.read as NonNullable<Connection["read"]>)({
    options,
    key: ["id"],
    batchSize: extra.batchSize ?? 1000,
    signal: extra.signal ?? new AbortController().signal,
    call: (fn) => fn(new AbortController().signal),
    ...(extra.from === undefined ? {} : { from: extra.from }),
  });
  for await (const batch of stream) batches.push(batch);
  return batches;
}

async function readRows(conn: Connection, options: Record<string, unknown>): Promise<Row[]> {
  return (await readBatches(conn, options)).flatMap((batch) => batch.rows);
}

function items(rows: Row[]): WriteItem[] {
  return rows.map((row, i) => ({ key: String(row.id ?? i), row, idempotencyKey: `k${i}`, hash: `h${i}` }));
}

async function writeChunk(conn: Connection, options: Record<string, unknown>, run: number, chunk: number, rows: Row[]) {
  const write = conn.write as NonNullable<Connection["write"]>;
  return write({
    options,
    key: ["id"],
    target: "out.Customer",
    run,
    chunk,
    items: items(rows),
    signal: new AbortController().signal,
  });
}

async function complete(conn: Connection, options: Record<string, unknown>, run: number, chunks: number[]) {
  const done = conn.complete as NonNullable<Connection["complete"]>;
  await done({ options, target: "out.Customer", run, chunks, signal: new AbortController().signal });
}

const tricky =
  "\uFEFFid,name,note\r\n" +
  '1,"Smith, John","said ""hi"""\r\n' +
  '2,Zoë 😀,"two\r\nlines"\r\n' +
  "\r\n" +
  '3,"日本語","a\nb"\r\n' +
  '4,"",plain\r\n' +
  '5,last,"no final newline, 🎉"';

const trickyRows = [
  { id: "1", name: "Smith, John", note: 'said "hi"' },
  { id: "2", name: "Zoë 😀", note: "two\r\nlines" },
  { id: "3", name: "日本語", note: "a\nb" },
  { id: "4", name: "", note: "plain" },
  { id: "5", name: "last", note: "no final newline, 🎉" },
];

describe("file connector: reading CSV", () => {
  it("fills each batch to the batch size of the moment (it grows over a run's first chunks)", async () => {
    const { dir, conn } = await fixture();
    const lines = Array.from({ length: 45 }, (_, i) => `${i + 1},name ${i + 1}`);
    await writeFile(join(dir, "grow.csv"), `id,name\n${lines.join("\n")}\n`);
    const { sizes } = await readGrowing(conn, { options: { path: "grow.csv", format: "csv" }, key: ["id"] });
    assert.deepEqual(sizes, [2, 4, 8, 16, 15]);
  });

  it("reads quotes, embedded line breaks, delimiters, unicode and a BOM, in batches, each row once and in order", async () => {
    const { dir, conn } = await fixture();
    await writeFile(join(dir, "in.csv"), tricky);
    const batches = await readBatches(conn, { path: "in.csv", format: "csv" }, { batchSize: 2 });
    assert.deepEqual(
      batches.map((batch) => batch.rows.length),
      [2, 2, 1],
    );
    assert.deepEqual(
      batches.map((batch) => batch.position),
      [{ records: 2 }, { records: 4 }, { records: 5 }],
    );
    assert.deepEqual(
      batches.flatMap((batch) => batch.rows),
      trickyRows,
    );
    // The header's first name has no BOM in front of it.
    assert.deepEqual(Object.keys(batches[0]?.rows[0] ?? {}), ["id", "name", "note"]);
  });

  it("finds the same records however the text is cut into chunks", () => {
    const text = tricky.replace("\uFEFF", "");
    const whole: RawRecord[] = [];
    const splitter = new RecordSplitter(true);
    splitter.push(text, whole);
    splitter.end(whole);
    assert.equal(whole.length, 6); // the header and five records
    assert.deepEqual(
      whole.map((record) => record.line),
      [1, 2, 3, 6, 8, 9],
    );
    for (let cut = 1; cut < text.length; cut++) {
      const pieces: RawRecord[] = [];
      const split = new RecordSplitter(true);
      split.push(text.slice(0, cut), pieces);
      split.push(text.slice(cut), pieces);
      split.end(pieces);
      assert.deepEqual(pieces, whole, `cut at ${cut}`);
    }
    const byChar: RawRecord[] = [];
    const one = new RecordSplitter(true);
    for (const char of text) one.push(char, byChar);
    one.end(byChar);
    assert.deepEqual(byChar, whole);
  });

  it("reads a large file across stream chunks with multi-byte characters", async () => {
    const { dir, conn } = await fixture();
    const lines = ["id,text"];
    for (let i = 1; i <= 5000; i++) lines.push(`${i},"ünïcödé 😀 ${"x".repeat(i % 37)}\r\nline ${i}"`);
    await writeFile(join(dir, "big.csv"), `${lines.join("\r\n")}\r\n`);
    const batches = await readBatches(conn, { path: "big.csv", format: "csv" }, { batchSize: 1000 });
    const rows = batches.flatMap((batch) => batch.rows);
    assert.equal(rows.length, 5000);
    assert.equal(batches.length, 5);
    for (let i = 0; i < rows.length; i++) {
      assert.deepEqual(rows[i], { id: String(i + 1), text: `ünïcödé 😀 ${"x".repeat((i + 1) % 37)}\r\nline ${i + 1}` });
    }
  });

  it("resumes after a position, skipping the records already emitted", async () => {
    const { dir, conn } = await fixture();
    await writeFile(join(dir, "in.csv"), tricky);
    const options = { path: "in.csv", format: "csv" };
    const first = await readBatches(conn, options, { batchSize: 2 });
    const resumed = await readBatches(conn, options, { batchSize: 2, from: first[0]?.position });
    assert.deepEqual(
      resumed.flatMap((batch) => batch.rows),
      trickyRows.slice(2),
    );
    assert.deepEqual(
      resumed.map((batch) => batch.position),
      [{ records: 4 }, { records: 5 }],
    );
    assert.deepEqual(await readBatches(conn, options, { from: { records: 5 } }), []);
    await assert.rejects(
      readBatches(conn, options, { from: ["not", "a", "file", "position"] }),
      (error: unknown) => error instanceof FrancaError && !error.transient,
    );
  });

  it("yields broken records as $error rows with their line, and reads the records after them", async () => {
    const { dir, conn } = await fixture();
    await writeFile(
      join(dir, "broken.csv"),
      [
        "id,name",
        "1,ok",
        "2,too,many",
        '3,"bad"quote',
        '4,"multi',
        'line"',
        '5,"unfinished',
        '6,after"x',
        "7,fine",
        "8",
      ].join("\n"),
    );
    const batches = await readBatches(conn, { path: "broken.csv", format: "csv" }, { batchSize: 3 });
    const rows = batches.flatMap((batch) => batch.rows);
    assert.equal(rows.length, 7);
    assert.deepEqual(rows[0], { id: "1", name: "ok" });
    assert.equal(rows[1]?.$line, 3);
    assert.equal(rows[1]?.$raw, "2,too,many");
    assert.match(String(rows[1]?.$error), /3 fields, the header 2/);
    assert.equal(rows[2]?.$line, 4);
    assert.equal(rows[2]?.$raw, '3,"bad"quote');
    assert.match(String(rows[2]?.$error), /invalid CSV: Invalid Closing Quote/);
    assert.deepEqual(rows[3], { id: "4", name: "multi\nline" });
    // A quoted field closed by a quote in the middle of a later line: one broken record over both lines.
    assert.equal(rows[4]?.$line, 7);
    assert.equal(rows[4]?.$raw, '5,"unfinished\n6,after"x');
    assert.deepEqual(rows[5], { id: "7", name: "fine" });
    assert.equal(rows[6]?.$line, 10);
    assert.match(String(rows[6]?.$error), /1 field, the header 2/);
    // Every record counts in the position, broken ones too.
    assert.deepEqual(batches.at(-1)?.position, { records: 7 });
  });

  it("turns a quote never closed into one $error row for the rest of the file", async () => {
    const { dir, conn } = await fixture();
    await writeFile(join(dir, "open.csv"), 'id,name\n1,ok\n2,"never closed\n3,x\n4,y\n');
    const rows = await readRows(conn, { path: "open.csv", format: "csv" });
    assert.equal(rows.length, 2);
    assert.deepEqual(rows[0], { id: "1", name: "ok" });
    assert.equal(rows[1]?.$line, 3);
    assert.equal(rows[1]?.$raw, '2,"never closed\n3,x\n4,y\n');
    assert.match(String(rows[1]?.$error), /Quote Not Closed/);
  });

  it("keeps memory bounded on a runaway record: it is cut off and reported", async () => {
    const { dir, conn } = await fixture();
    const huge = "y".repeat(maxRecordChars + 10);
    await writeFile(join(dir, "huge.csv"), `id,name\n1,ok\n2,"${huge}\n`);
    const rows = await readRows(conn, { path: "huge.csv", format: "csv" });
    assert.equal(rows.length, 2);
    assert.match(String(rows[1]?.$error), /longer than/);
    assert.ok(String(rows[1]?.$raw).length <= 64 * 1024 + 1);
    assert.equal(rows[1]?.$line, 3);
  });

  it("reads a file without a header line, another dialect and latin1", async () => {
    const { dir, conn } = await fixture();
    await writeFile(join(dir, "plain.csv"), Buffer.from("1;'a;b'\n2;'it''s café'\n", "latin1"));
    const rows = await readRows(conn, {
      path: "plain.csv",
      format: "csv",
      encoding: "latin1",
      csv: { header: false, columns: ["id", "name"], delimiter: ";", quote: "'" },
    });
    assert.deepEqual(rows, [
      { id: "1", name: "a;b" },
      { id: "2", name: "it's café" },
    ]);
  });

  it("refuses a header that names a column twice", async () => {
    const { dir, conn } = await fixture();
    await writeFile(join(dir, "dup.csv"), "id,name,id\n1,a,1\n");
    await assert.rejects(
      readRows(conn, { path: "dup.csv", format: "csv" }),
      (error: unknown) => error instanceof FrancaError && !error.transient && /'id' twice/.test(error.message),
    );
  });

  it("reports a missing file as a permanent error naming its path", async () => {
    const { dir, conn } = await fixture();
    await assert.rejects(
      readRows(conn, { path: "nowhere/missing.csv", format: "csv" }),
      (error: unknown) =>
        error instanceof FrancaError &&
        error.errorClass === "permanent" &&
        error.message.includes(join(dir, "nowhere", "missing.csv")),
    );
  });

  it("stops reading when the signal is aborted", async () => {
    const { dir, conn } = await fixture();
    const lines = ["id"];
    for (let i = 1; i <= 100; i++) lines.push(String(i));
    await writeFile(join(dir, "many.csv"), lines.join("\n"));
    const control = new AbortController();
    const seen: ReadBatch[] = [];
    const stream = (conn.read as NonNullable<Connection["read"]>)({
      options: { path: "many.csv", format: "csv" },
      key: ["id"],
      batchSize: 10,
      signal: control.signal,
      call: (fn) => fn(control.signal),
    });
    for await (const batch of stream) {
      seen.push(batch);
      control.abort();
    }
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]?.position, { records: 10 });
  });

  it("starts every new run from the beginning of the file", () => {
    const conn = fileDriver.open(file("f", { dir: "." }), { baseDir: root });
    assert.equal(conn.nextRunFrom?.({ records: 42 }), undefined);
  });
});

describe("file connector: reading NDJSON", () => {
  it("reads one object per line, skips blank lines, and yields bad lines as $error rows", async () => {
    const { dir, conn } = await fixture();
    await writeFile(
      join(dir, "in.ndjson"),
      [
        '{"id":1,"name":"Zoë 😀","tags":["a"]}',
        "",
        "   ",
        '{"id":2,"nested":{"x":null}}',
        "{not json}",
        "[1,2]",
        '{"id":3,"text":"line\\nbreak"}',
        "42",
        '{"id":4}',
      ].join("\r\n"),
    );
    const batches = await readBatches(conn, { path: "in.ndjson", format: "ndjson" }, { batchSize: 4 });
    assert.deepEqual(
      batches.map((batch) => batch.position),
      [{ records: 4 }, { records: 7 }],
    );
    const rows = batches.flatMap((batch) => batch.rows);
    assert.deepEqual(rows[0], { id: 1, name: "Zoë 😀", tags: ["a"] });
    assert.deepEqual(rows[1], { id: 2, nested: { x: null } });
    assert.equal(rows[2]?.$line, 5);
    assert.equal(rows[2]?.$raw, "{not json}");
    assert.match(String(rows[2]?.$error), /^invalid JSON/);
    assert.equal(rows[3]?.$line, 6);
    assert.match(String(rows[3]?.$error), /not a JSON object \(an array\)/);
    assert.deepEqual(rows[4], { id: 3, text: "line\nbreak" });
    assert.equal(rows[5]?.$line, 8);
    assert.match(String(rows[5]?.$error), /not a JSON object \(a number\)/);
    assert.deepEqual(rows[6], { id: 4 });

    const resumed = await readBatches(conn, { path: "in.ndjson", format: "ndjson" }, { from: { records: 4 } });
    assert.deepEqual(
      resumed.flatMap((batch) => batch.rows),
      rows.slice(4),
    );
  });
});

describe("file connector: writing", () => {
  const csvOptions = { path: "out/customers-{run}.csv", format: "csv" };

  it("writes parts, then completes them into one file: header once, columns in first-seen order", async () => {
    const { dir, conn } = await fixture();
    await mkdir(join(dir, "out"));
    const results = await writeChunk(conn, csvOptions, 7, 0, [
      { id: 1, name: "Smith, John", active: true },
      { id: 2, name: 'say "hi"', active: false, balance: 12.5 },
    ]);
    assert.deepEqual(results, [{ ok: true }, { ok: true }]);
    await writeChunk(conn, csvOptions, 7, 2, [
      { id: 3, city: "Zürich 😀", name: "two\nlines", extra: { a: [1, 2] } },
      { id: 4, name: null, active: undefined, balance: 10n, when: new Date("2024-01-02T03:04:05.000Z") },
    ]);
    assert.deepEqual(await readdir(join(dir, "out")), []); // nothing is published before complete
    await complete(conn, csvOptions, 7, [0, 1, 2]);
    const text = await readFile(join(dir, "out", "customers-7.csv"), "utf8");
    assert.equal(
      text,
      "id,name,active,balance,city,extra,when\n" +
        '1,"Smith, John",true,,,,\n' +
        '2,"say ""hi""",false,12.5,,,\n' +
        '3,"two\nlines",,,Zürich 😀,"{""a"":[1,2]}",\n' +
        "4,,,10,,,2024-01-02T03:04:05.000Z\n",
    );
    assert.deepEqual(await readdir(join(dir, ".franca-parts")), []);
    assert.deepEqual(await readdir(join(dir, "out")), ["customers-7.csv"]);
  });

  it("writes the configured columns in their order, with a BOM, no header or another dialect", async () => {
    const { dir, conn } = await fixture();
    const options = {
      path: "fixed.csv",
      format: "csv",
      csv: { columns: ["name", "id"], delimiter: ";", quote: "'", bom: true },
    };
    await writeChunk(conn, options, 1, 0, [
      { id: 1, name: "it's", ignored: "x" },
      { id: 2, name: "a;b" },
    ]);
    await complete(conn, options, 1, [0]);
    assert.equal(await readFile(join(dir, "fixed.csv"), "utf8"), "\uFEFFname;id\n'it''s';1\n'a;b';2\n");

    const headless = { path: "headless.csv", format: "csv", csv: { header: false } };
    await writeChunk(conn, headless, 1, 0, [{ id: 1, name: "x" }]);
    await complete(conn, headless, 1, [0]);
    assert.equal(await readFile(join(dir, "headless.csv"), "utf8"), "1,x\n");
  });

  it("writes what it reads back: CSV values survive a round trip", async () => {
    const { dir, conn } = await fixture();
    const options = { path: "round.csv", format: "csv", encoding: "utf16le", csv: { bom: true } };
    await writeChunk(conn, options, 1, 0, trickyRows);
    await complete(conn, options, 1, [0]);
    assert.deepEqual((await readFile(join(dir, "round.csv"))).subarray(0, 2), Buffer.from([0xff, 0xfe]));
    assert.deepEqual(await readRows(conn, { path: "round.csv", format: "csv", encoding: "utf16le" }), trickyRows);
  });

  it("writes NDJSON: one JSON object per line", async () => {
    const { dir, conn } = await fixture();
    const options = { path: "out-{run}.ndjson", format: "ndjson" };
    await writeChunk(conn, options, 3, 1, [{ id: 2, big: 5n, text: "a\nb" }]);
    await writeChunk(conn, options, 3, 0, [{ id: 1, nested: { x: [1, null] }, gone: undefined }]);
    await complete(conn, options, 3, [0, 1]);
    assert.equal(
      await readFile(join(dir, "out-3.ndjson"), "utf8"),
      '{"id":1,"nested":{"x":[1,null]}}\n{"id":2,"big":"5","text":"a\\nb"}\n',
    );
  });

  it("writing a chunk again replaces its part: no duplicate lines", async () => {
    const { dir, conn } = await fixture();
    const options = { path: "again.csv", format: "csv" };
    await writeChunk(conn, options, 1, 0, [{ id: 1 }, { id: 2 }]);
    await writeChunk(conn, options, 1, 0, [{ id: 1 }, { id: 2 }]);
    await writeChunk(conn, options, 1, 1, [{ id: 3 }]);
    await writeChunk(conn, options, 1, 1, [{ id: 3 }]);
    await complete(conn, options, 1, [0, 1]);
    assert.equal(await readFile(join(dir, "again.csv"), "utf8"), "id\n1\n2\n3\n");
  });

  it("after a crash between parts and complete, a resumed run writes every row exactly once", async () => {
    const { dir, conn } = await fixture();
    const options = { path: "crash-{run}.csv", format: "csv" };
    await writeChunk(conn, options, 5, 0, [{ id: 1 }, { id: 2 }]);
    await writeChunk(conn, options, 5, 1, [{ id: 3 }]);
    // The process dies here. A new one opens the system again, writes the missing chunk and completes.
    const system = file("again", { dir: "." });
    const restarted = fileDriver.open(system, { baseDir: dir });
    await writeChunk(restarted, options, 5, 2, [{ id: 4 }, { id: 5 }]);
    await complete(restarted, options, 5, [0, 1, 2, 3]);
    assert.equal(await readFile(join(dir, "crash-5.csv"), "utf8"), "id\n1\n2\n3\n4\n5\n");
  });

  it("a crash during complete (file published, parts not yet removed) leaves every row once after completing again", async () => {
    const { dir, conn } = await fixture();
    const options = { path: "late.ndjson", format: "ndjson" };
    await writeChunk(conn, options, 9, 0, [{ id: 1 }]);
    await writeChunk(conn, options, 9, 1, [{ id: 2 }]);
    const parts = partsDirOf(dir, "out.Customer", 9);
    const saved = join(dir, "saved-parts");
    await cp(parts, saved, { recursive: true });
    await complete(conn, options, 9, [0, 1]);
    const published = await readFile(join(dir, "late.ndjson"), "utf8");
    assert.equal(published, '{"id":1}\n{"id":2}\n');
    // Put the parts back as the crash would have left them, plus a half-written temporary file.
    await cp(saved, parts, { recursive: true });
    await writeFile(join(dir, ".late.ndjson.9.franca-tmp"), '{"id":1}\n{"id"');
    await complete(conn, options, 9, [0, 1]);
    assert.equal(await readFile(join(dir, "late.ndjson"), "utf8"), published);
    assert.deepEqual((await readdir(dir)).sort(), [".franca-parts", "late.ndjson", "saved-parts"]);
    // Completing once more is a no-op.
    await complete(conn, options, 9, [0, 1]);
    assert.equal(await readFile(join(dir, "late.ndjson"), "utf8"), published);
  });

  it("a second complete while the first still runs (a retry after a timeout) joins it: one correct file", async () => {
    const { dir, conn } = await fixture();
    const options = { path: "joined.csv", format: "csv" };
    const expected = ["id"];
    for (let chunk = 0; chunk < 20; chunk++) {
      const rows = Array.from({ length: 200 }, (_, i) => ({ id: chunk * 200 + i }));
      await writeChunk(conn, options, 2, chunk, rows);
      for (const row of rows) expected.push(String(row.id));
    }
    const chunks = Array.from({ length: 20 }, (_, i) => i);
    await Promise.all([complete(conn, options, 2, chunks), complete(conn, options, 2, chunks)]);
    assert.equal(await readFile(join(dir, "joined.csv"), "utf8"), `${expected.join("\n")}\n`);
    assert.deepEqual((await readdir(dir)).sort(), [".franca-parts", "joined.csv"]);
  });

  it("creates no file when no chunk had anything to write", async () => {
    const { dir, conn } = await fixture();
    const options = { path: "empty-{run}.csv", format: "csv" };
    await complete(conn, options, 4, [0, 1, 2]);
    assert.deepEqual(await readdir(dir), []);
  });

  it("needs the directory to exist, unless create is set", async () => {
    const missing = await fixture();
    const options = { path: "sub/out.csv", format: "csv" };
    await assert.rejects(
      writeChunk(missing.conn, options, 1, 0, [{ id: 1 }]),
      (error: unknown) =>
        error instanceof FrancaError && !error.transient && error.message.includes(join(missing.dir, "sub")),
    );
    const created = await fixture({ create: true });
    await rm(created.dir, { recursive: true });
    await writeChunk(created.conn, options, 1, 0, [{ id: 1 }]);
    await complete(created.conn, options, 1, [0]);
    assert.equal(await readFile(join(created.dir, "sub", "out.csv"), "utf8"), "id\n1\n");
  });

  it("classifies I/O errors: a full disk or an I/O error is transient, a permission problem permanent", () => {
    const errno = (code: string) => Object.assign(new Error(`${code}: failed`), { code });
    assert.equal(fileError(errno("ENOSPC"), "f", "write").errorClass, "transient");
    assert.equal(fileError(errno("EIO"), "f", "write").errorClass, "transient");
    assert.equal(fileError(errno("EACCES"), "f", "write").errorClass, "permanent");
    assert.equal(fileError(errno("EACCES"), "f", "write").code, ErrorCode.SystemError);
    assert.equal(fileError(errno("ENOSPC"), "f", "write").code, ErrorCode.SystemUnavailable);
  });
});

describe("file connector: settings and checks", () => {
  it("validates system and binding settings, naming the setting", () => {
    assert.deepEqual(fileDriver.validateSystem({ dir: "data", create: true }), []);
    assert.deepEqual(
      fileDriver.validateSystem({ dir: "data", crate: true }).map((issue) => issue.setting),
      ["crate"],
    );
    assert.deepEqual(fileDriver.validateBinding({ path: "a.csv", format: "csv" }, "source"), []);
    assert.deepEqual(fileDriver.validateBinding({ path: "out/{run}-{date}.csv", format: "csv" }, "target"), []);
    const settingsOf = (options: unknown, role: "source" | "target") =>
      fileDriver.validateBinding(options, role).map((issue) => issue.setting);
    assert.deepEqual(settingsOf({ path: "a.ndjson", format: "ndjson", csv: { header: true } }, "source"), ["csv"]);
    assert.deepEqual(settingsOf({ path: "a.xml", format: "xml" }, "source"), ["format"]);
    assert.deepEqual(settingsOf({ path: "in-{run}.csv", format: "csv" }, "source"), ["path"]);
    assert.deepEqual(settingsOf({ path: "out-{when}.csv", format: "csv" }, "target"), ["path"]);
    assert.deepEqual(settingsOf({ path: "/abs/a.csv", format: "csv" }, "source"), ["path"]);
    assert.deepEqual(settingsOf({ path: "a.csv", format: "csv", csv: { header: false } }, "source"), ["csv.columns"]);
    assert.deepEqual(settingsOf({ path: "a.csv", format: "csv", csv: { columns: ["a"] } }, "source"), ["csv.columns"]);
    assert.deepEqual(settingsOf({ path: "a.csv", format: "csv", csv: { columns: ["a"] } }, "target"), []);
    assert.deepEqual(settingsOf({ path: "a.csv", format: "csv", csv: { delimiter: ";;" } }, "target"), [
      "csv.delimiter",
    ]);
    assert.deepEqual(settingsOf({ path: "a.csv", format: "csv", csv: { quote: "," } }, "target"), ["csv.quote"]);
    assert.deepEqual(settingsOf({ path: "a.csv", format: "csv", csv: { quotes: "'" } }, "target"), ["csv.quotes"]);
  });

  it("preflight and health: the directory exists, or create is set", async () => {
    const base = join(root, `case-${++counter}`);
    await mkdir(join(base, "here"), { recursive: true });
    assert.deepEqual(fileDriver.preflight?.(file("a", { dir: "here" }), { baseDir: base }), []);
    assert.deepEqual(fileDriver.preflight?.(file("b", { dir: "gone", create: true }), { baseDir: base }), []);
    const issues = fileDriver.preflight?.(file("c", { dir: "gone" }), { baseDir: base }) ?? [];
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.setting, "dir");
    assert.match(issues[0]?.message ?? "", /does not exist/);

    const signal = new AbortController().signal;
    assert.equal((await fileDriver.open(file("a", { dir: "here" }), { baseDir: base }).health(signal)).ok, true);
    assert.equal((await fileDriver.open(file("c", { dir: "gone" }), { baseDir: base }).health(signal)).ok, false);
    const client = fileDriver.open(file("a", { dir: "here" }), { baseDir: base }).client?.();
    assert.deepEqual(client, { dir: join(base, "here") });
  });
});

describe("file connector: end to end through the engine", () => {
  const Customer = entity("Customer", {
    version: 1,
    key: "id",
    schema: Type.Object(
      { id: Type.String(), name: Type.String(), email: Type.String() },
      { additionalProperties: false },
    ),
  });

  it("loads a SQLite source into a CSV file with every row", async () => {
    const base = join(root, `case-${++counter}`);
    await mkdir(base, { recursive: true });
    const db = new DatabaseSync(join(base, "crm.db"));
    db.exec("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT)");
    const insert = db.prepare("INSERT INTO customers VALUES (?, ?, ?)");
    for (let i = 1; i <= 250; i++) insert.run(i, i === 7 ? 'Zoë "Z", 😀' : `Name ${i}`, `c${i}@example.org`);
    db.close();

    const crm = sqlite("crm", { file: "crm.db" });
    const drop = file("drop", { dir: "exports", create: true });
    const source = bind(crm, Customer, {
      table: "customers",
      key: "id",
      toCanonical: (row) => ({ id: String(row.id), name: String(row.name), email: String(row.email) }),
    });
    const target = bind(drop, Customer, {
      name: "drop.customers",
      path: "customers-{run}.csv",
      format: "csv",
      csv: { columns: ["id", "name", "email"] },
    });
    const hub = defineHub({
      systems: [crm, drop],
      entities: [Customer],
      flows: [flow("export", { from: source, to: target, chunkSize: 40 })],
    });
    const store = new SqliteStore(join(base, "franca.db"));
    await store.migrate();
    const engine = await Engine.open({ hub, baseDir: base, store });
    try {
      const summary = await engine.run("export", { trigger: "test" });
      assert.equal(summary.run.status, "succeeded");
      const text = await readFile(join(base, "exports", `customers-${summary.run.id}.csv`), "utf8");
      const lines = text.split("\n");
      assert.equal(lines[0], "id,name,email");
      assert.equal(lines.length, 252); // header, 250 rows, final newline
      assert.equal(lines[7], '7,"Zoë ""Z"", 😀",c7@example.org');
      const ids = lines.slice(1, -1).map((line) => Number(line.split(",")[0]));
      assert.deepEqual(
        ids,
        Array.from({ length: 250 }, (_, i) => i + 1),
      );
      assert.deepEqual(await readdir(join(base, "exports", ".franca-parts")), []);

      // Nothing changed: the next run writes nothing, so it creates no file.
      const second = await engine.run("export", { trigger: "test" });
      assert.equal(second.run.status, "succeeded");
      assert.deepEqual(
        (await readdir(join(base, "exports"))).filter((name) => name.endsWith(".csv")),
        [`customers-${summary.run.id}.csv`],
      );
    } finally {
      await engine.close();
      await store.close();
    }
  });

  it("quarantines a broken CSV record as SOURCE_RECORD_INVALID and loads all the others", async () => {
    const base = join(root, `case-${++counter}`);
    await mkdir(join(base, "inbox"), { recursive: true });
    await writeFile(
      join(base, "inbox", "customers.csv"),
      'id,name,email\n1,Ann,ann@x.org\n2,Bob,bob@x.org,extra\n3,"Cy, Jr",cy@x.org\n4,Dee,dee@x.org\n',
    );
    const db = new DatabaseSync(join(base, "erp.db"));
    db.exec("CREATE TABLE clients(code TEXT PRIMARY KEY, name TEXT, mail TEXT)");
    db.close();

    const inbox = file("inbox", { dir: "inbox" });
    const erp = sqlite("erp", { file: "erp.db" });
    const source = bind(inbox, Customer, { path: "customers.csv", format: "csv", key: "id" });
    const target = bind(erp, Customer, {
      table: "clients",
      key: "code",
      fromCanonical: (customer) => ({ code: customer.id, name: customer.name, mail: customer.email }),
    });
    const hub = defineHub({
      systems: [inbox, erp],
      entities: [Customer],
      flows: [flow("import", { from: source, to: target, chunkSize: 2 })],
    });
    const store = new SqliteStore(join(base, "franca.db"));
    await store.migrate();
    const engine = await Engine.open({ hub, baseDir: base, store });
    try {
      const summary = await engine.run("import", { trigger: "test" });
      assert.equal(summary.run.status, "partial");
      const quarantined = await store.records(summary.run.id, { status: "quarantined" });
      assert.equal(quarantined.length, 1);
      assert.equal(quarantined[0]?.code, ErrorCode.SourceRecordInvalid);
      assert.match(quarantined[0]?.message ?? "", /line 3/);
      const loaded = new DatabaseSync(join(base, "erp.db"));
      assert.deepEqual(
        loaded
          .prepare("SELECT code, name, mail FROM clients ORDER BY code")
          .all()
          .map((row) => ({ ...row })),
        [
          { code: "1", name: "Ann", mail: "ann@x.org" },
          { code: "3", name: "Cy, Jr", mail: "cy@x.org" },
          { code: "4", name: "Dee", mail: "dee@x.org" },
        ],
      );
      loaded.close();
    } finally {
      await engine.close();
      await store.close();
    }
  });
});

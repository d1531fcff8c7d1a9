/**
 * bench:pipeline — what a transform thread spends per row of bench:bulk, stage by stage, with no engine, store or
 * network around it: decode the COPY text (the PostgreSQL driver's `decode`), map (bench/bulk-hub.ts's toCanonical),
 * validate, key, canonical JSON, content hash, staged canonical text, target mapping, COPY lines for the target
 * (`prepare`). The rows are bench:bulk's (`franca_bench_bulk.src`, filled here when missing), read once with COPY.
 *
 *   npm run bench:pipeline [-- --rows 100000 --rounds 5 --pg postgres://…]
 *
 * The reference, measured in the same run on the same lines: the native work no pipeline of this flow can skip —
 * finding the lines, JSON.parse of the jsonb and one JSON.stringify of it, one SHA-1, the UTF-8 length of a line. Prints a line per round, then JSON: {"bench":"pipeline","rows":…,"<stage>_us":…,
 * "total_us":…,"floor_us":…,"ratio":…} (medians over the rounds, µs a row; ratio = floor / total). Run it with the
 * franca command's V8 settings (`node --max-semi-space-size=8 bench/pipeline.ts`) to count garbage collection as a
 * thread does; npm's script does.
 */
import { hash } from "node:crypto";
import { Writable } from "node:stream";
import { pipeline as pipe } from "node:stream/promises";
import { parseArgs } from "node:util";
import pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import { copyEncoding, decodeCopy } from "../src/connectors/postgres/copy-text.ts";
import { prepareCopy, type TargetDescription } from "../src/connectors/postgres/prepare.ts";
import type { MapContext, Row } from "../src/core/binding.ts";
import { compileEntity } from "../src/core/compiled-entity.ts";
import type { Hub } from "../src/core/hub.ts";
import { type CanonicalRecord, encodeCanonical } from "../src/engine/staging.ts";
import { defaultPgUrl, fillSource, median, sourceColumns } from "./bulk-shared.ts";

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "100000" },
    rounds: { type: "string", default: "5" },
    pg: { type: "string", default: defaultPgUrl },
  },
});
const rows = Number(values.rows);
const rounds = Number(values.rounds);
const chunkSize = 1000;
const source = "franca_bench_bulk.src";

// the hub module reads its settings from the environment (bench/bulk-hub.ts); nothing here connects through it
Object.assign(process.env, {
  FRANCA_BULK_TARGET: "pg",
  FRANCA_BULK_SOURCE: source,
  FRANCA_BULK_PG: values.pg,
  FRANCA_BULK_STORE: ":memory:",
});
const { default: hub } = (await import("./bulk-hub.ts")) as { default: Hub };
const accounts = hub.flows.get("accounts");
const warehouse = accounts?.to[0];
if (accounts === undefined || warehouse === undefined) throw new Error("bench/bulk-hub.ts has no flow 'accounts'");
const flow = accounts;
const target = warehouse;

/** The first `rows` rows of the source as COPY text chunks of 1,000 lines, and their encoding (as the read makes). */
async function sourceChunks(): Promise<{ encoding: string; chunks: Buffer[] }> {
  const client = new pg.Client({ connectionString: values.pg });
  await client.connect();
  try {
    await client.query("CREATE SCHEMA IF NOT EXISTS franca_bench_bulk");
    const exists = (await client.query("SELECT to_regclass($1) IS NOT NULL AS found", [source])).rows[0].found;
    const count = exists ? Number((await client.query(`SELECT count(*) AS n FROM ${source}`)).rows[0].n) : 0;
    if (count < rows) {
      console.error(`filling ${source} with ${rows} rows…`);
      await client.query(`DROP TABLE IF EXISTS ${source}`);
      await client.query(`CREATE TABLE ${source} (${sourceColumns})`);
      await client.query(`CREATE INDEX ON ${source} (updated_at, id)`);
      await fillSource(client, source, rows);
    }
    const select = `SELECT * FROM ${source} ORDER BY id LIMIT ${rows}`;
    const { fields } = await client.query(`SELECT * FROM ${source} LIMIT 0`);
    const encoding = copyEncoding(fields.map((field) => ({ name: field.name, type: field.dataTypeID })));
    const parts: Buffer[] = [];
    await pipe(
      client.query(copyTo(`COPY (${select}) TO STDOUT`)),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          parts.push(chunk);
          done();
        },
      }),
    );
    const text = Buffer.concat(parts);
    const chunks: Buffer[] = [];
    let start = 0;
    let lines = 0;
    for (let at = text.indexOf(10); at !== -1; at = text.indexOf(10, at + 1)) {
      if (++lines % chunkSize !== 0) continue;
      chunks.push(text.subarray(start, at + 1));
      start = at + 1;
    }
    if (start < text.length) chunks.push(text.subarray(start));
    return { encoding, chunks };
  } finally {
    await client.end();
  }
}

const { encoding, chunks } = await sourceChunks();
const compiled = compileEntity(flow.entity);
const mapContext: MapContext = {
  run: { id: 1, flow: flow.name },
  binding: flow.from.name,
  lookup: () => Promise.reject(new Error("bench/bulk-hub.ts calls no lookup")),
};
// The target table as describeTarget would describe it (bench/bulk-shared.ts: pgTargetColumns): the jsonb is JSON.
const description: TargetDescription = {
  table: "franca_bench_bulk.dst",
  columns: ["account_id", "display_name", "email", "balance", "changed_at", "profile"].map((name) => ({
    name,
    type: name === "profile" ? "jsonb" : "text",
    kind: name === "profile" ? "j" : "t",
  })),
};

const stages = [
  "decode",
  "map",
  "validate",
  "key",
  "canonical_json",
  "hash",
  "stage",
  "target_map",
  "prepare",
] as const;
type Stage = (typeof stages)[number];

/** One pass over the chunks, stage by stage as a transform thread runs them: µs a row per stage. */
function measurePipeline(): Record<Stage, number> {
  const spent = Object.fromEntries(stages.map((stage) => [stage, 0])) as Record<Stage, number>;
  const timed = <T>(stage: Stage, work: () => T): T => {
    const started = performance.now();
    const result = work();
    spent[stage] += performance.now() - started;
    return result;
  };
  let count = 0;
  for (const chunk of chunks) {
    const decoded = timed("decode", () => decodeCopy(encoding, chunk));
    count += decoded.length;
    const payloads = timed("map", () => decoded.map((row) => flow.from.toCanonical(row, mapContext)));
    timed("validate", () => {
      for (const payload of payloads) if (compiled.validate(payload) !== undefined) throw new Error("invalid row");
    });
    const keys = timed("key", () => payloads.map((payload) => compiled.key(payload as Record<string, unknown>)));
    const jsons = timed("canonical_json", () => payloads.map((payload) => compiled.serialize(payload)));
    const hashes = timed("hash", () => jsons.map((json) => hash("sha1", json, "base64url")));
    const records: CanonicalRecord[] = payloads.map((payload, i) => ({
      key: keys[i] as string,
      hash: hashes[i] as string,
      sourceId: keys[i] as string,
      payload: payload as Record<string, unknown>,
      json: jsons[i] as string,
    }));
    timed("stage", () => encodeCanonical(records));
    const targetRows = timed("target_map", () =>
      records.map((record) => target.fromCanonical(record.payload, mapContext, undefined as never) as Row),
    );
    timed("prepare", () => prepareCopy(targetRows, { options: target.options, key: target.key, target: description }));
  }
  return Object.fromEntries(stages.map((stage) => [stage, (spent[stage] * 1000) / count])) as Record<Stage, number>;
}

/**
 * The floor: the native work of the same rows that no pipeline of this flow avoids — the lines found, the jsonb field
 * unescaped and parsed (validation needs it as an object) and serialized again (the canonical JSON), a SHA-1 (the
 * content hash), the line's UTF-8 length (the target line). No object per row but the parsed document.
 */
function measureFloor(): number {
  const started = performance.now();
  let count = 0;
  let sink = 0;
  for (const chunk of chunks) {
    const text = chunk.toString("utf8");
    for (let start = 0, end = text.indexOf("\n"); end !== -1; start = end + 1, end = text.indexOf("\n", start)) {
      count++;
      const field = text.slice(text.lastIndexOf("\t", end) + 1, end);
      const json = JSON.stringify(JSON.parse(field.replaceAll("\\\\", "\\")));
      sink += hash("sha1", json, "base64url").length + Buffer.byteLength(text.slice(start, end));
    }
  }
  if (sink === 0) throw new Error("nothing measured");
  return ((performance.now() - started) * 1000) / count;
}

const results: Record<Stage, number>[] = [];
const floors: number[] = [];
measurePipeline(); // warm-up: compiled code, caches
measureFloor();
for (let round = 0; round < rounds; round++) {
  const result = measurePipeline();
  const floor = measureFloor();
  results.push(result);
  floors.push(floor);
  const total = stages.reduce((sum, stage) => sum + result[stage], 0);
  console.log(
    `round ${round + 1}: ${stages.map((stage) => `${stage} ${result[stage].toFixed(2)}`).join(", ")} · total ${total.toFixed(2)} µs · floor ${floor.toFixed(2)} µs`,
  );
}
const summary: Record<string, unknown> = { bench: "pipeline", rows };
for (const stage of stages) summary[`${stage}_us`] = Number(median(results.map((r) => r[stage])).toFixed(2));
const total = median(results.map((r) => stages.reduce((sum, stage) => sum + r[stage], 0)));
const floor = median(floors);
Object.assign(summary, {
  total_us: Number(total.toFixed(2)),
  floor_us: Number(floor.toFixed(2)),
  ratio: Number((floor / total).toFixed(2)),
});
console.log(JSON.stringify(summary));

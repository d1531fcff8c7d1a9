/**
 * The hub of the transform-thread tests, as a module (the engine's threads import it, as they import a
 * franca.config.ts). Its settings come from the environment, which the threads share: FRANCA_THREADS_SCHEMA (the
 * PostgreSQL schema holding the tables) and FRANCA_THREADS_STORE (the SQLite store file).
 *
 * `items`: <schema>.src → <schema>.dst and <schema>.audit, read with COPY (source text, decoded on the threads).
 * - toCanonical calls the `regionOf` lookup (a query on the same database), so lookups cross from the threads.
 * - validation refuses an empty name (`/name`): such rows are quarantined.
 * - dst's mapping takes the envelope (lineage); audit's mapping is asynchronous and throws for ids ending in 13.
 * `strict`: the same source to <schema>.dst, stopping once more than 2 records are quarantined.
 * `pieces`: the same source to <schema>.dst, mapped without lookups, in chunks of up to 250 rows: a transform thread
 * decodes and maps each a piece at a time (the PostgreSQL driver's `cut`). Its `tag` is the record's place in the
 * run of mapping calls made one after another without a pause (`callRun`): up to a piece's rows on a thread, a
 * chunk's on the engine's thread. `waits`: the same with an asynchronous mapping that calls a lookup, whose chunks
 * a thread maps whole once it has seen that.
 * `repeats`: like `pieces`, but keys repeat every 130 rows, so that a later piece of a chunk repeats keys of an earlier
 * one (a thread then transforms the chunk whole: the later row wins). `gaps`: like `pieces`, to `gappy`, whose rows of
 * ids 351–450 lack a field: that chunk's pieces are prepared for different columns, which do not join. `picky`: like
 * `pieces`, to `picky`, which refuses items whose id ends in 77 (in every piece of a chunk). `gapsCalls`: `gaps` to
 * `gappyCalls`, whose `tag` is the place of its own mapping's call in the run of calls, as `pieces`' is of toCanonical's.
 * `decoded`: the same source read without COPY (`copy: false`: decoded rows, with a bytea column), to dst and audit;
 * its chunks reach a thread as their staged text (JSON, the bytea tagged), and `tag` is the bytea in base64, so a value
 * that did not come back a Buffer shows in the target.
 * `paused`: the same source to <schema>.dst, each chunk's mapping first waiting on the `chunkPause` lookup (keyed by
 * the chunk, so asked once per chunk): until as many chunks as `pauses.expect` said are waiting, then 200 ms;
 * `pauses` counts them on the engine's thread, where lookups run.
 * FRANCA_THREADS_EXIT_AT (read as rows are mapped): a transform thread mapping the row of that id exits, as a thread
 * that crashes would. FRANCA_THREADS_UNCLONABLE=1 (read as the module loads): on a transform thread, erp's driver
 * prepares rows into a value structured clone cannot copy (it holds a function), as a third-party driver's might.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { isMainThread } from "node:worker_threads";
import {
  type PostgresBindingOptions,
  type PostgresClient,
  postgres,
  postgresDriver,
} from "../../src/connectors/postgres/index.ts";
import type { Driver } from "../../src/connectors/types.ts";
import type { MapContext, Row } from "../../src/core/binding.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { lookup } from "../../src/core/lookup.ts";
import { defineSystem, type System } from "../../src/core/system.ts";
import { Decimal, Timestamp, Type } from "../../src/index.ts";

export const threadsUrl = "postgres://postgres@127.0.0.1:5432/test";
const schema = process.env.FRANCA_THREADS_SCHEMA ?? "franca_threads";

export const Item = entity("Item", {
  version: 1,
  key: "id",
  schema: Type.Object(
    {
      id: Type.String(),
      name: Type.String({ minLength: 1 }),
      amount: Type.Union([Decimal(), Type.Null()]),
      updatedAt: Timestamp(),
      region: Type.String(),
      /** The region's name as base64, from a lookup whose value holds a Buffer. */
      tag: Type.String(),
      doc: Type.Unknown(),
    },
    { additionalProperties: false },
  ),
});

/** Creates <schema>: `src` with `rows` rows (ids in `emptyNames` have an empty name), `regions`, empty targets. */
export function threadsSetupSql(rows: number, emptyNames: readonly number[] = []): string[] {
  return [
    `CREATE SCHEMA ${schema}`,
    `CREATE TABLE ${schema}.regions (id int PRIMARY KEY, name text NOT NULL)`,
    `INSERT INTO ${schema}.regions VALUES (0, 'north'), (1, 'south'), (2, 'east'), (3, 'west'), (4, 'centre')`,
    `CREATE TABLE ${schema}.src (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(14,4),
       updated_at timestamptz NOT NULL, doc jsonb)`,
    `CREATE INDEX ON ${schema}.src (updated_at, id)`,
    `INSERT INTO ${schema}.src
       SELECT i,
              CASE WHEN i = ANY ('{${emptyNames.join(",")}}'::int[]) THEN '' ELSE 'name ' || i || E'\\t\\\\ ' || chr(128512) END,
              CASE WHEN i % 7 = 0 THEN NULL ELSE round(i * 1234.5678 / 7, 4) END,
              '2024-02-29 23:59:59.999999+00'::timestamptz + i * interval '1.000001 second',
              jsonb_build_object('i', i, 'text', E'line\\nnext "q"', 'list', jsonb_build_array(1, 'two', NULL))
         FROM generate_series(1, ${rows}) AS i`,
    `CREATE TABLE ${schema}.dst (id text PRIMARY KEY, name text NOT NULL, amount numeric(14,4),
       updated_at timestamptz NOT NULL, region text NOT NULL, tag text NOT NULL, doc jsonb, lineage text NOT NULL)`,
    `CREATE TABLE ${schema}.audit (id text PRIMARY KEY, region text NOT NULL)`,
  ];
}

const crm = postgres("crm", { url: threadsUrl });
const unclonable: Driver = {
  ...postgresDriver,
  prepare: (rows, request) => ({ rows: postgresDriver.prepare?.(rows, request), count: () => rows.length }),
};
const erp: System<PostgresBindingOptions, PostgresClient> =
  !isMainThread && process.env.FRANCA_THREADS_UNCLONABLE === "1"
    ? defineSystem(unclonable, "erp", { url: threadsUrl })
    : postgres("erp", { url: threadsUrl });

const regionOf = lookup("regionOf", {
  system: crm,
  get: async (id: number, { client }) => {
    const rows = await (client as PostgresClient).query(`SELECT name FROM ${schema}.regions WHERE id = $1`, [id]);
    return String(rows[0]?.name);
  },
});

/** The region's name as bytes, in an object: a lookup value that crosses threads by structured clone. */
const regionBytes = lookup("regionBytes", {
  system: crm,
  get: async (id: number, { client }) => {
    const rows = await (client as PostgresClient).query(`SELECT name FROM ${schema}.regions WHERE id = $1`, [id]);
    return { bytes: Buffer.from(String(rows[0]?.name)) };
  },
});

/**
 * The `chunkPause` lookups running on the engine's thread, and the most that ran at once. `expect(n)` (before a run)
 * makes them a barrier: each pause waits until n run at once (10 s at most: fewer then show in `most`), so that the
 * chunks meet whatever their timing; then every pause waits 200 ms more, in which a chunk mapped beyond the n shows
 * in `most` too.
 */
export const pauses = {
  running: 0,
  most: 0,
  expected: 0,
  met: Promise.withResolvers<void>(),
  expect(count: number): void {
    this.running = 0;
    this.most = 0;
    this.expected = count;
    this.met = Promise.withResolvers<void>();
    if (count <= 0) this.met.resolve();
  },
};
pauses.met.resolve();

const chunkPause = lookup("chunkPause", {
  system: crm,
  get: async (chunk: number) => {
    pauses.most = Math.max(pauses.most, ++pauses.running);
    if (pauses.running >= pauses.expected) pauses.met.resolve();
    let fallback: NodeJS.Timeout | undefined;
    await Promise.race([
      pauses.met.promise,
      new Promise<void>((resolve) => {
        // fewer ran at once than expected: every pause goes on, not each after 10 s of its own
        fallback = setTimeout(() => {
          pauses.met.resolve();
          resolve();
        }, 10_000);
      }),
    ]);
    clearTimeout(fallback);
    await sleep(200);
    pauses.running--;
    return chunk;
  },
});

/** An item's fields that need no lookup. */
function fieldsOf(row: Row) {
  return {
    id: String(row.id),
    name: row.name as string,
    amount: row.amount as string | null,
    updatedAt: `${(row.updated_at as string).replace(" ", "T")}:00`,
    doc: row.doc,
  };
}

async function toItem(row: Row, ctx: MapContext) {
  if (!isMainThread && process.env.FRANCA_THREADS_EXIT_AT === String(row.id)) process.exit(7);
  return {
    ...fieldsOf(row),
    region: await ctx.lookup(regionOf, Number(row.id) % 5),
    tag: (await ctx.lookup(regionBytes, Number(row.id) % 5)).bytes.toString("base64"),
  };
}

const read = { table: `${schema}.src`, key: "id", cursor: "updated_at" } as const;
const source = bind(crm, Item, { ...read, toCanonical: toItem });
let calls = 0;
let callsOpen = false;
/** The place of this call in the run of calls made without a pause: a microtask ends the run. */
function callRun(): number {
  if (!callsOpen) {
    callsOpen = true;
    calls = 0;
    queueMicrotask(() => {
      callsOpen = false;
    });
  }
  return ++calls;
}

const plain = bind(crm, Item, {
  ...read,
  name: "plain",
  toCanonical: (row) => ({ ...fieldsOf(row), region: `region ${Number(row.id) % 5}`, tag: String(callRun()) }),
});
/** Keys repeat every 130 rows, so that a chunk's later piece repeats keys of an earlier piece (the later row wins). */
const repeats = bind(crm, Item, {
  ...read,
  name: "repeats",
  toCanonical: (row) => ({
    ...fieldsOf(row),
    id: String((Number(row.id) % 130) + 1),
    region: "r",
    tag: String(row.id),
  }),
});
const waits = bind(crm, Item, {
  ...read,
  name: "waits",
  toCanonical: async (row, ctx) => {
    const tag = String(callRun());
    return { ...fieldsOf(row), region: await ctx.lookup(regionOf, Number(row.id) % 5), tag };
  },
});
const paused = bind(crm, Item, {
  ...read,
  name: "paused",
  toCanonical: async (row, ctx) => {
    await ctx.lookup(chunkPause, Math.floor((Number(row.id) - 1) / 100));
    return toItem(row, ctx);
  },
});

const decoded = bind(crm, Item, {
  name: "decoded",
  query: `SELECT id, name, amount, updated_at, doc, convert_to(name, 'UTF8') AS raw FROM ${schema}.src`,
  key: "id",
  cursor: "updated_at",
  copy: false,
  toCanonical: async (row, ctx) => ({
    ...fieldsOf(row),
    region: await ctx.lookup(regionOf, Number(row.id) % 5),
    tag: Buffer.isBuffer(row.raw) ? row.raw.toString("base64") : `not a Buffer: ${typeof row.raw}`,
  }),
});

const dst = bind(erp, Item, {
  table: `${schema}.dst`,
  key: "id",
  fromCanonical: (item, _ctx, envelope) => ({
    id: item.id,
    name: item.name,
    amount: item.amount,
    updated_at: item.updatedAt,
    region: item.region,
    tag: item.tag,
    doc: item.doc,
    lineage: `${envelope.source.system}:${envelope.source.id}@${envelope.lineage.run}/${envelope.lineage.chunk}`,
  }),
});

/**
 * dst, but the rows of ids 351–450 have no `doc` field: a chunk's pieces are prepared for different columns. With
 * `calls`, a row's `tag` is the place of the target mapping's call in its run of calls (`callRun`): up to a piece's
 * records when a thread streams a chunk, up to a chunk's when it prepares the chunk whole.
 */
function gappyTarget(name: string, calls: boolean) {
  return bind(erp, Item, {
    name,
    table: `${schema}.dst`,
    key: "id",
    fromCanonical: (item) => {
      const { updatedAt, doc, ...rest } = item;
      const n = Number(item.id);
      const tag = calls ? String(callRun()) : item.tag;
      return { ...rest, tag, updated_at: updatedAt, lineage: "gappy", ...(n > 350 && n <= 450 ? {} : { doc }) };
    },
  });
}
const gappy = gappyTarget("gappy", false);
const gappyCalls = gappyTarget("gappyCalls", true);

/** dst, refusing (synchronously) the items whose id ends in 77: failures in every piece of a chunk. */
const picky = bind(erp, Item, {
  name: "picky",
  table: `${schema}.dst`,
  key: "id",
  fromCanonical: (item) => {
    if (item.id.endsWith("77")) throw new Error(`no ${item.id} here`);
    const { updatedAt, ...rest } = item;
    return { ...rest, updated_at: updatedAt, lineage: "picky" };
  },
});

const audit = bind(erp, Item, {
  name: "audit",
  table: `${schema}.audit`,
  key: "id",
  fromCanonical: async (item) => {
    if (item.id.endsWith("13")) throw new Error(`no audit for ${item.id}`);
    return { id: item.id, region: item.region };
  },
});

export default defineHub({
  systems: [crm, erp],
  entities: [Item],
  lookups: [regionOf, regionBytes, chunkPause],
  store: process.env.FRANCA_THREADS_STORE ?? ".franca/franca.db",
  flows: [
    flow("items", { from: source, to: [dst, audit], chunkSize: 100 }),
    flow("strict", { from: source, to: dst, chunkSize: 100, failure: { maxFailed: 2 } }),
    flow("paused", { from: paused, to: dst, chunkSize: 100 }),
    flow("pieces", { from: plain, to: dst, chunkSize: 250 }),
    flow("decoded", { from: decoded, to: [dst, audit], chunkSize: 100 }),
    flow("waits", { from: waits, to: dst, chunkSize: 250 }),
    flow("repeats", { from: repeats, to: dst, chunkSize: 250 }),
    flow("gaps", { from: plain, to: gappy, chunkSize: 250 }),
    flow("picky", { from: plain, to: picky, chunkSize: 250 }),
    flow("gapsCalls", { from: plain, to: gappyCalls, chunkSize: 250 }),
  ],
});

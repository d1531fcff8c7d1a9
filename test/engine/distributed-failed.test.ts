/**
 * Records that fail on the distributed executor: transiently, in a transform or in a load whose job then ends (the run
 * loads the others and ends failed, where it used to wait for them for ever, and continuing it retries them); refused
 * by the target, then replayed.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import pg from "pg";
import { startSimApi } from "../../sim/api.ts";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { bind, type Row } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { Type } from "../../src/index.ts";
import { distHub, distSetupSql } from "../support/dist-hub.ts";
import { tempDir } from "../support/fixtures.ts";
import { dropStoreSchemas, pgUrl } from "../support/pg-schema.ts";

async function sql(statements: readonly string[]): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    let rows: pg.QueryResultRow[] = [];
    for (const statement of statements) rows = (await client.query(statement)).rows;
    return rows;
  } finally {
    await client.end();
  }
}

/** A store schema and a source schema of the test's own, dropped after `work`. */
async function withSchemas(work: (schema: string, app: string) => Promise<void>): Promise<void> {
  const schema = `franca_failed_${randomBytes(5).toString("hex")}`;
  const app = `${schema}_app`;
  await sql([`CREATE SCHEMA ${app}`]);
  try {
    await work(schema, app);
  } finally {
    await dropStoreSchemas(schema);
    await sql([`DROP SCHEMA IF EXISTS ${app} CASCADE`]);
  }
}

const Entry = entity("Entry", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.Integer(), name: Type.String() }, { additionalProperties: false }),
});

describe("the distributed executor with records that fail", { timeout: 120_000 }, () => {
  it("in a transform: the run loads the others and ends failed; continued, it transforms the chunk again", async () => {
    await withSchemas(async (schema, app) => {
      await sql([
        `CREATE TABLE ${app}.src (id integer PRIMARY KEY, name text NOT NULL)`,
        `INSERT INTO ${app}.src SELECT i, 'n' || i FROM generate_series(1, 30) AS i`,
        `CREATE TABLE ${app}.dst (id integer PRIMARY KEY, name text NOT NULL)`,
      ]);
      // record 15's mapping fails once (a lookup's system timing out, say), then works
      let failures = 1;
      const db = postgres("db", { url: pgUrl });
      const hub = defineHub({
        store: `${pgUrl}?schema=${schema}`,
        systems: [db],
        entities: [Entry],
        flows: [
          flow("entries", {
            from: bind(db, Entry, {
              name: "src",
              table: `${app}.src`,
              key: "id",
              toCanonical: (row: Row) => {
                if (row.id === 15 && failures-- > 0)
                  throw new FrancaError(ErrorCode.SystemUnavailable, "timed out", { errorClass: "transient" });
                return { id: row.id as number, name: row.name as string };
              },
            }),
            to: bind(db, Entry, { name: "dst", table: `${app}.dst`, key: "id", fromCanonical: (entry) => entry }),
            chunkSize: 10,
          }),
        ],
      });
      using tmp = tempDir();
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
      const first = await engine.run("entries");
      assert.equal(first.run.status, "failed");
      assert.equal(first.counts.failed, 1);
      assert.equal(first.counts.targets.dst?.loaded, 29);
      const count = async () => Number((await sql([`SELECT count(*) AS n FROM ${app}.dst`]))[0]?.n);
      assert.equal(await count(), 29);
      const [record] = await engine.store.records(first.run.id, { status: "failed" });
      assert.equal(record?.key, "15");
      const second = await engine.run("entries");
      assert.equal(second.run.id, first.run.id, "the failed run is continued");
      assert.equal(second.run.status, "succeeded");
      assert.equal(await count(), 30);
    });
  });

  it("in a load whose job ends: the run loads the others and ends failed; continued, it loads them", async () => {
    await withSchemas(async (schema) => {
      await sql(distSetupSql(schema, 250));
      // the API answers item 15 of its batches 503 until told otherwise: the connector's retries run out
      const api = await startSimApi({
        seed: 7,
        collections: { items: { key: "id", maxBatch: 50 }, others: { key: "id", maxBatch: 50 } },
        batch: { reject: { when: (record) => record.id === "15", status: 503 } },
      });
      try {
        using tmp = tempDir();
        const hub = distHub({ FRANCA_DIST_SCHEMA: schema, FRANCA_DIST_API: api.url });
        await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
        const first = await engine.run("items");
        assert.equal(first.run.status, "failed");
        assert.deepEqual(first.counts.targets["api-items"], { loaded: 249, unchanged: 0, quarantined: 0, failed: 1 });
        assert.equal(api.records("items").length, 249);
        api.configure({ batch: { reject: undefined } });
        const second = await engine.run("items");
        assert.equal(second.run.id, first.run.id, "the failed run is continued");
        assert.equal(second.run.status, "succeeded");
        assert.equal(api.records("items").length, 250);
        assert.equal(api.duplicates("items"), 0);
      } finally {
        await api.close();
      }
    });
  });

  it("refused by the target, then replayed: the replay's chunks are loaded in order and none stays pending", async () => {
    await withSchemas(async (schema) => {
      await sql(distSetupSql(schema, 250));
      // items 15 and 115 (chunks 0 and 1) refused until the API is fixed
      const api = await startSimApi({
        seed: 7,
        collections: { items: { key: "id", maxBatch: 50 }, others: { key: "id", maxBatch: 50 } },
        batch: { reject: { when: (record) => record.id === "15" || record.id === "115" } },
      });
      try {
        using tmp = tempDir();
        const hub = distHub({ FRANCA_DIST_SCHEMA: schema, FRANCA_DIST_API: api.url });
        await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
        const first = await engine.run("items");
        assert.equal(first.run.status, "partial");
        assert.equal(api.records("items").length, 248);
        api.configure({ batch: { reject: undefined } });
        const replay = await engine.replay(first.run.id);
        assert.equal(replay.run.status, "succeeded");
        assert.deepEqual(replay.plan, { retransform: 0, reload: { "api-items": 2 } });
        assert.equal(api.records("items").length, 250);
        const [pending] = await sql([`SELECT count(*)::int AS n FROM ${schema}.pending_loads`]);
        assert.equal(pending?.n, 0);
      } finally {
        await api.close();
      }
    });
  });
});

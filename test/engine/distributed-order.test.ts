/**
 * The order of a key's loads on the distributed executor: a key that comes in two chunks of one run is written in
 * chunk order into its target, however the workers' load jobs interleave; chunks that share no key load meanwhile.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import pg from "pg";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { bind, type Row } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { Type } from "../../src/index.ts";
import { tempDir } from "../support/fixtures.ts";
import { captureLogs } from "../support/logs.ts";
import { dropStoreSchemas, pgStatements, pgUrl } from "../support/pg-schema.ts";
import { until } from "../support/poll.ts";

const Entry = entity("Entry", {
  version: 1,
  key: "ref",
  schema: Type.Object({ ref: Type.String(), name: Type.String() }, { additionalProperties: false }),
});

/** The advisory lock a write of an old version into the target waits for (the target's trigger takes it). */
const lockKey = 4_242_017;

describe("the distributed executor's loads of a key", { timeout: 120_000 }, () => {
  it("keep chunk order across concurrent load jobs: the later version of a key repeated in a run is written last", async () => {
    const schema = `franca_order_${randomBytes(5).toString("hex")}`;
    const app = `${schema}_app`;
    // 30 rows in chunks of 10: ref K in chunk 0 (row 3, 'old') and in chunk 1 (row 15, 'new'); chunk 2 shares no ref
    await pgStatements([
      `CREATE SCHEMA ${app}`,
      `CREATE TABLE ${app}.src (id integer PRIMARY KEY, ref text NOT NULL, name text NOT NULL)`,
      `INSERT INTO ${app}.src SELECT i, CASE WHEN i IN (3, 15) THEN 'K' ELSE 'r' || i END,
         CASE i WHEN 3 THEN 'old' WHEN 15 THEN 'new' ELSE 'n' || i END FROM generate_series(1, 30) AS i`,
      `CREATE TABLE ${app}.dst (ref text PRIMARY KEY, name text NOT NULL)`,
      // a write of the old version waits while the test holds the lock: chunk 0's load is held in its statement
      `CREATE FUNCTION ${app}.hold_old() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.name = 'old' THEN PERFORM pg_advisory_xact_lock_shared(${lockKey}); END IF;
         RETURN NEW;
       END $$`,
      `CREATE TRIGGER hold_old BEFORE INSERT OR UPDATE ON ${app}.dst FOR EACH ROW EXECUTE FUNCTION ${app}.hold_old()`,
    ]);
    const app1 = postgres("app", { url: pgUrl });
    const warehouse = postgres("warehouse", { url: pgUrl });
    const hub = defineHub({
      store: `${pgUrl}?schema=${schema}`,
      systems: [app1, warehouse],
      entities: [Entry],
      flows: [
        flow("entries", {
          from: bind(app1, Entry, {
            table: `${app}.src`,
            key: "id",
            toCanonical: (row: Row) => ({ ref: row.ref as string, name: row.name as string }),
          }),
          to: bind(warehouse, Entry, { table: `${app}.dst`, key: "ref", fromCanonical: (entry) => entry }),
          chunkSize: 10,
        }),
      ],
    });
    const holder = new pg.Client({ connectionString: pgUrl });
    await holder.connect();
    using tmp = tempDir();
    const { logger, text } = captureLogs();
    const lines = () =>
      text()
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    const target = async () =>
      new Map(
        (await holder.query<{ ref: string; name: string }>(`SELECT ref, name FROM ${app}.dst`)).rows.map((row) => [
          row.ref,
          row.name,
        ]),
      );
    try {
      await holder.query("SELECT pg_advisory_lock($1)", [lockKey]);
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, logger, executor: "distributed" });
      // no worker is alive: this process works the run's jobs, 8 loads at once
      const running = engine.run("entries");
      let released = false;
      try {
        // Chunk 1's load waits for chunk 0's, held in its write, until it is handed back to the queue; chunk 2's goes
        // on. Without the order, chunk 1 writes K's new version at once, and the old one lands over it on release.
        await until(async () => {
          const rows = await target();
          if (rows.get("K") === "new") return true;
          const handedBack = lines().some(
            (line) =>
              line.msg === "load handed back: an earlier chunk that may share keys is not loaded yet" &&
              line.seq === 1 &&
              line.after === 0,
          );
          return handedBack && rows.get("r30") === "n30";
        }, "chunk 1's load handed back while chunk 0's is held, and chunk 2 loaded");
        assert.notEqual((await target()).get("K"), "new", "the later version of K was written before the earlier one");
        // chunk 1's load said that it waits (chunk 2's may have too, for a chunk not yet transformed when it started)
        assert.ok(
          lines().some((line) => line.msg === "load waits for an earlier chunk that may share keys" && line.seq === 1),
          "chunk 1's load did not wait",
        );
        await holder.query("SELECT pg_advisory_unlock($1)", [lockKey]);
        released = true;
        const summary = await running;
        assert.equal(summary.run.status, "succeeded");
      } finally {
        if (!released) await holder.query("SELECT pg_advisory_unlock($1)", [lockKey]);
        await running.catch(() => {});
      }
      const rows = await target();
      assert.equal(rows.get("K"), "new");
      assert.equal(rows.size, 29);
      // every pending load ended with its job
      const { rows: pending } = await holder.query(`SELECT count(*)::int AS n FROM ${schema}.pending_loads`);
      assert.equal(pending[0]?.n, 0);
    } finally {
      await holder.end();
      await dropStoreSchemas(schema);
      await pgStatements([`DROP SCHEMA IF EXISTS ${app} CASCADE`]);
    }
  });
});

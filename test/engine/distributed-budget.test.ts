/**
 * The failure policy on the distributed executor: a run's problems are counted from the ledger, where every worker
 * records its own, not by each worker from its own jobs.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import pg from "pg";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { bind, type MapContext, type Row } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Engine } from "../../src/engine/engine.ts";
import { Type } from "../../src/index.ts";
import { tempDir } from "../support/fixtures.ts";
import { dropStoreSchemas, pgUrl } from "../support/pg-schema.ts";

const Entry = entity("Entry", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.Integer(), name: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
});

async function sql(statements: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

describe("the distributed executor's failure policy", { timeout: 120_000 }, () => {
  it("counts the problems every worker recorded in the ledger, not only this worker's own", async () => {
    const schema = `franca_budget_${randomBytes(5).toString("hex")}`;
    const app = `${schema}_app`;
    // 30 rows in chunks of 10, one in each chunk invalid (an empty name): 3 problems of this worker's own
    await sql([
      `CREATE SCHEMA ${app}`,
      `CREATE TABLE ${app}.src (id integer PRIMARY KEY, name text NOT NULL)`,
      `INSERT INTO ${app}.src SELECT i, CASE WHEN i % 10 = 5 THEN '' ELSE 'n' || i END FROM generate_series(1, 30) AS i`,
      `CREATE TABLE ${app}.dst (id integer PRIMARY KEY, name text NOT NULL)`,
    ]);
    /**
     * While chunk 1 is mapped, another worker records 5 problems of the run in a target of its own (a row of the
     * ledger as any worker's load writes it): 8 in all, over the policy's 5, where this worker saw 3 of its own.
     */
    const elsewhere = async (row: Row, context: MapContext) => {
      await sql([
        `INSERT INTO ${schema}.chunk_loads (run_id, target, seq, loaded, unchanged, quarantined, failed, attempts, loaded_at)
         VALUES (${context.run.id}, 'elsewhere', 0, 0, 0, 5, 0, 1, 0) ON CONFLICT DO NOTHING`,
      ]);
      return { id: row.id as number, name: row.name as string };
    };
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
            toCanonical: (row: Row, context: MapContext) =>
              row.id === 15 ? elsewhere(row, context) : { id: row.id as number, name: row.name as string },
          }),
          to: bind(db, Entry, { name: "dst", table: `${app}.dst`, key: "id", fromCanonical: (entry) => entry }),
          chunkSize: 10,
          failure: { maxFailed: 5 },
        }),
      ],
    });
    using tmp = tempDir();
    try {
      await using engine = await Engine.open({ hub, baseDir: tmp.dir, executor: "distributed" });
      const summary = await engine.run("entries");
      assert.equal(summary.run.status, "failed");
      assert.equal(summary.run.error?.code, ErrorCode.FailureThreshold);
    } finally {
      await dropStoreSchemas(schema);
      await sql([`DROP SCHEMA IF EXISTS ${app} CASCADE`]);
    }
  });
});

/** `franca run` on a PostgreSQL store queues the run; with no worker alive to take it, it says so. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pg from "pg";
import { queueSchemaOf } from "../../src/engine/distributed/queue.ts";
import { franca, writeCustomersConfig } from "../support/cli.ts";
import { createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";
import { pgUrl } from "../support/pg-schema.ts";

const schema = `franca_queued_${process.pid}`;

after(async () => {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.query(`DROP SCHEMA IF EXISTS ${queueSchemaOf(schema)} CASCADE`);
  await client.end();
});

describe("franca run on a PostgreSQL store", () => {
  it("queues the run and, with no worker alive, says it waits for one", () => {
    using tmp = tempDir();
    writeCustomersConfig(tmp.dir, { hub: `store: ${JSON.stringify(`${pgUrl}?schema=${schema}`)}, ` });
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 3 });
    createClientsTarget(join(tmp.dir, "erp.db")).close();
    const result = franca(tmp.dir, "run", "customers", "--json");
    assert.equal(result.code, 0, result.stderr);
    const queued = JSON.parse(result.stdout) as {
      run: { id: number; flow: string; status: string };
      queued: boolean;
      workers: boolean;
    };
    // the run's record, as `run --wait --json` gives it
    assert.equal(queued.run.flow, "customers");
    assert.equal(queued.run.status, "running");
    assert.equal(queued.queued, true);
    assert.equal(queued.workers, false);
    assert.match(
      result.stderr,
      new RegExp(`no worker is alive: run ${queued.run.id} waits for one \\('franca worker'\\)`),
    );
  });
});

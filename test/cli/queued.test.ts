/** `franca run` on a PostgreSQL store queues the run; with no worker alive to take it, it says so. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { queueSchemaOf } from "../../src/engine/distributed/queue.ts";
import { createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";
import { pgUrl } from "../support/pg-schema.ts";

const bin = fileURLToPath(new URL("../../bin/franca.js", import.meta.url));
const api = pathToFileURL(fileURLToPath(new URL("../../src/index.ts", import.meta.url))).href;
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
    writeFileSync(
      join(tmp.dir, "franca.config.ts"),
      `import { bind, defineHub, entity, flow, Money, sqlite, Type } from ${JSON.stringify(api)};
const Customer = entity("Customer", { version: 1, key: "id", schema: Type.Object({ id: Type.String(), name: Type.String(), email: Type.String({ format: "email" }), balance: Money() }, { additionalProperties: false }) });
const crm = sqlite("crm", { file: "crm.db" });
const erp = sqlite("erp", { file: "erp.db" });
const source = bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: (r) => ({ id: String(r.id), name: String(r.name), email: String(r.email), balance: String(r.balance) }) });
const target = bind(erp, Customer, { table: "clients", key: "code", fromCanonical: (c) => ({ code: c.id, full_name: c.name, mail: c.email, balance: c.balance }) });
export default defineHub({ store: ${JSON.stringify(`${pgUrl}?schema=${schema}`)}, systems: [crm, erp], entities: [Customer], flows: [flow("customers", { from: source, to: target })] });`,
    );
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 3 });
    createClientsTarget(join(tmp.dir, "erp.db")).close();
    const result = spawnSync(process.execPath, [bin, "run", "customers", "--json"], {
      cwd: tmp.dir,
      encoding: "utf8",
      env: { ...process.env, FRANCA_LOG_LEVEL: "silent" },
    });
    assert.equal(result.status, 0, result.stderr);
    const queued = JSON.parse(result.stdout) as { run: number; queued: boolean; workers: boolean };
    assert.equal(queued.queued, true);
    assert.equal(queued.workers, false);
    assert.match(
      result.stderr,
      new RegExp(`no worker is alive: run ${queued.run} waits for one \\('franca worker'\\)`),
    );
  });
});

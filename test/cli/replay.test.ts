/** `franca replay` of a run with nothing to replay records no run and exits 0; a key that did not fail exits 2. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";

const bin = fileURLToPath(new URL("../../bin/franca.js", import.meta.url));
const api = pathToFileURL(fileURLToPath(new URL("../../src/index.ts", import.meta.url))).href;

function franca(cwd: string, ...args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, FRANCA_LOG_LEVEL: "silent" },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("franca replay", () => {
  it("with nothing to replay says so, records no run and exits 0; a key that did not fail exits 2", () => {
    using tmp = tempDir();
    writeFileSync(
      join(tmp.dir, "franca.config.ts"),
      `import { bind, defineHub, entity, flow, Money, sqlite, Type } from ${JSON.stringify(api)};
const Customer = entity("Customer", { version: 1, key: "id", schema: Type.Object({ id: Type.String(), name: Type.String(), email: Type.String({ format: "email" }), balance: Money() }, { additionalProperties: false }) });
const crm = sqlite("crm", { file: "crm.db" });
const erp = sqlite("erp", { file: "erp.db" });
const source = bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: (r) => ({ id: String(r.id), name: String(r.name), email: String(r.email), balance: String(r.balance) }) });
const target = bind(erp, Customer, { table: "clients", key: "code", fromCanonical: (c) => ({ code: c.id, full_name: c.name, mail: c.email, balance: c.balance }) });
export default defineHub({ systems: [crm, erp], entities: [Customer], flows: [flow("customers", { from: source, to: target })] });`,
    );
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 10, badEmails: [4] });
    createClientsTarget(join(tmp.dir, "erp.db"));
    assert.equal(franca(tmp.dir, "run", "customers").code, 3);
    assert.equal(franca(tmp.dir, "run", "customers").code, 0);

    const nothing = franca(tmp.dir, "replay", "2");
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.match(nothing.stdout, /run 2 has nothing to replay: no quarantined or failed records/);
    const json = franca(tmp.dir, "replay", "2", "--json");
    assert.equal(json.code, 0);
    assert.equal((JSON.parse(json.stdout) as { replayed: boolean }).replayed, false);

    const wrongKey = franca(tmp.dir, "replay", "1", "--key", "9");
    assert.equal(wrongKey.code, 2);
    assert.match(wrongKey.stderr, /USAGE: run 1 has no quarantined or failed record with key '9'/);

    const runs = JSON.parse(franca(tmp.dir, "runs", "--json").stdout) as { id: number }[];
    const ids = runs.map((run) => run.id).sort();
    assert.deepEqual(ids, [1, 2], "no replay run was recorded");
  });
});

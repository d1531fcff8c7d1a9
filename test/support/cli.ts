/**
 * The command-line tests' ways in: the real `franca` command spawned on Node (its logs silent unless asked), and the
 * hub most of them configure (crm.customers → erp.clients over SQLite files beside the configuration).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createClientsTarget, createCustomerSource } from "./fixtures.ts";

export const bin = fileURLToPath(new URL("../../bin/franca.js", import.meta.url));
/** The project's API, as a configuration file imports it. */
export const api = pathToFileURL(fileURLToPath(new URL("../../src/index.ts", import.meta.url))).href;

export interface FrancaResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `franca <args>` in `cwd` with `env` over the process's own, and waits for it. */
export function francaWith(env: NodeJS.ProcessEnv, cwd: string, ...args: string[]): FrancaResult {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, FRANCA_LOG_LEVEL: "silent", ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function franca(cwd: string, ...args: string[]): FrancaResult {
  return francaWith({}, cwd, ...args);
}

/**
 * A configuration's declarations of the customers hub: entity `Customer`, systems `crm` (crm.db, owner sales) and
 * `erp` (erp.db, owner finance), bindings `source` (crm.customers, cursor updated_at) and `target` (erp.clients).
 */
export const customersDeclarations = `import { bind, defineHub, entity, flow, Money, sqlite, Type } from ${JSON.stringify(api)};
const Customer = entity("Customer", { version: 1, key: "id", schema: Type.Object({ id: Type.String(), name: Type.String(), email: Type.String({ format: "email" }), balance: Money() }, { additionalProperties: false }) });
const crm = sqlite("crm", { file: "crm.db", owner: "sales" });
const erp = sqlite("erp", { file: "erp.db", owner: "finance" });
const source = bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at", toCanonical: (r) => ({ id: String(r.id), name: String(r.name), email: String(r.email), balance: String(r.balance) }) });
const target = bind(erp, Customer, { table: "clients", key: "code", fromCanonical: (c) => ({ code: c.id, full_name: c.name, mail: c.email, balance: c.balance }) });`;

/**
 * `franca.config.ts` in `dir`: the customers hub (`customersDeclarations`) with flow `customers` from `source` to
 * `target`; `flow` adds settings to the flow (`, drift: "fail"`), `hub` to the hub (`store: "…", `).
 */
export function writeCustomersConfig(dir: string, settings: { flow?: string; hub?: string } = {}): void {
  writeFileSync(
    join(dir, "franca.config.ts"),
    `${customersDeclarations}
export default defineHub({ ${settings.hub ?? ""}systems: [crm, erp], entities: [Customer], flows: [flow("customers", { from: source, to: target${settings.flow ?? ""} })] });
`,
  );
}

/**
 * The customers hub with the drift policy `fail` in `dir`, a first run of its 20 customers done, then a field added
 * to the source and customer 3 changed since: the next run meets the drift.
 */
export function driftedAfterFirstRun(dir: string): void {
  writeCustomersConfig(dir, { flow: `, drift: "fail"` });
  const source = createCustomerSource(join(dir, "crm.db"), { rows: 20 });
  createClientsTarget(join(dir, "erp.db"));
  assert.equal(franca(dir, "run", "customers").code, 0);
  source.exec("ALTER TABLE customers ADD COLUMN region TEXT");
  source.exec("UPDATE customers SET updated_at = '2030-01-01T00:00:00.000Z' WHERE id = 3");
  source.close();
}

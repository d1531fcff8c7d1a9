/**
 * npm run demo — an order-to-cash integration on the embedded default (one process, state in a SQLite file):
 *
 *  1. creates the ERP (10,000 orders with their lines) and starts the tax engine, CRM and billing APIs;
 *  2. `franca check`, then `franca run invoices`: orders → canonical Invoices (tax rate and customer looked up,
 *     cached) → the billing API and a CSV file for the warehouse;
 *  3. runs again: the cursor has not moved, nothing new;
 *  4. edits five orders in the ERP and runs again: those five, and only those, flow;
 *  5. shows what each system saw, and where the ledger is and how to query it.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { createErp, editOrders, orderCount } from "./data.ts";
import { startSystems } from "./systems.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
const bin = fileURLToPath(new URL("../../bin/franca.js", import.meta.url));
const shown = relative(process.cwd(), here) || ".";
const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const step = (text: string) => console.log(`\n${bold(`▶ ${text}`)}`);

/** Runs the franca command as a user would. Asynchronously: the simulated APIs live in this process. */
async function franca(env: Record<string, string>, ...args: string[]): Promise<number> {
  console.log(bold(`$ franca ${args.join(" ")}`));
  const child = spawn(process.execPath, ["--max-semi-space-size=4", bin, ...args, "--log", ".franca/logs/franca.log"], {
    cwd: here,
    env: { ...process.env, ...env },
    stdio: "inherit",
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
}

for (const dir of ["data", "out", ".franca"]) rmSync(join(here, dir), { recursive: true, force: true });

step(`Creating the ERP: ${orderCount.toLocaleString("en-US")} orders with their lines (${join(shown, "data/erp.db")})`);
createErp(join(here, "data", "erp.db"));

step("Starting the tax engine, the CRM and the billing API (real HTTP servers on 127.0.0.1, with latency and faults)");
const systems = await startSystems();
try {
  await franca(systems.env, "check");

  // what check's health calls asked is not the run's: counted from here
  const asked = { tax: systems.taxEngine.stats.requests.get, crm: systems.crm.stats.requests.get };
  step("First run: every order becomes an invoice in billing and a line of the warehouse's CSV");
  const first = await franca(systems.env, "run", "invoices");
  const billed = systems.billing.records("invoices").length;
  console.log(
    `\nbilling now holds ${billed.toLocaleString("en-US")} invoices, duplicates created: ${systems.billing.duplicates()}` +
      ` (its API answered 500 to ${systems.billing.stats.faults ?? 0} requests; retries reused their idempotency keys)`,
  );
  console.log(
    `the run asked the tax engine ${systems.taxEngine.stats.requests.get - asked.tax} times and the CRM ${systems.crm.stats.requests.get - asked.crm} times for ${orderCount.toLocaleString("en-US")} orders: lookups are cached per run`,
  );
  console.log(`exit code ${first}: 3 means partial — a few orders were quarantined, each with its reason (see below)`);

  step("Second run: nothing changed in the ERP");
  await franca(systems.env, "run", "invoices");

  step("Editing five orders in the ERP, then running again");
  const edited = editOrders(join(here, "data", "erp.db"), [17, 256, 4096, 7777, 9999]);
  console.log(`edited orders ${edited.join(", ")}`);
  await franca(systems.env, "run", "invoices");

  step("The ledger");
  await franca(systems.env, "records", "1", "--status", "quarantined");
  const files = (existsSync(join(here, "out")) ? readdirSync(join(here, "out")) : [])
    .filter((name) => name.endsWith(".csv"))
    .sort();
  for (const name of files) {
    const lines =
      readFileSync(join(here, "out", name), "utf8")
        .trimEnd()
        .split("\n").length - 1;
    console.log(`warehouse file out/${name}: ${lines.toLocaleString("en-US")} invoices`);
  }

  step("Checking the demo's claims against the ledger and the systems");
  const store = new SqliteStore(join(here, ".franca", "franca.db"));
  try {
    const [first, second, third] = await Promise.all([1, 2, 3].map((id) => store.counts(id)));
    const runs = await Promise.all([1, 2, 3].map((id) => store.getRun(id)));
    const checks: [string, boolean][] = [
      ["run 1 extracted every order", first?.extracted === orderCount],
      [
        "billing holds exactly the invoices the ledger says were loaded",
        first?.targets["billing.Invoice"]?.loaded === systems.billing.records("invoices").length,
      ],
      ["billing got no duplicate", systems.billing.duplicates() === 0],
      [
        "every order is accounted for (loaded or quarantined)",
        (first?.canonical ?? 0) + (first?.quarantined ?? 0) === orderCount,
      ],
      ["run 2 found nothing new", runs[1]?.status === "succeeded" && second?.extracted === 0],
      [
        "run 3 moved exactly the five edited orders to both targets",
        third?.extracted === 5 &&
          third.targets["billing.Invoice"]?.loaded === 5 &&
          third.targets["warehouse.Invoice"]?.loaded === 5,
      ],
    ];
    for (const [name, ok] of checks) console.log(`${ok ? "✓" : "✗"} ${name}`);
    if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
  } finally {
    await store.close();
  }
} finally {
  await systems.close();
}

console.log(`
${bold("Where things are")}
  ledger (runs, chunks, every record's outcome): ${join(shown, ".franca/franca.db")}
  logs (JSON lines):                              ${join(shown, ".franca/logs/franca.log")}
  configuration:                                  ${join(shown, "franca.config.ts")}

${bold("Ask the ledger")} (the demo's APIs are stopped now; the ledger stays)
  npx franca runs -c ${join(shown, "franca.config.ts")}
  npx franca runs show 1 -c ${join(shown, "franca.config.ts")}
  npx franca records 1 --status quarantined -c ${join(shown, "franca.config.ts")}
  npx franca records 3 --key INV-17 -c ${join(shown, "franca.config.ts")}
`);

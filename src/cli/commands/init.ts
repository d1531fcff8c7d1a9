import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { Cli } from "../context.ts";
import { configFileName } from "../load-config.ts";

const francaRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

const configTemplate = `import { bind, defineHub, entity, file, flow, Type } from "franca";

// A canonical entity: declared once; every system maps to and from it.
const Customer = entity("Customer", {
  version: 1,
  key: "id",
  schema: Type.Object(
    {
      id: Type.String(),
      name: Type.String({ minLength: 1 }),
      email: Type.String({ format: "email" }),
      country: Type.String({ pattern: "^[A-Z]{2}$" }),
    },
    { additionalProperties: false },
  ),
  fields: { email: { pii: true, owner: "sales" } },
});

// Systems: the platforms the hub talks to. Swap these for sqlite(...), postgres(...) or http(...).
const crm = file("crm", { dir: "data", owner: "sales" });
const warehouse = file("warehouse", { dir: "out", create: true, owner: "analytics" });

// Bindings: how the entity is read from and written to each system.
const crmCustomers = bind(crm, Customer, {
  path: "customers.csv",
  format: "csv",
  key: "customer_id",
  toCanonical: (row) => ({
    id: String(row.customer_id),
    name: String(row.name).trim(),
    email: String(row.email).trim().toLowerCase(),
    country: String(row.country).trim().toUpperCase(),
  }),
});
const warehouseCustomers = bind(warehouse, Customer, { path: "customers-{run}.ndjson", format: "ndjson" });

export default defineHub({
  systems: [crm, warehouse],
  entities: [Customer],
  flows: [flow("customers", { from: crmCustomers, to: warehouseCustomers, failure: { maxFailedRatio: 0.5 } })],
});
`;

const sampleCsv = `customer_id,name,email,country
1,Ada Lovelace,ada@example.org,gb
2,Grace Hopper,grace@example.org,US
3,Alan Turing,alan@example.org,GB
4,Katherine Johnson,katherine.example.org,US
5,Edsger Dijkstra,edsger@example.org,NL
`;

const readme = `# A Franca hub

- \`franca check\` — validate the configuration and reach every system
- \`franca run customers\` — run the flow (record 4 has an invalid email: it is quarantined, the others load)
- \`franca runs\`, \`franca runs show <run>\`, \`franca records <run> --status quarantined\` — the ledger
`;

/** `franca init [dir]`: a starter project that runs as it is, to edit into a real one. */
export async function initCommand(cli: Cli): Promise<number> {
  const dir = resolve(cli.cwd, cli.positionals[1] ?? ".");
  const config = join(dir, configFileName);
  if (existsSync(config)) {
    throw new FrancaError(ErrorCode.Usage, `${config} already exists; not overwriting it`);
  }
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(config, configTemplate);
  if (!existsSync(join(dir, "data", "customers.csv"))) writeFileSync(join(dir, "data", "customers.csv"), sampleCsv);
  if (!existsSync(join(dir, "README.md"))) writeFileSync(join(dir, "README.md"), readme);
  const inside = !relative(francaRoot, dir).startsWith("..");
  if (!inside && !existsSync(join(dir, "package.json"))) {
    const dependency = `file:${relative(dir, francaRoot)}`;
    writeFileSync(
      join(dir, "package.json"),
      `${JSON.stringify({ name: "my-hub", private: true, type: "module", dependencies: { franca: dependency } }, null, 2)}\n`,
    );
  }
  cli.print(`created ${config}`);
  if (!inside) cli.print(`next: cd ${relative(cli.cwd, dir) || "."} && npm install && npx franca run customers`);
  else cli.print(`next: cd ${relative(cli.cwd, dir) || "."} && npx franca run customers`);
  return 0;
}

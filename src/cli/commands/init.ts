import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
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

/**
 * An npm package name for a project in `dir`: its folder's name, lower-cased, with what npm does not allow in a new
 * package's name (spaces, punctuation but `.`, `_` and `-`) made dashes and a leading dot or underscore dropped;
 * "my-hub" when nothing is left of it.
 */
export function packageName(dir: string): string {
  const name = basename(dir)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[._-]+|[.-]+$/g, "")
    .slice(0, 214);
  return name === "" || name === "node_modules" || name === "favicon.ico" ? "my-hub" : name;
}

/** `franca init [dir]`: a starter project that runs as it is, to edit into a real one. */
export async function initCommand(cli: Cli): Promise<number> {
  const dir = resolve(cli.cwd, cli.positionals[1] ?? ".");
  const config = join(dir, configFileName);
  if (existsSync(config)) {
    throw new FrancaError(ErrorCode.Usage, `${config} already exists; not overwriting it`);
  }
  const inside = !relative(francaRoot, dir).startsWith("..");
  const files: [path: string, text: string][] = [
    [config, configTemplate],
    [join(dir, "data", "customers.csv"), sampleCsv],
    [join(dir, "README.md"), readme],
  ];
  if (!inside) {
    const dependency = `file:${relative(dir, francaRoot)}`;
    const manifest = { name: packageName(dir), private: true, type: "module", dependencies: { franca: dependency } };
    files.push([join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`]);
  }
  mkdirSync(join(dir, "data"), { recursive: true });
  const kept: string[] = [];
  cli.print(`created in ${dir}:`);
  for (const [path, text] of files) {
    // the configuration was checked above; any other file already there is the user's, left as it is
    if (path !== config && existsSync(path)) kept.push(path);
    else {
      writeFileSync(path, text);
      cli.print(`  ${relative(dir, path)}`);
    }
  }
  if (kept.length > 0) cli.print(`kept as they were: ${kept.map((path) => relative(dir, path)).join(", ")}`);
  const where = relative(cli.cwd, dir);
  const cd = where === "" ? "" : `cd ${/^[\w./-]+$/.test(where) ? where : `'${where.replaceAll("'", `'\\''`)}'`} && `;
  cli.print(`next: ${cd}${inside ? "" : "npm install && "}npx franca run customers`);
  return 0;
}

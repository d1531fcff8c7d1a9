/**
 * The demo's data, deterministic (seeded): an ERP with orders and lines, the CRM's customers and the tax engine's
 * regional rates. A few records are wrong on purpose, so the run shows quarantine: orders with a zero quantity,
 * orders of a customer the CRM does not know, customers whose email is not an email.
 */
import { mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { seededRandom } from "../../sim/random.ts";

export const orderCount = 10_000;
export const customerCount = 2_000;

export const regions: Record<string, string> = {
  DE: "0.19",
  FR: "0.20",
  NL: "0.21",
  BE: "0.21",
  ES: "0.21",
  IT: "0.22",
  IE: "0.23",
  AT: "0.20",
  PL: "0.23",
  SE: "0.25",
  DK: "0.25",
  FI: "0.255",
  PT: "0.23",
  GB: "0.20",
  CH: "0.081",
  NO: "0.25",
  "US-CA": "0.0725",
  "US-NY": "0.04",
  "US-TX": "0.0625",
  "US-WA": "0.065",
  "US-FL": "0.06",
  "US-OR": "0",
  "CA-ON": "0.13",
  "CA-QC": "0.14975",
  AU: "0.10",
  NZ: "0.15",
  JP: "0.10",
  SG: "0.09",
  IN: "0.18",
  BR: "0.17",
};

const products = [
  ["SKU-1001", "Copy paper A4, 500 sheets", 599],
  ["SKU-1002", "Stapler, heavy duty", 2450],
  ["SKU-1003", "Ballpoint pens, box of 50", 1275],
  ["SKU-1004", "Desk lamp LED", 3999],
  ["SKU-1005", "Office chair, ergonomic", 24900],
  ["SKU-1006", "Whiteboard 120×90", 8950],
  ["SKU-1007", "Sticky notes, 12 pads", 699],
  ["SKU-1008", "Monitor arm", 6490],
  ["SKU-1009", "Ethernet cable 5 m", 899],
  ["SKU-1010", "Label printer", 15900],
] as const;

export type Customer = {
  id: string;
  name: string;
  email: string;
  updatedAt: string;
};

const firstNames = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus"];
const lastNames = [
  "Lovelace",
  "Hopper",
  "Turing",
  "Dijkstra",
  "Liskov",
  "Knuth",
  "Allen",
  "Thompson",
  "Hamilton",
  "Wirth",
];

export function customers(): Customer[] {
  const next = seededRandom(7);
  return Array.from({ length: customerCount }, (_, i) => {
    const first = firstNames[Math.floor(next() * firstNames.length)] as string;
    const last = lastNames[Math.floor(next() * lastNames.length)] as string;
    const id = `C${String(i + 1).padStart(5, "0")}`;
    // every 400th customer has a broken email: their invoices are quarantined by validation
    const email =
      (i + 1) % 400 === 0 ? `${first}.${last}.example.org` : `${first}.${last}.${i + 1}@example.org`.toLowerCase();
    return { id, name: `${first} ${last}`, email, updatedAt: "2026-01-01T00:00:00.000Z" };
  });
}

/** Creates the ERP database: orders and order lines, ordered over ten months of 2026. */
export function createErp(file: string): void {
  rmSync(file, { force: true });
  mkdirSync(dirname(file), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec(`
    CREATE TABLE orders (
      id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, region TEXT NOT NULL, currency TEXT NOT NULL,
      ordered_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX orders_changes ON orders (updated_at, id);
    CREATE TABLE order_lines (
      order_id INTEGER NOT NULL REFERENCES orders(id), line INTEGER NOT NULL, sku TEXT NOT NULL, description TEXT NOT NULL,
      quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL, PRIMARY KEY (order_id, line));`);
  const next = seededRandom(42);
  const regionNames = Object.keys(regions);
  const insertOrder = db.prepare("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)");
  const insertLine = db.prepare("INSERT INTO order_lines VALUES (?, ?, ?, ?, ?, ?)");
  const start = Date.UTC(2026, 0, 1);
  db.exec("BEGIN");
  for (let id = 1; id <= orderCount; id++) {
    const region = regionNames[Math.floor(next() * regionNames.length)] as string;
    const currency = region.startsWith("US")
      ? "USD"
      : region.startsWith("CA")
        ? "CAD"
        : ["GB"].includes(region)
          ? "GBP"
          : "EUR";
    // every 1,250th order belongs to a customer the CRM does not know: the lookup fails, the order is quarantined
    const customer = id % 1250 === 0 ? "C99999" : `C${String(1 + Math.floor(next() * customerCount)).padStart(5, "0")}`;
    const at = new Date(start + id * 2_600_000).toISOString();
    insertOrder.run(id, customer, region, currency, at, at);
    const lines = 1 + Math.floor(next() * 5);
    for (let line = 1; line <= lines; line++) {
      const [sku, description, price] = products[Math.floor(next() * products.length)] as (typeof products)[number];
      // every 2,000th order has a line with quantity 0: quarantined by validation (/lines/0/quantity)
      const quantity = id % 2000 === 0 && line === 1 ? 0 : 1 + Math.floor(next() * 10);
      insertLine.run(id, line, sku, description, quantity, price);
    }
  }
  db.exec("COMMIT");
  db.close();
}

/** Changes a few orders, as a day in the ERP would: new quantities, a fresh updated_at. Returns their ids. */
export function editOrders(file: string, ids: readonly number[]): number[] {
  const db = new DatabaseSync(file);
  const now = new Date().toISOString();
  db.exec("BEGIN");
  for (const id of ids) {
    db.prepare("UPDATE order_lines SET quantity = quantity + 1 WHERE order_id = ? AND line = 1").run(id);
    db.prepare("UPDATE orders SET updated_at = ? WHERE id = ?").run(now, id);
  }
  db.exec("COMMIT");
  db.close();
  return [...ids];
}

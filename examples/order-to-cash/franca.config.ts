/**
 * Order to cash: ERP orders (SQLite) become canonical Invoices, enriched with the tax engine's rate for the
 * ship-to region and the customer from the CRM (cached lookups), then loaded into the billing API and written
 * as a CSV file for the warehouse (fan-out: one source, two targets).
 *
 * The three APIs are simulated by `npm run demo` (systems.ts); their URLs come from the environment.
 */
import { bind, defineHub, file, flow, http, lookup, sqlite } from "franca";
import { Invoice, money, taxOf } from "./invoice.ts";

const env = (name: string, fallback: string) => process.env[name] ?? fallback;

// --- systems: the platforms the hub talks to, each with an owner and its own limits
const erp = sqlite("erp", { file: "data/erp.db", owner: "operations" });

const taxEngine = http("taxEngine", {
  baseUrl: env("FRANCA_DEMO_TAX_URL", "http://127.0.0.1:4101"),
  auth: { type: "apiKey", header: "X-API-Key", value: env("FRANCA_DEMO_TAX_KEY", "demo-tax-key") },
  owner: "tax",
  limits: { concurrency: 16, timeoutMs: 2_000, retry: { maxAttempts: 5, initialDelayMs: 50 } },
});

const crm = http("crm", {
  baseUrl: env("FRANCA_DEMO_CRM_URL", "http://127.0.0.1:4102"),
  owner: "sales",
  limits: { concurrency: 16, timeoutMs: 2_000 },
});

const billing = http("billing", {
  baseUrl: env("FRANCA_DEMO_BILLING_URL", "http://127.0.0.1:4103"),
  auth: { type: "bearer", token: env("FRANCA_DEMO_BILLING_TOKEN", "demo-billing-token") },
  owner: "finance",
  limits: {
    concurrency: 8,
    rateLimit: { requests: 200, perMs: 1_000 },
    timeoutMs: 5_000,
    retry: { maxAttempts: 6, initialDelayMs: 100 },
  },
});

const warehouse = file("warehouse", { dir: "out", create: true, owner: "logistics" });

// --- lookups: named, cached enrichment calls (one request per region or customer per run, however many orders)
const taxRate = lookup("taxRate", {
  system: taxEngine,
  description: "tax rate of a ship-to region",
  get: async (region: string, { client, signal }) =>
    (await client.get<{ rate: string }>(`/rates/${region}`, { signal })).rate,
});

interface CrmCustomer {
  id: string;
  name: string;
  email: string;
}
const customer = lookup("customer", {
  system: crm,
  description: "a customer by id",
  get: (id: string, { client, signal }) => client.get<CrmCustomer>(`/customers/${encodeURIComponent(id)}`, { signal }),
});

// --- bindings: how an Invoice is read from the ERP and written to billing and the warehouse
interface OrderRow {
  [field: string]: unknown;
  id: number;
  customer_id: string;
  region: string;
  currency: string;
  ordered_at: string;
  lines: string;
}
interface OrderLine {
  sku: string;
  description: string;
  quantity: number;
  unit_price_cents: number;
}

const erpOrders = bind(erp, Invoice, {
  // the order and its lines in one row; keyset reads wrap this query, ordered by (updated_at, id)
  query: `SELECT o.id, o.customer_id, o.region, o.currency, o.ordered_at, o.updated_at,
            (SELECT json_group_array(json_object('sku', l.sku, 'description', l.description, 'quantity', l.quantity,
                                                 'unit_price_cents', l.unit_price_cents))
               FROM order_lines l WHERE l.order_id = o.id) AS lines
          FROM orders o`,
  key: "id",
  cursor: "updated_at",
  toCanonical: async (order: OrderRow, ctx) => {
    const [rate, buyer] = await Promise.all([
      ctx.lookup(taxRate, order.region),
      ctx.lookup(customer, order.customer_id),
    ]);
    const lines = (JSON.parse(order.lines) as OrderLine[]).map((line) => {
      const amount = line.quantity * line.unit_price_cents;
      const tax = taxOf(amount, rate);
      return { ...line, amount, tax };
    });
    const subtotal = lines.reduce((sum, line) => sum + line.amount, 0);
    const tax = lines.reduce((sum, line) => sum + line.tax, 0);
    return {
      number: `INV-${order.id}`,
      orderId: order.id,
      customer: { id: buyer.id, name: buyer.name, email: buyer.email },
      region: order.region,
      currency: order.currency,
      issuedOn: order.ordered_at.slice(0, 10),
      lines: lines.map((line) => ({
        sku: line.sku,
        description: line.description,
        quantity: line.quantity,
        unitPrice: money(line.unit_price_cents),
        taxRate: rate,
        tax: money(line.tax),
        amount: money(line.amount),
      })),
      subtotal: money(subtotal),
      tax: money(tax),
      total: money(subtotal + tax),
    };
  },
});

const billingInvoices = bind(billing, Invoice, {
  path: "/invoices",
  mode: "batch",
  batchPath: "/invoices/batch",
  batchSize: 100,
  idPath: "id",
  fromCanonical: (invoice) => ({
    number: invoice.number,
    customerId: invoice.customer.id,
    currency: invoice.currency,
    issuedOn: invoice.issuedOn,
    lines: invoice.lines,
    total: invoice.total,
    tax: invoice.tax,
  }),
});

const warehouseInvoices = bind(warehouse, Invoice, {
  path: "invoices-{run}.csv",
  format: "csv",
  csv: { columns: ["number", "order_id", "customer_id", "region", "issued_on", "lines", "units", "total", "currency"] },
  fromCanonical: (invoice) => ({
    number: invoice.number,
    order_id: invoice.orderId,
    customer_id: invoice.customer.id,
    region: invoice.region,
    issued_on: invoice.issuedOn,
    lines: invoice.lines.length,
    units: invoice.lines.reduce((sum, line) => sum + line.quantity, 0),
    total: invoice.total,
    currency: invoice.currency,
  }),
});

export default defineHub({
  name: "order-to-cash",
  systems: [erp, taxEngine, crm, billing, warehouse],
  entities: [Invoice],
  lookups: [taxRate, customer],
  flows: [
    flow("invoices", {
      description: "ERP orders → billing invoices and the warehouse's CSV",
      from: erpOrders,
      to: [billingInvoices, warehouseInvoices],
      schedule: "*/15 * * * *",
      chunkSize: 500,
      failure: { maxFailedRatio: 0.05 },
    }),
  ],
});

/**
 * bench:api's measured part, in its own process (its peak memory is its own): orders from PostgreSQL → canonical
 * invoices (tax rate and customer looked up) → the billing API in batches of 100.
 * Arguments: <work dir> <postgres url> <schema> <tax url> <crm url> <billing url>. Prints one JSON line.
 */
import Type from "typebox";
import { type HttpClient, http } from "../src/connectors/http/index.ts";
import { postgres } from "../src/connectors/postgres/index.ts";
import { bind } from "../src/core/binding.ts";
import { entity } from "../src/core/entity.ts";
import { flow } from "../src/core/flow.ts";
import { defineHub } from "../src/core/hub.ts";
import { lookup } from "../src/core/lookup.ts";
import { Decimal, Money } from "../src/core/types.ts";
import { Engine } from "../src/engine/engine.ts";

const [dir, pgUrl, schema, taxUrl, crmUrl, billingUrl] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];

const Invoice = entity("Invoice", {
  version: 1,
  key: "number",
  schema: Type.Object(
    {
      number: Type.String(),
      customer: Type.Object(
        { id: Type.String(), name: Type.String(), email: Type.String({ format: "email" }) },
        { additionalProperties: false },
      ),
      region: Type.String(),
      taxRate: Decimal(),
      lines: Type.Array(
        Type.Object(
          { sku: Type.String(), quantity: Type.Integer({ minimum: 1 }), amount: Money() },
          { additionalProperties: false },
        ),
        { minItems: 1 },
      ),
      subtotal: Money(),
      tax: Money(),
      total: Money(),
    },
    { additionalProperties: false },
  ),
});

const money = (cents: number) => `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
/** `rate` (a decimal string) of `cents`, rounded half up, in integer arithmetic. */
const taxOf = (cents: number, rate: string) => {
  const [whole = "0", fraction = ""] = rate.split(".");
  const scale = 10 ** fraction.length;
  return Math.floor((cents * (Number(whole) * scale + Number(fraction || "0")) * 2 + scale) / (2 * scale));
};

// JIT off for the ERP's sessions: the extraction is a streaming index scan, and PostgreSQL's JIT compilation of it
// (~150 ms here) would only delay the first rows
const erp = postgres("erp", { url: `${pgUrl}?options=-c%20jit%3Doff`, poolSize: 4 });
// the tax engine answers in 20 ms and its 503s are momentary: a retry after ~25 ms, not the default 200 ms
const taxEngine = http("taxEngine", {
  baseUrl: taxUrl,
  limits: { concurrency: 32, timeoutMs: 2000, retry: { initialDelayMs: 25 } },
});
const crm = http("crm", { baseUrl: crmUrl, limits: { concurrency: 128, timeoutMs: 2000 } });
const billing = http("billing", {
  baseUrl: billingUrl,
  limits: {
    concurrency: 8,
    rateLimit: { requests: 50, perMs: 1000 },
    timeoutMs: 5000,
    retry: { maxAttempts: 8, initialDelayMs: 50 },
  },
});

const taxRate = lookup("taxRate", {
  system: taxEngine,
  get: async (region: string, { client, signal }) =>
    (await (client as HttpClient).get<{ rate: string }>(`/rates/${region}`, { signal })).rate,
});
const customer = lookup("customer", {
  system: crm,
  get: (id: string, { client, signal }) =>
    (client as HttpClient).get<{ id: string; name: string; email: string }>(`/customers/${id}`, { signal }),
});

interface Line {
  sku: string;
  quantity: number;
  price_cents: number;
}

const hub = defineHub({
  systems: [erp, taxEngine, crm, billing],
  entities: [Invoice],
  lookups: [taxRate, customer],
  store: `${dir}/franca.db`,
  flows: [
    flow("invoices", {
      from: bind(erp, Invoice, {
        query: `SELECT o.id, o.customer_id, o.region,
                  (SELECT json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity, 'price_cents', l.price_cents) ORDER BY l.line)
                     FROM ${schema}.order_lines l WHERE l.order_id = o.id) AS lines
                FROM ${schema}.orders o`,
        key: "id",
        toCanonical: async (row, ctx) => {
          const [rate, buyer] = await Promise.all([
            ctx.lookup(taxRate, String(row.region)),
            ctx.lookup(customer, String(row.customer_id)),
          ]);
          const lines = (row.lines as Line[]).map((line) => ({
            sku: line.sku,
            quantity: line.quantity,
            cents: line.quantity * line.price_cents,
          }));
          const subtotal = lines.reduce((sum, line) => sum + line.cents, 0);
          const tax = lines.reduce((sum, line) => sum + taxOf(line.cents, rate), 0);
          return {
            number: `INV-${String(row.id)}`,
            customer: { id: buyer.id, name: buyer.name, email: buyer.email },
            region: String(row.region),
            taxRate: rate,
            lines: lines.map((line) => ({ sku: line.sku, quantity: line.quantity, amount: money(line.cents) })),
            subtotal: money(subtotal),
            tax: money(tax),
            total: money(subtotal + tax),
          };
        },
      }),
      to: bind(billing, Invoice, { path: "/invoices", mode: "batch", batchPath: "/invoices/batch", batchSize: 100 }),
      // a chunk is one billing batch: each goes out as soon as its 100 orders are enriched
      chunkSize: 100,
      loadConcurrency: 8,
      // the mapping awaits two lookups per order: four chunks' lookups overlap
      transformConcurrency: 4,
    }),
  ],
});

if (process.env.BENCH_MEM !== undefined) {
  setInterval(() => {
    const m = process.memoryUsage();
    process.stderr.write(
      `mem rss ${(m.rss / 1048576).toFixed(0)} heap ${(m.heapUsed / 1048576).toFixed(0)}/${(m.heapTotal / 1048576).toFixed(0)} ext ${(m.external / 1048576).toFixed(0)} ab ${(m.arrayBuffers / 1048576).toFixed(0)}\n`,
    );
  }, 1000).unref();
}
const started = performance.now();
const startedAt = Date.now();
const engine = await Engine.open({ hub, baseDir: dir });
const opened = performance.now();
let firstLoad = 0;
let firstTransform = 0;
let firstExtract = 0;
const summary = await engine.run("invoices", {
  trigger: "bench",
  onProgress: (progress) => {
    if (firstExtract === 0 && progress.extracted > 0) firstExtract = performance.now();
    if (firstTransform === 0 && progress.transformed > 0) firstTransform = performance.now();
    if (firstLoad === 0 && (progress.targets["billing.Invoice"]?.loaded ?? 0) > 0) firstLoad = performance.now();
  },
});
const wall = (performance.now() - started) / 1000;
await engine.close();
const lookups = summary.run.stats.lookups as Record<string, { requests: number; hitRate: number }>;
process.stdout.write(
  `${JSON.stringify({
    wall_s: wall,
    started_at: startedAt,
    open_ms: Math.round(opened - started),
    first_extract_ms: Math.round(firstExtract - started),
    first_transform_ms: Math.round(firstTransform - started),
    first_load_ms: Math.round(firstLoad - started),
    status: summary.run.status,
    loaded: summary.counts.targets["billing.Invoice"]?.loaded ?? 0,
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    cpu_s: Number(((process.cpuUsage().user + process.cpuUsage().system) / 1e6).toFixed(2)),
    lookups,
    billing: summary.run.stats.systems,
  })}\n`,
);

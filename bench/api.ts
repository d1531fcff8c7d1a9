/**
 * bench:api — N orders (default 20,000; 5,000 customers, 400 regions, 1–5 lines each) in PostgreSQL, enriched by
 * a tax API and a CRM API, loaded into a rate-limited, faulty billing API (see api-systems.ts), measured against:
 *
 * - the theoretical lower bound from the systems' limits: billing takes batches of 100 at 50 requests/s, and 2 % of
 *   its answers are 500s (each costs one more request), so
 *       lower_bound_s = ⌈N / 100⌉ / (1 − 0.02) / 50 + 0.040
 *   (the last request's 40 ms latency). Lookups (400 regions at 32 in flight × 20 ms, 5,000 customers × 15 ms)
 *   overlap with loading and do not bound it.
 * - a naive loop on a sample: for each order, one GET for the tax rate, one for the customer, one POST of the
 *   invoice, one after the other (what a point-to-point script does), extrapolated to N.
 *
 *   npm run bench:api [-- --n 20000 --sample 200]
 *
 * Diagnostics (environment): BENCH_PROFILE=<dir> writes a CPU profile of the measured part; BENCH_TIMELINE=1 prints
 * when the first requests reached each system and the gaps between billing batches; BENCH_MEM=1 (with
 * BENCH_TIMELINE) prints the part's memory every second.
 *
 * The last line printed is JSON: {"bench":"api","n":…,"wall_s":…,"lower_bound_s":…,"ratio":…,
 * "naive_extrapolated_s":…,"peak_rss_mb":…,"duplicates":…,"missing":…}
 */
import { execFile } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { customerCount, regionCount, startApiSystems } from "./api-systems.ts";
import { cliEnv, cliNodeFlags } from "./cli-settings.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "20000" },
    sample: { type: "string", default: "200" },
    pg: { type: "string", default: "postgres://postgres@127.0.0.1:5432/test" },
  },
});
const n = Number(values.n);
const sample = Math.min(n, Number(values.sample));
const schema = "franca_bench_api";
const dir = fileURLToPath(new URL("./.work/api", import.meta.url));
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

// --- the ERP in PostgreSQL
const db = new pg.Client({ connectionString: values.pg });
await db.connect();
await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
await db.query(
  `CREATE TABLE ${schema}.orders (id bigint PRIMARY KEY, customer_id text NOT NULL, region text NOT NULL)`,
);
await db.query(
  `CREATE TABLE ${schema}.order_lines (order_id bigint NOT NULL, line int NOT NULL, sku text NOT NULL, quantity int NOT NULL,
     price_cents int NOT NULL, PRIMARY KEY (order_id, line))`,
);
await db.query(
  `INSERT INTO ${schema}.orders
   SELECT g, 'C' || lpad(((g * 7919) % ${customerCount})::text, 5, '0'), 'R' || lpad(((g * 31) % ${regionCount})::text, 3, '0')
   FROM generate_series(1, $1) AS g`,
  [n],
);
await db.query(
  `INSERT INTO ${schema}.order_lines
   SELECT o.id, l, 'SKU-' || ((o.id * l) % 100), 1 + ((o.id + l) % 9), 100 + ((o.id * 13 + l) % 9900)
   FROM ${schema}.orders o CROSS JOIN generate_series(1, 5) AS l WHERE l <= 1 + (o.id % 5)`,
);
const lines = Number((await db.query(`SELECT count(*) AS n FROM ${schema}.order_lines`)).rows[0].n);
console.log(
  `ERP: ${n.toLocaleString("en-US")} orders, ${lines.toLocaleString("en-US")} lines, ${customerCount} customers, ${regionCount} regions`,
);

// --- the naive loop, on a sample, against its own instances of the systems
{
  const systems = await startApiSystems(101);
  const rows = (
    await db.query(
      `SELECT o.id, o.customer_id, o.region, json_agg(json_build_object('quantity', l.quantity, 'price_cents', l.price_cents)) AS lines
       FROM ${schema}.orders o JOIN ${schema}.order_lines l ON l.order_id = o.id WHERE o.id <= $1 GROUP BY o.id ORDER BY o.id`,
      [sample],
    )
  ).rows as { id: string; customer_id: string; region: string; lines: { quantity: number; price_cents: number }[] }[];
  const started = performance.now();
  for (const row of rows) {
    // one call after the other, retried on the faults the systems inject, as a careful script would
    const call = async (url: string, init?: RequestInit): Promise<Response> => {
      for (;;) {
        const response = await fetch(url, init);
        if (response.status < 500 && response.status !== 429) return response;
        await response.arrayBuffer();
        const wait = Number(response.headers.get("retry-after") ?? 0) * 1000;
        await new Promise((resolve) => setTimeout(resolve, Math.max(wait, 50)));
      }
    };
    const rate = ((await (await call(`${systems.tax.url}/rates/${row.region}`)).json()) as { rate: string }).rate;
    const buyer = await (await call(`${systems.crm.url}/customers/${row.customer_id}`)).json();
    const total = row.lines.reduce((sum, line) => sum + line.quantity * line.price_cents, 0);
    const response = await call(`${systems.billing.url}/invoices`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": `naive-${row.id}` },
      body: JSON.stringify({ number: `INV-${row.id}`, customer: buyer, rate, total }),
    });
    await response.arrayBuffer();
  }
  const seconds = (performance.now() - started) / 1000;
  await systems.close();
  console.log(
    `naive loop: ${sample} orders in ${seconds.toFixed(2)} s → ${((seconds / sample) * n).toFixed(0)} s for ${n.toLocaleString("en-US")}`,
  );
  process.env.NAIVE_S = String((seconds / sample) * n);
}

// --- Franca
const systems = await startApiSystems(1);
const franca0 = Date.now();
const part = fileURLToPath(new URL("./api-part.ts", import.meta.url));
// asynchronously: the simulated systems live in this process and must keep answering
const output = await new Promise<string>((resolve, reject) => {
  execFile(
    process.execPath,
    [
      ...cliNodeFlags,
      ...(process.env.BENCH_PROFILE === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]),
      part,
      dir,
      values.pg as string,
      schema,
      systems.tax.url,
      systems.crm.url,
      systems.billing.url,
    ],
    // the settings the `franca` command runs with (bin/franca.js)
    { maxBuffer: 16 * 1024 * 1024, env: cliEnv },
    (error, stdout, stderr) => {
      if (process.env.BENCH_TIMELINE !== undefined) process.stderr.write(stderr);
      if (error === null) resolve(stdout);
      else reject(new Error(`${error.message}\n${stderr}`));
    },
  );
});
console.log(output.trim().split("\n").at(-1));
const result = JSON.parse(output.trim().split("\n").at(-1) as string) as {
  wall_s: number;
  status: string;
  loaded: number;
  peak_rss_mb: number;
  lookups: Record<string, { requests: number; hitRate: number }>;
};
const batchLog = systems.billing.log().filter((entry) => entry.route === "batch");
if (process.env.BENCH_TIMELINE !== undefined) {
  const t0 = (result as unknown as { started_at: number }).started_at;
  const at = (log: readonly { at: number }[], i: number) =>
    log[i] === undefined ? "-" : `${(log[i] as { at: number }).at - t0}`;
  const tax = systems.tax.log();
  const crm = systems.crm.log();
  console.log(
    `from the part's start (ms): tax requests #1 ${at(tax, 0)}, #32 ${at(tax, 31)}, #100 ${at(tax, 99)}, #400 ${at(tax, 399)}; ` +
      `crm #1 ${at(crm, 0)}, #100 ${at(crm, 99)}, #1000 ${at(crm, 999)}; billing #1 ${at(batchLog, 0)}, #2 ${at(batchLog, 1)}, #10 ${at(batchLog, 9)}, #50 ${at(batchLog, 49)}, last ${at(batchLog, batchLog.length - 1)}; run ended ${Math.round(result.wall_s * 1000)}`,
  );
}
if (process.env.BENCH_TIMELINE !== undefined && batchLog.length > 1) {
  const first = (batchLog[0] as { at: number }).at;
  const gaps = batchLog.slice(1).map((entry, i) => entry.at - (batchLog[i] as { at: number }).at);
  const slow = gaps.filter((gap) => gap > 30);
  console.log(
    `billing timeline: first batch at +${first - franca0} ms, span ${((batchLog.at(-1) as { at: number }).at - first) / 1000} s, ${slow.length} gaps over 30 ms totalling ${slow.reduce((a, b) => a + b, 0)} ms; gaps: ${gaps.slice(0, 40).join(" ")}`,
  );
}
const invoices = systems.billing.records("invoices");
const numbers = new Set(invoices.map((invoice) => String(invoice.number)));
let missing = 0;
for (let id = 1; id <= n; id++) if (!numbers.has(`INV-${id}`)) missing++;
const duplicates = systems.billing.duplicates();
const billingStats = systems.billing.stats;
console.log(
  `Franca: ${result.status}, ${result.loaded.toLocaleString("en-US")} invoices loaded in ${result.wall_s.toFixed(2)} s; ` +
    `billing saw ${billingStats.requests.batch} batch requests, ${billingStats.rateLimited} × 429, ${billingStats.faults} × 500 before storing, ` +
    `${billingStats.faultsAfterStore} × 500 after storing, ${billingStats.replays} idempotent replays; ` +
    `tax requests ${systems.tax.stats.requests.get}, CRM requests ${systems.crm.stats.requests.get}`,
);
await systems.close();
await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
await db.end();

const lowerBound = Math.ceil(n / 100) / (1 - 0.02) / 50 + 0.04;
console.log(
  JSON.stringify({
    bench: "api",
    n,
    wall_s: Number(result.wall_s.toFixed(3)),
    lower_bound_s: Number(lowerBound.toFixed(3)),
    ratio: Number((result.wall_s / lowerBound).toFixed(3)),
    naive_extrapolated_s: Math.round(Number(process.env.NAIVE_S)),
    peak_rss_mb: result.peak_rss_mb,
    duplicates,
    missing,
  }),
);

/**
 * The demo's remote systems, simulated by real HTTP servers on 127.0.0.1 with latency and a few faults:
 * - tax engine: GET /rates/{region} (20 ms, 2 % answered 503: retried);
 * - CRM: GET /customers/{id} (15 ms);
 * - billing: POST /invoices/batch (40 ms, 1 % answered 500, 1 % stored but answered 500 like a lost response:
 *   retried with the same Idempotency-Key, so nothing is created twice).
 */
import { type SimApi, startSimApi } from "../../sim/api.ts";
import { customers, regions } from "./data.ts";

export interface DemoSystems {
  taxEngine: SimApi;
  crm: SimApi;
  billing: SimApi;
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function startSystems(): Promise<DemoSystems> {
  const taxEngine = await startSimApi({
    seed: 1,
    collections: {
      rates: { key: "region", records: Object.entries(regions).map(([region, rate]) => ({ region, rate })) },
    },
    defaults: { auth: { apiKey: { header: "X-API-Key", value: "demo-tax-key" } } },
    get: { latencyMs: 20, unavailableRate: 0.02 },
  });
  const crm = await startSimApi({
    seed: 2,
    collections: { customers: { key: "id", records: customers() } },
    get: { latencyMs: 15 },
  });
  const billing = await startSimApi({
    seed: 3,
    collections: { invoices: { key: "number", idField: "id", idPrefix: "inv_", records: [] } },
    defaults: { auth: { bearer: "demo-billing-token" } },
    batch: { latencyMs: 40, faultRate: 0.01, faultAfterStoreRate: 0.01 },
  });
  return {
    taxEngine,
    crm,
    billing,
    env: {
      FRANCA_DEMO_TAX_URL: taxEngine.url,
      FRANCA_DEMO_CRM_URL: crm.url,
      FRANCA_DEMO_BILLING_URL: billing.url,
    },
    async close() {
      await Promise.all([taxEngine.close(), crm.close(), billing.close()]);
    },
  };
}

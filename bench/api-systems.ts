/**
 * The systems of bench:api, as the issue specifies them, simulated by real HTTP servers on 127.0.0.1:
 * - tax engine: GET /rates/{region}, 20 ms, at most 32 requests in flight (503 beyond), 1 % 503;
 * - CRM: GET /customers/{id}, 15 ms;
 * - billing: POST /invoices (single) and POST /invoices/batch (up to 100), 40 ms, 50 requests/s (429 with
 *   Retry-After beyond), 2 % 500 of which half after the invoices were stored, Idempotency-Key honoured.
 */
import { type SimApi, startSimApi } from "../sim/api.ts";

export const regionCount = 400;
export const customerCount = 5000;

export const regionName = (i: number) => `R${String(i).padStart(3, "0")}`;
export const customerName = (i: number) => `C${String(i).padStart(5, "0")}`;

export interface ApiSystems {
  tax: SimApi;
  crm: SimApi;
  billing: SimApi;
  close(): Promise<void>;
}

export async function startApiSystems(seed = 1): Promise<ApiSystems> {
  const tax = await startSimApi({
    seed,
    logSize: 1000,
    collections: {
      rates: {
        key: "region",
        records: Array.from({ length: regionCount }, (_, i) => ({
          region: regionName(i),
          rate: `0.${String(5 + (i % 20)).padStart(2, "0")}`,
        })),
      },
    },
    get: { latencyMs: 20, unavailableRate: 0.01, concurrency: { max: 32, reject: true } },
  });
  const crm = await startSimApi({
    seed: seed + 1,
    logSize: 6000,
    collections: {
      customers: {
        key: "id",
        records: Array.from({ length: customerCount }, (_, i) => ({
          id: customerName(i),
          name: `Customer ${i}`,
          email: `customer${i}@example.org`,
        })),
      },
    },
    get: { latencyMs: 15 },
  });
  const billing = await startSimApi({
    seed: seed + 2,
    logSize: 5000,
    collections: { invoices: { key: "number", idField: "id", idPrefix: "inv_", records: [] } },
    defaults: {
      latencyMs: 40,
      faultRate: 0.01,
      faultAfterStoreRate: 0.01,
      rateLimit: { requests: 50, windowMs: 1000 },
    },
    batch: { latencyMs: 40, faultRate: 0.01, faultAfterStoreRate: 0.01, rateLimit: { requests: 50, windowMs: 1000 } },
  });
  return {
    tax,
    crm,
    billing,
    async close() {
      await Promise.all([tax.close(), crm.close(), billing.close()]);
    },
  };
}

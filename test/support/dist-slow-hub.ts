/**
 * A hub of the distributed tests whose source is as slow as the test makes it, as a configuration file: the test
 * process and every `franca worker` it starts load it. Settings come from the environment, as in dist-hub.ts
 * (FRANCA_DIST_SCHEMA, FRANCA_DIST_API, FRANCA_DIST_CAP).
 *
 * One flow, `slow`: the simulated API's collection `source` (records of Item's shape), read page by page, 50 records
 * a page (the test sets the API's list latency: a page at a time, as slow as it likes) → the API's `items`, written
 * by batch with idempotency keys, as in dist-hub.ts. The source system's timeout is long enough for a page held for a
 * minute to be waited for, not retried.
 */
import { http } from "../../src/connectors/http/index.ts";
import { bind } from "../../src/core/binding.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { distUrl, Item } from "./dist-hub.ts";

export const slowPageSize = 50;

export function distSlowHub(env: Record<string, string | undefined>) {
  const schema = env.FRANCA_DIST_SCHEMA ?? "franca_dist";
  const baseUrl = env.FRANCA_DIST_API ?? "http://127.0.0.1:9";
  const source = http("source", { baseUrl, limits: { timeoutMs: 120_000 } });
  const api = http("api", {
    baseUrl,
    limits: {
      concurrency: Number(env.FRANCA_DIST_CAP ?? 6),
      timeoutMs: 10_000,
      retry: { maxAttempts: 6, initialDelayMs: 50 },
    },
  });
  return defineHub({
    store: `${distUrl}?schema=${schema}`,
    systems: [source, api],
    entities: [Item],
    flows: [
      flow("slow", {
        from: bind(source, Item, {
          name: "source-slow",
          path: "/source",
          pagination: { style: "page", pageSize: slowPageSize },
        }),
        to: bind(api, Item, {
          name: "api-items",
          path: "/items",
          mode: "batch",
          batchPath: "/items/batch",
          batchSize: 50,
          fromCanonical: (item) => ({ id: item.id, name: item.name, amount: item.amount }),
        }),
        chunkSize: 1_000,
      }),
    ],
    heartbeatMs: 1000,
  });
}

export default distSlowHub(process.env);

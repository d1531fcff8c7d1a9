/**
 * The hub of `bench:scale`, as a configuration file: the benchmark and every `franca worker` it starts load it.
 * Settings come from the environment:
 *   FRANCA_SCALE_SCHEMA  the store's schema (and the queue's, `<schema>_queue`)
 *   FRANCA_SCALE_SOURCE  the source table, schema-qualified
 *   FRANCA_SCALE_API     base URL of the simulated API
 *   FRANCA_SCALE_CHUNK   records per chunk (default 500)
 *   FRANCA_SCALE_GLOBAL  "0": no cluster-wide cap, only each process's own (to measure what the cap costs)
 *
 * One latency-bound flow: a PostgreSQL table → an API that takes one record per request (each call ~20 ms). The API
 * allows 64 calls in flight across every worker (`concurrency`); each worker process makes at most 16 of its own at
 * once (`processConcurrency`), as a worker sized for one machine would.
 */
import { http } from "../src/connectors/http/index.ts";
import { postgres } from "../src/connectors/postgres/index.ts";
import { bind } from "../src/core/binding.ts";
import { entity } from "../src/core/entity.ts";
import { flow } from "../src/core/flow.ts";
import { defineHub } from "../src/core/hub.ts";
import { Type } from "../src/index.ts";

export const scaleUrl = "postgres://postgres@127.0.0.1:5432/test";

const Item = entity("Item", {
  version: 1,
  key: "id",
  schema: Type.Object(
    { id: Type.String(), name: Type.String({ minLength: 1 }), amount: Type.String() },
    { additionalProperties: false },
  ),
});

export function scaleHub(env: Record<string, string | undefined>) {
  const schema = env.FRANCA_SCALE_SCHEMA ?? "franca_bench_scale";
  const db = postgres("db", { url: scaleUrl, applicationName: "franca-bench-scale" });
  const api = http("api", {
    baseUrl: env.FRANCA_SCALE_API ?? "http://127.0.0.1:9",
    limits: {
      ...(env.FRANCA_SCALE_GLOBAL === "0" ? {} : { concurrency: 64 }),
      processConcurrency: 16,
      timeoutMs: 10_000,
      retry: { maxAttempts: 6 },
    },
  });
  return defineHub({
    store: `${scaleUrl}?schema=${schema}`,
    systems: [db, api],
    entities: [Item],
    flows: [
      flow("scale", {
        from: bind(db, Item, {
          table: env.FRANCA_SCALE_SOURCE ?? "franca_bench_scale_app.items",
          key: "id",
          cursor: "updated_at",
          toCanonical: (row) => ({ id: String(row.id), name: row.name as string, amount: String(row.amount) }),
        }),
        to: bind(api, Item, {
          path: "/items",
          fromCanonical: (item) => ({ id: item.id, name: item.name, amount: item.amount }),
        }),
        chunkSize: Number(env.FRANCA_SCALE_CHUNK ?? 500),
      }),
    ],
  });
}

export default scaleHub(process.env);

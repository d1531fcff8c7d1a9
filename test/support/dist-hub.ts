/**
 * The hub of the distributed tests, as a configuration file: the test process and every `franca worker` it starts
 * load it. Settings come from the environment (each test has its own store schema and simulated API):
 *   FRANCA_DIST_SCHEMA  the store's schema; the source tables live in `<schema>_app`
 *   FRANCA_DIST_API     base URL of the simulated API the flows load into
 *   FRANCA_DIST_CAP     the API's concurrency cap, across all workers (default 6)
 *
 * Two flows, `items` and `others`: a PostgreSQL table → a collection of the API, written by batch with
 * idempotency keys, so a chunk written again after a worker died is not applied twice and the API can say whether
 * any record was created twice.
 */
import { http } from "../../src/connectors/http/index.ts";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import { Type } from "../../src/index.ts";

export const distUrl = "postgres://postgres@127.0.0.1:5432/test";
export const distChunk = 100;

export const Item = entity("Item", {
  version: 1,
  key: "id",
  schema: Type.Object(
    { id: Type.String(), name: Type.String({ minLength: 1 }), amount: Type.String() },
    { additionalProperties: false },
  ),
});

/** The source tables, in `<schema>_app`, filled with `rows` rows each. */
export function distSetupSql(schema: string, rows: number): string[] {
  const app = `${schema}_app`;
  return ["items", "others"].flatMap((table) => [
    `CREATE TABLE ${app}.${table} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL,
       updated_at timestamptz NOT NULL)`,
    `INSERT INTO ${app}.${table}
       SELECT i, '${table} ' || i || ' ✓', round(i * 1.37, 2), '2026-01-01'::timestamptz + i * interval '1 second'
         FROM generate_series(1, ${rows}) AS i`,
  ]);
}

export function distHub(env: Record<string, string | undefined>) {
  const schema = env.FRANCA_DIST_SCHEMA ?? "franca_dist";
  const app = `${schema}_app`;
  const db = postgres("db", { url: distUrl, applicationName: `franca-dist-${schema}` });
  const api = http("api", {
    baseUrl: env.FRANCA_DIST_API ?? "http://127.0.0.1:9",
    limits: {
      concurrency: Number(env.FRANCA_DIST_CAP ?? 6),
      timeoutMs: 10_000,
      retry: { maxAttempts: 6, initialDelayMs: 50 },
    },
  });
  const itemFlow = (name: "items" | "others") =>
    flow(name, {
      from: bind(db, Item, {
        name: `db-${name}`,
        table: `${app}.${name}`,
        key: "id",
        cursor: "updated_at",
        toCanonical: (row) => ({ id: String(row.id), name: row.name as string, amount: String(row.amount) }),
      }),
      to: bind(api, Item, {
        name: `api-${name}`,
        path: `/${name}`,
        mode: "batch",
        batchPath: `/${name}/batch`,
        batchSize: 50,
        fromCanonical: (item) => ({ id: item.id, name: item.name, amount: item.amount }),
      }),
      chunkSize: distChunk,
    });
  return defineHub({
    store: `${distUrl}?schema=${schema}`,
    systems: [db, api],
    entities: [Item],
    flows: [itemFlow("items"), itemFlow("others")],
    heartbeatMs: 1000,
  });
}

export default distHub(process.env);

/**
 * bench:scale's reference: what one process sized like a worker does with no engine at all — `--count` POSTs of
 * one record each to the API, 16 at once over undici (as the HTTP connector does), nothing read, staged or recorded.
 * Run 1, 2 and 4 of these side by side and the machine's own ceiling for the speedup shows (its cores, its loopback).
 *
 *   node bench/scale-raw.ts --url http://127.0.0.1:port --from 1 --count 6000 --concurrency 16
 */
import { parseArgs } from "node:util";
import { Pool } from "undici";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    from: { type: "string", default: "1" },
    count: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "16" },
  },
});
const first = Number(values.from);
const last = first + Number(values.count) - 1;
const concurrency = Number(values.concurrency);
const pool = new Pool(values.url as string, { connections: concurrency });
let next = first;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next <= last) {
      const id = next++;
      const response = await pool.request({
        path: "/items",
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": `raw-${id}` },
        body: JSON.stringify({ id: String(id), name: `item ${id}`, amount: (Math.round(id * 137) / 100).toFixed(2) }),
      });
      await response.body.text();
      if (response.statusCode >= 300) throw new Error(`POST /items answered ${response.statusCode}`);
    }
  }),
);
await pool.close();

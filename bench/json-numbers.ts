/**
 * bench:json-numbers — what keeping JSON numbers exact costs (core/canonical-json.ts), and the form of the count of
 * rows a read leaves out (connectors/sql.ts, nullOrderCountSql), each against its reference in the same run:
 *
 * - bench:bulk's ~230-byte jsonb document: JSON.parse (the reference), parseJsonExact (its 16-digit look first),
 *   mayHoldInexactNumber alone, and JSON.parse with the reviver parseJsonExact uses when a number may be inexact;
 * - the same document with a double written in full (`0.30000000000000004`, exact): parseJsonExact, which checks the
 *   long number before it takes the reviver, against JSON.parse;
 * - SQLite, 2,000,000 rows with an index on (updated_at, id): `count(*) WHERE updated_at IS NULL OR id IS NULL` (the
 *   form used) against `WHERE NOT (updated_at IS NOT NULL AND id IS NOT NULL)`.
 *
 *   npm run bench:json-numbers [-- --documents 200000 --rows 2000000]
 *
 * Prints a line per measure, then JSON: {"bench":"json-numbers","parse_us":…,"exact_us":…,"scan_us":…,"reviver_us":…,
 * "exact_long_double_us":…,"parse_long_double_us":…,"count_or_ms":…,"count_not_ms":…} (µs a document, medians of 5).
 */
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { mayHoldInexactNumber, parseJsonExact } from "../src/core/canonical-json.ts";
import { median } from "./bulk-shared.ts";

const { values } = parseArgs({
  options: { documents: { type: "string", default: "200000" }, rows: { type: "string", default: "2000000" } },
});
const documents = Number(values.documents);
const rows = Number(values.rows);

/** bench:bulk's jsonb of row i, as PostgreSQL prints it (bench/bulk-shared.ts). */
function document(i: number, score: string = String(i % 97)): string {
  const segment = ["retail", "wholesale", "online"][i % 3];
  const zip = String(i % 99999).padStart(5, "0");
  return `{"tags": ["t${i % 11}", "t${i % 13}", "vip"], "note": "customer ${i} note text", "score": ${score}, "active": ${i % 2 === 0}, "address": {"zip": "${zip}", "city": "Springfield", "street": "${i} Main Street"}, "segment": "${segment}"}`;
}

/** µs a document of `work` over `texts`, the median of 5 rounds (one round first, not counted: warm-up). */
function perDocument(texts: readonly string[], work: (text: string) => unknown): number {
  const rounds: number[] = [];
  let sink = 0;
  for (let round = 0; round < 6; round++) {
    const start = process.hrtime.bigint();
    for (const text of texts) if (work(text) !== undefined) sink++;
    const us = Number(process.hrtime.bigint() - start) / 1000 / texts.length;
    if (round > 0) rounds.push(us);
  }
  if (sink < 0) console.log(sink);
  return median(rounds);
}

const reviver = (_key: string, value: unknown, context?: { source?: string }) =>
  typeof value === "number" && context?.source !== undefined ? value : value;

const plain = Array.from({ length: documents }, (_, i) => document(i));
const longDouble = Array.from({ length: documents }, (_, i) => document(i, "0.30000000000000004"));
const result = {
  bench: "json-numbers",
  parse_us: perDocument(plain, (text) => JSON.parse(text)),
  exact_us: perDocument(plain, parseJsonExact),
  scan_us: perDocument(plain, (text) => mayHoldInexactNumber(text) || undefined),
  reviver_us: perDocument(plain, (text) => JSON.parse(text, reviver as never)),
  parse_long_double_us: perDocument(longDouble, (text) => JSON.parse(text)),
  exact_long_double_us: perDocument(longDouble, parseJsonExact),
  count_or_ms: 0,
  count_not_ms: 0,
};
console.log(`document (${plain[0]?.length} bytes): JSON.parse ${result.parse_us.toFixed(3)} µs`);
console.log(`  parseJsonExact ${result.exact_us.toFixed(3)} µs (its look alone ${result.scan_us.toFixed(3)})`);
console.log(`  JSON.parse with a reviver ${result.reviver_us.toFixed(3)} µs`);
console.log(
  `with an exact 17-digit double: JSON.parse ${result.parse_long_double_us.toFixed(3)} µs, parseJsonExact ${result.exact_long_double_us.toFixed(3)} µs`,
);

const db = new DatabaseSync(":memory:");
db.exec("CREATE TABLE items (id INTEGER, label TEXT, updated_at TEXT)");
const insert = db.prepare("INSERT INTO items VALUES (?, ?, ?)");
db.exec("BEGIN");
for (let id = 1; id <= rows; id++) insert.run(id, "x", id % 1000 === 0 ? null : String(id).padStart(10, "0"));
db.exec("COMMIT");
db.exec("CREATE INDEX items_order ON items (updated_at, id)");
db.exec("CREATE INDEX items_id ON items (id)");
const time = (sql: string): number => {
  const statement = db.prepare(sql);
  const rounds: number[] = [];
  for (let round = 0; round < 6; round++) {
    const start = process.hrtime.bigint();
    statement.get();
    if (round > 0) rounds.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(rounds);
};
result.count_or_ms = time("SELECT count(*) AS n FROM items WHERE updated_at IS NULL OR id IS NULL");
result.count_not_ms = time("SELECT count(*) AS n FROM items WHERE NOT (updated_at IS NOT NULL AND id IS NOT NULL)");
console.log(
  `SQLite, ${rows} rows: count … IS NULL OR … ${result.count_or_ms.toFixed(2)} ms, NOT (… IS NOT NULL AND …) ${result.count_not_ms.toFixed(2)} ms`,
);
console.log(JSON.stringify(result));

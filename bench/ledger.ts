/**
 * bench:ledger — what the embedded store's ledger costs per loaded record: a run's chunks recorded as the load stage
 * records them (`SqliteStore.saveLoad`: one outcome and one current content hash per record, one transaction per
 * chunk), on the store's own thread (this process's only thread here), keys as the bulk benchmark's (`"1"`, `"2"`, …).
 * The reference is the same rows inserted with SQLite's own bulk path in the same run (one prepared INSERT per row
 * into tables of the same shape, the keys kept as the store keeps them, one transaction per chunk): what any ledger
 * of these rows would pay.
 *
 *   npm run bench:ledger [-- --records 1000000 --chunk 1000 --rounds 3]
 *
 * A third part measures the one-off upgrade of such a ledger: a store at schema version 1 (keys as text) holding
 * `records` outcomes and as many current hashes, migrated to this code's version (`SqliteStore.migrate`: migration 2
 * copies both tables, keys kept as ledger-key.ts keeps them).
 *
 * Prints a line per part and round, then JSON: {"bench":"ledger","records":…,"store_cpu_s":…,"raw_cpu_s":…,
 * "ratio":…,"store_us_per_record":…,"migrate_cpu_s":…} (medians; CPU seconds of the process: no timing in a test).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { ledgerKey } from "../src/store/sqlite/ledger-key.ts";
import { migrations } from "../src/store/sqlite/migrations.ts";
import { SqliteStore } from "../src/store/sqlite/store.ts";
import { median } from "./bulk-shared.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "1000000" },
    chunk: { type: "string", default: "1000" },
    rounds: { type: "string", default: "3" },
  },
});
const records = Number(values.records);
const chunk = Number(values.chunk);
const rounds = Number(values.rounds);
const hash = "q1w2e3r4t5y6u7i8o9p0a1s2d3f"; // 27 characters, as a content hash

function keysOf(seq: number): string[] {
  const from = seq * chunk;
  return Array.from({ length: Math.min(chunk, records - from) }, (_, i) => String(from + i + 1));
}

function cpuSeconds(started: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(started);
  return (used.user + used.system) / 1e6;
}

async function store(dir: string): Promise<number> {
  const ledger = new SqliteStore(join(dir, "store.db"));
  await ledger.migrate();
  const run = await ledger.startRun({
    flow: "bench",
    kind: "flow",
    trigger: "bench",
    targets: ["warehouse"],
    owner: "bench",
    now: Date.now(),
  });
  const started = process.cpuUsage();
  for (let seq = 0; seq * chunk < records; seq++) {
    const loaded = keysOf(seq);
    const result = { loaded, hashes: loaded.map(() => hash), unchanged: [], problems: [], attempts: 1 };
    await ledger.saveLoad(run.id, seq, "warehouse", result, Date.now());
  }
  const cpu = cpuSeconds(started);
  await ledger.close();
  return cpu;
}

function raw(dir: string): number {
  const db = new DatabaseSync(join(dir, "raw.db"));
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
    CREATE TABLE outcomes (run_id INTEGER NOT NULL, key NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
      seq INTEGER NOT NULL, PRIMARY KEY (run_id, key, target)) WITHOUT ROWID;
    CREATE TABLE hashes (target TEXT NOT NULL, key NOT NULL, hash TEXT NOT NULL, run_id INTEGER NOT NULL,
      PRIMARY KEY (target, key)) WITHOUT ROWID;`);
  const outcome = db.prepare("INSERT INTO outcomes VALUES (1, ?, 'warehouse', 'loaded', ?)");
  const current = db.prepare("INSERT INTO hashes VALUES ('warehouse', ?, ?, 1)");
  const started = process.cpuUsage();
  for (let seq = 0; seq * chunk < records; seq++) {
    db.exec("BEGIN");
    for (const text of keysOf(seq)) {
      const key = ledgerKey(text); // kept as the store keeps it: an integer
      outcome.run(key, seq);
      current.run(key, hash);
    }
    db.exec("COMMIT");
  }
  const cpu = cpuSeconds(started);
  db.close();
  return cpu;
}

/** A version 1 store of `records` loaded records (made untimed), migrated: the migration's CPU seconds. */
async function migrate(dir: string): Promise<number> {
  const file = join(dir, "v1.db");
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec((migrations[0] as { sql: string }).sql);
  db.exec("CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
  db.exec("INSERT INTO migrations VALUES (1, 'v1', 0)");
  db.exec(`INSERT INTO runs (flow, kind, trigger, status, owner, targets, started_at, heartbeat_at, stats)
    VALUES ('bench', 'flow', 'bench', 'succeeded', 'bench', '["warehouse"]', 1, 1, '{}')`);
  const numbers = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${records})`;
  db.exec(`${numbers} INSERT INTO outcomes (run_id, key, target, status, seq)
    SELECT 1, CAST(i AS TEXT), 'warehouse', 'loaded', (i - 1) / ${chunk} FROM n`);
  db.exec(`${numbers} INSERT INTO target_hashes (target, key, hash, run_id)
    SELECT 'warehouse', CAST(i AS TEXT), '${hash}', 1 FROM n`);
  db.close();
  const ledger = new SqliteStore(file);
  const started = process.cpuUsage();
  await ledger.migrate();
  const cpu = cpuSeconds(started);
  await ledger.close();
  return cpu;
}

const parts = { store, raw, migrate };
const measured = { store: [] as number[], raw: [] as number[], migrate: [] as number[] };
for (let round = 0; round < rounds; round++) {
  const order = ["store", "raw", "migrate"] as const;
  for (const part of round % 2 === 0 ? order : [...order].reverse()) {
    const dir = mkdtempSync(join(tmpdir(), "franca-bench-ledger-"));
    try {
      const cpu = await parts[part](dir);
      measured[part].push(cpu);
      console.log(`round ${round + 1} ${part.padEnd(7)} ${cpu.toFixed(2)} CPU-s for ${records} records`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
const storeCpu = median(measured.store);
const rawCpu = median(measured.raw);
console.log(
  JSON.stringify({
    bench: "ledger",
    records,
    store_cpu_s: Number(storeCpu.toFixed(2)),
    raw_cpu_s: Number(rawCpu.toFixed(2)),
    ratio: Number((rawCpu / storeCpu).toFixed(2)),
    store_us_per_record: Number(((storeCpu / records) * 1e6).toFixed(2)),
    migrate_cpu_s: Number(median(measured.migrate).toFixed(2)),
  }),
);

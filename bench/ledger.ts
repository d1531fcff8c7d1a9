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
 * Prints a line per part and round, then JSON: {"bench":"ledger","records":…,"store_cpu_s":…,"raw_cpu_s":…,
 * "ratio":…,"store_us_per_record":…} (medians; CPU seconds of the process: no timing in a test).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { ledgerKey } from "../src/store/sqlite/ledger-key.ts";
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

const measured = { store: [] as number[], raw: [] as number[] };
for (let round = 0; round < rounds; round++) {
  for (const part of round % 2 === 0 ? (["store", "raw"] as const) : (["raw", "store"] as const)) {
    const dir = mkdtempSync(join(tmpdir(), "franca-bench-ledger-"));
    try {
      const cpu = part === "store" ? await store(dir) : raw(dir);
      measured[part].push(cpu);
      console.log(`round ${round + 1} ${part.padEnd(5)} ${cpu.toFixed(2)} CPU-s for ${records} records`);
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
  }),
);

/**
 * One measured part of bench:engine, run in its own process so that its peak memory is its own:
 *   reference — the same copy as a plain loop with the same driver (node:sqlite): read every row, upsert it;
 *   engine    — the full Franca engine: extract → stage → transform (mapping, TypeBox validation, content hash) →
 *               stage → load (hash check, upsert) with the ledger on.
 * Prints one JSON line: { part, wall_s, peak_rss_mb, rows }.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import Type from "typebox";
import { sqlite } from "../src/connectors/sqlite/index.ts";
import { bind } from "../src/core/binding.ts";
import { entity } from "../src/core/entity.ts";
import { flow } from "../src/core/flow.ts";
import { defineHub } from "../src/core/hub.ts";
import { Money, Timestamp } from "../src/core/types.ts";
import { Engine } from "../src/engine/engine.ts";

const [part, dir] = process.argv.slice(2) as [string, string];
const targetFile = join(dir, "target.db");

function freshTarget(): DatabaseSync {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(targetFile + suffix, { force: true });
  const db = new DatabaseSync(targetFile);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
  db.exec(
    "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, display_name TEXT NOT NULL, email TEXT NOT NULL, balance TEXT NOT NULL, changed_at TEXT NOT NULL, note TEXT)",
  );
  return db;
}

async function reference(): Promise<number> {
  const target = freshTarget();
  const started = performance.now();
  const source = new DatabaseSync(join(dir, "source.db"), { readOnly: true });
  const upsert = target.prepare(
    `INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET display_name = excluded.display_name,
     email = excluded.email, balance = excluded.balance, changed_at = excluded.changed_at, note = excluded.note`,
  );
  let rows = 0;
  target.exec("BEGIN");
  for (const row of source.prepare("SELECT * FROM customers ORDER BY id").iterate()) {
    upsert.run(
      row.id as number,
      row.name as string,
      row.email as string,
      row.amount as string,
      row.updated_at as string,
      row.note as string,
    );
    rows++;
  }
  target.exec("COMMIT");
  const wall = (performance.now() - started) / 1000;
  source.close();
  target.close();
  return report(wall, rows);
}

async function engine(): Promise<number> {
  freshTarget().close();
  for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, "store.db") + suffix, { force: true });
  const Account = entity("Account", {
    version: 1,
    key: "id",
    schema: Type.Object(
      {
        id: Type.Integer(),
        name: Type.String({ minLength: 1 }),
        email: Type.String({ format: "email" }),
        balance: Money(),
        updatedAt: Timestamp(),
        note: Type.String(),
      },
      { additionalProperties: false },
    ),
  });
  const crm = sqlite("crm", { file: join(dir, "source.db") });
  const ledger = sqlite("ledger", { file: targetFile });
  const hub = defineHub({
    systems: [crm, ledger],
    entities: [Account],
    store: join(dir, "store.db"),
    flows: [
      flow("accounts", {
        from: bind(crm, Account, {
          table: "customers",
          key: "id",
          cursor: "updated_at",
          toCanonical: (row) => ({
            id: row.id as number,
            name: row.name as string,
            email: row.email as string,
            balance: row.amount as string,
            updatedAt: row.updated_at as string,
            note: row.note as string,
          }),
        }),
        to: bind(ledger, Account, {
          table: "accounts",
          key: "account_id",
          fromCanonical: (account) => ({
            account_id: account.id,
            display_name: account.name,
            email: account.email,
            balance: account.balance,
            changed_at: account.updatedAt,
            note: account.note,
          }),
        }),
      }),
    ],
  });
  const started = performance.now();
  const franca = await Engine.open({ hub, baseDir: dir });
  const summary = await franca.run("accounts", { trigger: "bench" });
  const wall = (performance.now() - started) / 1000;
  await franca.close();
  if (summary.run.status !== "succeeded")
    throw new Error(`engine run ${summary.run.status}: ${JSON.stringify(summary.run.error)}`);
  const loaded = summary.counts.targets["ledger.Account"]?.loaded ?? 0;
  const check = new DatabaseSync(targetFile, { readOnly: true });
  const inTarget = (check.prepare("SELECT count(*) AS n FROM accounts").get() as { n: number }).n;
  check.close();
  if (inTarget !== loaded) throw new Error(`target has ${inTarget} rows, ledger says ${loaded}`);
  return report(wall, loaded);
}

function report(wall: number, rows: number): number {
  const peak = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify({ part, wall_s: wall, peak_rss_mb: Math.round(peak), rows })}\n`);
  return 0;
}

if (part === "reference") await reference();
else if (part === "engine") await engine();
else throw new Error(`unknown part ${part}`);

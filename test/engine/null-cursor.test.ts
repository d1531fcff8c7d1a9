/**
 * Rows whose cursor is NULL have no position: every read leaves them out alike (before, the rows of a first page
 * were loaded, and a batch that ended on one stopped the run), and a read from the start says how many there are.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import Type from "typebox";
import { mysql } from "../../src/connectors/mysql/index.ts";
import { postgres } from "../../src/connectors/postgres/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind, type Row } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { flow } from "../../src/core/flow.ts";
import { defineHub } from "../../src/core/hub.ts";
import type { System } from "../../src/core/system.ts";
import { Engine } from "../../src/engine/engine.ts";
import { openStore, tempDir } from "../support/fixtures.ts";
import { mysqlTestDatabase } from "../support/mysql-db.ts";
import { pgTestSchema, pgUrl } from "../support/pg-schema.ts";

const pg = pgTestSchema("franca_null_cursor");
const maria = mysqlTestDatabase("franca_null_cursor");

const Item = entity("Item", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.Integer(), label: Type.String() }, { additionalProperties: false }),
});

/** ids 1..250; those in `nulls` have no updated_at. */
const nulls = [3, 100, 250];
const stampOf = (id: number) => (nulls.includes(id) ? null : new Date(Date.UTC(2025, 0, 1, 0, 0, id)).toISOString());

async function runFrom(dir: string, source: System, table: string, copy = true) {
  const shelf = sqlite("shelf", { file: join(dir, "shelf.db"), create: true });
  const target = new DatabaseSync(join(dir, "shelf.db"));
  target.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)");
  const hub = defineHub({
    systems: [source, shelf],
    entities: [Item],
    flows: [
      flow("items", {
        from: bind(source, Item, {
          table,
          ...(copy ? {} : { copy: false }),
          key: "id",
          cursor: "updated_at",
          toCanonical: (row: Row) => ({ id: Number(row.id), label: String(row.label) }),
        }),
        to: bind(shelf, Item, { table: "items" }),
        chunkSize: 100,
      }),
    ],
  });
  await using store = await openStore(dir);
  await using engine = await Engine.open({ hub, baseDir: dir, store });
  const summary = await engine.run("items");
  const loaded = (target.prepare("SELECT id FROM items ORDER BY id").all() as { id: number }[]).map((row) => row.id);
  target.close();
  return { summary, loaded };
}

function expectNullsLeftOut(result: Awaited<ReturnType<typeof runFrom>>, table: string, extra = 0): void {
  assert.equal(result.summary.run.status, "succeeded");
  assert.equal(result.loaded.length, 247);
  assert.ok(nulls.every((id) => !result.loaded.includes(id)));
  const warnings = (result.summary.run.stats.warnings as string[] | undefined) ?? [];
  assert.ok(
    warnings.some((warning) =>
      warning.startsWith(
        `${nulls.length + extra} rows of '${table}' have a NULL updated_at or id, which no read returns`,
      ),
    ),
    JSON.stringify(warnings),
  );
}

describe("a source whose cursor is NULL in some rows", () => {
  it("SQLite: those rows are left out wherever they fall, and the run says how many", async () => {
    using tmp = tempDir();
    const db = new DatabaseSync(join(tmp.dir, "src.db"));
    // no primary key: an id may be NULL too, here in the row with the latest cursor, which a read after a position
    // would return last (a row comparison with a NULL is not false) and could not go on after
    db.exec("CREATE TABLE items (id INTEGER, label TEXT, updated_at TEXT)");
    const insert = db.prepare("INSERT INTO items VALUES (?, ?, ?)");
    for (let id = 1; id <= 250; id++) insert.run(id, `item ${id}`, stampOf(id));
    insert.run(null, "no id", "2030-01-01T00:00:00.000Z");
    db.close();
    const result = await runFrom(tmp.dir, sqlite("src", { file: join(tmp.dir, "src.db") }), "items");
    expectNullsLeftOut(result, "items", 1);
  });

  for (const copy of [true, false]) {
    it(`PostgreSQL (${copy ? "COPY" : "keyset"} reads): the same`, async () => {
      using tmp = tempDir();
      const table = `${pg.schema}.items_${copy ? "copy" : "keyset"}`;
      await pg.db.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, label text, updated_at timestamptz)`);
      await pg.db.query(`CREATE INDEX ON ${table} (updated_at, id)`);
      for (let id = 1; id <= 250; id++)
        await pg.db.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [id, `item ${id}`, stampOf(id)]);
      const source = postgres("src", { url: pgUrl });
      const result = await runFrom(tmp.dir, source, table, copy);
      expectNullsLeftOut(result, table);
    });
  }

  it("MariaDB: the same (NULLs sort first there)", async () => {
    using tmp = tempDir();
    await maria.db.query(
      "CREATE TABLE items (id BIGINT PRIMARY KEY, label TEXT, updated_at DATETIME(3), KEY (updated_at, id))",
    );
    for (let id = 1; id <= 250; id++) {
      const stamp = stampOf(id);
      await maria.db.query("INSERT INTO items VALUES (?, ?, ?)", [
        id,
        `item ${id}`,
        stamp?.slice(0, 23).replace("T", " ") ?? null,
      ]);
    }
    expectNullsLeftOut(await runFrom(tmp.dir, mysql("src", { url: maria.url }), "items"), "items");
  });
});

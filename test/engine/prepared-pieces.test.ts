/**
 * A target's rows prepared a piece of records at a time on a transform thread (threads/prepared-pieces.ts), with the
 * PostgreSQL driver's own prepare and join (pure: no connection): the joined rows are what preparing all the rows at
 * once gives, failures keep their record's index in the chunk, and the pieces' bytes are freed once joined.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { postgres, postgresDriver } from "../../src/connectors/postgres/index.ts";
import { type CopyRows, prepareCopy, type TargetDescription } from "../../src/connectors/postgres/prepare.ts";
import type { Driver } from "../../src/connectors/types.ts";
import { bind, type MapContext, type Row } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import type { CanonicalRecord } from "../../src/engine/staging.ts";
import { PreparedPieces, type Preparer } from "../../src/engine/threads/prepared-pieces.ts";
import { Type } from "../../src/index.ts";

const Thing = entity("Thing", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.Integer(), name: Type.String(), doc: Type.Unknown() }),
});
const erp = postgres("erp", { url: "postgres://127.0.0.1:5432/unused" });
const description: TargetDescription = {
  table: "things",
  columns: [
    { name: "id", type: "bigint", kind: "t" },
    { name: "name", type: "text", kind: "t" },
    { name: "doc", type: "jsonb", kind: "j" },
  ],
};
const lineage = { sourceSystem: "crm", run: 1, chunk: 3 };
const context = {} as MapContext;

/** Things 1…count, the doc of `without` (ids) left out of their rows; a thing whose id ends in 7 is refused. */
function preparerOf(without: readonly number[] = []): { preparer: Preparer; parts: CopyRows[] } {
  const parts: CopyRows[] = [];
  // the driver's own prepare, its results kept to look at afterwards
  const prepare: NonNullable<Driver["prepare"]> = (rows, request) => {
    const data = (postgresDriver.prepare as NonNullable<Driver["prepare"]>)(rows, request) as CopyRows;
    parts.push(data);
    return data;
  };
  const binding = bind(erp, Thing, {
    table: "things",
    key: "id",
    fromCanonical: (thing) => {
      if (thing.id % 10 === 7) throw new Error(`no ${thing.id} here`);
      return without.includes(thing.id) ? { id: thing.id, name: thing.name } : { ...thing };
    },
  });
  const driver = { ...postgresDriver, prepare } as Preparer["driver"];
  return { preparer: { target: { name: binding.name, description }, binding, driver, mapContext: context }, parts };
}

function records(from: number, count: number): CanonicalRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const id = from + i;
    const payload = { id, name: `thing ${id}\t🎉`, doc: { id, list: [1, "two", null] } };
    return { key: String(id), hash: `h${id}`, sourceId: String(id), payload, json: JSON.stringify(payload) };
  });
}

/** Adds the things 1…250 in pieces of 100, 100 and 50. */
async function addPieces(pieces: PreparedPieces): Promise<void> {
  for (const [from, count] of [
    [1, 100],
    [101, 100],
    [201, 50],
  ] as const)
    await pieces.add(lineage, records(from, count), from - 1);
}

describe("a target's rows prepared in pieces", () => {
  it("joins into what preparing all the rows at once gives, and frees each piece's bytes", async () => {
    const { preparer, parts } = preparerOf();
    const pieces = new PreparedPieces(preparer);
    await addPieces(pieces);
    assert.equal(parts.length, 3);
    const joined = pieces.joined();
    assert.ok(joined !== undefined);
    const rows = records(1, 250)
      .filter((record) => Number(record.key) % 10 !== 7)
      .map((record) => ({ ...record.payload }) as Row);
    const whole = prepareCopy(rows, { options: preparer.binding.options, key: ["id"], target: description });
    assert.deepEqual(joined.data, whole);
    // the refused things (7, 17, … 247) have no row; the others' rows follow on across the pieces
    assert.equal(joined.rowOf.length, 250);
    assert.equal(joined.rowOf[6], -1);
    assert.equal(joined.rowOf[7], 6);
    assert.equal(joined.rowOf[249], 224);
    assert.deepEqual(
      joined.failures.map((failure) => failure.index),
      Array.from({ length: 25 }, (_, i) => i * 10 + 6),
    );
    assert.match(joined.failures[24]?.message ?? "", /no 247 here/);
    // each piece's bytes were freed (detached), the joined bytes are the joined rows' own
    for (const part of parts) assert.equal(part.bytes.byteLength, 0);
    assert.equal((joined.data as CopyRows).bytes.byteLength, whole.bytes.byteLength);
  });

  it("keeps a single piece as it is, and frees every piece when the driver does not join them", async () => {
    const single = preparerOf();
    const one = new PreparedPieces(single.preparer);
    await one.add(lineage, records(1, 20), 0);
    const data = one.joined()?.data as CopyRows;
    assert.equal(data, single.parts[0]);
    assert.ok(data.bytes.byteLength > 0);

    // the second piece's rows all lack a column: prepared for other columns, they do not join
    const gappy = preparerOf(Array.from({ length: 100 }, (_, i) => 101 + i));
    const pieces = new PreparedPieces(gappy.preparer);
    await addPieces(pieces);
    assert.deepEqual(
      gappy.parts.map((part) => part.columns.length),
      [3, 2, 3],
    );
    assert.equal(pieces.joined(), undefined);
    for (const part of gappy.parts) assert.equal(part.bytes.byteLength, 0);
  });
});

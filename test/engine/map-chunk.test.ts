/**
 * Mapping a chunk a piece at a time (ChunkMapper, as transform threads do when the source's driver can cut its text)
 * gives what mapping its rows at once gives: problems at their rows' indexes in the chunk, and of two rows with the
 * same key, the later one, wherever the pieces were cut.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind, type MapContext, type Row } from "../../src/core/binding.ts";
import { compileEntity } from "../../src/core/compiled-entity.ts";
import { entity } from "../../src/core/entity.ts";
import { ErrorCode } from "../../src/core/errors.ts";
import { ChunkMapper, mapChunk } from "../../src/engine/map-chunk.ts";
import { Type } from "../../src/index.ts";

const Thing = entity("Thing", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.String(), n: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
});
const system = sqlite("things", { file: ":memory:" });
const things = bind(system, Thing, {
  table: "things",
  key: "id",
  toCanonical: (row) => ({ id: row.id as string, n: row.n as number }),
});
const compiled = compileEntity(Thing);
const context = {} as MapContext;

const rows: Row[] = [
  { id: "a", n: 1 },
  { id: "b", n: 2 },
  { id: "c", n: 3 },
  // second piece: an invalid n, a row with no id (its source id is made from the chunk and row index), "a" again
  { id: "d", n: -4 },
  { n: 5 },
  { id: "a", n: 6 },
  // third piece
  { id: "e", n: 7 },
  { id: "f", n: -8 },
];

describe("mapping a chunk in pieces", () => {
  it("gives the records and problems of the whole chunk mapped at once", async () => {
    const whole = await mapChunk(things, compiled, context, 7, rows);
    const mapper = new ChunkMapper(things, compiled, context, 7);
    await mapper.add(rows.slice(0, 3));
    await mapper.add(rows.slice(3, 6));
    await mapper.add(rows.slice(6));
    assert.deepEqual(mapper.mapped, whole);

    // and that is: "a" mapped from its later row, in its first row's place; problems at their chunk indexes
    assert.deepEqual(
      whole.records.map((record) => [record.key, record.payload.n]),
      [
        ["a", 6],
        ["b", 2],
        ["c", 3],
        ["e", 7],
      ],
    );
    assert.deepEqual(
      whole.problems.map(({ index, outcome }) => [index, outcome.key, outcome.sourceId, outcome.code, outcome.path]),
      [
        [3, "d", "d", ErrorCode.ValidationFailed, "/n"],
        [4, "7:4", "7:4", ErrorCode.ValidationFailed, "/id"],
        [7, "f", "f", ErrorCode.ValidationFailed, "/n"],
      ],
    );
  });
});

describe("mapping a chunk: values JSON cannot hold", () => {
  it("quarantines a record whose open field holds one (a BigInt), and maps the rest of the chunk", async () => {
    const Open = entity("Open", {
      version: 1,
      key: "id",
      schema: Type.Object({ id: Type.String(), extra: Type.Unknown() }),
    });
    // the source's key is not the entity's: the record is filed under its canonical key, its source id kept
    const open = bind(system, Open, {
      table: "open",
      key: "ref",
      toCanonical: (row) => ({ id: row.id as string, extra: row.extra }),
    });
    const mapped = await mapChunk(open, compileEntity(Open), context, 0, [
      { ref: "r1", id: "a", extra: 1 },
      { ref: "r2", id: "b", extra: 2n },
      { ref: "r3", id: "c", extra: { nested: 3 } },
    ]);
    assert.deepEqual(
      mapped.records.map((record) => record.key),
      ["a", "c"],
    );
    assert.equal(mapped.problems.length, 1);
    const { index, outcome } = mapped.problems[0] as (typeof mapped.problems)[number];
    assert.equal(index, 1);
    assert.equal(outcome.key, "b");
    assert.equal(outcome.sourceId, "r2");
    assert.equal(outcome.status, "quarantined");
    assert.equal(outcome.code, ErrorCode.MappingFailed);
    assert.match(outcome.message ?? "", /canonical JSON threw: .*BigInt/);
  });
});

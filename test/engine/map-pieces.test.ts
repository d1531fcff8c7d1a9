/**
 * A chunk's source text decoded and mapped a piece at a time (map-pieces.ts), with a driver of one row per line: the
 * pieces it decodes, and that the outcome is the whole chunk's.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import type { Driver } from "../../src/connectors/types.ts";
import { bind, type MapContext, type Row } from "../../src/core/binding.ts";
import { compileEntity } from "../../src/core/compiled-entity.ts";
import { entity } from "../../src/core/entity.ts";
import { ChunkMapper, mapChunk } from "../../src/engine/map-chunk.ts";
import { mapPieces } from "../../src/engine/map-pieces.ts";
import { Type } from "../../src/index.ts";

const Thing = entity("Thing", { version: 1, key: "id", schema: Type.Object({ id: Type.String(), n: Type.Integer() }) });
const system = sqlite("things", { file: ":memory:" });
const compiled = compileEntity(Thing);
const context = {} as MapContext;
const toThing = (row: Row) => ({ id: `k${Number(row.n) % 120}`, n: Number(row.n) });
const sync = bind(system, Thing, { table: "things", key: "n", toCanonical: toThing });
const waiting = bind(system, Thing, { table: "things", key: "n", toCanonical: async (row) => toThing(row) });

/** 250 rows, one per line; keys repeat every 120 rows, so that later pieces replace records of earlier ones. */
const text = Array.from({ length: 250 }, (_, i) => `${i}\n`).join("");

/** A driver of one row per line that records the sizes of the pieces it decodes. */
function lineDriver(cut: Driver["cut"] | "none" = undefined) {
  const decoded: number[] = [];
  const driver: Pick<Driver, "decode" | "cut"> = {
    decode: (_encoding, lines) => {
      const rows = String(lines)
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => ({ n: Number(line) }));
      decoded.push(rows.length);
      return rows;
    },
    ...(cut === "none"
      ? {}
      : {
          cut:
            cut ??
            ((_encoding, lines, rows) => {
              const all = String(lines);
              let end = 0;
              for (let n = 0; n < rows && end < all.length; n++) end = all.indexOf("\n", end) + 1;
              return [all.slice(0, end), all.slice(end)];
            }),
        }),
  };
  return { driver, decoded };
}

async function mapped(binding: typeof sync, driver: Pick<Driver, "decode" | "cut">, rows: number) {
  const mapper = new ChunkMapper(binding, compiled, context, 3);
  await mapPieces(mapper, driver, { encoding: "lines", text }, rows);
  return mapper;
}

describe("mapping source text in pieces", () => {
  it("decodes pieces of the given rows, and maps them to what the whole chunk maps to", async () => {
    const { driver, decoded } = lineDriver();
    const mapper = await mapped(sync, driver, 100);
    assert.deepEqual(decoded, [100, 100, 50]);
    assert.equal(mapper.waited, false);
    const whole = await mapChunk(sync, compiled, context, 3, lineDriver().driver.decode?.("lines", text) ?? []);
    assert.deepEqual(mapper.mapped, whole);
    assert.equal(whole.records.length, 120);
  });

  it("maps the rest of the chunk in one piece once a piece's mappings waited", async () => {
    const { driver, decoded } = lineDriver();
    const mapper = await mapped(waiting, driver, 100);
    assert.deepEqual(decoded, [100, 150]);
    assert.equal(mapper.waited, true);
    assert.deepEqual(mapper.mapped, (await mapped(sync, lineDriver().driver, 100)).mapped);
  });

  it("maps the whole chunk at once for 0 rows, or a driver that cannot cut", async () => {
    const zero = lineDriver();
    await mapped(sync, zero.driver, 0);
    assert.deepEqual(zero.decoded, [250]);
    const none = lineDriver("none");
    await mapped(sync, none.driver, 100);
    assert.deepEqual(none.decoded, [250]);
  });

  it("hands over each piece's records when taken, and tells when a later piece repeats a taken record's key", async () => {
    const { driver } = lineDriver();
    const mapper = new ChunkMapper(sync, compiled, context, 3);
    const taken: string[][] = [];
    const repeated: boolean[] = [];
    await mapPieces(mapper, driver, { encoding: "lines", text }, 100, () => {
      repeated.push(mapper.repeatedTaken);
      taken.push(mapper.takeRecords().map((record) => `${record.key}=${record.payload.n}`));
    });
    // rows 0–99 are keys k0–k99; rows 100–119 are k100–k119, then 120–199 repeat k0–k79 (taken in the first piece)
    assert.deepEqual(repeated, [false, true, true]);
    assert.deepEqual(
      taken[0],
      Array.from({ length: 100 }, (_, i) => `k${i}=${i}`),
    );
    assert.deepEqual(
      taken[1],
      Array.from({ length: 20 }, (_, i) => `k${100 + i}=${100 + i}`),
    );
    assert.deepEqual(taken[2], []);
    assert.equal(mapper.mapped.records.length, 0);
    // within a piece, the later row still replaces the earlier: nothing taken yet
    const whole = new ChunkMapper(sync, compiled, context, 3);
    await mapPieces(whole, lineDriver().driver, { encoding: "lines", text }, 0);
    assert.equal(whole.repeatedTaken, false);
    assert.equal(whole.takeRecords().find((record) => record.key === "k5")?.payload.n, 245);
  });

  it("does not loop on a cut that leaves no rows in the piece: the rest is one piece", async () => {
    const { driver, decoded } = lineDriver((_encoding, lines) => ["", lines]);
    const mapper = await mapped(sync, driver, 100);
    assert.deepEqual(decoded, [250]);
    assert.equal(mapper.mapped.records.length, 120);
  });
});

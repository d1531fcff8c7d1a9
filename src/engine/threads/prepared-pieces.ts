/**
 * A target's rows of a chunk's canonical records, mapped (`fromCanonical`) and prepared by its driver
 * (`Driver.prepare`) on a transform thread, a piece of records at a time, then joined (`Driver.join`). Pure apart from
 * the mappings' own lookups: no port, no store (thread.ts sends what it makes).
 */
import type { Driver } from "../../connectors/types.ts";
import type { Binding, MapContext, Row } from "../../core/binding.ts";
import type { MappingFailure } from "../canonical-chunk.ts";
import { freeBytes } from "../free-bytes.ts";
import { mapAll } from "../map-all.ts";
import type { CanonicalRecord } from "../staging.ts";
import { type Lineage, mapToTarget, targetRowProblem } from "../target-rows.ts";
import type { PreparedParts, TargetJob } from "./protocol.ts";

/** A target's rows of some records: mapped (fromCanonical), with where each record's row is and the failures. */
interface TargetRows {
  rows: Row[];
  /** Record index → the index of its row in `rows`; -1 where the target's mapping failed. */
  rowOf: Int32Array;
  failures: MappingFailure[];
  async: boolean;
}

/** What a target's rows are prepared with: its binding and driver, or undefined when its rows are not prepared. */
export interface Preparer {
  target: TargetJob;
  binding: Binding;
  driver: Driver & Required<Pick<Driver, "prepare">>;
  mapContext: MapContext;
}

/** Records `from` on of the chunk mapped to the target's rows (`from`: the index in the chunk of `records[0]`). */
async function targetRows(
  preparer: Preparer,
  lineage: Lineage,
  records: readonly CanonicalRecord[],
  from = 0,
): Promise<TargetRows> {
  const { binding, mapContext } = preparer;
  const { values, thrown, waited } = await mapAll(records, (record) =>
    mapToTarget(binding, record, mapContext, lineage),
  );
  const rowOf = new Int32Array(records.length);
  const failures: MappingFailure[] = [];
  const rows: Row[] = [];
  for (let i = 0; i < records.length; i++) {
    const error = targetRowProblem(binding.name, thrown.has(i), thrown.get(i), values[i]);
    if (error !== undefined) {
      rowOf[i] = -1;
      failures.push({ index: from + i, ...error.toJSON() });
      continue;
    }
    rowOf[i] = rows.length;
    rows.push(values[i] as Row);
  }
  return { rows, rowOf, failures, async: waited };
}

function prepared(preparer: Preparer, rows: readonly Row[]): unknown {
  const { binding, target } = preparer;
  return preparer.driver.prepare(rows, { options: binding.options, key: binding.key, target: target.description });
}

/**
 * One target's rows of a chunk, prepared a piece of records at a time (`add`) and joined by its driver at the end
 * (`joined`), so that neither the records nor the rows of a piece outlive it.
 */
export class PreparedPieces {
  readonly #preparer: Preparer;
  readonly #parts: unknown[] = [];
  readonly #rowOf: number[] = [];
  readonly #failures: MappingFailure[] = [];
  #rows = 0;
  #async = false;

  constructor(preparer: Preparer) {
    this.#preparer = preparer;
  }

  /** Some piece's target mapping returned a promise (it called a lookup, or did other asynchronous work). */
  get waited(): boolean {
    return this.#async;
  }

  /** Maps and prepares the chunk's next records (`from`: the index in the chunk of `records[0]`). */
  async add(lineage: Lineage, records: readonly CanonicalRecord[], from: number): Promise<void> {
    const mapped = await targetRows(this.#preparer, lineage, records, from);
    if (mapped.async) this.#async = true;
    for (const failure of mapped.failures) this.#failures.push(failure);
    for (const row of mapped.rowOf) this.#rowOf.push(row === -1 ? -1 : row + this.#rows);
    if (mapped.rows.length === 0) return;
    this.#parts.push(prepared(this.#preparer, mapped.rows));
    this.#rows += mapped.rows.length;
  }

  /**
   * The pieces as one, or undefined when the driver did not join them (prepared for different columns: the load then
   * maps and encodes the chunk's rows for this target itself). The pieces' bytes are freed either way, being
   * copied into the joined rows or of no more use.
   */
  joined(): PreparedParts | undefined {
    const { target, driver } = this.#preparer;
    const parts = this.#parts;
    let data: unknown;
    if (parts.length === 0) data = prepared(this.#preparer, []);
    else if (parts.length === 1) data = parts[0];
    else {
      data = driver.join?.(parts);
      for (const part of parts) if (part !== data) freeBytes(part);
      if (data === undefined) return undefined;
    }
    return {
      name: target.name,
      data,
      rowOf: Int32Array.from(this.#rowOf),
      failures: this.#failures,
      async: this.#async,
    };
  }
}

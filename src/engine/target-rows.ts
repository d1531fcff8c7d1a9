import type { Binding, MapContext, Row } from "../core/binding.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { RecordEnvelope } from "../core/record.ts";
import { mappingProblem } from "./map-chunk.ts";
import type { CanonicalRecord } from "./staging.ts";

/** Where a record is mapped for a target: the source system it came from, and the run and chunk it travels in. */
export interface Lineage {
  sourceSystem: string;
  run: number;
  chunk: number;
}

/**
 * A canonical record's row for a target: the target binding's `fromCanonical` (sync or async). The envelope (key,
 * hash, source, lineage) is built only for mappings that ask for it (a third parameter): it costs an object per record.
 * The load maps here on the engine's thread, a transform thread for the rows it prepares.
 */
export function mapToTarget(
  binding: Binding,
  record: CanonicalRecord,
  mapContext: MapContext,
  lineage: Lineage,
): Row | Promise<Row> {
  if (binding.fromCanonical.length <= 2) return binding.fromCanonical(record.payload, mapContext, undefined as never);
  const envelope: RecordEnvelope = {
    key: record.key,
    payload: record.payload,
    hash: record.hash,
    source: {
      system: lineage.sourceSystem,
      id: record.sourceId,
      ...(record.cursor === undefined ? {} : { cursor: record.cursor }),
    },
    lineage: { run: lineage.run, chunk: lineage.chunk },
  };
  return binding.fromCanonical(record.payload, mapContext, envelope);
}

/** Why a target mapping's outcome is no row: what it threw, or a value that is not an object; undefined when it is. */
export function targetRowProblem(
  binding: string,
  threw: boolean,
  thrown: unknown,
  value: unknown,
): FrancaError | undefined {
  if (threw) return mappingProblem(thrown, `${binding}.fromCanonical`);
  if (value === null || typeof value !== "object")
    return new FrancaError(ErrorCode.MappingFailed, `${binding}.fromCanonical returned ${typeof value}, not a row`);
  return undefined;
}

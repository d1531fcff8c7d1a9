/**
 * The messages between the engine and its transform threads (see pool.ts and thread.ts). Everything here crosses
 * threads by structured clone, so it is plain data: errors travel as their JSON (FrancaError's toJSON / fromJSON).
 */
import { wholeBuffer } from "../../core/bytes.ts";
import type { FrancaErrorJson } from "../../core/errors.ts";
import type { MappingFailure } from "../canonical-chunk.ts";
import type { ChunkProblem } from "../map-chunk.ts";

export interface ThreadSetup {
  /** The module whose default export is the hub: the configuration file. */
  module: string;
}

/** A target whose rows the thread maps and prepares for its driver, as its connection described it. */
export interface TargetJob {
  name: string;
  description: unknown;
}

/** Engine → thread: transform one chunk. */
export interface TransformJob {
  type: "transform";
  id: number;
  flow: string;
  run: number;
  seq: number;
  /** The chunk's source rows, as the source's own text (source-rows.ts). */
  source: { encoding: string; text: string; count: number };
  targets: TargetJob[];
}

/** Engine → thread: the answers to a lookup request, in its order. */
export interface LookupAnswers {
  type: "lookups";
  id: number;
  answers: ({ ok: true; value: unknown } | { ok: false; error: FrancaErrorJson })[];
}

export type ToThread = TransformJob | LookupAnswers;

export interface PreparedParts {
  name: string;
  data: unknown;
  rowOf: Int32Array;
  failures: MappingFailure[];
  async: boolean;
}

/**
 * The buffers of the typed arrays directly in `value` (an object's own values, one level deep) that can be moved to
 * another thread rather than copied: only those that own their whole buffer (a pooled Buffer shares its buffer with
 * others, which must stay here).
 */
export function transferables(value: unknown, into: ArrayBuffer[] = []): ArrayBuffer[] {
  const add = (item: unknown) => {
    const buffer = wholeBuffer(item);
    if (buffer !== undefined && !into.includes(buffer)) into.push(buffer);
  };
  add(value);
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value))
    for (const item of Object.values(value)) add(item);
  return into;
}

/** Thread → engine. */
export type FromThread =
  | { type: "ready" }
  /** The hub module could not be loaded: the engine transforms on its own thread. */
  | { type: "unusable"; error: FrancaErrorJson }
  | {
      type: "done";
      id: number;
      keys: string[];
      hashes: string[];
      /** null: the same as the keys. */
      sourceIds: string[] | null;
      /** The canonical records' staged text, UTF-8 encoded here (its buffer is transferred, not copied). */
      staged: Uint8Array;
      problems: ChunkProblem[];
      targets: PreparedParts[];
    }
  | {
      type: "failed";
      id: number;
      error: FrancaErrorJson;
      /**
       * The thread could not take the chunk, through no fault of the chunk: its hub has no such flow (a module other
       * than the engine's configuration), or the chunk's transform cannot be copied back (structured clone). The
       * engine transforms it, and the rest of the flow's chunks, itself.
       */
      declined?: true;
    }
  /** Lookups the chunk's mappings called in one turn, to be answered by the engine (its caches, its policies). */
  | { type: "lookup"; id: number; job: number; calls: { lookup: string; key: unknown }[] };

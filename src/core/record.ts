import type { ErrorClass, ErrorCode } from "./errors.ts";

/** Where a canonical record came from. */
export interface SourceRef {
  system: string;
  /** The record's identity in the source system (its native key). */
  id: string;
  /** The record's value of the source binding's cursor field, when the binding has one. */
  cursor?: unknown;
}

/** Which run and chunk produced the record: the path from any target record back to its source. */
export interface Lineage {
  run: number;
  chunk: number;
}

/** A canonical record as it travels between stages. */
export interface RecordEnvelope<T = Record<string, unknown>> {
  key: string;
  payload: T;
  /** Content hash of the canonical payload (same data, same hash, whatever the key order). */
  hash: string;
  source: SourceRef;
  lineage: Lineage;
}

/** What happened to a record in a run, for one target (or at transform, where `target` is null). */
export type RecordStatus = "loaded" | "unchanged" | "quarantined" | "failed";

export const recordStatuses: readonly RecordStatus[] = ["loaded", "unchanged", "quarantined", "failed"];

export interface RecordOutcome {
  key: string;
  /** Target binding name; null for an outcome decided before load (mapping, validation). */
  target: string | null;
  status: RecordStatus;
  chunk: number;
  attempts: number;
  code?: ErrorCode;
  errorClass?: ErrorClass;
  message?: string;
  path?: string;
  /** The id the target gave the record, when it returns one. */
  targetId?: string;
  /** Source identity, so a quarantined record can be traced back. */
  sourceId?: string;
}

export type RunStatus = "running" | "succeeded" | "partial" | "failed" | "cancelled";

export const terminalRunStatuses: readonly RunStatus[] = ["succeeded", "partial", "failed", "cancelled"];

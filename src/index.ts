/** Franca's public API: everything a `franca.config.ts` or an embedding program uses, and nothing else. */

export { default as Type, type Static } from "typebox";
export { type FileBindingOptions, type FileClient, file } from "./connectors/file/index.ts";
export { type HttpBindingOptions, type HttpClient, type HttpSystemOptions, http } from "./connectors/http/index.ts";
export { type MysqlClient, mysql } from "./connectors/mysql/index.ts";
export { type PostgresClient, postgres } from "./connectors/postgres/index.ts";
export { type SqliteClient, sqlite } from "./connectors/sqlite/index.ts";
export type {
  Connection,
  Driver,
  EncodedBatch,
  PreparedRows,
  PrepareRequest,
  ReadBatch,
  ReadRequest,
  WriteItem,
  WriteRequest,
} from "./connectors/types.ts";
export { type Binding, type BindingMapping, bind, type MapContext, type Row } from "./core/binding.ts";
export { type Entity, type EntityRecord, entity, type FieldNote } from "./core/entity.ts";
export { ErrorCode, ExitCode, FrancaError } from "./core/errors.ts";
export { type DriftPolicy, type FailurePolicy, type Flow, type FlowSpec, flow } from "./core/flow.ts";
export { defineHub, type Hub, type HubSpec } from "./core/hub.ts";
export { type Lookup, type LookupSpec, lookup } from "./core/lookup.ts";
export type { RecordEnvelope, RecordOutcome, RecordStatus, RunStatus } from "./core/record.ts";
export { entityJsonSchema } from "./core/schema-export.ts";
export type { Limits, System } from "./core/system.ts";
export { CurrencyCode, DateOnly, Decimal, MinorUnits, Money, Timestamp } from "./core/types.ts";
export type { RunProgress } from "./engine/context.ts";
export { Engine, type EngineOptions, type StartOptions } from "./engine/engine.ts";
export type { RunSummary } from "./engine/run.ts";
export { createLogger } from "./observe/logger.ts";
export type { RunCounts, RunRecord, Store } from "./store/types.ts";

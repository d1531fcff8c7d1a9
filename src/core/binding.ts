import type { Entity } from "./entity.ts";
import type { Lookup } from "./lookup.ts";
import type { RecordEnvelope } from "./record.ts";
import type { BindingOptionsOf, System } from "./system.ts";

/** A row as a system holds it: the native shape, before mapping. */
export type Row = Record<string, unknown>;

/** What a mapping function can use besides the record. */
export interface MapContext {
  readonly run: { readonly id: number; readonly flow: string };
  /** Name of the binding being mapped. */
  readonly binding: string;
  /** Calls a named lookup through the run's cache. */
  lookup<K, V>(lookup: Lookup<K, V>, key: K): Promise<V>;
}

/*
 * Why ToCanonical and FromCanonical are conditional types (`[E] extends [Entity<infer T>] ? … : never`) rather than
 * plain function types returning `EntityRecord<E>`:
 *
 * Inside `bind(system, entity, { toCanonical: (row) => ({ status: "a" }) })`, E (and R) are still being inferred when
 * the arrow function is checked. TypeScript instantiates the contextual type of a function argument with the
 * inferences made so far (E from `entity`) only where that type is itself generic at the top (a type parameter, a
 * conditional or indexed access type, or a union of them), never inside a plain function or object type. A plain
 * `(row: R, ctx) => EntityRecord<E>` therefore stays uninstantiated; the returned object literal's contextual type is
 * the constraint of `EntityRecord<E>` (`Record<string, unknown>`), which says nothing of literal types, so `"a"`
 * widens to `string` and then fails against `"a" | "b"` (only `as const` helped). As a conditional type on E, the
 * whole function type is instantiated with E's inference before the body is checked: the object literal is
 * contextually typed by the entity's record, and literals (strings, numbers, nested objects) keep their literal
 * types. `[E]` (not a naked E) keeps the type from distributing over a union.
 */

/** Native row → canonical record; sync or async. */
export type ToCanonical<E extends Entity, R extends Row> = [E] extends [Entity<infer T>]
  ? (row: R, ctx: MapContext) => T | Promise<T>
  : never;
/**
 * Canonical record → native row; sync or async. `envelope` (key, hash, source system, native id and cursor, run and
 * chunk) lets a target carry lineage.
 */
export type FromCanonical<E extends Entity, R extends Row> = [E] extends [Entity<infer T>]
  ? (record: T, ctx: MapContext, envelope: RecordEnvelope<T>) => R | Promise<R>
  : never;

/** The connector-independent part of a binding. */
export interface BindingMapping<E extends Entity, R extends Row> {
  /** Unique name; defaults to `<system>.<entity>`. Targets appear under this name in the ledger. */
  name?: string;
  /** Native field(s) that identify a row in this system; default: the entity's key fields. */
  key?: string | readonly string[];
  /** Native field that orders changes (updated_at, a sequence): enables incremental reads from the last run. */
  cursor?: string;
  /** Native row → canonical record. Default: the row as it is. */
  toCanonical?: ToCanonical<E, R>;
  /** Canonical record → native row. Default: the record as it is. */
  fromCanonical?: FromCanonical<E, R>;
  description?: string;
}

export interface Binding<E extends Entity = Entity> {
  readonly kind: "binding";
  readonly name: string;
  readonly system: System;
  readonly entity: E;
  /** Connector-specific settings (table, query, path, pagination…). */
  readonly options: Readonly<Record<string, unknown>>;
  readonly key: readonly string[];
  readonly cursor?: string;
  readonly toCanonical: (row: Row, ctx: MapContext) => unknown;
  readonly fromCanonical: (
    record: Record<string, unknown>,
    ctx: MapContext,
    envelope: RecordEnvelope,
  ) => Row | Promise<Row>;
  readonly hasToCanonical: boolean;
  readonly hasFromCanonical: boolean;
  readonly description?: string;
}

/** bind()'s own settings, kept out of the connector's options (a connector's checks do not know them). */
export const mappingSettingNames: ReadonlySet<string> = new Set([
  "name",
  "key",
  "cursor",
  "toCanonical",
  "fromCanonical",
  "description",
]);

const identity = (value: unknown) => value as Row;

/**
 * Binds an entity to a system: how it is read from and written to that system.
 *
 * ```ts
 * const erpInvoices = bind(erp, Invoice, {
 *   table: "orders", key: "id", cursor: "updated_at",
 *   toCanonical: (row) => ({ number: `INV-${row.id}`, total: String(row.total) }),
 * });
 * ```
 */
export function bind<S extends System, E extends Entity, R extends Row = Row>(
  system: S,
  entity: E,
  spec: BindingOptionsOf<S> & BindingMapping<E, R>,
): Binding<E> {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(spec as Record<string, unknown>)) {
    if (!mappingSettingNames.has(name)) options[name] = value;
  }
  const mapping = spec as BindingMapping<E, R>;
  const key = mapping.key === undefined ? entity.key : typeof mapping.key === "string" ? [mapping.key] : mapping.key;
  return Object.freeze({
    kind: "binding" as const,
    name: mapping.name ?? `${system.name}.${entity.name}`,
    system,
    entity,
    options: Object.freeze(options),
    key: Object.freeze([...key]),
    ...(mapping.cursor === undefined ? {} : { cursor: mapping.cursor }),
    toCanonical: (mapping.toCanonical ?? identity) as Binding<E>["toCanonical"],
    fromCanonical: (mapping.fromCanonical ?? identity) as Binding<E>["fromCanonical"],
    hasToCanonical: mapping.toCanonical !== undefined,
    hasFromCanonical: mapping.fromCanonical !== undefined,
    ...(mapping.description === undefined ? {} : { description: mapping.description }),
  });
}

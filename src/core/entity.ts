import type { Static, TObject } from "typebox";
import { keepUnknownSettings } from "./unknown-settings.ts";

/** Notes on one canonical field: who owns it, whether it is personal data. Exported into the JSON Schema. */
export interface FieldNote {
  owner?: string;
  pii?: boolean;
  description?: string;
}

/**
 * A canonical business object: declared once, every system maps to and from it.
 * `T` is the TypeScript type of a canonical record, inferred from the TypeBox schema.
 */
export interface Entity<T extends object = Record<string, unknown>> {
  readonly kind: "entity";
  readonly name: string;
  readonly version: number;
  /** Canonical field names forming the key, in order. A single field or several (composite key). */
  readonly key: readonly string[];
  readonly schema: TObject;
  readonly fields: Readonly<Record<string, FieldNote>>;
  readonly description?: string;
  /** Phantom, for type inference only: never set at runtime. */
  readonly __type?: T;
}

export type EntityRecord<E> = E extends Entity<infer T> ? T : never;

/** A field of the schema that can be (part of) the key. */
export type KeyField<S extends TObject> = keyof Static<S> & string;

export interface EntityOptions<S extends TObject, K> {
  version: number;
  /** The key field, or several for a composite key, in order. */
  key: K;
  schema: S;
  fields?: { [F in keyof Static<S>]?: FieldNote };
  description?: string;
}

/** The settings `entity()` knows; the names of any others are kept for defineHub to report (unknown-settings.ts). */
export const entitySpecNames: ReadonlySet<string> = new Set(["version", "key", "schema", "fields", "description"]);

/** What a field note may say (`fields: { email: { pii: true } }`). */
export const fieldNoteNames: ReadonlySet<string> = new Set(["owner", "pii", "description"]);

/**
 * Declares a canonical entity.
 *
 * ```ts
 * const Invoice = entity("Invoice", {
 *   version: 1,
 *   key: "number",
 *   schema: Type.Object({ number: Type.String(), total: Money }),
 *   fields: { total: { owner: "finance" } },
 * });
 * ```
 *
 * The record type is the schema's own (`Static<S>`), with no index signature added: a mapping that reads a field the
 * entity does not have (`c.nam` for `c.name`) is a type error, not an undefined written as NULL.
 */
export function entity<S extends TObject, const K extends KeyField<S> | readonly KeyField<S>[]>(
  name: string,
  options: EntityOptions<S, K>,
): Entity<Static<S>> {
  const key = typeof options.key === "string" ? [options.key as string] : [...(options.key as readonly string[])];
  const made = {
    kind: "entity" as const,
    name,
    version: options.version,
    key: Object.freeze(key),
    schema: options.schema,
    fields: Object.freeze({ ...((options.fields ?? {}) as Record<string, FieldNote>) }),
    ...(options.description === undefined ? {} : { description: options.description }),
  };
  return Object.freeze(keepUnknownSettings(made, options, entitySpecNames));
}

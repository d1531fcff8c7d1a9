import type { Entity } from "./entity.ts";

/**
 * An entity as a standalone JSON Schema (2020-12): the TypeBox schema as it is, with the entity's name, version,
 * key and per-field notes (owner, PII) as `x-franca-*` annotations, so other tools can read and diff it.
 */
export function entityJsonSchema(entity: Entity): Record<string, unknown> {
  const schema = structuredClone(entity.schema) as unknown as Record<string, unknown>;
  const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  for (const [field, note] of Object.entries(entity.fields)) {
    const property = properties[field];
    if (property === undefined) continue;
    if (note.owner !== undefined) property["x-franca-owner"] = note.owner;
    if (note.pii !== undefined) property["x-franca-pii"] = note.pii;
    if (note.description !== undefined && property.description === undefined) property.description = note.description;
  }
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: `urn:franca:entity:${entity.name}:v${entity.version}`,
    title: entity.name,
    ...(entity.description === undefined ? {} : { description: entity.description }),
    "x-franca-version": entity.version,
    "x-franca-key": [...entity.key],
    ...schema,
  };
}

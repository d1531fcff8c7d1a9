import type { Entity } from "./entity.ts";
import { ErrorCode, FrancaError } from "./errors.ts";
import { checkCompatibility } from "./schema-compat.ts";
import { entityJsonSchema } from "./schema-export.ts";

/**
 * The shape a run's canonical records were staged in: the entity's name, version and JSON Schema as exported
 * (`franca schema`). A run records it at its start (`stats.entity`), so that a resume, or a replay that loads staged
 * records again, can tell whether the entity changed since in a way that records valid then may not be now: those
 * would be loaded unchecked.
 */
export interface EntityShape {
  name: string;
  version: number;
  schema: Record<string, unknown>;
}

export function entityShape(entity: Entity): EntityShape {
  return { name: entity.name, version: entity.version, schema: entityJsonSchema(entity) };
}

/**
 * RUN_NOT_RESUMABLE when `run`'s records were staged under a shape of `entity` that today's breaks (schema-compat: a
 * field removed or narrowed, a required field added, a constraint tightened, a keyword it does not judge changed, the
 * key changed: a record valid then may not be now); `what`: what was asked, and what to do instead. Undefined when
 * today's shape only widens the staged one (an optional field added, a description changed: every staged record is
 * still valid), or when the run recorded none (a run from before).
 */
export function changedShapeError(
  run: { id: number; stats: Record<string, unknown> },
  entity: Entity,
  what: string,
): FrancaError | undefined {
  const staged = run.stats.entity as EntityShape | undefined;
  if (staged?.schema === undefined) return undefined;
  const now = entityShape(entity);
  const breaking = checkCompatibility(staged.schema, now.schema).changes.filter((change) => change.breaking);
  const first = breaking[0];
  if (first === undefined) return undefined;
  const versions =
    staged.version === now.version ? `v${now.version}, changed since without a new version` : `now v${now.version}`;
  const more = breaking.length > 1 ? ", …" : "";
  return new FrancaError(
    ErrorCode.RunNotResumable,
    `run ${run.id} staged its records as ${staged.name} v${staged.version} and the entity has changed since in a way they may not fit (${first.path} ${first.change}${more}) (${versions}): ${what}`,
  );
}

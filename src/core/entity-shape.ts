import { stableStringify } from "./canonical-json.ts";
import type { Entity } from "./entity.ts";
import { ErrorCode, FrancaError } from "./errors.ts";
import { digest } from "./hash.ts";

/**
 * The shape a run's canonical records were staged in: the entity's name, version and a digest of its key and schema.
 * A run records it at its start (`stats.entity`), so that a resume, or a replay that loads staged records again, can
 * tell that the entity changed since: records staged under the old schema would be loaded unchecked.
 */
export interface EntityShape {
  name: string;
  version: number;
  digest: string;
}

export function entityShape(entity: Entity): EntityShape {
  return { name: entity.name, version: entity.version, digest: digest(stableStringify([entity.key, entity.schema])) };
}

/**
 * RUN_NOT_RESUMABLE when `run`'s records were staged under another shape of `entity` than today's (`what`: what
 * was asked, and what to do instead); undefined when the shapes agree, or the run recorded none (a run from before).
 */
export function changedShapeError(
  run: { id: number; stats: Record<string, unknown> },
  entity: Entity,
  what: string,
): FrancaError | undefined {
  const staged = run.stats.entity as EntityShape | undefined;
  if (staged?.digest === undefined) return undefined;
  const now = entityShape(entity);
  if (staged.digest === now.digest) return undefined;
  const versions =
    staged.version === now.version ? `v${now.version}, changed since without a new version` : `now v${now.version}`;
  return new FrancaError(
    ErrorCode.RunNotResumable,
    `run ${run.id} staged its records as ${staged.name} v${staged.version} and the entity has changed since (${versions}): ${what}`,
  );
}

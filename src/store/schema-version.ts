/**
 * What both stores' `migrate` checks before applying their migrations: a store a newer Franca migrated (a schema
 * version this code does not know) is refused, for this code would write to it as to its own schema.
 */
import { ErrorCode, FrancaError } from "../core/errors.ts";

/** Throws when `applied` holds a version above `latest`, naming both. */
export function refuseNewerSchema(location: string, applied: ReadonlySet<number>, latest: number): void {
  const newest = Math.max(0, ...applied);
  if (newest > latest) {
    throw new FrancaError(
      ErrorCode.StoreError,
      `the store ${location} has schema version ${newest}, newer than this Franca knows (${latest}); upgrade Franca`,
    );
  }
}

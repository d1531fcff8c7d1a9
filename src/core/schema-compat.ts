/**
 * Is a new version of an entity's schema compatible with the old one? Checked on the JSON Schemas, so it works on a
 * schema exported by an earlier release as well as on the live definition.
 *
 * Breaking (consumers or stored records would fail): a field removed, a field added as required, a field made
 * required, a type changed (integer → number is a widening and allowed), the key changed, an enum value removed.
 * Compatible: an optional field added, a required field made optional, an enum value added, notes changed.
 */

export interface SchemaChange {
  path: string;
  change: string;
  breaking: boolean;
}

type Schema = Record<string, unknown>;

function types(schema: Schema): string[] {
  const type = schema.type;
  if (Array.isArray(type)) return type as string[];
  if (typeof type === "string") return [type];
  if (schema.const !== undefined) return [typeof schema.const];
  return [];
}

function compare(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const was = types(before);
  const now = types(after);
  if (was.length > 0 && now.length > 0) {
    const widened = was.every((type) => now.includes(type) || (type === "integer" && now.includes("number")));
    if (!widened) changes.push({ path, change: `type ${was.join("|")} → ${now.join("|")}`, breaking: true });
    else if (was.join() !== now.join())
      changes.push({ path, change: `type widened ${was.join("|")} → ${now.join("|")}`, breaking: false });
  }
  const beforeEnum = before.enum as unknown[] | undefined;
  const afterEnum = after.enum as unknown[] | undefined;
  if (beforeEnum !== undefined && afterEnum !== undefined) {
    const removed = beforeEnum.filter((value) => !afterEnum.includes(value));
    if (removed.length > 0)
      changes.push({ path, change: `enum value(s) removed: ${removed.join(", ")}`, breaking: true });
  }
  if (before.pattern !== after.pattern && after.pattern !== undefined) {
    changes.push({ path, change: `pattern ${String(before.pattern)} → ${String(after.pattern)}`, breaking: true });
  }
  const beforeProps = before.properties as Record<string, Schema> | undefined;
  const afterProps = after.properties as Record<string, Schema> | undefined;
  if (beforeProps !== undefined && afterProps !== undefined) {
    const beforeRequired = new Set((before.required as string[] | undefined) ?? []);
    const afterRequired = new Set((after.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries(beforeProps)) {
      const next = afterProps[name];
      const at = `${path}/${name}`;
      if (next === undefined) {
        changes.push({ path: at, change: "field removed", breaking: true });
        continue;
      }
      if (!beforeRequired.has(name) && afterRequired.has(name))
        changes.push({ path: at, change: "became required", breaking: true });
      if (beforeRequired.has(name) && !afterRequired.has(name))
        changes.push({ path: at, change: "became optional", breaking: false });
      compare(schema, next, at, changes);
    }
    for (const name of Object.keys(afterProps)) {
      if (beforeProps[name] !== undefined) continue;
      const required = afterRequired.has(name);
      changes.push({
        path: `${path}/${name}`,
        change: required ? "required field added" : "optional field added",
        breaking: required,
      });
    }
  }
  const beforeItems = before.items as Schema | undefined;
  const afterItems = after.items as Schema | undefined;
  if (
    beforeItems !== undefined &&
    afterItems !== undefined &&
    !Array.isArray(beforeItems) &&
    !Array.isArray(afterItems)
  ) {
    compare(beforeItems, afterItems, `${path}/items`, changes);
  }
}

export interface Compatibility {
  compatible: boolean;
  changes: SchemaChange[];
  /** A breaking change needs a higher version; false when it has one, or nothing breaks. */
  versionTooLow: boolean;
}

export function checkCompatibility(before: Schema, after: Schema): Compatibility {
  const changes: SchemaChange[] = [];
  const beforeKey = JSON.stringify(before["x-franca-key"] ?? null);
  const afterKey = JSON.stringify(after["x-franca-key"] ?? null);
  if (beforeKey !== afterKey) changes.push({ path: "/", change: `key ${beforeKey} → ${afterKey}`, breaking: true });
  compare(before, after, "", changes);
  const compatible = changes.every((change) => !change.breaking);
  const versionBefore = Number(before["x-franca-version"] ?? 0);
  const versionAfter = Number(after["x-franca-version"] ?? 0);
  return { compatible, changes, versionTooLow: !compatible && versionAfter <= versionBefore };
}

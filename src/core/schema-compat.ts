/**
 * Is a new version of an entity's schema compatible with the old one? Checked on the JSON Schemas, so it works on a
 * schema exported by an earlier release as well as on the live definition.
 *
 * Breaking (a record valid under the old schema may fail the new one, or a field's type narrowed): a field removed, a
 * field added as required, a field made required, the key changed, a type changed or narrowed (a union member
 * removed: null from a nullable field, an enum or literal value, a type; string → literals; number → integer), a
 * constraint added or tightened (length, range, multipleOf, item and property counts, uniqueItems, pattern or format
 * added or changed, a decimal's scale lowered), additional properties forbidden. Unions, nested objects, array items,
 * tuples, records and intersections are compared member by member.
 * Compatible: the widenings (an optional field added, a required field made optional, a union member or enum value
 * added, integer → number, a constraint loosened or removed, a decimal's scale raised), notes changed.
 */

export interface SchemaChange {
  path: string;
  change: string;
  breaking: boolean;
}

type Schema = Record<string, unknown>;

/** The alternatives a schema accepts, each on its own: a union's members, an enum's values, a type list's types. */
function members(schema: Schema): Schema[] {
  const { anyOf, oneOf, enum: values, ...rest } = schema;
  const union = anyOf ?? oneOf;
  if (Array.isArray(union)) return union.flatMap((member: Schema) => members({ ...rest, ...member }));
  if (Array.isArray(values)) return values.map((value) => ({ ...rest, const: value }));
  if (Array.isArray(rest.type)) return rest.type.map((type: string) => ({ ...rest, type }));
  return [schema];
}

/** The JSON Schema type of a value; a whole number is an integer. */
function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/** A member as the change names it: its constant (as JSON), its type, or "any". */
function label(member: Schema): string {
  if (member.const !== undefined) return JSON.stringify(member.const);
  return typeof member.type === "string" ? member.type : "any";
}

/** Does `after` take every value `before` took, as far as type and constant go (the constraints compared apart)? */
function accepts(after: Schema, before: Schema): boolean {
  if (after.const !== undefined) return before.const !== undefined && label(after) === label(before);
  if (typeof after.type !== "string") return true;
  const type = before.const !== undefined ? jsonType(before.const) : before.type;
  return type === after.type || (type === "integer" && after.type === "number");
}

/** The member of `after` that `before` goes on as: the one with the same name first, else any that accepts it. */
function successor(before: Schema, after: Schema[]): Schema | undefined {
  return (
    after.find((member) => label(member) === label(before) && accepts(member, before)) ??
    after.find((member) => accepts(member, before))
  );
}

/** The members: one the new schema no longer accepts breaks; new ones widen. Each kept member is then compared. */
function compare(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const was = members(before);
  const now = members(after);
  const lost = was.filter((member) => successor(member, now) === undefined);
  const names = (list: Schema[]) => list.map(label).join("|");
  if (lost.length > 0) {
    const removed = lost.length < was.length ? ` (${names(lost)} removed)` : "";
    changes.push({ path, change: `type ${names(was)} → ${names(now)}${removed}`, breaking: true });
  } else if ([...new Set(was.map(label))].sort().join() !== [...new Set(now.map(label))].sort().join())
    changes.push({ path, change: `type widened ${names(was)} → ${names(now)}`, breaking: false });
  for (const member of was) {
    const next = successor(member, now);
    // a constant goes on as the same constant or as a type; that type's constraints are not checked on its value
    if (next !== undefined && member.const === undefined) compareMember(member, next, path, changes);
  }
}

/** Two members of the same type: their constraints, properties and items. */
function compareMember(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  compareBounds(before, after, path, changes);
  compareMultipleOf(before, after, path, changes);
  if (!compareDecimalScale(before, after, path, changes)) compareExact("pattern", before, after, path, changes);
  compareExact("format", before, after, path, changes);
  compareFlag("uniqueItems", before, after, path, changes);
  compareProperties(before, after, path, changes);
  compareAdditionalProperties(before, after, path, changes);
  compareItems(before, after, path, changes);
  compareIntersection(before, after, path, changes);
  compareUnjudged(before, after, path, changes);
}

/**
 * The keywords the comparisons here judge (and the member keywords `members` takes apart), and annotations that
 * constrain nothing. Any other (`not`, `contains`, `dependentRequired`, `if`, `$ref`, …) is compared as it is: changed
 * at all, it breaks, since what it lets through is not judged.
 */
const judged = new Set([
  ...["type", "const", "enum", "anyOf", "oneOf", "properties", "required", "additionalProperties"],
  ...["patternProperties", "items", "prefixItems", "allOf", "multipleOf", "pattern", "format", "uniqueItems"],
  ...["minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"],
  ...["maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"],
  ...["description", "title", "examples", "default", "$id", "$schema", "$comment", "readOnly", "writeOnly"],
  "deprecated",
]);

/** Keywords not judged above (or in `checkCompatibility`: `x-franca-…`): any change to one breaks. */
function compareUnjudged(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  for (const keyword of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (judged.has(keyword) || keyword.startsWith("x-franca-")) continue;
    if (JSON.stringify(before[keyword]) !== JSON.stringify(after[keyword]))
      changes.push({ path, change: `${keyword} changed (not judged)`, breaking: true });
  }
}

/** Keywords that are a lower bound (a higher one is tighter) or an upper bound (a lower one is tighter). */
const LOWER = ["minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"];
const UPPER = ["maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"];

/** A bound's value, when it is a number. */
function bound(schema: Schema, keyword: string): number | undefined {
  const value = schema[keyword];
  return typeof value === "number" ? value : undefined;
}

/** Bounds: one added or tightened breaks; one loosened or removed widens. */
function compareBounds(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  for (const keyword of [...LOWER, ...UPPER]) {
    const was = bound(before, keyword);
    const now = bound(after, keyword);
    if (was === now) continue;
    if (now === undefined) changes.push({ path, change: `${keyword} ${was} removed`, breaking: false });
    else if (was === undefined) changes.push({ path, change: `${keyword} ${now} added`, breaking: true });
    else {
      const tighter = LOWER.includes(keyword) ? now > was : now < was;
      const how = tighter ? "tightened" : "loosened";
      changes.push({ path, change: `${keyword} ${how} ${was} → ${now}`, breaking: tighter });
    }
  }
}

/** multipleOf: added breaks, removed widens; a new step keeps every old value only if it divides the old step. */
function compareMultipleOf(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const was = bound(before, "multipleOf");
  const now = bound(after, "multipleOf");
  if (was === now) return;
  if (now === undefined) changes.push({ path, change: `multipleOf ${was} removed`, breaking: false });
  else if (was === undefined) changes.push({ path, change: `multipleOf ${now} added`, breaking: true });
  else changes.push({ path, change: `multipleOf ${was} → ${now}`, breaking: !divides(now, was) });
}

/** Is `whole` a whole multiple of `step`, allowing for binary fractions (0.3 of 0.1)? */
function divides(step: number, whole: number): boolean {
  const times = whole / step;
  return Math.abs(times - Math.round(times)) < 1e-9;
}

/** The scale of a `Decimal()` pattern (Infinity for any scale), or undefined for another pattern. */
function decimalScale(pattern: unknown): number | undefined {
  if (pattern === "^-?\\d+$") return 0;
  if (pattern === "^-?\\d+(\\.\\d+)?$") return Number.POSITIVE_INFINITY;
  const scale = typeof pattern === "string" ? /^\^-\?\\d\+\(\\\.\\d\{1,(\d+)\}\)\?\$$/.exec(pattern) : null;
  return scale === null ? undefined : Number(scale[1]);
}

/** Two `Decimal()` patterns: a lower scale breaks, a higher one widens. True when both patterns were decimals. */
function compareDecimalScale(before: Schema, after: Schema, path: string, changes: SchemaChange[]): boolean {
  const was = decimalScale(before.pattern);
  const now = decimalScale(after.pattern);
  if (was === undefined || now === undefined) return false;
  const name = (scale: number) => (scale === Number.POSITIVE_INFINITY ? "any" : String(scale));
  if (now < was) changes.push({ path, change: `decimal scale ${name(was)} → ${name(now)}`, breaking: true });
  if (now > was) changes.push({ path, change: `decimal scale widened ${name(was)} → ${name(now)}`, breaking: false });
  return true;
}

/** A keyword a value must match exactly (pattern, format): added or changed breaks, removed widens. */
function compareExact(keyword: string, before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const was = before[keyword];
  const now = after[keyword];
  if (was === now) return;
  if (now === undefined) changes.push({ path, change: `${keyword} ${String(was)} removed`, breaking: false });
  else if (was === undefined) changes.push({ path, change: `${keyword} ${String(now)} added`, breaking: true });
  else changes.push({ path, change: `${keyword} ${String(was)} → ${String(now)}`, breaking: true });
}

/** A keyword that constrains when true (uniqueItems): turned on breaks, turned off widens. */
function compareFlag(keyword: string, before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const was = before[keyword] === true;
  const now = after[keyword] === true;
  if (was !== now) changes.push({ path, change: `${keyword} ${now ? "added" : "removed"}`, breaking: now });
}

/** An object's fields: removed, added, made required or optional, and each kept one compared. */
function compareProperties(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const beforeProps = before.properties as Record<string, Schema> | undefined;
  const afterProps = after.properties as Record<string, Schema> | undefined;
  if (beforeProps === undefined || afterProps === undefined) return;
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

/** Fields beyond the declared ones: forbidding them breaks, allowing them widens; a record's values compared. */
function compareAdditionalProperties(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const was = before.additionalProperties;
  const now = after.additionalProperties;
  if (was !== false && now === false)
    changes.push({ path, change: "additional properties no longer allowed", breaking: true });
  if (was === false && now !== false) changes.push({ path, change: "additional properties allowed", breaking: false });
  if (isSchema(was) && isSchema(now)) compare(was, now, `${path}/*`, changes);
  const beforePatterns = (before.patternProperties ?? {}) as Record<string, Schema>;
  const afterPatterns = (after.patternProperties ?? {}) as Record<string, Schema>;
  for (const [pattern, schema] of Object.entries(beforePatterns)) {
    const next = afterPatterns[pattern];
    // a record's keys under another pattern: which keys it still takes is not judged
    if (next === undefined) changes.push({ path, change: `record keys ${pattern} no longer taken`, breaking: true });
    else compare(schema, next, `${path}/${pattern}`, changes);
  }
}

function isSchema(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An array's items (one schema for all), or a tuple's, position by position. */
function compareItems(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  if (isSchema(before.items) && isSchema(after.items)) compare(before.items, after.items, `${path}/items`, changes);
  const was = tuple(before);
  const now = tuple(after);
  if (was === undefined || now === undefined) return;
  for (const [index, item] of was.entries()) {
    const at = `${path}/items/${index}`;
    const next = now[index];
    if (next === undefined) changes.push({ path: at, change: "tuple item removed", breaking: true });
    else compare(item, next, at, changes);
  }
}

/** A tuple's item schemas (`prefixItems`, or `items` as an array in older drafts). */
function tuple(schema: Schema): Schema[] | undefined {
  if (Array.isArray(schema.prefixItems)) return schema.prefixItems as Schema[];
  return Array.isArray(schema.items) ? (schema.items as Schema[]) : undefined;
}

/** An intersection (`allOf`), part by part: a part added breaks, a part removed widens. */
function compareIntersection(before: Schema, after: Schema, path: string, changes: SchemaChange[]): void {
  const was = (before.allOf ?? []) as Schema[];
  const now = (after.allOf ?? []) as Schema[];
  for (const [index, part] of was.entries()) {
    const next = now[index];
    if (next === undefined) changes.push({ path, change: `allOf part ${index} removed`, breaking: false });
    else compare(part, next, path, changes);
  }
  for (let index = was.length; index < now.length; index++)
    changes.push({ path, change: `allOf part ${index} added`, breaking: true });
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

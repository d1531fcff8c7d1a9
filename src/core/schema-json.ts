/**
 * Canonical records are JSON: the transform hashes their canonical JSON, the stages store them as JSON, `franca
 * schema` exports their JSON Schema. A schema type that JSON cannot hold (TypeBox's BigInt, Undefined, Void, Symbol,
 * Function, Constructor) would pass validation and then fail or change on the way: a bigint makes JSON.stringify
 * throw, an undefined vanishes, a function is dropped. So such a type is a configuration error, found before any run
 * writes anything. (A field the schema leaves open, Type.Unknown(), can still receive one: the record is then
 * quarantined, engine/map-chunk.ts.)
 */

/** TypeBox's `type` values that are not JSON, and how a user would write each. */
const nonJsonTypes: ReadonlyMap<string, string> = new Map([
  ["bigint", "Type.BigInt()"],
  ["undefined", "Type.Undefined()"],
  ["void", "Type.Void()"],
  ["symbol", "Type.Symbol()"],
  ["function", "Type.Function()"],
  ["constructor", "Type.Constructor()"],
]);

/** One place in a schema whose type JSON cannot hold. */
export interface NonJsonType {
  /** Where, from the schema's root: field names joined by ".", `[]` for an array's items, `anyOf[1]` for a member. */
  path: string;
  /** The TypeBox constructor that made it, e.g. `Type.BigInt()`. */
  made: string;
}

type Node = Record<string, unknown>;

const isNode = (value: unknown): value is Node => value !== null && typeof value === "object" && !Array.isArray(value);

const join = (path: string, part: string): string => (path === "" ? part : `${path}.${part}`);

/** Every place in `schema` whose type JSON cannot hold, in document order. */
export function nonJsonTypesOf(schema: unknown): NonJsonType[] {
  const found: NonJsonType[] = [];
  const visit = (node: unknown, path: string): void => {
    if (!isNode(node)) return;
    const types = Array.isArray(node.type) ? node.type : [node.type];
    for (const type of types) {
      const made = typeof type === "string" ? nonJsonTypes.get(type) : undefined;
      if (made !== undefined) found.push({ path: path === "" ? "(root)" : path, made });
    }
    // only the keywords that hold schemas: a const, enum or default value is data, whatever its keys
    for (const keyword of ["properties", "patternProperties", "dependentSchemas", "$defs", "definitions"]) {
      const map = node[keyword];
      if (isNode(map)) for (const [name, child] of Object.entries(map)) visit(child, join(path, name));
    }
    for (const keyword of [
      "additionalProperties",
      "unevaluatedProperties",
      "propertyNames",
      "additionalItems",
      "unevaluatedItems",
      "not",
      "if",
      "then",
      "else",
      "contains",
    ]) {
      if (isNode(node[keyword])) visit(node[keyword], join(path, keyword));
    }
    if (isNode(node.items)) visit(node.items, `${path}[]`);
    for (const keyword of ["items", "prefixItems", "anyOf", "oneOf", "allOf"]) {
      const list = node[keyword];
      if (!Array.isArray(list)) continue;
      for (const [index, child] of list.entries()) visit(child, join(path, `${keyword}[${index}]`));
    }
  };
  visit(schema, "");
  return found;
}

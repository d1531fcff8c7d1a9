/**
 * The source text of an object literal, for code compiled with `new Function` (the canonical JSON's copiers, the
 * PostgreSQL COPY decoder's rows): `{ "key": expression, … }` with the keys in the order given. Keys are written as
 * JSON strings, so any property name is safe in the code; `__proto__` as a computed key, so that it makes an own
 * property, as any other name does, instead of setting the object's prototype.
 */
export function objectLiteral(keys: readonly string[], expression: (key: string, index: number) => string): string {
  const properties = keys.map((key, i) => {
    const literal = JSON.stringify(key);
    return `${key === "__proto__" ? `[${literal}]` : literal}: ${expression(key, i)}`;
  });
  return `{ ${properties.join(", ")} }`;
}

/**
 * The settings a factory (`flow()`, `entity()`, `lookup()`) was given and does not know: kept on what it made, under
 * a symbol (not among its keys, not copied by a spread), so that defineHub reports each by name instead of the typo
 * going unnoticed (`ttl` for `ttlMs` would leave a lookup uncached). A known name given anyway (`kind`, `name` in
 * the options) is unknown there too: the factory sets those itself.
 */
const unknownSettings = Symbol("franca.unknownSettings");

/** `made` with the names of `spec`'s settings that are not in `known`; call it before freezing `made`. */
export function keepUnknownSettings<T extends object>(made: T, spec: object, known: ReadonlySet<string>): T {
  const unknown = Object.keys(spec).filter((name) => !known.has(name));
  if (unknown.length > 0) Object.defineProperty(made, unknownSettings, { value: Object.freeze(unknown) });
  return made;
}

/** The settings kept by keepUnknownSettings, in the order given (none when there were none). */
export function unknownSettingsOf(made: object): readonly string[] {
  return (made as { [unknownSettings]?: readonly string[] })[unknownSettings] ?? [];
}

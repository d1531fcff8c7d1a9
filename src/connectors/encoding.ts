/**
 * What the encoded reads (`Connection.readEncoded`) of the database connectors share: a batch's `encoding` is the JSON
 * of a format name and the columns — `{"format": …, "fields": [[name, what decodes it], …]}` — and each driver's
 * `decode` keeps one decoder per encoding (a read's batches share theirs). Pure: transform threads run it.
 */

/** The encoding of a read's batches: the format and, per column, its name and what decodes it (JSON, no newline). */
export function encodingOf(format: string, fields: readonly (readonly [string, unknown])[]): string {
  return JSON.stringify({ format, fields });
}

/**
 * The columns of an encoding made by `encodingOf` with `format`, each field's decoding checked by `valid`; throws
 * naming `what` when the text is not such an encoding.
 */
export function encodedFields<T>(
  encoding: string,
  format: string,
  valid: (value: unknown) => boolean,
  what: string,
): [string, T][] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(encoding);
  } catch {
    parsed = undefined;
  }
  const { format: found, fields } = (parsed ?? {}) as { format?: unknown; fields?: unknown };
  if (
    found !== format ||
    !Array.isArray(fields) ||
    !fields.every((field) => Array.isArray(field) && typeof field[0] === "string" && valid(field[1]))
  )
    throw new Error(`not an encoding of ${what}: ${encoding.slice(0, 100)}`);
  return fields as [string, T][];
}

const maxDecoders = 64;

/** `make` cached by encoding, for the last 64 encodings seen. */
export function decoderCache<D>(make: (encoding: string) => D): (encoding: string) => D {
  const decoders = new Map<string, D>();
  return (encoding) => {
    let decoder = decoders.get(encoding);
    if (decoder === undefined) {
      decoder = make(encoding);
      if (decoders.size >= maxDecoders) decoders.delete(decoders.keys().next().value as string);
      decoders.set(encoding, decoder);
    }
    return decoder;
  };
}

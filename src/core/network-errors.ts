/**
 * Node's and undici's network error codes, and how to find them on an error: shared by the connectors (which
 * classify their errors) and the engine (which classifies what reaches it unclassified).
 */

/** The connection failed or broke: a later attempt may get through. */
export const transientNetworkCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);

/**
 * The errors to look at for a code: the error, its `cause`, and the first of an AggregateError's `errors` (a host
 * with several addresses fails with one error per address), four levels deep.
 */
function* chain(error: unknown): Generator<object> {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === "object"; depth++) {
    yield current;
    const inner = (current as { errors?: unknown }).errors;
    current = Array.isArray(inner) && inner.length > 0 ? inner[0] : (current as { cause?: unknown }).cause;
  }
}

/** The first string `code` on the error or its causes (`ECONNREFUSED`, `UND_ERR_SOCKET`…). */
export function errorCode(error: unknown): string | undefined {
  for (const item of chain(error)) {
    const code = (item as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** The transient network code on the error or its causes, if there is one. */
export function transientNetworkCode(error: unknown): string | undefined {
  for (const item of chain(error)) {
    const code = (item as { code?: unknown }).code;
    if (typeof code === "string" && transientNetworkCodes.has(code)) return code;
  }
  return undefined;
}

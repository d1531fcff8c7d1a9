import Type, { type Static, type TSchema } from "typebox";
import type { SettingIssue } from "../../core/system.ts";
import { settingsChecker } from "../settings.ts";

// ---------------------------------------------------------------------------------------------------------------
// System settings

export const HttpBearerAuth = Type.Object(
  { type: Type.Literal("bearer"), token: Type.String({ minLength: 1 }) },
  { additionalProperties: false },
);
export const HttpBasicAuth = Type.Object(
  { type: Type.Literal("basic"), username: Type.String(), password: Type.String() },
  { additionalProperties: false },
);
export const HttpApiKeyAuth = Type.Object(
  {
    type: Type.Literal("apiKey"),
    /** Header carrying the key. Default `X-API-Key` (when `query` is not given either). */
    header: Type.Optional(Type.String({ minLength: 1 })),
    /** Query parameter carrying the key, instead of a header. */
    query: Type.Optional(Type.String({ minLength: 1 })),
    value: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);
export const HttpAuth = Type.Union([HttpBearerAuth, HttpBasicAuth, HttpApiKeyAuth]);
export type HttpAuth = Static<typeof HttpAuth>;

const systemProperties = {
  /** Base URL every path is relative to, e.g. `https://api.example.com/v2`. */
  baseUrl: Type.String({ minLength: 1 }),
  /** Extra headers sent with every request. */
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
};

export const HttpSystemOptions = Type.Object(
  { ...systemProperties, auth: Type.Optional(HttpAuth) },
  { additionalProperties: false },
);
export type HttpSystemOptions = Static<typeof HttpSystemOptions>;

// ---------------------------------------------------------------------------------------------------------------
// Binding settings

export const HttpPagePagination = Type.Object(
  {
    style: Type.Literal("page"),
    /** Default `page`. */
    pageParam: Type.Optional(Type.String({ minLength: 1 })),
    /** Default `pageSize`. */
    sizeParam: Type.Optional(Type.String({ minLength: 1 })),
    /** Records asked per page. Default: the flow's chunk size. */
    pageSize: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Number of the first page. Default 1. */
    firstPage: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export const HttpOffsetPagination = Type.Object(
  {
    style: Type.Literal("offset"),
    /** Default `offset`. */
    offsetParam: Type.Optional(Type.String({ minLength: 1 })),
    /** Default `limit`. */
    limitParam: Type.Optional(Type.String({ minLength: 1 })),
    /** Default: the engine's batch size of the moment (it grows over a run's first chunks up to the flow's chunk size). */
    limit: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
export const HttpCursorPagination = Type.Object(
  {
    style: Type.Literal("cursor"),
    /** Default `cursor`. */
    cursorParam: Type.Optional(Type.String({ minLength: 1 })),
    /** Default `limit`. */
    limitParam: Type.Optional(Type.String({ minLength: 1 })),
    /** Default: the flow's chunk size, the same for the whole read. */
    limit: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Dot path of the next cursor in the response body; null, missing or empty ends the list. */
    nextPath: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);
export const HttpLinkPagination = Type.Object({ style: Type.Literal("link") }, { additionalProperties: false });
export const HttpNoPagination = Type.Object({ style: Type.Literal("none") }, { additionalProperties: false });
export const HttpPagination = Type.Union([
  HttpPagePagination,
  HttpOffsetPagination,
  HttpCursorPagination,
  HttpLinkPagination,
  HttpNoPagination,
]);
export type HttpPagination = Static<typeof HttpPagination>;

const QueryValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);

const bindingProperties = {
  /** Path under baseUrl. A write's path may be a template filled from the row: `/invoices/{number}`. */
  path: Type.String({ minLength: 1 }),
  /** Extra query parameters of every request of the binding. */
  query: Type.Optional(Type.Record(Type.String(), QueryValue)),
  // Source settings
  /** Dot path of the records array in a list response. Default `data`; "" when the body is the array. */
  records: Type.Optional(Type.String()),
  /** Incremental reads: the query parameter that asks for records changed since a value of the binding's cursor. */
  since: Type.Optional(Type.Object({ param: Type.String({ minLength: 1 }) }, { additionalProperties: false })),
  // Target settings
  /** Default POST. */
  method: Type.Optional(Type.Union([Type.Literal("POST"), Type.Literal("PUT"), Type.Literal("PATCH")])),
  /** `single`: one request per record (default); `batch`: several records per request. */
  mode: Type.Optional(Type.Union([Type.Literal("single"), Type.Literal("batch")])),
  /** Batch mode: most records per request. Default 100. */
  batchSize: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Batch mode: path the batches go to. Default: `path`. */
  batchPath: Type.Optional(Type.String({ minLength: 1 })),
  /** Batch mode: field of the request body holding the records. Default `items`. */
  itemsField: Type.Optional(Type.String({ minLength: 1 })),
  /** Batch mode: dot path of the per-item results in the response. Default `results`. */
  resultsPath: Type.Optional(Type.String()),
  /** Dot path of the target's id in a created record (single) or in a per-item result (batch). */
  idPath: Type.Optional(Type.String({ minLength: 1 })),
  /** Header carrying the idempotency key. Default `Idempotency-Key`; false sends none. */
  idempotencyHeader: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Literal(false)])),
};

export const HttpBindingOptions = Type.Object(
  { ...bindingProperties, pagination: Type.Optional(HttpPagination) },
  { additionalProperties: false },
);
export type HttpBindingOptions = Static<typeof HttpBindingOptions>;

export const defaultBatchSize = 100;

// ---------------------------------------------------------------------------------------------------------------
// Validation. The unions (auth, pagination) are checked against the branch their discriminator names, so that a
// mistake is reported once and precisely ("auth.token is required"), not as a failed match of every branch.

const checkSystemBase = settingsChecker(
  Type.Object({ ...systemProperties, auth: Type.Optional(Type.Unknown()) }, { additionalProperties: false }),
);
const checkBindingBase = settingsChecker(
  Type.Object({ ...bindingProperties, pagination: Type.Optional(Type.Unknown()) }, { additionalProperties: false }),
);

function variantChecker(
  setting: string,
  discriminator: string,
  branches: Record<string, TSchema>,
): (value: unknown) => SettingIssue[] {
  const checkers = Object.fromEntries(
    Object.entries(branches).map(([name, schema]) => [name, settingsChecker(schema)]),
  );
  const names = Object.keys(branches);
  return (value) => {
    if (value === undefined) return [];
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return [{ setting, message: "must be an object" }];
    }
    const kind = (value as Record<string, unknown>)[discriminator];
    const check = typeof kind === "string" && Object.hasOwn(checkers, kind) ? checkers[kind] : undefined;
    if (check === undefined) {
      return [
        {
          setting: `${setting}.${discriminator}`,
          message: `must be one of ${names.map((name) => JSON.stringify(name)).join(", ")}`,
        },
      ];
    }
    return check(value).map((issue) => ({
      setting: issue.setting === "(settings)" ? setting : `${setting}.${issue.setting}`,
      message: issue.message,
    }));
  };
}

const checkAuth = variantChecker("auth", "type", {
  bearer: HttpBearerAuth,
  basic: HttpBasicAuth,
  apiKey: HttpApiKeyAuth,
});
const checkPagination = variantChecker("pagination", "style", {
  page: HttpPagePagination,
  offset: HttpOffsetPagination,
  cursor: HttpCursorPagination,
  link: HttpLinkPagination,
  none: HttpNoPagination,
});

/** The problem with a base URL, or undefined when it is a usable http(s) URL. */
export function baseUrlProblem(baseUrl: unknown): string | undefined {
  if (typeof baseUrl !== "string") return undefined; // reported by the schema
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return "is not a valid URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `must be an http or https URL, not ${url.protocol}`;
  if (url.username !== "" || url.password !== "") return "must not carry credentials; use auth";
  if (url.search !== "" || url.hash !== "") return "must not have a query or fragment; use headers, auth or query";
  return undefined;
}

export function validateSystemOptions(options: unknown): SettingIssue[] {
  const issues = checkSystemBase(options);
  if (typeof options !== "object" || options === null) return issues;
  const { baseUrl, auth } = options as Record<string, unknown>;
  issues.push(...checkAuth(auth));
  const problem = baseUrlProblem(baseUrl);
  if (problem !== undefined) issues.push({ setting: "baseUrl", message: problem });
  const apiKey = auth as { type?: unknown; header?: unknown; query?: unknown } | undefined;
  if (apiKey?.type === "apiKey" && apiKey.header !== undefined && apiKey.query !== undefined) {
    issues.push({ setting: "auth.query", message: "give either header or query, not both" });
  }
  return issues;
}

const placeholderCache = new Map<string, readonly string[]>();

/** Placeholders of a path template: `/invoices/{number}` → ["number"] (parsed once per template: every write asks). */
export function placeholders(path: string): readonly string[] {
  let names = placeholderCache.get(path);
  if (names === undefined) {
    names = [...path.matchAll(/\{([^{}]+)\}/g)].map((match) => match[1] as string);
    if (placeholderCache.size < 1000) placeholderCache.set(path, names);
  }
  return names;
}

const sourceOnly = ["records", "since", "pagination"] as const;
const targetOnly = [
  "method",
  "mode",
  "batchSize",
  "batchPath",
  "itemsField",
  "resultsPath",
  "idPath",
  "idempotencyHeader",
] as const;
const batchOnly = ["batchSize", "batchPath", "itemsField", "resultsPath"] as const;

export function validateBindingOptions(options: unknown, role: "source" | "target"): SettingIssue[] {
  const issues = checkBindingBase(options);
  if (typeof options !== "object" || options === null) return issues;
  const settings = options as Record<string, unknown>;
  issues.push(...checkPagination(settings.pagination));
  const given = (name: string) => settings[name] !== undefined;
  if (role === "target") {
    for (const name of sourceOnly)
      if (given(name)) issues.push({ setting: name, message: "has no effect on a target" });
  } else {
    for (const name of targetOnly)
      if (given(name)) issues.push({ setting: name, message: "has no effect on a source" });
  }
  const path = settings.path;
  if (typeof path === "string") {
    if (!path.startsWith("/")) issues.push({ setting: "path", message: "must start with '/' (it is under baseUrl)" });
    if (role === "source" && placeholders(path).length > 0) {
      issues.push({
        setting: "path",
        message: "a source path cannot have {placeholders}: there is no row to fill them",
      });
    }
  }
  if (role === "target") {
    const batch = settings.mode === "batch";
    if (!batch) {
      for (const name of batchOnly) if (given(name)) issues.push({ setting: name, message: 'needs mode: "batch"' });
    } else {
      const batchPath = typeof settings.batchPath === "string" ? settings.batchPath : path;
      const setting = given("batchPath") ? "batchPath" : "path";
      if (typeof batchPath === "string" && placeholders(batchPath).length > 0) {
        issues.push({
          setting,
          message:
            "a batch goes to one URL, so it cannot have {placeholders}" +
            (given("batchPath") ? "" : "; give batchPath"),
        });
      }
      if (typeof settings.batchPath === "string" && !settings.batchPath.startsWith("/")) {
        issues.push({ setting: "batchPath", message: "must start with '/' (it is under baseUrl)" });
      }
    }
  }
  return issues;
}

import type { CommonSystemSettings, System } from "../../core/system.ts";
import { defineSystem } from "../../core/system.ts";
import type { HttpClient, HttpRequestOptions } from "./client.ts";
import { httpDriver } from "./driver.ts";
import type { HttpAuth, HttpBindingOptions, HttpPagination, HttpSystemOptions } from "./options.ts";

export type { HttpAuth, HttpBindingOptions, HttpClient, HttpPagination, HttpRequestOptions, HttpSystemOptions };
export { httpDriver };

/**
 * A JSON HTTP API: `http("billing", { baseUrl: "https://billing.example.com/v1", auth: { type: "bearer", token } })`.
 * Its bindings name a `path` (and pagination, for a source; a mode, for a target).
 */
export function http(
  name: string,
  settings: HttpSystemOptions & CommonSystemSettings,
): System<HttpBindingOptions, HttpClient> {
  return defineSystem(httpDriver, name, settings as unknown as Record<string, unknown>);
}

import type { CommonSystemSettings, System } from "../../core/system.ts";
import { defineSystem } from "../../core/system.ts";
import type { HttpClient, HttpRequestOptions } from "./client.ts";
import { httpDriver } from "./driver.ts";
import type { HttpAuth, HttpBindingOptions, HttpPagination, HttpSystemOptions } from "./options.ts";

export type { HttpAuth, HttpBindingOptions, HttpClient, HttpPagination, HttpRequestOptions, HttpSystemOptions };
export { httpDriver };

/**
 * Calls in flight from one process to an HTTP system that declares neither `concurrency` nor `processConcurrency`:
 * an API nobody sized is not flooded (without a cap, a chunk of lookups opened a socket per distinct key: 224 calls
 * at once were measured against a test server).
 */
export const defaultHttpConcurrency = 64;

/**
 * A JSON HTTP API: `http("billing", { baseUrl: "https://billing.example.com/v1", auth: { type: "bearer", token } })`.
 * Its bindings name a `path` (and pagination, for a source; a mode, for a target).
 */
export function http(
  name: string,
  settings: HttpSystemOptions & CommonSystemSettings,
): System<HttpBindingOptions, HttpClient> {
  const limits = settings.limits ?? {};
  const sized = limits.concurrency !== undefined || limits.processConcurrency !== undefined;
  return defineSystem(httpDriver, name, {
    ...settings,
    limits: sized ? limits : { ...limits, processConcurrency: defaultHttpConcurrency },
  } as unknown as Record<string, unknown>);
}

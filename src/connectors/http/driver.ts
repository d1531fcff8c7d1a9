import type { System } from "../../core/system.ts";
import type { Connection, Driver } from "../types.ts";
import { type HttpClient, HttpTransport } from "./client.ts";
import {
  baseUrlProblem,
  defaultBatchSize,
  type HttpBindingOptions,
  type HttpSystemOptions,
  placeholders,
  validateBindingOptions,
  validateSystemOptions,
} from "./options.ts";
import { nextRunFrom, readHttp } from "./read.ts";
import { writeHttp } from "./write.ts";

function open(system: System): Connection {
  const transport = new HttpTransport(
    system.name,
    system.options as HttpSystemOptions,
    system.limits.concurrency ?? system.limits.processConcurrency,
  );
  return {
    read: (request) => readHttp(transport, request),
    nextRunFrom,
    write: (request) => writeHttp(transport, request),
    maxWriteBatch(options) {
      const binding = options as HttpBindingOptions;
      return binding.mode === "batch" ? (binding.batchSize ?? defaultBatchSize) : 1;
    },
    client(): HttpClient {
      return transport.client();
    },
    async health(signal) {
      const started = performance.now();
      const url = transport.baseUrl();
      try {
        const answer = await transport.send("GET", url, { operation: "client", signal, anyStatus: true });
        const latencyMs = performance.now() - started;
        if (answer.status >= 500) return { ok: false, latencyMs, message: `answered ${answer.status}` };
        return answer.status < 300
          ? { ok: true, latencyMs }
          : { ok: true, latencyMs, message: `answered ${answer.status}` };
      } catch (error) {
        return { ok: false, latencyMs: performance.now() - started, message: (error as Error).message };
      }
    },
    async close() {
      await transport.close();
    },
  };
}

/** The HTTP/REST connector: JSON APIs with page, offset, cursor or Link pagination, single or batch writes. */
export const httpDriver: Driver = {
  type: "http",
  canRead: true,
  canWrite: true,
  writeTuning: ["mode", "batchSize", "idempotencyHeader"],
  validateSystem: (options) => validateSystemOptions(options),
  validateBinding(options, role, binding) {
    const issues = validateBindingOptions(options, role);
    const since = (options as { since?: unknown } | undefined)?.since;
    if (role === "source" && binding !== undefined && since !== undefined && binding.cursor === undefined) {
      issues.push({
        setting: "since",
        message: "needs the binding's cursor field (the field whose highest value the next run asks from)",
      });
    }
    if (role === "source" && binding !== undefined && since === undefined && binding.cursor !== undefined) {
      issues.push({
        setting: "cursor",
        message: `needs since: { param } to ask the API for records changed after the cursor`,
      });
    }
    return issues;
  },
  preflight(system) {
    const problem = baseUrlProblem((system.options as HttpSystemOptions).baseUrl);
    return problem === undefined ? [] : [{ setting: "baseUrl", message: problem }];
  },
  // PUT or PATCH, a record at a time, to a path filled from the record's key (`/customers/{id}`): the record's
  // resource is written; a POST, or a batch, may create a record per request
  replacesByKey(options, key) {
    const binding = options as HttpBindingOptions;
    const filled = new Set(placeholders(binding.path));
    return (
      (binding.mode ?? "single") === "single" &&
      (binding.method === "PUT" || binding.method === "PATCH") &&
      key.length > 0 &&
      key.every((field) => filled.has(field))
    );
  },
  open,
};

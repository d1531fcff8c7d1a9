import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { digest } from "../../core/hash.ts";
import type { ItemResult, WriteItem, WriteRequest } from "../types.ts";
import { type HttpAnswer, type HttpTransport, valueAt } from "./client.ts";
import { errorText, excerpt, responseError, statusError } from "./errors.ts";
import { type HttpBindingOptions, placeholders } from "./options.ts";

const defaultIdempotencyHeader = "Idempotency-Key";

function idempotencyHeaders(options: HttpBindingOptions, key: string): Record<string, string> {
  const header = options.idempotencyHeader ?? defaultIdempotencyHeader;
  return header === false ? {} : { [header]: key };
}

/** The target's id at `idPath`, when it is a string or a number. */
function targetIdOf(value: unknown, idPath: string | undefined): string | undefined {
  if (idPath === undefined) return undefined;
  const id = valueAt(value, idPath);
  return typeof id === "string" || typeof id === "number" ? String(id) : undefined;
}

/** Fills `/invoices/{number}` from the row, URL-encoded; a field the row lacks is the record's problem. */
function fillPath(template: string, row: Row, system: string): string | FrancaError {
  let path = template;
  for (const name of placeholders(template)) {
    const value = valueAt(row, name);
    if (value === undefined || value === null || value === "" || typeof value === "object") {
      return new FrancaError(
        ErrorCode.TargetRejected,
        `${system}: the row has no value for {${name}} of the path ${template}`,
        {
          system,
          path: `/${name.replaceAll(".", "/")}`,
        },
      );
    }
    path = path.replace(`{${name}}`, encodeURIComponent(String(value)));
  }
  return path;
}

/** The JSON of a successful write's answer, when it has one the connector can read (it never fails the write). */
function answerJson(answer: HttpAnswer): unknown {
  if (answer.text.trim() === "") return undefined;
  try {
    return JSON.parse(answer.text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Single mode: one request per record, carrying the record's idempotency key, so a retried request (a lost answer,
 * a timeout) is recognised by the API instead of creating the record again. A 4xx that is about the record
 * (validation, conflict) is that record's refusal; anything about the system (auth, 5xx, network) throws, for the
 * engine to retry or stop the run.
 */
async function writeOne(
  transport: HttpTransport,
  options: HttpBindingOptions,
  item: WriteItem,
  signal: AbortSignal,
): Promise<ItemResult> {
  const path = fillPath(options.path, item.row, transport.system);
  if (path instanceof FrancaError) return { ok: false, error: path };
  const method = options.method ?? "POST";
  const url = transport.url(path, options.query);
  let answer: HttpAnswer;
  try {
    answer = await transport.send(method, url, {
      operation: "write",
      signal,
      body: JSON.stringify(item.row),
      headers: idempotencyHeaders(options, item.idempotencyKey),
    });
  } catch (error) {
    if (error instanceof FrancaError && error.code === ErrorCode.TargetRejected) return { ok: false, error };
    throw error;
  }
  // the answer is parsed only when the binding reads the target's id from it
  const targetId = options.idPath === undefined ? undefined : targetIdOf(answerJson(answer), options.idPath);
  return targetId === undefined ? { ok: true } : { ok: true, targetId };
}

/** One per-item result of a batch: 2xx loaded, 4xx refused with the server's reason, 5xx (and 408/429) transient. */
function itemResult(
  transport: HttpTransport,
  options: HttpBindingOptions,
  result: unknown,
  index: number,
  request: string,
): ItemResult {
  const record = typeof result === "object" && result !== null ? (result as Record<string, unknown>) : undefined;
  const reason = errorText(record);
  const status = typeof record?.status === "number" ? record.status : reason === undefined ? 200 : 422;
  if (status >= 200 && status < 300) {
    const targetId = targetIdOf(result, options.idPath);
    return targetId === undefined ? { ok: true } : { ok: true, targetId };
  }
  const error = statusError({
    system: transport.system,
    operation: "write",
    request: `${request} (item ${index})`,
    status,
    body: transport.redact(reason ?? excerpt(JSON.stringify(result) ?? "")),
  });
  return { ok: false, error };
}

/**
 * Batch mode: one request per call with `{ [itemsField]: rows }`. Its idempotency key is a digest of the items'
 * keys: the same items retried carry the same key, and a batch split by the engine gets new ones. A whole-batch 4xx
 * throws TARGET_REJECTED (the engine splits the batch to find the records at fault); per-item results are mapped
 * in order, and an answer with fewer (or more) results than items is a permanent error.
 */
async function writeBatch(
  transport: HttpTransport,
  options: HttpBindingOptions,
  request: WriteRequest,
): Promise<ItemResult[]> {
  const items = request.items;
  const method = options.method ?? "POST";
  const url = transport.url(options.batchPath ?? options.path, options.query);
  const described = transport.describe(method, url);
  const answer = await transport.send(method, url, {
    operation: "write",
    signal: request.signal,
    body: JSON.stringify({ [options.itemsField ?? "items"]: items.map((item) => item.row) }),
    headers: idempotencyHeaders(options, digest(...items.map((item) => item.idempotencyKey))),
  });
  const resultsPath = options.resultsPath ?? "results";
  const results = valueAt(
    transport.json(answer, () => described),
    resultsPath,
  );
  if (!Array.isArray(results)) {
    throw responseError(transport.system, described, `no array of per-item results at '${resultsPath}'`);
  }
  if (results.length !== items.length) {
    throw responseError(
      transport.system,
      described,
      `${results.length} results at '${resultsPath}' for ${items.length} items: the outcome of each record is unknown`,
    );
  }
  return results.map((result, index) => itemResult(transport, options, result, index, described));
}

export async function writeHttp(transport: HttpTransport, request: WriteRequest): Promise<ItemResult[]> {
  const options = request.options as HttpBindingOptions;
  if (options.mode === "batch") return writeBatch(transport, options, request);
  // The engine sends one item per call (maxWriteBatch is 1); more are written one after the other.
  const results: ItemResult[] = [];
  for (const item of request.items) results.push(await writeOne(transport, options, item, request.signal));
  return results;
}

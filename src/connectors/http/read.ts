import type { Row } from "../../core/binding.ts";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import type { Position, ReadBatch, ReadRequest, UnreadableRow } from "../types.ts";
import { type HttpTransport, type QueryValues, valueAt } from "./client.ts";
import { responseError } from "./errors.ts";
import type { HttpBindingOptions, HttpPagination } from "./options.ts";

/**
 * Where a read continues: the next request to make, in the pagination's own terms. `cursor: null`, `url: null` and
 * `done: true` mean the list was read to its end. Incremental reads add `since` (the filter of this run) and
 * `maxSeen` (the highest cursor value read so far), which the next run starts from.
 */
export interface HttpPosition {
  page?: number;
  /** Page size the page numbers count in: a read continued from this position keeps it. */
  size?: number;
  offset?: number;
  cursor?: string | null;
  /** Next page's URL (Link pagination), without the API key. */
  url?: string | null;
  done?: true;
  since?: unknown;
  maxSeen?: unknown;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The start of the next run: the first page of the records changed since the newest change the last run saw. */
export function nextRunFrom(previousRunEnd: Position): Position | undefined {
  if (!isObject(previousRunEnd)) return undefined;
  const since = previousRunEnd.maxSeen ?? previousRunEnd.since;
  return since === undefined || since === null ? undefined : { since };
}

/** Numbers numerically, anything else (ISO timestamps, sequence strings) as text. */
function greater(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") return a > b;
  return String(a) > String(b);
}

/** `rel="next"` of a Link header (RFC 8288), or undefined. */
export function nextLink(header: string | null): string | undefined {
  if (header === null) return undefined;
  for (const match of header.matchAll(/<([^>]*)>((?:\s*;\s*[^;,]+)*)/g)) {
    const params = match[2] ?? "";
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
    const values = (rel?.[1] ?? rel?.[2] ?? "").toLowerCase().split(/\s+/);
    if (values.includes("next")) return match[1];
  }
  return undefined;
}

function configProblem(setting: string, message: string): FrancaError {
  return new FrancaError(ErrorCode.ConfigInvalid, `${setting}: ${message}`, { setting });
}

interface Page {
  rows: Row[];
  body: unknown;
  link: string | null;
}

/**
 * Reads a list endpoint page by page. Each page request runs through `request.call` (the system's concurrency,
 * rate limit, breaker and timeout); each page is one batch, with the position of the next request, so a read
 * started from it continues with the next page. Pages end at an empty page (page and offset styles: a server may
 * cap the page size, so a short page is not the end), at a missing next cursor or at a missing `rel="next"` link.
 */
export async function* readHttp(transport: HttpTransport, request: ReadRequest): AsyncIterable<ReadBatch> {
  const options = request.options as HttpBindingOptions;
  const pagination: HttpPagination = options.pagination ?? { style: "none" };
  const recordsPath = options.records ?? "data";
  const incremental = options.since !== undefined;
  if (incremental && request.cursor === undefined) {
    throw configProblem(
      "since",
      "needs the binding's cursor field (the field whose highest value the next run asks from)",
    );
  }
  if (!incremental && request.cursor !== undefined) {
    throw configProblem(
      "since",
      `the binding's cursor '${request.cursor}' needs since: { param } to ask the API for changed records only`,
    );
  }
  if (request.from !== undefined && !isObject(request.from)) {
    throw configProblem("position", `cannot continue from ${JSON.stringify(request.from)}: not an HTTP position`);
  }
  const from = request.from as HttpPosition | undefined;
  const since = from?.since;
  let maxSeen = from?.maxSeen;
  const cursorField = request.cursor;
  const query: QueryValues = {
    ...options.query,
    ...(incremental && since !== undefined && since !== null
      ? { [options.since?.param as string]: String(since) }
      : {}),
  };

  const positionOf = (step: HttpPosition): HttpPosition =>
    incremental
      ? { ...step, ...(since === undefined ? {} : { since }), ...(maxSeen === undefined ? {} : { maxSeen }) }
      : step;

  const fetchPage = (url: URL): Promise<Page> =>
    request.call(async (signal) => {
      const answer = await transport.send("GET", url, { operation: "read", signal });
      const described = transport.describe("GET", url);
      const body = transport.json(answer, () => described);
      const items = valueAt(body, recordsPath);
      if (!Array.isArray(items)) {
        const where = recordsPath === "" ? "the body is not an array" : `no array at '${recordsPath}'`;
        throw responseError(transport.system, described, `${where} (set the binding's records setting)`);
      }
      const rows = new Array<Row>(items.length);
      for (let i = 0; i < items.length; i++) {
        const item = items[i] as unknown;
        if (isObject(item)) {
          rows[i] = item;
          if (cursorField !== undefined) {
            const value = item[cursorField];
            if (value !== undefined && value !== null && (maxSeen === undefined || greater(value, maxSeen))) {
              maxSeen = value;
            }
          }
        } else {
          const unreadable: UnreadableRow = {
            $error: `item ${i} of ${described} is ${Array.isArray(item) ? "an array" : typeof item}, not a JSON object`,
            $raw: JSON.stringify(item) ?? String(item),
          };
          rows[i] = unreadable as unknown as Row;
        }
      }
      return { rows, body, link: answer.headers.get("link") };
    });

  // the page size of a read that keeps one from start to end (pages by number, cursors): the flow's chunk size
  const fixedSize = request.fullBatchSize ?? request.batchSize;
  switch (pagination.style) {
    case "none": {
      if (from?.done === true) return;
      const { rows } = await fetchPage(transport.url(options.path, query));
      if (rows.length > 0) yield { rows, position: positionOf({ done: true }) };
      return;
    }
    case "page": {
      const pageParam = pagination.pageParam ?? "page";
      const sizeParam = pagination.sizeParam ?? "pageSize";
      // Page numbers only mean something for one page size: fixed for the whole read, and carried in the position so
      // that a read continued from it (after a retry, on resume) asks for the same pages.
      const size = typeof from?.size === "number" ? from.size : (pagination.pageSize ?? fixedSize);
      let page = typeof from?.page === "number" ? from.page : (pagination.firstPage ?? 1);
      for (;;) {
        if (request.signal.aborted) return;
        const { rows } = await fetchPage(
          transport.url(options.path, { ...query, [pageParam]: page, [sizeParam]: size }),
        );
        if (rows.length === 0) return;
        page++;
        yield { rows, position: positionOf({ page, size }) };
      }
    }
    case "offset": {
      const offsetParam = pagination.offsetParam ?? "offset";
      const limitParam = pagination.limitParam ?? "limit";
      let offset = typeof from?.offset === "number" ? from.offset : 0;
      for (;;) {
        if (request.signal.aborted) return;
        // without a limit of its own, each page asks the engine's batch size of the moment (it grows over a run's
        // first chunks): the end is an empty page, never a short one
        const limit = pagination.limit ?? request.batchSize;
        const url = transport.url(options.path, { ...query, [offsetParam]: offset, [limitParam]: limit });
        const { rows } = await fetchPage(url);
        if (rows.length === 0) return;
        offset += rows.length;
        yield { rows, position: positionOf({ offset }) };
      }
    }
    case "cursor": {
      if (from?.cursor === null) return;
      const cursorParam = pagination.cursorParam ?? "cursor";
      const limitParam = pagination.limitParam ?? "limit";
      // One limit for the whole read, the flow's chunk size unless set: an API's next cursor may stand for a page
      // number (page × limit), which a limit grown between pages would make skip records.
      const limit = pagination.limit ?? fixedSize;
      let token = typeof from?.cursor === "string" ? from.cursor : undefined;
      for (;;) {
        if (request.signal.aborted) return;
        const url = transport.url(options.path, { ...query, [limitParam]: limit, [cursorParam]: token });
        const { rows, body } = await fetchPage(url);
        const next = valueAt(body, pagination.nextPath);
        if (next !== undefined && next !== null && typeof next !== "string" && typeof next !== "number") {
          throw responseError(
            transport.system,
            transport.describe("GET", url),
            `'${pagination.nextPath}' is not a cursor`,
          );
        }
        const nextToken = next === undefined || next === null || next === "" ? null : String(next);
        if (nextToken !== null && nextToken === token) {
          throw responseError(
            transport.system,
            transport.describe("GET", url),
            `the next cursor at '${pagination.nextPath}' is the one just used: the list would never end`,
          );
        }
        if (rows.length > 0) yield { rows, position: positionOf({ cursor: nextToken }) };
        if (nextToken === null) return;
        token = nextToken;
      }
    }
    case "link": {
      if (from?.url === null) return;
      let url: URL;
      if (typeof from?.url === "string") {
        const resumed = transport.followUrl(from.url);
        if (resumed === undefined)
          throw configProblem("position", `cannot continue from ${from.url}: not under baseUrl`);
        url = resumed;
      } else {
        url = transport.url(options.path, query);
      }
      for (;;) {
        if (request.signal.aborted) return;
        const { rows, link } = await fetchPage(url);
        const href = nextLink(link);
        let next: URL | undefined;
        if (href !== undefined) {
          next = transport.followUrl(href, url);
          if (next === undefined) {
            throw responseError(
              transport.system,
              transport.describe("GET", url),
              `the next page's link is not under baseUrl's host; it is not followed`,
            );
          }
          if (next.href === url.href) {
            throw responseError(
              transport.system,
              transport.describe("GET", url),
              "the next link is the page just read",
            );
          }
        }
        const position = next === undefined ? null : transport.bare(next).href;
        if (rows.length > 0) yield { rows, position: positionOf({ url: position }) };
        if (next === undefined) return;
        url = next;
      }
    }
  }
}

/**
 * A simulated HTTP API, for tests, the demo and benchmarks: a real node:http server on 127.0.0.1 (port 0) hosting
 * named in-memory collections of JSON records, with the failure modes integrations meet in production.
 *
 * Endpoints (per collection, `{key}` is the record's business key):
 *   GET    /{collection}            list: pagination per collection (page, offset, cursor, Link header, none),
 *                                   `?ids=a,b,c` returns those records (a bulk lookup endpoint),
 *                                   `?updatedSince=` filter on a configurable field, records in `{ "data": [...] }`
 *   GET    /{collection}/{key}      one record, or 404
 *   POST   /{collection}            create or upsert one record (201 created, 200 updated)
 *   PUT    /{collection}/{key}      create or replace one record
 *   PATCH  /{collection}/{key}      merge into an existing record, or 404
 *   POST   /{collection}/batch      `{ "items": [...] }` → `{ "results": [{ status, id?, error? }, ...] }`, one
 *                                   result per item (partial failure); more items than `maxBatch` → 413
 *
 * Behaviour per route group (`list`, `get`, `create` = POST/PUT/PATCH of one record, `batch`), set at start and
 * changed at runtime with `configure`: latency with jitter; injected 500/503 faults; "fault after store" (the write
 * IS applied, then 500 is answered, like a lost response); forced statuses for matching requests (an outage, a whole
 * batch refused); record rejections (422 for records matching a predicate: per item in a batch); a fixed-window rate
 * limit (429 with Retry-After in seconds); a concurrency cap (counted, optionally 503 beyond it); auth (bearer,
 * basic, API key in a header or the query) → 401. A test can hold a group's requests until it lets them go (`hold`).
 *
 * Idempotency: a write carrying an `Idempotency-Key` already answered gets the stored answer again, and nothing is
 * applied twice; a request with a key still in flight waits for it first. Reusing a key for another request → 422.
 *
 * Measurements: request counts per route group, statuses, in-flight peaks, 429s, client aborts, creates per business
 * key and `duplicates()`. A "create" is an applied POST of one record or batch item (the operations that, in an API
 * without upsert, would make a new record; PUT and PATCH address a key and are idempotent by nature). A duplicate is
 * a business key whose same content was created twice under different idempotency keys, or without one: a repeat
 * the client could not have meant (a changed record written again is an update, meant). Lost responses and retries
 * without idempotency keys show up there.
 *
 * Cheap per request, so benchmarks measure the client: records live in a Map, list pages are slices of a sorted index
 * rebuilt lazily after writes (binary search for cursors and `updatedSince`), only the page is serialised.
 *
 *   const api = await startSimApi({ collections: { invoices: { key: "number", records } } });
 *   // … fetch(`${api.url}/invoices?page=1&pageSize=100`) …
 *   api.configure({ batch: { faultRate: 0.05, faultAfterStoreRate: 0.05 } });
 *   await api.close();
 */

import { hash } from "node:crypto";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { seededRandom } from "./random.ts";

export type JsonRecord = Record<string, unknown>;
export type RouteGroup = "list" | "get" | "create" | "batch";
export type PaginationStyle = "page" | "offset" | "cursor" | "link" | "none";

const routeGroups: readonly RouteGroup[] = ["list", "get", "create", "batch"];

/** Credentials the server accepts; any one configured scheme suffices. */
export interface SimAuth {
  bearer?: string;
  basic?: { username: string; password: string };
  /** In a header (default `X-API-Key` when neither is given) or a query parameter. */
  apiKey?: { header?: string; query?: string; value: string };
}

/** What predicates of forced statuses see of a request. */
export interface SimRequestInfo {
  route: RouteGroup;
  method: string;
  collection: string;
  /** Business key from the path (GET/PUT/PATCH /{collection}/{key}). */
  key?: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body of a write. */
  body?: unknown;
  /** Items of a batch. */
  items?: readonly unknown[];
}

/** Answer `status` to matching requests (all when `when` is absent), before anything is applied. */
export interface ForcedStatus {
  status: number;
  when?: (request: SimRequestInfo) => boolean;
  /** Default `{ "error": "forced <status>" }`. */
  body?: unknown;
  /** E.g. `{ "Retry-After": "2" }`. */
  headers?: Record<string, string>;
}

/** Refuse records matching `when` (one record, or each item of a batch): nothing is stored for them. */
export interface RecordRejection {
  when: (record: JsonRecord) => boolean;
  /** Default 422. */
  status?: number;
  /** Default "record rejected". */
  error?: string | ((record: JsonRecord) => string);
}

export interface RouteBehavior {
  /** Added to every answer that gets past auth, rate limit and concurrency checks. */
  latencyMs?: number;
  /** Up to this much more, uniformly at random. */
  jitterMs?: number;
  /** Fraction of requests answered 500 before anything is applied. */
  faultRate?: number;
  /** Fraction of requests answered 503 before anything is applied. */
  unavailableRate?: number;
  /** Writes: fraction applied (and their answer stored for idempotent replay) and then answered 500. */
  faultAfterStoreRate?: number;
  /** Batches: fraction of items answered `{ status: 500 }` in the results, not applied. */
  itemFaultRate?: number;
  force?: ForcedStatus | readonly ForcedStatus[];
  reject?: RecordRejection | readonly RecordRejection[];
  /** Fixed window: more than `requests` in `windowMs` → 429, Retry-After = the rest of the window in seconds. */
  rateLimit?: { requests: number; windowMs: number; retryAfterSec?: number };
  /** Requests in flight in this group above `max` are counted in `stats.overConcurrency`, and 503 when `reject`. */
  concurrency?: { max: number; reject?: boolean };
  /** Required credentials; absent or null: none. */
  auth?: SimAuth | null;
}

export interface SimBehavior {
  /** Applies to every route group; a group's own settings override it field by field. */
  defaults?: RouteBehavior;
  list?: RouteBehavior;
  get?: RouteBehavior;
  create?: RouteBehavior;
  batch?: RouteBehavior;
}

export interface CollectionOptions {
  /** Business key field. Default `id`. */
  key?: string;
  /** Default `page`. */
  pagination?: PaginationStyle;
  /** Default 100. */
  defaultPageSize?: number;
  /** Larger page sizes asked for are cut to this. Default 1,000. */
  maxPageSize?: number;
  /** Field `?updatedSince=` filters on (inclusive: `>=`); a filtered list is ordered by it, then by key. Default `updatedAt`. */
  updatedField?: string;
  /** Set `updatedField` to the current time on every write. Default false. */
  stampUpdated?: boolean;
  /** Field of the list body holding the records; null: the body is the array (not with cursor pagination). Default `data`. */
  envelope?: string | null;
  /** Dot path of the next cursor in a cursor-paginated body. Default `next`. */
  nextPath?: string;
  /** Server-assigned id field (e.g. `id` = `inv_1`, `inv_2`…), kept on updates. Default: none; the key is the id. */
  idField?: string;
  idPrefix?: string;
  /** Most items in one batch. Default 100. */
  maxBatch?: number;
  /** Default `items`. */
  batchItemsField?: string;
  /** Default `results`. */
  batchResultsField?: string;
  /** Initial records. */
  records?: readonly JsonRecord[];
}

export interface SimApiOptions extends SimBehavior {
  collections: Record<string, CollectionOptions>;
  /** Seed of the fault dice: the same seed gives the same faults for the same request order. Default: Math.random. */
  seed?: number;
  /** Bodies larger than this → 413. Default 10 MiB. */
  maxBodyBytes?: number;
  /** Requests kept in `log()`. Default 200. */
  logSize?: number;
}

export interface SimStats {
  requests: Record<RouteGroup | "other", number>;
  /** Answers per HTTP status. */
  statuses: Record<number, number>;
  inFlight: number;
  maxInFlight: number;
  maxInFlightByRoute: Record<RouteGroup, number>;
  /** Requests answered 429 by the rate limit. */
  rateLimited: number;
  /** Requests seen above a group's concurrency cap. */
  overConcurrency: number;
  /** Injected 500/503 before anything was applied. */
  faults: number;
  /** Writes applied and then answered 500. */
  faultsAfterStore: number;
  /** Requests answered by a forced status. */
  forced: number;
  /** Answers replayed for a known Idempotency-Key. */
  replays: number;
  /** Requests whose client went away before the answer was sent (aborted, timed out). */
  clientAborts: number;
  /** Bugs in the simulator itself (answered 500): should stay 0. */
  internalErrors: number;
}

export interface LoggedRequest {
  route: RouteGroup | "other";
  method: string;
  /** Path and query string. */
  url: string;
  headers: IncomingHttpHeaders;
  status: number;
  /** When the request arrived (epoch ms). */
  at: number;
}

export interface SimApi {
  /** Base URL, e.g. `http://127.0.0.1:54321`. */
  readonly url: string;
  readonly port: number;
  readonly stats: Readonly<SimStats>;
  /** Merges behaviour into the current one, per route group and field (a field set to undefined is removed). */
  configure(behavior: SimBehavior): void;
  /**
   * Holds the group's requests that arrive from now on, after the first `passing` of them, before their latency,
   * until the function returned is called (or the server closes or is reset): a test's gate on "the next page" or
   * "every load" that no timing can slip past. A second hold of a group replaces the first, releasing what it held.
   * Counted and held are the requests that get as far as their latency: those answered before it (401, 429, a
   * concurrency cap's 503, a body that is not JSON, an idempotency key reused) pass by, and an idempotent replay or a
   * retry counts as a request of its own.
   */
  hold(group: RouteGroup, passing?: number): () => void;
  /** Changes a collection's options (not its records); creates the collection when it does not exist. */
  configureCollection(name: string, options: Omit<CollectionOptions, "records">): void;
  /** A collection's records, ordered by key. */
  records(collection: string): JsonRecord[];
  record(collection: string, key: string | number): JsonRecord | undefined;
  /** Stores records directly (seeding, changes made "by someone else"): not counted as creates. */
  upsert(collection: string, records: readonly JsonRecord[]): void;
  remove(collection: string, key: string | number): boolean;
  /** Applied creates per business key (see the file's header). */
  creates(collection: string): ReadonlyMap<string, number>;
  /** Business keys created more than once in a way the client could not have meant; all collections when omitted. */
  duplicates(collection?: string): number;
  /** The last requests (method, URL, headers, status), oldest first. */
  log(): readonly LoggedRequest[];
  /** Back to the state at start: seeded records, start behaviour, zero counters, no idempotency keys. */
  reset(): void;
  close(): Promise<void>;
  /** Closes the server when the block that holds it ends: `await using api = await startSimApi(…)`. */
  [Symbol.asyncDispose](): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

/** Numbers numerically, anything else as text: the order of keys, cursors and `updatedSince`. */
function compareValues(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
  const left = String(a);
  const right = String(b);
  return left < right ? -1 : left > right ? 1 : 0;
}

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asList<T>(value: T | readonly T[] | undefined): readonly T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

function missing(value: unknown): boolean {
  return value === undefined || value === null || value === "";
}

function setPath(target: JsonRecord, path: string, value: unknown): void {
  const parts = path.split(".");
  let current = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    const next = isRecord(current[part]) ? (current[part] as JsonRecord) : {};
    current[part] = next;
    current = next;
  }
  current[parts[parts.length - 1] as string] = value;
}

const encodeToken = (tuple: readonly unknown[]): string => Buffer.from(JSON.stringify(tuple)).toString("base64url");

function decodeToken(token: string): unknown[] | undefined {
  try {
    const tuple = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown;
    return Array.isArray(tuple) ? tuple : undefined;
  } catch {
    return undefined;
  }
}

/** First index in `sorted` whose element is not `before` the probe (binary search). */
function lowerBound<T>(sorted: readonly T[], before: (item: T) => boolean): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (before(sorted[mid] as T)) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** An answer to send (or to replay for an idempotency key). */
interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

class HttpFailure extends Error {
  readonly answer: Answer;
  constructor(status: number, error: string, headers?: Record<string, string>) {
    super(error);
    this.answer = { status, body: { error }, ...(headers === undefined ? {} : { headers }) };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Collections

type ResolvedCollection = Required<Omit<CollectionOptions, "records" | "idField" | "envelope">> & {
  idField: string | undefined;
  envelope: string | null;
};

function resolveCollection(options: Omit<CollectionOptions, "records">): ResolvedCollection {
  const resolved: ResolvedCollection = {
    key: options.key ?? "id",
    pagination: options.pagination ?? "page",
    defaultPageSize: options.defaultPageSize ?? 100,
    maxPageSize: options.maxPageSize ?? 1000,
    updatedField: options.updatedField ?? "updatedAt",
    stampUpdated: options.stampUpdated ?? false,
    envelope: options.envelope === undefined ? "data" : options.envelope,
    nextPath: options.nextPath ?? "next",
    idField: options.idField,
    idPrefix: options.idPrefix ?? "",
    maxBatch: options.maxBatch ?? 100,
    batchItemsField: options.batchItemsField ?? "items",
    batchResultsField: options.batchResultsField ?? "results",
  };
  if (resolved.pagination === "cursor" && resolved.envelope === null) {
    throw new Error("sim: cursor pagination needs an envelope to carry the next cursor");
  }
  return resolved;
}

/** Fingerprints of the contents created per key, with the idempotency key they came with (null: none). */
type CreateHistory = Map<string, string | null>;

class Collection {
  options: ResolvedCollection;
  readonly byKey = new Map<string, JsonRecord>();
  readonly creates = new Map<string, number>();
  readonly history = new Map<string, CreateHistory>();
  readonly duplicateKeys = new Set<string>();
  #nextId = 1;
  #sortedByKey: JsonRecord[] | undefined;
  #sortedByUpdated: JsonRecord[] | undefined;

  constructor(options: Omit<CollectionOptions, "records">) {
    this.options = resolveCollection(options);
  }

  keyOf(record: JsonRecord): string {
    return String(record[this.options.key]);
  }

  /** Stores a copy; returns it and whether the key was new. */
  upsert(record: JsonRecord, merge = false): { stored: JsonRecord; created: boolean } {
    const key = this.keyOf(record);
    const existing = this.byKey.get(key);
    const stored: JsonRecord = merge && existing !== undefined ? { ...existing, ...record } : { ...record };
    const { idField, updatedField } = this.options;
    if (idField !== undefined) {
      stored[idField] = existing?.[idField] ?? record[idField] ?? `${this.options.idPrefix}${this.#nextId++}`;
    }
    if (this.options.stampUpdated) stored[updatedField] = new Date().toISOString();
    this.byKey.set(key, stored);
    this.#sortedByKey = undefined;
    this.#sortedByUpdated = undefined;
    return { stored, created: existing === undefined };
  }

  remove(key: string): boolean {
    const removed = this.byKey.delete(key);
    if (removed) {
      this.#sortedByKey = undefined;
      this.#sortedByUpdated = undefined;
    }
    return removed;
  }

  idOf(record: JsonRecord): unknown {
    const idField = this.options.idField;
    return idField === undefined ? record[this.options.key] : record[idField];
  }

  /** Records ordered by key (rebuilt after writes, on the next list). */
  sortedByKey(): JsonRecord[] {
    if (this.#sortedByKey === undefined) {
      const key = this.options.key;
      this.#sortedByKey = [...this.byKey.values()].sort((a, b) => compareValues(a[key], b[key]));
    }
    return this.#sortedByKey;
  }

  /** Records that have the updated field, ordered by it, then by key. */
  sortedByUpdated(): JsonRecord[] {
    if (this.#sortedByUpdated === undefined) {
      const { key, updatedField } = this.options;
      this.#sortedByUpdated = [...this.byKey.values()]
        .filter((record) => !missing(record[updatedField]))
        .sort((a, b) => compareValues(a[updatedField], b[updatedField]) || compareValues(a[key], b[key]));
    }
    return this.#sortedByUpdated;
  }

  /** Counts an applied create, and a duplicate when this content was created before under another key or none. */
  noteCreate(key: string, record: JsonRecord, idempotencyKey: string | undefined): void {
    this.creates.set(key, (this.creates.get(key) ?? 0) + 1);
    const fingerprint = hash("sha1", JSON.stringify(record), "base64url");
    let history = this.history.get(key);
    if (history === undefined) {
      history = new Map();
      this.history.set(key, history);
    }
    if (history.has(fingerprint)) {
      const before = history.get(fingerprint);
      if (before === null || idempotencyKey === undefined || before !== idempotencyKey) this.duplicateKeys.add(key);
    } else {
      history.set(fingerprint, idempotencyKey ?? null);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The server

interface Route {
  group: RouteGroup;
  op: "list" | "get" | "post" | "put" | "patch" | "batch";
  collection: Collection;
  collectionName: string;
  key?: string;
}

interface StoredAnswer extends Answer {
  fingerprint: string;
}

function emptyStats(): SimStats {
  return {
    requests: { list: 0, get: 0, create: 0, batch: 0, other: 0 },
    statuses: {},
    inFlight: 0,
    maxInFlight: 0,
    maxInFlightByRoute: { list: 0, get: 0, create: 0, batch: 0 },
    rateLimited: 0,
    overConcurrency: 0,
    faults: 0,
    faultsAfterStore: 0,
    forced: 0,
    replays: 0,
    clientAborts: 0,
    internalErrors: 0,
  };
}

function mergeBehavior(into: SimBehavior, change: SimBehavior): SimBehavior {
  const out: SimBehavior = { ...into };
  for (const group of ["defaults", ...routeGroups] as const) {
    const patch = change[group];
    if (patch !== undefined) out[group] = { ...into[group], ...patch };
  }
  return out;
}

function authorized(auth: SimAuth, headers: IncomingHttpHeaders, query: URLSearchParams): boolean {
  const schemes = [auth.bearer, auth.basic, auth.apiKey].filter((scheme) => scheme !== undefined);
  if (schemes.length === 0) return true;
  const header = headers.authorization;
  if (auth.bearer !== undefined && header === `Bearer ${auth.bearer}`) return true;
  if (auth.basic !== undefined) {
    const expected = Buffer.from(`${auth.basic.username}:${auth.basic.password}`).toString("base64");
    if (header === `Basic ${expected}`) return true;
  }
  if (auth.apiKey !== undefined) {
    const { query: param, value } = auth.apiKey;
    const name = auth.apiKey.header ?? (param === undefined ? "x-api-key" : undefined);
    if (name !== undefined && headers[name.toLowerCase()] === value) return true;
    if (param !== undefined && query.get(param) === value) return true;
  }
  return false;
}

/** Requests of a group held until `gate` resolves, after `passing` more let through. */
interface Hold {
  passing: number;
  gate: PromiseWithResolvers<void>;
}

class Simulator implements SimApi {
  readonly #server: Server;
  readonly #options: SimApiOptions;
  readonly #closing = new AbortController();
  readonly #random: () => number;
  #behavior: SimBehavior = {};
  #collections = new Map<string, Collection>();
  #stats = emptyStats();
  #groupInFlight: Record<RouteGroup, number> = { list: 0, get: 0, create: 0, batch: 0 };
  #windows: Partial<Record<RouteGroup, { start: number; count: number }>> = {};
  #holds: Partial<Record<RouteGroup, Hold>> = {};
  #answers = new Map<string, StoredAnswer>();
  #pending = new Map<string, Promise<void>>();
  #log: LoggedRequest[] = [];
  url = "";
  port = 0;

  constructor(options: SimApiOptions) {
    this.#options = options;
    this.#random = options.seed === undefined ? Math.random : seededRandom(options.seed);
    this.#server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    this.#server.keepAliveTimeout = 30_000;
    this.reset();
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(0, "127.0.0.1", () => resolve());
    });
    this.port = (this.#server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  get stats(): Readonly<SimStats> {
    return this.#stats;
  }

  configure(behavior: SimBehavior): void {
    this.#behavior = mergeBehavior(this.#behavior, behavior);
  }

  hold(group: RouteGroup, passing = 0): () => void {
    this.#holds[group]?.gate.resolve();
    const gate = Promise.withResolvers<void>();
    // the requests held await it; the hold itself must not count as a rejection nobody handled when the server closes
    gate.promise.catch(() => {});
    const hold: Hold = { passing, gate };
    this.#holds[group] = hold;
    return () => {
      if (this.#holds[group] === hold) delete this.#holds[group];
      gate.resolve();
    };
  }

  configureCollection(name: string, options: Omit<CollectionOptions, "records">): void {
    const existing = this.#collections.get(name);
    if (existing === undefined) this.#collections.set(name, new Collection(options));
    else existing.options = resolveCollection({ ...existing.options, ...options });
  }

  records(collection: string): JsonRecord[] {
    return [...this.#collection(collection).sortedByKey()];
  }

  record(collection: string, key: string | number): JsonRecord | undefined {
    return this.#collection(collection).byKey.get(String(key));
  }

  upsert(collection: string, records: readonly JsonRecord[]): void {
    const target = this.#collection(collection);
    for (const record of records) target.upsert(record);
  }

  remove(collection: string, key: string | number): boolean {
    return this.#collection(collection).remove(String(key));
  }

  creates(collection: string): ReadonlyMap<string, number> {
    return this.#collection(collection).creates;
  }

  duplicates(collection?: string): number {
    if (collection !== undefined) return this.#collection(collection).duplicateKeys.size;
    let total = 0;
    for (const each of this.#collections.values()) total += each.duplicateKeys.size;
    return total;
  }

  log(): readonly LoggedRequest[] {
    return [...this.#log];
  }

  reset(): void {
    const { collections, seed: _seed, maxBodyBytes: _max, logSize: _log, ...behavior } = this.#options;
    this.#behavior = mergeBehavior({}, behavior);
    this.#collections = new Map();
    for (const [name, { records, ...options }] of Object.entries(collections)) {
      const collection = new Collection(options);
      for (const record of records ?? []) collection.upsert(record);
      this.#collections.set(name, collection);
    }
    const inFlight = this.#stats.inFlight;
    this.#stats = emptyStats();
    this.#stats.inFlight = inFlight;
    this.#windows = {};
    for (const hold of Object.values(this.#holds)) hold.gate.resolve();
    this.#holds = {};
    this.#answers = new Map();
    this.#log = [];
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    this.#closing.abort();
    for (const hold of Object.values(this.#holds)) hold.gate.reject(this.#closing.signal.reason);
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #collection(name: string): Collection {
    const collection = this.#collections.get(name);
    if (collection === undefined) throw new Error(`sim: no collection '${name}'`);
    return collection;
  }

  #behaviorOf(group: RouteGroup): RouteBehavior {
    return { ...this.#behavior.defaults, ...this.#behavior[group] };
  }

  #route(method: string, pathname: string): Route | undefined {
    const parts = pathname.split("/").filter((part) => part !== "");
    if (parts.length === 0 || parts.length > 2) return undefined;
    const collectionName = decodeURIComponent(parts[0] as string);
    const collection = this.#collections.get(collectionName);
    if (collection === undefined) return undefined;
    const base = { collection, collectionName };
    if (parts.length === 1) {
      if (method === "GET") return { ...base, group: "list", op: "list" };
      if (method === "POST") return { ...base, group: "create", op: "post" };
      return undefined;
    }
    const key = decodeURIComponent(parts[1] as string);
    if (key === "batch" && method === "POST") return { ...base, group: "batch", op: "batch" };
    if (method === "GET") return { ...base, group: "get", op: "get", key };
    if (method === "PUT") return { ...base, group: "create", op: "put", key };
    if (method === "PATCH") return { ...base, group: "create", op: "patch", key };
    return undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const stats = this.#stats;
    const arrivedAt = Date.now();
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", this.url);
    const route = this.#route(method, url.pathname);
    const group = route?.group;
    stats.requests[group ?? "other"]++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    if (group !== undefined) {
      this.#groupInFlight[group]++;
      stats.maxInFlightByRoute[group] = Math.max(stats.maxInFlightByRoute[group], this.#groupInFlight[group]);
    }
    res.on("close", () => {
      if (!res.writableFinished) this.#stats.clientAborts++;
    });
    let answer: Answer;
    try {
      answer =
        route === undefined
          ? { status: 404, body: { error: `no route ${method} ${url.pathname}` } }
          : await this.#serve(req, url, route);
    } catch (error) {
      if (error instanceof HttpFailure) {
        answer = error.answer;
      } else if (this.#closing.signal.aborted) {
        answer = { status: 503, body: { error: "shutting down" } };
      } else {
        stats.internalErrors++;
        answer = { status: 500, body: { error: `sim bug: ${(error as Error).message}` } };
      }
    } finally {
      stats.inFlight--;
      if (group !== undefined) this.#groupInFlight[group]--;
    }
    stats.statuses[answer.status] = (stats.statuses[answer.status] ?? 0) + 1;
    this.#remember(group ?? "other", method, req, answer.status, arrivedAt);
    if (res.destroyed) return;
    const text =
      answer.body === undefined ? "" : typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      ...(text === "" ? {} : { "content-type": "application/json" }),
      "content-length": Buffer.byteLength(text),
      ...answer.headers,
    });
    res.end(text);
  }

  #remember(route: RouteGroup | "other", method: string, req: IncomingMessage, status: number, at: number): void {
    this.#log.push({ route, method, url: req.url ?? "/", headers: req.headers, status, at });
    const size = this.#options.logSize ?? 200;
    if (this.#log.length > size) this.#log.splice(0, this.#log.length - size);
  }

  async #serve(req: IncomingMessage, url: URL, route: Route): Promise<Answer> {
    const behavior = this.#behaviorOf(route.group);
    const stats = this.#stats;
    if (behavior.auth && !authorized(behavior.auth, req.headers, url.searchParams)) {
      await this.#drain(req);
      return { status: 401, body: { error: "unauthorized" }, headers: { "www-authenticate": "Bearer" } };
    }
    if (behavior.rateLimit !== undefined) {
      const { requests, windowMs, retryAfterSec } = behavior.rateLimit;
      const now = Date.now();
      let window = this.#windows[route.group];
      if (window === undefined || now - window.start >= windowMs) {
        window = { start: now, count: 0 };
        this.#windows[route.group] = window;
      }
      window.count++;
      if (window.count > requests) {
        stats.rateLimited++;
        await this.#drain(req);
        const seconds = retryAfterSec ?? Math.max(1, Math.ceil((window.start + windowMs - now) / 1000));
        return { status: 429, body: { error: "rate limited" }, headers: { "retry-after": String(seconds) } };
      }
    }
    if (behavior.concurrency !== undefined && this.#groupInFlight[route.group] > behavior.concurrency.max) {
      stats.overConcurrency++;
      if (behavior.concurrency.reject === true) {
        await this.#drain(req);
        return { status: 503, body: { error: "too many requests in flight" } };
      }
    }

    const writes = route.op !== "list" && route.op !== "get";
    const raw = writes ? await this.#readBody(req) : "";
    let body: unknown;
    if (writes) {
      try {
        body = JSON.parse(raw);
      } catch {
        return { status: 400, body: { error: "body is not JSON" } };
      }
    }
    const idempotencyKey = writes ? req.headers["idempotency-key"] : undefined;
    if (typeof idempotencyKey !== "string" || idempotencyKey === "") {
      return this.#process(req, url, route, behavior, body, undefined);
    }
    // Idempotent write: wait for a request with the same key still in flight, then replay or go ahead.
    const fingerprint = hash("sha1", `${route.op} ${url.pathname}\n${raw}`, "base64url");
    for (;;) {
      const pending = this.#pending.get(idempotencyKey);
      if (pending === undefined) break;
      await pending;
    }
    const stored = this.#answers.get(idempotencyKey);
    if (stored !== undefined) {
      if (stored.fingerprint !== fingerprint) {
        return { status: 422, body: { error: "Idempotency-Key reused with a different request" } };
      }
      await this.#delay(route.group, behavior);
      stats.replays++;
      return {
        status: stored.status,
        body: stored.body,
        headers: { ...stored.headers, "idempotent-replayed": "true" },
      };
    }
    const done = Promise.withResolvers<void>();
    this.#pending.set(idempotencyKey, done.promise);
    try {
      return await this.#process(req, url, route, behavior, body, { key: idempotencyKey, fingerprint });
    } finally {
      this.#pending.delete(idempotencyKey);
      done.resolve();
    }
  }

  /** Latency, forced statuses, faults, then the operation; stores a write's answer under its idempotency key. */
  async #process(
    req: IncomingMessage,
    url: URL,
    route: Route,
    behavior: RouteBehavior,
    body: unknown,
    idempotency: { key: string; fingerprint: string } | undefined,
  ): Promise<Answer> {
    const stats = this.#stats;
    await this.#delay(route.group, behavior);
    const forces = asList(behavior.force);
    if (forces.length > 0) {
      const info: SimRequestInfo = {
        route: route.group,
        method: req.method ?? "GET",
        collection: route.collectionName,
        query: url.searchParams,
        headers: req.headers,
        ...(route.key === undefined ? {} : { key: route.key }),
        ...(body === undefined ? {} : { body }),
      };
      if (route.op === "batch" && isRecord(body)) {
        const items = body[route.collection.options.batchItemsField];
        if (Array.isArray(items)) info.items = items;
      }
      const force = forces.find((rule) => rule.when === undefined || rule.when(info));
      if (force !== undefined) {
        stats.forced++;
        return {
          status: force.status,
          body: force.body ?? { error: `forced ${force.status}` },
          ...(force.headers === undefined ? {} : { headers: force.headers }),
        };
      }
    }
    if (behavior.faultRate !== undefined && this.#random() < behavior.faultRate) {
      stats.faults++;
      return { status: 500, body: { error: "injected fault" } };
    }
    if (behavior.unavailableRate !== undefined && this.#random() < behavior.unavailableRate) {
      stats.faults++;
      return { status: 503, body: { error: "injected unavailability" } };
    }
    const answer = this.#apply(url, route, behavior, body, idempotency?.key);
    const applied = answer.status < 300;
    if (idempotency !== undefined && applied) {
      this.#answers.set(idempotency.key, { ...answer, fingerprint: idempotency.fingerprint });
    }
    const writes = route.op !== "list" && route.op !== "get";
    if (writes && applied && behavior.faultAfterStoreRate !== undefined) {
      if (this.#random() < behavior.faultAfterStoreRate) {
        stats.faultsAfterStore++;
        return { status: 500, body: { error: "injected fault after store" } };
      }
    }
    return answer;
  }

  #apply(url: URL, route: Route, behavior: RouteBehavior, body: unknown, idempotencyKey: string | undefined): Answer {
    const collection = route.collection;
    switch (route.op) {
      case "list":
        return this.#list(url, route.collectionName, collection);
      case "get": {
        const record = collection.byKey.get(route.key as string);
        return record === undefined ? { status: 404, body: { error: "not found" } } : { status: 200, body: record };
      }
      case "post":
      case "put":
      case "patch": {
        if (!isRecord(body)) return { status: 400, body: { error: "body must be a JSON object" } };
        const keyField = collection.options.key;
        const record = route.key === undefined ? body : { ...body, [keyField]: body[keyField] ?? route.key };
        if (route.key !== undefined && String(record[keyField]) !== route.key) {
          return { status: 422, body: { error: `${keyField} in the body differs from the key in the path` } };
        }
        if (route.op === "patch" && !collection.byKey.has(route.key as string)) {
          return { status: 404, body: { error: "not found" } };
        }
        const result = this.#write(collection, record, behavior, route.op, idempotencyKey);
        if (result.error !== undefined) return { status: result.status, body: { error: result.error } };
        return { status: result.status, body: result.stored };
      }
      case "batch": {
        const { batchItemsField, batchResultsField, maxBatch } = collection.options;
        const items = isRecord(body) ? body[batchItemsField] : undefined;
        if (!Array.isArray(items))
          return { status: 400, body: { error: `body must be { "${batchItemsField}": [...] }` } };
        if (items.length > maxBatch) {
          return { status: 413, body: { error: `batch of ${items.length} items exceeds the limit of ${maxBatch}` } };
        }
        const results = items.map((item: unknown) => {
          if (!isRecord(item)) return { status: 400, error: "item must be a JSON object" };
          if (behavior.itemFaultRate !== undefined && this.#random() < behavior.itemFaultRate) {
            return { status: 500, error: "internal error" };
          }
          const result = this.#write(collection, item, behavior, "post", idempotencyKey);
          if (result.error !== undefined) return { status: result.status, error: result.error };
          return { status: result.status, id: collection.idOf(result.stored as JsonRecord) };
        });
        return { status: 200, body: { [batchResultsField]: results } };
      }
    }
  }

  /** One record: key present, not rejected, stored; counted as a create when POSTed. */
  #write(
    collection: Collection,
    record: JsonRecord,
    behavior: RouteBehavior,
    op: "post" | "put" | "patch",
    idempotencyKey: string | undefined,
  ): { status: number; error?: string; stored?: JsonRecord } {
    const keyField = collection.options.key;
    if (missing(record[keyField])) return { status: 422, error: `missing key field '${keyField}'` };
    for (const rule of asList(behavior.reject)) {
      if (rule.when(record)) {
        const error = typeof rule.error === "function" ? rule.error(record) : (rule.error ?? "record rejected");
        return { status: rule.status ?? 422, error };
      }
    }
    const key = collection.keyOf(record);
    const { stored, created } = collection.upsert(record, op === "patch");
    if (op === "post") collection.noteCreate(key, record, idempotencyKey);
    else if (created) collection.creates.set(key, (collection.creates.get(key) ?? 0) + 1);
    return { status: created ? 201 : 200, stored };
  }

  #list(url: URL, name: string, collection: Collection): Answer {
    const options = collection.options;
    const query = url.searchParams;
    // `?ids=a,b,c`: those records (the ones that exist), in that order, unpaginated: a bulk lookup endpoint
    const ids = query.get("ids");
    if (ids !== null) {
      const found = ids
        .split(",")
        .filter((id) => id !== "")
        .map((id) => collection.byKey.get(id))
        .filter((record): record is JsonRecord => record !== undefined);
      return { status: 200, body: options.envelope === null ? found : { [options.envelope]: found } };
    }
    const since = query.get("updatedSince");
    let rows: JsonRecord[];
    let start = 0;
    // Each row's order tuple: [key] unfiltered, [updated, key] when filtered by updatedSince.
    let tupleOf = (record: JsonRecord): unknown[] => [record[options.key]];
    if (since === null || since === "") {
      rows = collection.sortedByKey();
    } else {
      rows = collection.sortedByUpdated();
      const sample = rows[0]?.[options.updatedField];
      const bound = typeof sample === "number" && Number.isFinite(Number(since)) ? Number(since) : since;
      start = lowerBound(rows, (record) => compareValues(record[options.updatedField], bound) < 0);
      tupleOf = (record) => [record[options.updatedField], record[options.key]];
    }
    const sizeParam = options.pagination === "page" ? "pageSize" : "limit";
    const size = this.#intParam(query, sizeParam, options.defaultPageSize, 1);
    const pageSize = Math.min(size, options.maxPageSize);
    const headers: Record<string, string> = {};
    const wrap = (data: JsonRecord[], extra: JsonRecord = {}): unknown =>
      options.envelope === null ? data : { [options.envelope]: data, ...extra };
    switch (options.pagination) {
      case "none":
        return { status: 200, body: wrap(rows.slice(start)) };
      case "page": {
        const page = this.#intParam(query, "page", 1, 1);
        const from = start + (page - 1) * pageSize;
        return {
          status: 200,
          body: wrap(rows.slice(from, from + pageSize), { page, pageSize, total: rows.length - start }),
        };
      }
      case "offset": {
        const offset = this.#intParam(query, "offset", 0, 0);
        const from = start + offset;
        return {
          status: 200,
          body: wrap(rows.slice(from, from + pageSize), { offset, limit: pageSize, total: rows.length - start }),
        };
      }
      case "cursor":
      case "link": {
        const token = query.get("cursor");
        let from = start;
        if (token !== null && token !== "") {
          const after = decodeToken(token);
          if (after === undefined) throw new HttpFailure(400, "invalid cursor");
          from = Math.max(
            start,
            lowerBound(rows, (record) => {
              const tuple = tupleOf(record);
              for (let i = 0; i < after.length; i++) {
                const order = compareValues(tuple[i], after[i]);
                if (order !== 0) return order < 0;
              }
              return true; // equal: at or before the cursor
            }),
          );
        }
        const data = rows.slice(from, from + pageSize);
        const last = data[data.length - 1];
        const next = last !== undefined && from + pageSize < rows.length ? encodeToken(tupleOf(last)) : null;
        if (options.pagination === "link") {
          if (next !== null) {
            const link = new URL(`/${encodeURIComponent(name)}`, this.url);
            link.searchParams.set("cursor", next);
            link.searchParams.set("limit", String(pageSize));
            if (since !== null && since !== "") link.searchParams.set("updatedSince", since);
            headers.link = `<${link.href}>; rel="next"`;
          }
          return { status: 200, body: wrap(data), headers };
        }
        const body = wrap(data) as JsonRecord;
        setPath(body, options.nextPath, next);
        return { status: 200, body };
      }
    }
  }

  #intParam(query: URLSearchParams, name: string, fallback: number, minimum: number): number {
    const text = query.get(name);
    if (text === null || text === "") return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < minimum) {
      throw new HttpFailure(400, `${name} must be an integer >= ${minimum}`);
    }
    return value;
  }

  /** The group's hold (see `hold`), then its latency. */
  async #delay(group: RouteGroup, behavior: RouteBehavior): Promise<void> {
    const hold = this.#holds[group];
    if (hold !== undefined) {
      if (hold.passing > 0) hold.passing--;
      else await hold.gate.promise;
    }
    const ms = (behavior.latencyMs ?? 0) + (behavior.jitterMs === undefined ? 0 : this.#random() * behavior.jitterMs);
    if (ms > 0) await sleep(ms, undefined, { signal: this.#closing.signal });
  }

  async #readBody(req: IncomingMessage): Promise<string> {
    const limit = this.#options.maxBodyBytes ?? 10 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size <= limit) chunks.push(chunk as Buffer);
    }
    if (size > limit) throw new HttpFailure(413, `body larger than ${limit} bytes`);
    return Buffer.concat(chunks).toString("utf8");
  }

  /** Reads and drops what is left of a request body, so the connection stays usable. */
  async #drain(req: IncomingMessage): Promise<void> {
    if (req.readableEnded) return;
    for await (const _ of req) {
      // discard
    }
  }
}

/** Starts the simulated API on 127.0.0.1 and a free port. */
export async function startSimApi(options: SimApiOptions): Promise<SimApi> {
  const simulator = new Simulator(options);
  await simulator.listen();
  return simulator;
}

import { Pool } from "undici";
import { type HttpOperation, requestFailure, responseError, statusError } from "./errors.ts";
import type { HttpSystemOptions } from "./options.ts";

export type QueryValue = string | number | boolean | undefined;
export type QueryValues = Readonly<Record<string, QueryValue>>;

export interface HttpRequestOptions {
  /** Query parameters added to the path's own. */
  query?: QueryValues;
  /** Headers added to the system's (auth and `headers` settings). */
  headers?: Readonly<Record<string, string>>;
  /** Aborts the request: pass the signal a lookup gets, so the system's timeout applies. */
  signal?: AbortSignal;
}

/**
 * What lookups and users' code call an HTTP system with: paths under the system's baseUrl, its auth and headers,
 * JSON in and out, and the connector's error classification (a 404 is a permanent FrancaError with status 404;
 * 429 and 5xx are transient, so the system's retry policy applies).
 */
export interface HttpClient {
  get<T = unknown>(path: string, options?: HttpRequestOptions): Promise<T>;
  post<T = unknown>(path: string, body: unknown, options?: HttpRequestOptions): Promise<T>;
  request<T = unknown>(method: string, path: string, options?: HttpRequestOptions & { body?: unknown }): Promise<T>;
}

/** The headers of an answer, as the connector reads them. */
export interface AnswerHeaders {
  get(name: string): string | null;
}

/** A response that was read to the end. */
export interface HttpAnswer {
  status: number;
  headers: AnswerHeaders;
  text: string;
}

function answerHeaders(raw: Record<string, string | string[] | undefined>): AnswerHeaders {
  return {
    get(name) {
      const value = raw[name.toLowerCase()];
      return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
    },
  };
}

export interface SendOptions {
  operation: HttpOperation;
  signal: AbortSignal;
  /** JSON text. */
  body?: string;
  headers?: Readonly<Record<string, string>>;
  /** Return non-2xx answers instead of throwing their classified error (health). */
  anyStatus?: boolean;
}

/** Header names whose values are treated as secrets (redacted from every error) besides the auth settings. */
const secretHeader = /authorization|token|secret|key|cookie|password|session/i;

const neverAborted = new AbortController().signal;

/**
 * The HTTP side of one system: URLs under baseUrl, auth, headers, fetch, and errors classified and stripped of
 * secrets. Every request of the connector (reads, writes, the client, health) goes through `send`.
 */
export class HttpTransport {
  readonly system: string;
  readonly #origin: string;
  /** Path prefix of baseUrl, without a trailing slash. */
  readonly #basePath: string;
  readonly #headers: Record<string, string>;
  readonly #apiKeyQuery: { name: string; value: string } | undefined;
  readonly #secrets: string[];
  readonly #pool: Pool;

  /**
   * `connections`: sockets kept to the system (its concurrency limit, when it has one). Requests go through undici's
   * `Pool.request` rather than `fetch`: measured here, the WHATWG layers of fetch (Request, Headers, Response
   * objects, abort plumbing) cost several times the CPU of the request itself at thousands of lookups a second.
   */
  constructor(system: string, options: HttpSystemOptions, connections?: number) {
    this.system = system;
    const base = new URL(options.baseUrl);
    this.#origin = base.origin;
    this.#pool = new Pool(base.origin, { connections: connections ?? null });
    this.#basePath = base.pathname.replace(/\/+$/, "");
    const headers: Record<string, string> = { accept: "application/json" };
    const secrets: string[] = [];
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      headers[name.toLowerCase()] = value;
      if (secretHeader.test(name)) secrets.push(value);
    }
    const auth = options.auth;
    if (auth?.type === "bearer") {
      headers.authorization = `Bearer ${auth.token}`;
      secrets.push(auth.token);
    } else if (auth?.type === "basic") {
      const encoded = Buffer.from(`${auth.username}:${auth.password}`).toString("base64");
      headers.authorization = `Basic ${encoded}`;
      secrets.push(auth.password, encoded);
    } else if (auth?.type === "apiKey") {
      if (auth.query !== undefined) this.#apiKeyQuery = { name: auth.query, value: auth.value };
      else headers[(auth.header ?? "X-API-Key").toLowerCase()] = auth.value;
      secrets.push(auth.value);
    }
    this.#headers = headers;
    // Longest first, so that a secret containing another is replaced whole; URL-encoded forms too.
    this.#secrets = [...new Set(secrets.flatMap((secret) => [secret, encodeURIComponent(secret)]))]
      .filter((secret) => secret.length > 0)
      .sort((a, b) => b.length - a.length);
  }

  /** Removes every secret of the system from a text. */
  redact(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.replaceAll(secret, "***");
    return out;
  }

  /** The URL of a path under baseUrl, with query parameters (undefined values left out) and the API key, if any. */
  url(path: string, query?: QueryValues): URL {
    const url = new URL(`${this.#origin}${this.#basePath}${path.startsWith("/") ? path : `/${path}`}`);
    if (query !== undefined) {
      for (const [name, value] of Object.entries(query)) {
        if (value !== undefined) url.searchParams.set(name, String(value));
      }
    }
    return this.#withApiKey(url);
  }

  /** The base URL itself (health). */
  baseUrl(): URL {
    return this.#withApiKey(new URL(`${this.#origin}${this.#basePath}/`));
  }

  /**
   * A URL the server gave (a Link header), checked to be on the system's origin (the credentials go nowhere else)
   * and carrying the API key.
   */
  followUrl(href: string, relativeTo?: URL): URL | undefined {
    let url: URL;
    try {
      url = new URL(href, relativeTo ?? `${this.#origin}${this.#basePath}/`);
    } catch {
      return undefined;
    }
    if (url.origin !== this.#origin) return undefined;
    return this.#withApiKey(url);
  }

  /** A URL as stored in a position or shown in a message: without the API key. */
  bare(url: URL): URL {
    const out = new URL(url.href);
    if (this.#apiKeyQuery !== undefined) out.searchParams.delete(this.#apiKeyQuery.name);
    return out;
  }

  /** `GET /v2/invoices?page=3`, secrets removed: what an error message says about a request. */
  describe(method: string, url: URL): string {
    const bare = this.bare(url);
    return this.redact(`${method} ${bare.pathname}${bare.search}`);
  }

  #withApiKey(url: URL): URL {
    if (this.#apiKeyQuery !== undefined) url.searchParams.set(this.#apiKeyQuery.name, this.#apiKeyQuery.value);
    return url;
  }

  /** Sends a request and reads its answer; a failure or a non-2xx answer throws a classified FrancaError. */
  async send(method: string, url: URL, options: SendOptions): Promise<HttpAnswer> {
    const headers: Record<string, string> = { ...this.#headers };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
    let answer: HttpAnswer;
    try {
      // undici's request never follows redirects: one to another host would take the credentials with it, so a 3xx
      // is reported, not followed
      const response = await this.#pool.request({
        origin: this.#origin,
        path: `${url.pathname}${url.search}`,
        method: method as "GET",
        headers,
        ...(options.body === undefined ? {} : { body: options.body }),
        signal: options.signal,
      });
      answer = {
        status: response.statusCode,
        headers: answerHeaders(response.headers),
        text: await response.body.text(),
      };
    } catch (error) {
      throw requestFailure(this.system, this.describe(method, url), error, options.signal, (text) => this.redact(text));
    }
    if ((answer.status < 200 || answer.status >= 300) && options.anyStatus !== true) {
      throw statusError({
        system: this.system,
        operation: options.operation,
        request: this.describe(method, url),
        status: answer.status,
        retryAfter: answer.headers.get("retry-after"),
        body: this.redact(answer.text),
      });
    }
    return answer;
  }

  /**
   * The JSON of an answer; undefined when it has no body. Anything else is a permanent error naming the request,
   * described only then (a description builds a URL: a cost every successful lookup would otherwise pay).
   */
  json(answer: HttpAnswer, request: () => string): unknown {
    if (answer.text.trim() === "") return undefined;
    try {
      return JSON.parse(answer.text) as unknown;
    } catch {
      throw responseError(
        this.system,
        request(),
        `the response is not JSON (${answer.headers.get("content-type") ?? "no content type"})`,
      );
    }
  }

  close(): Promise<void> {
    return this.#pool.close();
  }

  client(): HttpClient {
    const request = async <T>(
      method: string,
      path: string,
      options: HttpRequestOptions & { body?: unknown } = {},
    ): Promise<T> => {
      const url = this.url(path, options.query);
      const answer = await this.send(method.toUpperCase(), url, {
        operation: "client",
        signal: options.signal ?? neverAborted,
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        ...(options.headers === undefined ? {} : { headers: options.headers }),
      });
      return this.json(answer, () => this.describe(method.toUpperCase(), url)) as T;
    };
    return {
      get: (path, options) => request("GET", path, options),
      post: (path, body, options) => request("POST", path, { ...options, body }),
      request: (method, path, options) => request(method, path, options),
    };
  }
}

/** The value at a dot path (`data`, `meta.next`, `items.0.id`); "" is the value itself. */
export function valueAt(value: unknown, path: string): unknown {
  if (path === "") return value;
  let current = value;
  for (const part of path.split(".")) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

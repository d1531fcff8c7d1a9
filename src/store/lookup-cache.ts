import { parseJsonExact } from "../core/canonical-json.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import { ownString } from "../core/own-string.ts";
import { tagRawJson, untagRawJson } from "../core/raw-json-tags.ts";
import { redactSecrets } from "../core/redact.ts";
import type { Store } from "./types.ts";

/**
 * Where lookup values outlive a run (lookups with `ttlMs`): the store's own table by default, Redis when the hub
 * names one (`cache: "redis://…"`), so that every process of a team shares them.
 */
export interface LookupCacheStore {
  readonly kind: "store" | "redis";
  get(lookup: string, keys: readonly string[]): Promise<Map<string, unknown>>;
  set(lookup: string, entries: readonly { key: string; value: unknown }[], ttlMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * The store's lookup cache. Values go tagged (core/raw-json-tags.ts): a number a double cannot hold (a JSON column's,
 * `JSON.rawJSON`) would not cross to the SQLite store's thread, and would come back from its JSON a plain number.
 */
export function storeLookupCache(store: Store): LookupCacheStore {
  return {
    kind: "store",
    get: async (lookup, keys) => {
      const found = await store.cacheGet(lookup, keys, Date.now());
      for (const [key, value] of found) found.set(key, untagRawJson(value));
      return found;
    },
    set: (lookup, entries, ttlMs) => {
      const now = Date.now();
      const tagged = entries.map((entry) => ({ key: entry.key, value: tagRawJson(entry.value) }));
      return store.cacheSet(lookup, tagged, now + ttlMs, now);
    },
    close: async () => {},
  };
}

/** Values under `franca:lookup:<lookup>:<key>`, JSON, expiring by Redis's own TTL (PX). */
export async function redisLookupCache(url: string): Promise<LookupCacheStore> {
  // Loaded only by hubs that name a Redis cache: the client costs every other process ~12 MB of memory.
  const { createClient } = await import("redis");
  const client = createClient({
    url,
    socket: { connectTimeout: 5000, reconnectStrategy: (retries) => Math.min(retries * 100, 2000) },
  });
  let lastError: unknown;
  client.on("error", (error: unknown) => {
    lastError = error;
  });
  try {
    await client.connect();
  } catch (error) {
    throw new FrancaError(
      ErrorCode.ConfigUnreachable,
      `cache: cannot reach Redis at ${redactSecrets(url)}: ${(error as Error).message}`,
      {
        setting: "cache",
        cause: error ?? lastError,
      },
    );
  }
  const name = (lookup: string, key: string) => `franca:lookup:${lookup}:${key}`;
  return {
    kind: "redis",
    async get(lookup, keys) {
      const found = new Map<string, unknown>();
      if (keys.length === 0) return found;
      const values = await client.mGet(keys.map((key) => name(lookup, key)));
      values.forEach((value, index) => {
        // parseJsonExact: a number a double cannot hold, stored as its digits, comes back as they were
        if (typeof value === "string") found.set(keys[index] as string, parseJsonExact(value));
      });
      return found;
    },
    async set(lookup, entries, ttlMs) {
      if (entries.length === 0) return;
      const batch = client.multi();
      for (const entry of entries) {
        batch.set(name(lookup, entry.key), JSON.stringify(entry.value ?? null), {
          expiration: { type: "PX", value: Math.max(1, Math.round(ttlMs)) },
        });
      }
      await batch.exec();
    },
    async close() {
      await client.close();
    },
  };
}

/** This process's memory: lookups marked `shared` keep values here across the runs of a long-lived process. */
export class MemoryLookupCache {
  readonly #values = new Map<string, { value: unknown; expiresAt: number }>();
  readonly #max: number;

  constructor(max = 100_000) {
    this.#max = max;
  }

  get(lookup: string, keys: readonly string[]): Map<string, unknown> {
    const now = Date.now();
    const found = new Map<string, unknown>();
    for (const key of keys) {
      const name = `${lookup}\u0000${key}`;
      const entry = this.#values.get(name);
      if (entry === undefined) continue;
      if (entry.expiresAt <= now) this.#values.delete(name);
      else found.set(key, entry.value);
    }
    return found;
  }

  set(lookup: string, entries: readonly { key: string; value: unknown }[], ttlMs: number): void {
    const expiresAt = Date.now() + ttlMs;
    for (const entry of entries) {
      // its own copy of the key: one cut from a chunk's text would keep that text alive (ownString)
      const name = ownString(`${lookup}\u0000${entry.key}`);
      this.#values.delete(name);
      this.#values.set(name, { value: entry.value, expiresAt });
      if (this.#values.size > this.#max) this.#values.delete(this.#values.keys().next().value as string);
    }
  }
}

import { keyBefore as before } from "../core/key-order.ts";

/**
 * Per-key ordering without a global lock: a chunk registers its keys in chunk order and waits only for the earlier
 * chunks still in flight that share a key with it. Chunks with disjoint keys load in parallel.
 *
 * Most runs read in key order (a table's keyset, an API's pages by id), so the chunks in flight hold keys in ranges
 * that do not meet. A chunk whose range (its least and greatest key, in core/key-order.ts's order) meets the range of
 * no chunk in flight shares no key with them, and is registered as its range alone. Only where ranges meet are keys
 * put in the per-key map: the chunk's own, and those of the chunks in flight whose range it meets (once each).
 * Registering and releasing 1,000,000 keys in chunks of 1,000 through the map took ~0.46 s of a slow machine's CPU,
 * about 1.5 % of a bench:bulk run's engine process, against ~0.03 s by ranges (docs/benchmarks.md, stop 25).
 */
interface Holder {
  /** Registration order: a key's latest holder is the one it waits for. */
  seq: number;
  keys: readonly string[];
  /** The least and greatest key; undefined when the chunk has none. */
  range: { low: string; high: string } | undefined;
  done: Promise<void>;
  /** Its keys are in the per-key map. */
  mapped: boolean;
}

function rangeOf(keys: readonly string[]): Holder["range"] {
  let low = keys[0];
  if (low === undefined) return undefined;
  let high = low;
  for (const key of keys) {
    if (before(key, low)) low = key;
    else if (before(high, key)) high = key;
  }
  return { low, high };
}

function meet(a: Holder["range"], b: Holder["range"]): boolean {
  return a !== undefined && b !== undefined && !before(a.high, b.low) && !before(b.high, a.low);
}

export class KeyLocks {
  /** Per key, its latest holder among the mapped ones. */
  readonly #tails = new Map<string, Holder>();
  readonly #holders = new Set<Holder>();
  #next = 0;

  /** How many keys are in the per-key map (none while the chunks in flight have ranges apart): for tests. */
  get mappedKeys(): number {
    return this.#tails.size;
  }

  /** Registers `keys` now (call in chunk order); `ready` resolves when earlier holders of these keys are done. */
  register(keys: readonly string[]): { ready: Promise<void>; release: () => void } {
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const mine: Holder = { seq: this.#next++, keys, range: rangeOf(keys), done, mapped: false };
    let ready = Promise.resolve();
    let met = false;
    for (const holder of this.#holders) {
      if (!meet(holder.range, mine.range)) continue;
      met = true;
      this.#map(holder);
    }
    if (met) {
      const waits = new Set<Promise<void>>();
      for (const key of keys) {
        const tail = this.#tails.get(key);
        if (tail !== undefined) waits.add(tail.done);
        this.#tails.set(key, mine);
      }
      mine.mapped = true;
      if (waits.size > 0) ready = Promise.all(waits).then(() => undefined);
    }
    this.#holders.add(mine);
    return {
      ready,
      release: () => {
        release();
        this.#holders.delete(mine);
        if (mine.mapped) for (const key of keys) if (this.#tails.get(key) === mine) this.#tails.delete(key);
      },
    };
  }

  /**
   * Puts a holder's keys in the map, under the key's later holder where there is one. (A later holder that shares a
   * key with it met its range when it registered, and mapped it then: this only fills keys nobody else holds.)
   */
  #map(holder: Holder): void {
    if (holder.mapped) return;
    holder.mapped = true;
    for (const key of holder.keys) {
      const tail = this.#tails.get(key);
      if (tail === undefined || tail.seq < holder.seq) this.#tails.set(key, holder);
    }
  }
}

/**
 * Per-key ordering without a global lock: a chunk registers its keys in chunk order and waits only for the earlier
 * chunks still in flight that share a key with it. Chunks with disjoint keys load in parallel.
 */
export class KeyLocks {
  readonly #tails = new Map<string, Promise<void>>();

  /** Registers `keys` now (call in chunk order); `ready` resolves when earlier holders of these keys are done. */
  register(keys: readonly string[]): { ready: Promise<void>; release: () => void } {
    const waits = new Set<Promise<void>>();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    for (const key of keys) {
      const tail = this.#tails.get(key);
      if (tail !== undefined) waits.add(tail);
      this.#tails.set(key, mine);
    }
    const ready = waits.size === 0 ? Promise.resolve() : Promise.all(waits).then(() => undefined);
    return {
      ready,
      release: () => {
        release();
        for (const key of keys) if (this.#tails.get(key) === mine) this.#tails.delete(key);
      },
    };
  }
}

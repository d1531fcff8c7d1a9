/**
 * Releases chunks to a target in chunk order, whatever order they were transformed in, so that records of one key
 * reach the target in source order. `offer` resolves once the chunk was handed on, which bounds how far the
 * producers can run ahead of the slowest chunk.
 *
 * Expected chunks: the listed ones below `openFrom` (a resumed run's chunks still to load), then every chunk from
 * `openFrom` on (those being extracted now).
 */
export class Sequencer<T> {
  readonly #emit: (seq: number, item: T) => Promise<void>;
  readonly #prefix: number[];
  readonly #openFrom: number;
  #index = 0;
  #next: number;
  readonly #waiting = new Map<number, { item: T; done: () => void; failed: (error: unknown) => void }>();
  #draining = false;
  /** Set by abort: every later offer is refused at once (nothing would ever hand it on). */
  #aborted: { error: unknown } | undefined;

  constructor(expectedBelow: readonly number[], openFrom: number, emit: (seq: number, item: T) => Promise<void>) {
    this.#prefix = [...expectedBelow].filter((seq) => seq < openFrom).sort((a, b) => a - b);
    this.#openFrom = openFrom;
    this.#emit = emit;
    this.#next = this.#prefix[0] ?? openFrom;
  }

  #advance(): void {
    if (this.#index < this.#prefix.length) this.#index++;
    this.#next =
      this.#index < this.#prefix.length
        ? (this.#prefix[this.#index] as number)
        : Math.max(this.#openFrom, this.#next + 1);
  }

  offer(seq: number, item: T): Promise<void> {
    if (this.#aborted !== undefined) return Promise.reject(this.#aborted.error);
    return new Promise<void>((done, failed) => {
      this.#waiting.set(seq, { item, done, failed });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let entry = this.#waiting.get(this.#next); entry !== undefined; entry = this.#waiting.get(this.#next)) {
        const seq = this.#next;
        this.#waiting.delete(seq);
        try {
          await this.#emit(seq, entry.item);
          entry.done();
        } catch (error) {
          entry.failed(error);
        }
        this.#advance();
      }
    } finally {
      this.#draining = false;
    }
  }

  /** Rejects every chunk still waiting, and every chunk offered later (the run is stopping). */
  abort(error: unknown): void {
    this.#aborted = { error };
    for (const entry of this.#waiting.values()) entry.failed(error);
    this.#waiting.clear();
  }
}

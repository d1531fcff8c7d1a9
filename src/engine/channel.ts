/**
 * A bounded channel between two stages: `send` waits while the channel is full (back-pressure reaches the source),
 * the receiver iterates until the channel is closed and drained. Hand-written because Node has no bounded async
 * queue and the npm ones (p-queue and the like) run tasks rather than hand values between producer and consumer.
 */
export class Channel<T> {
  readonly #capacity: number;
  readonly #items: T[] = [];
  #closed = false;
  #error: unknown;
  #waitingSenders: (() => void)[] = [];
  #waitingReceivers: (() => void)[] = [];

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  get size(): number {
    return this.#items.length;
  }

  #wake(list: (() => void)[]): void {
    const waiting = list.splice(0);
    for (const resolve of waiting) resolve();
  }

  async send(item: T): Promise<void> {
    while (this.#items.length >= this.#capacity && !this.#closed) {
      await new Promise<void>((resolve) => this.#waitingSenders.push(resolve));
    }
    if (this.#closed) throw this.#error ?? new Error("channel closed");
    this.#items.push(item);
    this.#wake(this.#waitingReceivers);
  }

  /** No more items: receivers finish once the channel is drained. */
  close(): void {
    this.#closed = true;
    this.#wake(this.#waitingReceivers);
    this.#wake(this.#waitingSenders);
  }

  /** Stops both sides at once: pending and future sends reject with `error`, receivers stop. */
  abort(error: unknown): void {
    this.#error = error;
    this.#items.length = 0;
    this.close();
  }

  async receive(): Promise<{ done: true } | { done: false; value: T }> {
    for (;;) {
      if (this.#items.length > 0) {
        const value = this.#items.shift() as T;
        this.#wake(this.#waitingSenders);
        return { done: false, value };
      }
      if (this.#closed) return { done: true };
      await new Promise<void>((resolve) => this.#waitingReceivers.push(resolve));
    }
  }
}

/**
 * Calls still running, counted: a call given up at its deadline runs on (timeout.ts), and what it reads must outlive
 * it. `whenIdle` runs its callback once every call tracked has settled, at once when none is running.
 */
export class InFlight {
  #running = 0;
  #idle: (() => void) | undefined;

  /** Counts `call` as running until it settles; returns it as it is. */
  track<T>(call: Promise<T>): Promise<T> {
    this.#running++;
    const settled = (): void => {
      this.#running--;
      if (this.#running > 0 || this.#idle === undefined) return;
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    };
    call.then(settled, settled);
    return call;
  }

  /** No more calls will be tracked: `then` runs once none is running. */
  whenIdle(then: () => void): void {
    if (this.#running === 0) then();
    else this.#idle = then;
  }
}

/**
 * Calls still running, counted: a call given up at its deadline runs on (timeout.ts), and what it reads must outlive
 * it. `whenIdle` runs its callback once every call tracked has settled, at once when none is running, telling it
 * whether any failed (a failed call may have left work behind it, such as socket writes still queued).
 */
export class InFlight {
  #running = 0;
  #failed = false;
  #idle: ((failed: boolean) => void) | undefined;

  /** Counts `call` as running until it settles; returns it as it is. */
  track<T>(call: Promise<T>): Promise<T> {
    this.#running++;
    const settled = (): void => {
      this.#running--;
      if (this.#running > 0 || this.#idle === undefined) return;
      const idle = this.#idle;
      this.#idle = undefined;
      idle(this.#failed);
    };
    call.then(settled, () => {
      this.#failed = true;
      settled();
    });
    return call;
  }

  /** No more calls will be tracked: `then` runs once none is running. */
  whenIdle(then: (failed: boolean) => void): void {
    if (this.#running === 0) then(this.#failed);
    else this.#idle = then;
  }
}

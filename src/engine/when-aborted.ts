/**
 * Calls `callback` when `signal` aborts (at once if it already has); returns the function that unregisters it. Every
 * callback on a signal shares one 'abort' listener. Hand-written because Node's EventTarget looks through every listener already on the signal
 * for a duplicate each time one is added: thousands of calls waiting at once on a run's signal (lookups queued at a
 * system's concurrency cap) made each add cost thousands of steps (measured: 5,000 listeners on one signal took 41 ms
 * to add, 20,000 took 733 ms; here a Set makes each add and remove constant).
 */
const callbacksOf = new WeakMap<AbortSignal, Set<() => void>>();

export function whenAborted(signal: AbortSignal, callback: () => void): () => void {
  if (signal.aborted) {
    callback();
    return () => {};
  }
  let callbacks = callbacksOf.get(signal);
  if (callbacks === undefined) {
    const registered = new Set<() => void>();
    callbacks = registered;
    callbacksOf.set(signal, registered);
    signal.addEventListener(
      "abort",
      () => {
        callbacksOf.delete(signal);
        for (const call of registered) call();
      },
      { once: true },
    );
  }
  const set = callbacks;
  set.add(callback);
  return () => {
    set.delete(callback);
  };
}

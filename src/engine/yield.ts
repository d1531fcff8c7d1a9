import { setImmediate } from "node:timers/promises";

/**
 * Gives the event loop a turn. With synchronous drivers (node:sqlite) every await of a stage resolves at once and
 * a whole run would execute as one chain of microtasks: no timer (heartbeats), signal (Ctrl-C) or socket would be
 * served until it ended. Each stage calls this at every chunk boundary.
 */
export function yieldToEventLoop(): Promise<void> {
  return setImmediate();
}

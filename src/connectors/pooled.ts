/**
 * What the pooled database connectors (PostgreSQL, MariaDB/MySQL) share around their pools: taking a connection that
 * a run may stop waiting for, and the timed health probe (SQLite's too).
 */
import type { Health } from "./types.ts";

/**
 * Waits for a pooled connection (`connect` asks the pool for one), giving up when the signal aborts; a connection that
 * comes after that goes straight back to the pool (`release`).
 */
export async function acquire<C>(
  connect: () => Promise<C>,
  release: (connection: C) => void,
  signal: AbortSignal,
): Promise<C> {
  signal.throwIfAborted();
  const connecting = connect();
  const abort = Promise.withResolvers<never>();
  const onAbort = () => abort.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.race([connecting, abort.promise]);
  } catch (error) {
    connecting.then(release, () => {});
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** A health check: runs `probe` and times it; a probe that throws is unhealthy, with `describe`'s message. */
export async function probeHealth(
  probe: () => unknown,
  describe: (error: unknown) => string = (error) => (error as Error).message,
): Promise<Health> {
  const started = performance.now();
  try {
    await probe();
    return { ok: true, latencyMs: performance.now() - started };
  } catch (error) {
    return { ok: false, latencyMs: performance.now() - started, message: describe(error) };
  }
}

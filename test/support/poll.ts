/**
 * Waiting in tests for something another process, thread or server does: a state to reach, not a time to pass.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

/** Polls `done` every `everyMs` until it holds; fails naming `what` once `limitMs` have passed. */
export async function until(
  done: () => boolean | Promise<boolean>,
  what = "the condition awaited",
  limitMs = 30_000,
  everyMs = 10,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await done())) {
    if (Date.now() >= deadline) assert.fail(`not within ${limitMs / 1000} s: ${what}`);
    await sleep(everyMs);
  }
}

/**
 * The distributed executor as a test drives it from outside: a job sent by a pg-boss of the test's own (as another
 * process, or pg-boss's retry, would send it), a run put back to the state a worker leaves when it dies between a
 * commit and the finish job it was to send, or marked abandoned; a worker in the test's process; a run's end.
 */
import { ErrorCode } from "../../src/core/errors.ts";
import { queueOwner } from "../../src/engine/distributed/owner.ts";
import { type JobData, jobKey, queueSchemaOf, queues, startQueue } from "../../src/engine/distributed/queue.ts";
import type { Engine } from "../../src/engine/engine.ts";
import type { RunRecord } from "../../src/store/types.ts";
import { pgStatements, pgUrl } from "./pg-schema.ts";
import { until } from "./poll.ts";

/**
 * Sends a job of queue `name` to the queue of the store in `schema`, with the key the engine gives it; `startAfter`:
 * not to be taken before that many seconds.
 */
export async function sendJob(
  schema: string,
  name: string,
  data: JobData & Record<string, unknown>,
  startAfter?: number,
): Promise<void> {
  const boss = await startQueue(pgUrl, schema);
  try {
    await boss.send(name, data, { singletonKey: jobKey(data), ...(startAfter === undefined ? {} : { startAfter }) });
  } finally {
    await boss.stop({ graceful: false });
  }
}

/**
 * Run `runId`, ended, put back to the state a worker leaves when it dies after a load's commit and before it sends the
 * run's finish job: running, with no finish job queued.
 */
export async function diedBeforeFinish(schema: string, runId: number): Promise<void> {
  await pgStatements([
    `UPDATE ${schema}.runs SET status = 'running', ended_at = NULL WHERE id = ${runId}`,
    `DELETE FROM ${queueSchemaOf(schema)}.job WHERE name = '${queues.finish}'`,
  ]);
}

/** Marks run `id` as reapAbandoned does when no worker is alive: a run whose next job takes it up again. */
export async function markAbandoned(engine: Engine, id: number): Promise<void> {
  await engine.store.finishRun(
    id,
    queueOwner,
    { status: "failed", error: { code: ErrorCode.RunAbandoned, message: "no worker alive" } },
    Date.now(),
  );
}

/** Works the store's jobs in this process (a worker, as `franca worker` runs one) while `work` runs. */
export async function withWorker<T>(engine: Engine, work: () => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const working = engine.work({ signal: stop.signal });
  try {
    return await work();
  } finally {
    stop.abort();
    await working;
  }
}

/** Run `id` once it has ended: not running, nor marked abandoned (a worker takes such a run up again). */
export async function ended(engine: Engine, id: number): Promise<RunRecord> {
  let run: RunRecord | undefined;
  await until(async () => {
    run = await engine.store.getRun(id);
    return run !== undefined && run.status !== "running" && run.error?.code !== ErrorCode.RunAbandoned;
  }, `run ${id} ended`);
  return run as RunRecord;
}

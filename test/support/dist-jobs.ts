/**
 * The distributed executor's queue as a test touches it from outside the engine: a job sent by a pg-boss of the
 * test's own (as another process, or pg-boss's retry, would send it), and a run put back to the state a worker leaves
 * when it dies between a commit and the finish job it was to send.
 */
import { type JobData, jobKey, queueSchemaOf, queues, startQueue } from "../../src/engine/distributed/queue.ts";
import { pgStatements, pgUrl } from "./pg-schema.ts";

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

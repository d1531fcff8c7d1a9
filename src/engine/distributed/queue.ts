/**
 * The job queue of the distributed executor: pg-boss, in the store's database (schema `<store schema>_queue`).
 * Each chunk-stage is a job. A transform is completed in the transaction that records its output and sends its load
 * jobs; an extraction or a load, whose commit is followed by more (the finish job sent when nothing is left), is
 * completed when its handler returns, and a retry after a death past the commit finds its output recorded and does
 * only what follows. So a chunk is never lost and never done twice, whatever process dies when.
 */
import { PgBoss } from "pg-boss";

/** What runs the queue's SQL: pg-boss's own pool (`boss.getDb()`), or a store transaction (`tx`). */
export interface SqlExecutor {
  executeSql(text: string, values: unknown[]): Promise<{ rows: unknown[] }>;
}

export const queues = {
  extract: "franca.extract",
  transform: "franca.transform",
  load: "franca.load",
  finish: "franca.finish",
  /** Jobs pg-boss gave up on (their attempts ran out, every worker lost): a worker ends their run failed. */
  dead: "franca.dead",
} as const;

export interface ExtractJob {
  run: number;
}
export interface TransformJob {
  run: number;
  seq: number;
}
export interface LoadJob {
  run: number;
  seq: number;
  target: string;
  /**
   * When the transform that sent it recorded the chunk (its `transformed_at`): a load job of an earlier transform of
   * the chunk, still queued when the chunk was to be transformed again, leaves it to the new one's. Absent from jobs a
   * plan sends for a chunk transformed already, and from jobs of earlier versions.
   */
  transformedAt?: number;
}
export interface FinishJob {
  run: number;
}

/** What a job of any queue carries: its run, and its chunk and target when it has them. */
export interface JobData {
  run: number;
  seq?: number;
  target?: string;
}

/**
 * A job's key (pg-boss's singleton key), from its data: its run, and its chunk and target when it has them (extract
 * and finish `run`, transform `run:seq`, load `run:seq:target`). Re-planning a run skips the chunk-stages whose job is
 * live (liveJobs); a job sent again as it came gets the same key.
 */
export function jobKey(job: JobData): string {
  if (job.seq === undefined) return `${job.run}`;
  return job.target === undefined ? `${job.run}:${job.seq}` : `${job.run}:${job.seq}:${job.target}`;
}

export interface QueueSettings {
  /** Seconds without a heartbeat after which a job held by a dead worker is given to another. Default 10 (pg-boss's least). */
  heartbeatSeconds?: number;
  /** How often pg-boss's monitor looks for such jobs, in seconds. Default 2. */
  monitorSeconds?: number;
  instanceName?: string;
}

/**
 * How many of a run's chunk jobs (transforms and loads) are queued and not yet taken by a worker, retries waiting
 * for their backoff included. Read from pg-boss's job table: its own counts (`getQueueStats`) are a cache refreshed
 * by its monitor, seconds old, and count every run together. The condition is that of pg-boss's own index of jobs
 * waiting to be fetched (`state < 'active' AND NOT blocked`: created, or retry), so the count reads only the backlog,
 * which the extraction keeps short.
 */
export async function queuedChunkJobs(boss: PgBoss, storeSchema: string, runId: number): Promise<number> {
  const { rows } = await boss.getDb().executeSql(
    `SELECT count(*)::int AS n FROM "${queueSchemaOf(storeSchema)}".job
        WHERE name = ANY($1::text[]) AND state < 'active' AND NOT blocked AND data->>'run' = $2`,
    [[queues.transform, queues.load], String(runId)],
  );
  return Number((rows[0] as { n?: number } | undefined)?.n ?? 0);
}

/**
 * The chunk-stages of a run whose job is queued, retrying or running: `<queue name>:<singleton key>` → the transforms
 * their jobs were sent by (a load job's `transformedAt`; null for every other job, and for a load job that carries
 * none). Planning the run again must not queue them twice. pg-boss's standard queues keep every job sent, singleton
 * key or not (a second extraction of a run beside the first would fail it on the chunks both record).
 */
export type LiveJobs = Map<string, (number | null)[]>;

export async function liveJobs(db: SqlExecutor, storeSchema: string, runId: number): Promise<LiveJobs> {
  const { rows } = await db.executeSql(
    `SELECT name, singleton_key AS key, (data->>'transformedAt')::bigint AS transformed_at
       FROM "${queueSchemaOf(storeSchema)}".job
      WHERE name = ANY($1::text[]) AND state < 'completed' AND data->>'run' = $2`,
    [[queues.extract, queues.transform, queues.load, queues.finish], String(runId)],
  );
  const live: LiveJobs = new Map();
  for (const row of rows as { name: string; key: string | null; transformed_at: string | null }[]) {
    addLive(live, `${row.name}:${row.key ?? ""}`, row.transformed_at === null ? null : Number(row.transformed_at));
  }
  return live;
}

function addLive(live: LiveJobs, job: string, transformedAt: number | null): void {
  const known = live.get(job);
  if (known === undefined) live.set(job, [transformedAt]);
  else known.push(transformedAt);
}

/** `from`'s live jobs added to `into`. */
export function mergeLive(into: LiveJobs, from: LiveJobs): void {
  for (const [job, transforms] of from) for (const at of transforms) addLive(into, job, at);
}

/**
 * Whether a live job does the work of a job of queue `name` with `data`: one of the same key, and for a load, one of
 * the chunk's current transform (`transformedAt`; a load of an earlier transform leaves the chunk to the current one's
 * loads, and would leave it unloaded) or one carrying none.
 */
export function liveFor(live: LiveJobs, name: string, data: JobData, transformedAt?: number): boolean {
  const transforms = live.get(`${name}:${jobKey(data)}`);
  if (transforms === undefined) return false;
  return name !== queues.load || transforms.some((at) => at === null || at === transformedAt);
}

/**
 * Whether job `id` of queue `name` is still in the queue's table (of any state): a plan deletes a run's dead letters
 * (dropDeadJobs). By the table's primary key, (name, id).
 */
export async function jobExists(db: SqlExecutor, storeSchema: string, name: string, id: string): Promise<boolean> {
  const { rows } = await db.executeSql(
    `SELECT 1 FROM "${queueSchemaOf(storeSchema)}".job WHERE name = $1 AND id = $2`,
    [name, id],
  );
  return rows.length > 0;
}

/** Deletes run `runId`'s jobs given up on (the dead-letter queue's), in the caller's transaction (`db`). */
export async function dropDeadJobs(db: SqlExecutor, storeSchema: string, runId: number): Promise<void> {
  await db.executeSql(`DELETE FROM "${queueSchemaOf(storeSchema)}".job WHERE name = $1 AND data->>'run' = $2`, [
    queues.dead,
    String(runId),
  ]);
}

/** The schema of a store's job queue: `<store schema>_queue`, beside the store's in the same database. */
export function queueSchemaOf(storeSchema: string): string {
  return `${storeSchema}_queue`;
}

export async function startQueue(url: string, storeSchema: string, settings: QueueSettings = {}): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: url,
    schema: queueSchemaOf(storeSchema),
    application_name: "franca-queue",
    // jobs are completed in the store's transactions: the queue's own pool only fetches, beats and monitors
    max: 4,
    useListenNotify: true,
    monitorIntervalSeconds: settings.monitorSeconds ?? 2,
    superviseIntervalSeconds: settings.monitorSeconds ?? 2,
    // the registry `franca worker`s are seen alive by: one that died reads as gone after three missed beats (15 s)
    instanceHeartbeatSeconds: 5,
    ...(settings.instanceName === undefined ? {} : { instanceName: settings.instanceName }),
  });
  boss.on("error", () => {
    // pg-boss reports background problems (a lost connection) here and recovers on its own; a call that needs the
    // database reports the problem to its caller
  });
  await boss.start();
  const existing = new Set((await boss.getQueues()).map((queue) => queue.name));
  const retries = { retryLimit: 8, retryDelay: 1, retryBackoff: true, retryDelayMax: 60 };
  const common = {
    policy: "standard" as const,
    notify: true,
    ...retries,
    heartbeatSeconds: settings.heartbeatSeconds ?? 10,
    expireInSeconds: 24 * 3600,
    deadLetter: queues.dead,
  };
  // A job given up on ends its run (the worker's #dead), which a database outage can fail: retried as the other jobs
  // are, not with pg-boss's defaults (two retries, at once). A queue made before these settings gets them too.
  if (!existing.has(queues.dead)) await boss.createQueue(queues.dead, { policy: "standard", ...retries });
  else await boss.updateQueue(queues.dead, retries);
  for (const name of [queues.extract, queues.transform, queues.load, queues.finish]) {
    if (!existing.has(name)) await boss.createQueue(name, common);
  }
  return boss;
}

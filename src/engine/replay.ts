import type { Driver } from "../connectors/types.ts";
import type { Row } from "../core/binding.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import { keyOf } from "../core/key.ts";
import type { RecordOutcome, RecordStatus } from "../core/record.ts";
import type { RunRecord, Store } from "../store/types.ts";
import { keyDigests } from "./distributed/load-order.ts";
import { decodeSourceRows, encodeSourceRows, rowsOf } from "./source-rows.ts";
import { type CanonicalRecord, decodeCanonical, encodeCanonical } from "./staging.ts";

export interface ReplaySelection {
  /** Which outcomes to replay: quarantined, failed, or both (default). */
  statuses?: readonly ("quarantined" | "failed")[];
  /** Only these record keys (canonical keys, or source ids of records that never got one). */
  keys?: readonly string[];
}

/** What a replay will do, for the caller to report. */
export interface ReplayPlan {
  /** Records transformed again from their staged source rows (they failed before load). */
  retransform: number;
  /** Records loaded again from their staged canonical form, per target. */
  reload: Record<string, number>;
}

const pageSize = 1000;

/** The parent's outcomes of the given statuses: every page of each status, or the given keys' outcomes. */
async function selectedOutcomes(store: Store, parent: RunRecord, selection: ReplaySelection): Promise<RecordOutcome[]> {
  const statuses = new Set<RecordStatus>(selection.statuses ?? ["quarantined", "failed"]);
  const out: RecordOutcome[] = [];
  if (selection.keys !== undefined) {
    for (const key of selection.keys) {
      for (const outcome of await store.records(parent.id, { key }))
        if (statuses.has(outcome.status)) out.push(outcome);
    }
    return out;
  }
  for (const status of statuses) {
    for (let offset = 0; ; offset += pageSize) {
      const page = await store.records(parent.id, { status, limit: pageSize, offset });
      out.push(...page);
      if (page.length < pageSize) break;
    }
  }
  return out;
}

/**
 * The outcomes of run `parent` a replay to `targets` would go through again: those of the selection that failed
 * before load, or at one of those targets. A selection of keys must find each of them (a key that failed nowhere in
 * the run is a mistake to report, not to pass over); a selection that finds nothing is NOTHING_TO_REPLAY, before any
 * replay run is recorded.
 */
export async function replayableOutcomes(
  store: Store,
  parent: RunRecord,
  selection: ReplaySelection,
  targets: readonly string[],
): Promise<RecordOutcome[]> {
  const selected = await selectedOutcomes(store, parent, selection);
  const outcomes = selected.filter((outcome) => outcome.target === null || targets.includes(outcome.target));
  const what = (selection.statuses ?? ["quarantined", "failed"]).join(" or ");
  if (selection.keys !== undefined) {
    const found = new Set(outcomes.flatMap((outcome) => [outcome.key, outcome.sourceId ?? outcome.key]));
    const missing = selection.keys.filter((key) => !found.has(key));
    if (missing.length > 0)
      throw new FrancaError(
        ErrorCode.Usage,
        `run ${parent.id} has no ${what} record with key ${missing.map((key) => `'${key}'`).join(", ")}: nothing was replayed (see 'franca records ${parent.id} --status quarantined')`,
      );
  }
  if (outcomes.length === 0)
    throw new FrancaError(
      ErrorCode.NothingToReplay,
      selected.length === 0
        ? `run ${parent.id} has nothing to replay: no ${what} records`
        : `run ${parent.id} has nothing to replay: its ${what} records are at targets the flow no longer has`,
    );
  return outcomes;
}

async function staged(store: Store, runId: number, seq: number, stage: "extracted" | "canonical"): Promise<string> {
  const data = await store.readStaged(runId, seq, stage);
  if (data === undefined) {
    throw new FrancaError(
      ErrorCode.RunNotResumable,
      `run ${runId} has no staged ${stage} output for chunk ${seq} any more (it was discarded): its records cannot be replayed`,
    );
  }
  return data;
}

/**
 * Prepares a replay run of `outcomes` (`replayableOutcomes`): its chunks are staged from the parent's staged output, so that executing the replay is
 * executing a run that has extracted everything already.
 * - Records that failed before load (target null): their source rows are staged as extracted chunks, so they are
 *   transformed again (with today's mapping: the point of a replay after a fix) and loaded to every target.
 * - Records refused by some targets: their canonical records are staged as transformed chunks, loaded again only to
 *   those targets (the others are marked done for the chunk): no new extraction, no new lookup.
 * `orderLoads`: the replay runs on the distributed executor, whose workers keep a key's loads in chunk order through
 * the store's pending loads (distributed/load-order.ts): each chunk's loads are made pending as it is staged.
 */
export async function prepareReplay(
  store: Store,
  flow: Flow,
  parent: RunRecord,
  replay: RunRecord,
  outcomes: readonly RecordOutcome[],
  orderLoads = false,
): Promise<ReplayPlan> {
  const targets = replay.targets;
  const early = new Map<number, Set<string>>(); // parent chunk → source ids to transform again
  const late = new Map<number, Map<string, Set<string>>>(); // parent chunk → key → targets to load again
  for (const outcome of outcomes) {
    if (outcome.target === null) {
      const ids = early.get(outcome.chunk) ?? new Set<string>();
      ids.add(outcome.sourceId ?? outcome.key);
      early.set(outcome.chunk, ids);
    } else if (targets.includes(outcome.target)) {
      const keys = late.get(outcome.chunk) ?? new Map<string, Set<string>>();
      const forKey = keys.get(outcome.key) ?? new Set<string>();
      forKey.add(outcome.target);
      keys.set(outcome.key, forKey);
      late.set(outcome.chunk, keys);
    }
  }

  const plan: ReplayPlan = { retransform: 0, reload: Object.fromEntries(targets.map((target) => [target, 0])) };
  const now = Date.now();
  let seq = 0;

  // source rows to transform again, re-chunked
  const sourceIdOf = keyOf(flow.from.key);
  let rows: Row[] = [];
  const flushRows = async () => {
    if (rows.length === 0) return;
    await store.stage(replay.id, seq, "extracted", encodeSourceRows({ rows }));
    await store.saveExtracted(replay.id, seq, undefined, rows.length, now);
    if (orderLoads) await store.expectLoads?.(replay.id, seq, targets);
    plan.retransform += rows.length;
    seq++;
    rows = [];
  };
  const source = flow.from.system;
  for (const [chunk, ids] of [...early].sort((a, b) => a[0] - b[0])) {
    const chunkRows = rowsOf(
      decodeSourceRows(await staged(store, parent.id, chunk, "extracted")),
      source.driver as Driver,
      source.name,
    );
    chunkRows.forEach((row, index) => {
      let id: string;
      try {
        id = sourceIdOf(row);
      } catch {
        id = `${chunk}:${index}`;
      }
      if (ids.has(id)) rows.push(row);
    });
    if (rows.length >= flow.chunkSize) await flushRows();
  }
  await flushRows();

  // canonical records to load again, one chunk per parent chunk and set of targets
  for (const [chunk, keys] of [...late].sort((a, b) => a[0] - b[0])) {
    const records = decodeCanonical(await staged(store, parent.id, chunk, "canonical"));
    const groups = new Map<string, CanonicalRecord[]>();
    for (const record of records) {
      const forKey = keys.get(record.key);
      if (forKey === undefined) continue;
      const signature = targets.filter((target) => forKey.has(target)).join("\u0000");
      groups.set(signature, [...(groups.get(signature) ?? []), record]);
    }
    for (const [signature, group] of groups) {
      const loadTo = new Set(signature.split("\u0000"));
      await store.stage(replay.id, seq, "canonical", encodeCanonical(group));
      await store.saveExtracted(replay.id, seq, undefined, group.length, now);
      await store.saveCanonical(replay.id, seq, group.length, [], now);
      if (orderLoads)
        await store.savePendingKeys?.(
          replay.id,
          seq,
          targets.filter((target) => loadTo.has(target)),
          keyDigests(group.map((record) => record.key)),
        );
      for (const target of targets) {
        if (loadTo.has(target)) plan.reload[target] = (plan.reload[target] ?? 0) + group.length;
        else
          await store.saveLoad(
            replay.id,
            seq,
            target,
            { loaded: [], hashes: [], unchanged: [], problems: [], attempts: 0 },
            now,
          );
      }
      seq++;
    }
  }
  await store.markExtractDone(replay.id);
  return plan;
}

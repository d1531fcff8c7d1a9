import { ErrorCode } from "../core/errors.ts";
import type { SystemPause } from "../engine/context.ts";
import type { LookupStats } from "../engine/lookups.ts";
import type { PolicyStats } from "../engine/policy.ts";
import type { RunSummary } from "../engine/run.ts";
import type { RunCounts, RunRecord } from "../store/types.ts";
import { count, duration, plural, table, timestamp } from "./output.ts";

/**
 * How long an ended run worked: its executions' time added up (a resumed run's wait between a failure and its resume
 * is not work), else, for a run still going or recorded without it, the time since its start.
 */
export function workedMs(run: RunRecord): number {
  const recorded = run.stats.durationMs;
  if (run.endedAt !== undefined && typeof recorded === "number") return recorded;
  return (run.endedAt ?? Date.now()) - run.startedAt;
}

/** A run as a human reads it: status, timings, counts per stage and target, lookups, drift, the error. */
export function describeRun(run: RunRecord, counts: RunCounts, replays: readonly RunRecord[] = []): string {
  const resumes = Number(run.stats.resumes ?? 0);
  const span = (run.endedAt ?? Date.now()) - run.startedAt;
  const took =
    run.endedAt === undefined
      ? `running for ${duration(span)}`
      : resumes > 0
        ? `took ${duration(workedMs(run))} over ${resumes + 1} executions (${duration(span)} from its start to its end)`
        : `took ${duration(workedMs(run))}`;
  const lines = [
    `run ${run.id} · flow ${run.flow} · ${run.status.toUpperCase()}${run.kind === "replay" ? ` · replay of run ${run.parentId}` : ""}`,
    `  started ${timestamp(run.startedAt)} by ${run.trigger}, ${took}${resumes > 0 ? `, resumed ${String(resumes)}×` : ""}${
      run.stats.resend === true ? " · resending every record" : ""
    }`,
    counts.extracted === 0 && run.status === "succeeded"
      ? "  nothing new since the last run (the source's cursor did not move)"
      : counts.chunks === 0 && run.status !== "running"
        ? // the run's figures count what it staged: a chunk read and then refused (source drift) is in none of them
          "  nothing staged: the run stopped before it recorded its first chunk"
        : `  extracted ${plural(counts.extracted, "record")} in ${plural(counts.chunks, "chunk")} · canonical ${count(counts.canonical)} · quarantined ${count(counts.quarantined)}${
            counts.failed > 0 ? ` · failed ${count(counts.failed)}` : ""
          }${Number(run.stats.threaded ?? 0) > 0 ? ` · ${count(Number(run.stats.threaded))} mapped on transform threads` : ""}`,
  ];
  const targets = Object.entries(counts.targets);
  if (targets.length > 0) {
    const rows = targets.map(([name, c]) => [`  ${name}`, c.loaded, c.unchanged, c.quarantined, c.failed]);
    lines.push(table(rows, ["  target", "loaded", "unchanged", "quarantined", "failed"]));
  }
  const lookups = run.stats.lookups as Record<string, LookupStats & { hitRate: number }> | undefined;
  if (lookups !== undefined && Object.keys(lookups).length > 0) {
    const rows = Object.entries(lookups).map(([name, s]) => [
      `  ${name}`,
      s.calls,
      `${(s.hitRate * 100).toFixed(1)}%`,
      // keys the run's cache did not have that the cross-run cache (ttlMs, shared) did: no request made either
      s.cacheHits ?? 0,
      s.requests,
      s.batches,
      s.errors,
    ]);
    lines.push(table(rows, ["  lookup", "calls", "hit rate", "from cache", "requests", "batches", "errors"]));
  }
  const systems = run.stats.systems as Record<string, Partial<PolicyStats>> | undefined;
  for (const [name, stats] of Object.entries(systems ?? {})) {
    const trouble = [
      (stats.retries ?? 0) > 0 ? plural(stats.retries ?? 0, "retry", "retries") : "",
      (stats.breakerOpens ?? 0) > 0 ? `circuit opened ${stats.breakerOpens}×` : "",
      (stats.rateLimited ?? 0) > 0 ? `${count(stats.rateLimited ?? 0)} × 429` : "",
      (stats.pausedMs ?? 0) > 0 ? `paused ${duration(stats.pausedMs ?? 0)}` : "",
      (stats.permanentErrors ?? 0) > 0 ? plural(stats.permanentErrors ?? 0, "refusal") : "",
    ].filter((part) => part !== "");
    if (trouble.length > 0) lines.push(`  ${name}: ${trouble.join(", ")}`);
  }
  const drift = run.stats.drift as
    | { added: string[]; missing: string[]; retyped: { field: string; from: string; to: string }[] }
    | undefined;
  if (drift !== undefined) {
    const parts = [
      drift.added.length > 0 ? `new ${drift.added.join(", ")}` : "",
      drift.missing.length > 0 ? `missing ${drift.missing.join(", ")}` : "",
      ...drift.retyped.map((change) => `${change.field} ${change.from}→${change.to}`),
    ].filter((part) => part !== "");
    lines.push(`  source drift: ${parts.join("; ")}${run.stats.acceptDrift === true ? " (accepted)" : ""}`);
  }
  const pausedNow =
    run.status === "running" ? (run.stats.pausedNow as Record<string, SystemPause> | undefined) : undefined;
  for (const [name, pause] of Object.entries(pausedNow ?? {})) {
    const why = pause.reason === "breaker" ? "circuit open, next probe" : "rate-limited (429) until";
    lines.push(`  waiting for ${name}: ${why} ${timestamp(pause.until)}`);
  }
  for (const warning of (run.stats.warnings as string[] | undefined) ?? []) lines.push(`  warning: ${warning}`);
  if (run.cursorTo !== undefined) lines.push(`  cursor now at ${JSON.stringify(run.cursorTo)}`);
  if (run.error !== undefined) {
    // the system at fault, unless the message names it already
    const system = run.error.system;
    const at = system === undefined || run.error.message.includes(system) ? "" : ` (system ${system})`;
    lines.push(`  error ${run.error.code}${at}: ${run.error.message}`);
  }
  if (replays.length > 0) lines.push(`  replayed by ${replayList(replays)}`);
  return lines.join("\n");
}

/** `run 12 (succeeded), run 14 (partial)`: the replays of a run, oldest first. */
function replayList(replays: readonly RunRecord[]): string {
  return [...replays]
    .sort((a, b) => a.id - b.id)
    .map((replay) => `run ${replay.id} (${replay.status})`)
    .join(", ");
}

export function summaryJson(summary: RunSummary): Record<string, unknown> {
  return { run: summary.run, counts: summary.counts, exitCode: summary.exitCode };
}

/**
 * What to do next, after a run that did not fully succeed. With the run's `counts`, the ledger is pointed at only
 * for the statuses it holds, and a run that stopped with no record quarantined or failed is pointed at its error;
 * without them (a caller that has none), every partial or failed run is pointed at both statuses of the ledger.
 */
export function nextSteps(run: RunRecord, storeLocation: string, counts?: RunCounts): string {
  const lines: string[] = [`  ledger: ${storeLocation}`];
  if (run.status === "partial" || run.status === "failed") {
    const problems = counts === undefined ? undefined : problemCounts(counts);
    // a run stopped by an error: the error is why (its records' problems may be another matter, listed after it)
    const stopped = run.status === "failed" && run.error !== undefined;
    const label = stopped ? "records" : "see why";
    if (stopped) lines.push(`  see why: the run's error above (${run.error?.code})`);
    if (problems === undefined || (problems.quarantined > 0 && problems.failed > 0))
      lines.push(`  ${label}: franca records ${run.id} --status quarantined   (or --status failed)`);
    else if (problems.quarantined > 0) lines.push(`  ${label}: franca records ${run.id} --status quarantined`);
    else if (problems.failed > 0) lines.push(`  ${label}: franca records ${run.id} --status failed`);
    else if (stopped) lines.push("  no record was quarantined or failed");
  }
  if (run.error?.code === ErrorCode.SourceDrift) {
    // the source changed under the policy 'fail': continuing as it is stops again at the same check
    lines.push(`  the source's fields changed: fix the source, or take it as it is now:`);
    lines.push(`    franca resume ${run.id} --accept-drift`);
  } else if (run.status === "failed" || run.status === "cancelled") lines.push(`  continue: franca resume ${run.id}`);
  return lines.join("\n");
}

/** Records the ledger holds as quarantined and as failed, before load and in every target. */
function problemCounts(counts: RunCounts): { quarantined: number; failed: number } {
  let quarantined = counts.quarantined;
  let failed = counts.failed;
  for (const target of Object.values(counts.targets)) {
    quarantined += target.quarantined;
    failed += target.failed;
  }
  return { quarantined, failed };
}

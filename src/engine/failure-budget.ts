import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { FailurePolicy } from "../core/flow.ts";
import type { RunCounts } from "../store/types.ts";

const defaultMinRecordsForRatio = 100;

/** Whether the policy sets a limit at all: without one, no count ever stops a run. */
export function hasLimit(policy: FailurePolicy): boolean {
  return policy.maxFailed !== undefined || policy.maxFailedRatio !== undefined;
}

/**
 * What a run has spent of its budget when an execution of it starts, from its ledger's counts: records that went
 * through the transform (the ratio's denominator), and problems, before load and in every target. Failed records
 * (transient) are not spent: a chunk that holds one is not done (`chunkStatesFromRows`), so this execution transforms
 * or loads it again, and a record that fails again counts then. Counted, a continued run's earlier failures — the
 * outage it is continued after — would stop it at its first problem.
 */
export function spentOf(counts: RunCounts): { processed: number; problems: number } {
  let problems = counts.quarantined;
  for (const target of Object.values(counts.targets)) problems += target.quarantined;
  return { processed: counts.canonical + counts.quarantined, problems };
}

/**
 * Counts records that could not go on (quarantined or failed) against the flow's failure policy, record by
 * record, so a run stops at the record that crosses the threshold rather than at the end of a block.
 */
export class FailureBudget {
  readonly #policy: FailurePolicy;
  #processed: number;
  #problems: number;

  constructor(policy: FailurePolicy, already: { processed: number; problems: number } = { processed: 0, problems: 0 }) {
    this.#policy = policy;
    this.#processed = already.processed;
    this.#problems = already.problems;
  }

  get problems(): number {
    return this.#problems;
  }

  get processed(): number {
    return this.#processed;
  }

  /** Counts records that went through a stage without trouble. */
  processedOk(count: number): void {
    this.#processed += count;
  }

  /** Counts one problem record; returns the error to stop the run with when the budget is now exceeded. */
  problem(countsAsProcessed: boolean): FrancaError | undefined {
    this.#problems++;
    if (countsAsProcessed) this.#processed++;
    return this.check();
  }

  check(): FrancaError | undefined {
    const { maxFailed, maxFailedRatio } = this.#policy;
    if (maxFailed !== undefined && this.#problems > maxFailed) {
      return new FrancaError(
        ErrorCode.FailureThreshold,
        `${this.#problems} records quarantined or failed, more than the flow's failure.maxFailed of ${maxFailed}`,
      );
    }
    const minRecords = this.#policy.minRecordsForRatio ?? defaultMinRecordsForRatio;
    if (
      maxFailedRatio !== undefined &&
      this.#processed >= minRecords &&
      this.#problems / this.#processed > maxFailedRatio
    ) {
      const ratio = ((this.#problems / this.#processed) * 100).toFixed(1);
      return new FrancaError(
        ErrorCode.FailureThreshold,
        `${ratio}% of ${this.#processed} records quarantined or failed, more than the flow's failure.maxFailedRatio of ${maxFailedRatio * 100}%`,
      );
    }
    return undefined;
  }
}

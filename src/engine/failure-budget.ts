import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { FailurePolicy } from "../core/flow.ts";
import type { ChunkState } from "../store/types.ts";

const defaultMinRecordsForRatio = 100;

/** Whether the policy sets a limit at all: without one, no count ever stops a run. */
export function hasLimit(policy: FailurePolicy): boolean {
  return policy.maxFailed !== undefined || policy.maxFailedRatio !== undefined;
}

/**
 * What a run has spent of its budget when an execution of it starts: the records its done stages went through (the
 * ratio's denominator: the canonical and quarantined records of each chunk whose transform is final) and the problems
 * they left (those chunks' quarantined records, and those of each load that is final). A chunk or a load that is not
 * done — it holds a failed record — is transformed or loaded again by this execution, which counts what it finds
 * then; counted now as well, a record quarantined again would count twice, and a continued run's earlier failures (the
 * outage it is continued after) would stop it at its first problem.
 */
export function spentOf(
  chunks: readonly ChunkState[],
  targets: readonly string[],
): { processed: number; problems: number } {
  let processed = 0;
  let problems = 0;
  for (const chunk of chunks) {
    if (!chunk.transformed) continue;
    processed += chunk.spent.canonical + chunk.spent.quarantined;
    problems += chunk.spent.quarantined;
    for (const target of targets) if (chunk.loaded[target] === true) problems += chunk.spent.loads[target] ?? 0;
  }
  return { processed, problems };
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

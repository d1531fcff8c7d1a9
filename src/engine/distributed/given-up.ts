/**
 * Why the queue gave a job up, as the run's error says it: the job, and the failure of its last attempt as pg-boss
 * kept it (`sourceOutput` of the dead-lettered job): a thrown error serialized (`{ message, … }`), or the queue's own
 * reason for a job whose worker died or stopped answering (`{ value: { message: "job heartbeat timeout" } }`). Pure.
 */
import { redactSecrets } from "../../core/redact.ts";

/** The longest part of a last attempt's message kept in the run's error. */
const maxReason = 500;

/** The message of a last attempt's output, when it has one, its secrets redacted, at most `maxReason` long. */
export function lastAttemptMessage(output: unknown): string | undefined {
  const message = messageOf(output);
  if (message === undefined) return undefined;
  // redacted whole, then cut: a cut could split a secret from what marks it as one
  const redacted = redactSecrets(message);
  return redacted.length > maxReason ? `${redacted.slice(0, maxReason)}…` : redacted;
}

function messageOf(output: unknown): string | undefined {
  if (typeof output === "string") return output === "" ? undefined : output;
  if (output === null || typeof output !== "object") return undefined;
  const { message, value } = output as { message?: unknown; value?: unknown };
  if (typeof message === "string" && message !== "") return message;
  return value === undefined ? undefined : messageOf(value);
}

/** The run's error message for job `what` given up on, with its last attempt's failure (`lastAttemptMessage`). */
export function givenUpMessage(what: string, last: string | undefined): string {
  if (last === undefined)
    return `${what} was given up after its attempts ran out: its worker died or stopped answering each time`;
  return `${what} was given up after its attempts ran out; its last attempt: ${last}`;
}

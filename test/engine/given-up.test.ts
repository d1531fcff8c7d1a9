import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { givenUpMessage, lastAttemptMessage } from "../../src/engine/distributed/given-up.ts";

/** The run's message for job `what` given up on, from its last attempt's output as pg-boss kept it (as #dead makes it). */
const messageOf = (what: string, output: unknown): string => givenUpMessage(what, lastAttemptMessage(output));

describe("a job given up by the queue", () => {
  it("names its last attempt's failure as pg-boss kept it: a thrown error, or the queue's own reason", () => {
    assert.equal(lastAttemptMessage({ name: "FrancaError", message: "store down", stack: "…" }), "store down");
    assert.equal(lastAttemptMessage({ value: { message: "job heartbeat timeout" } }), "job heartbeat timeout");
    assert.equal(lastAttemptMessage("plain text"), "plain text");
    for (const none of [null, undefined, 7, "", {}, { message: "" }, { value: 3 }, { message: 5 }])
      assert.equal(lastAttemptMessage(none), undefined, JSON.stringify(none));

    assert.equal(
      messageOf("franca.load of chunk 3 dst", { value: { message: "job heartbeat timeout" } }),
      "franca.load of chunk 3 dst was given up after its attempts ran out; its last attempt: job heartbeat timeout",
    );
    assert.equal(
      messageOf("franca.extract", null),
      "franca.extract was given up after its attempts ran out: its worker died or stopped answering each time",
    );
  });

  it("keeps no secret and no more than 500 characters of it", () => {
    const message = messageOf("a job", { message: "cannot connect to postgres://app:hunter2@db/prod" });
    assert.ok(!message.includes("hunter2"), message);
    assert.match(message, /postgres:\/\/app:\[redacted\]@db\/prod$/);
    // a secret across the cut is redacted all the same
    // (the password starts before character 500, its "@" comes after it)
    const across = messageOf("a job", {
      message: `${"x".repeat(470)} postgres://app:hunter2${"s".repeat(20)}@db/prod`,
    });
    assert.ok(!across.includes("hunter2"), across);
    const long = messageOf("a job", { message: "x".repeat(2000) });
    assert.ok(long.endsWith(`${"x".repeat(500)}…`));
    assert.ok(!long.includes("x".repeat(501)));
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connectionLost, isTransient } from "../../src/connectors/postgres/errors.ts";

const withCode = (code: string) => Object.assign(new Error("x"), { code });

describe("PostgreSQL errors", () => {
  it("takes a statement failed by the connection's end for a lost connection, and no other failure", () => {
    // the distributed gate's waiting caller takes such a failure of its try for a slot as no slot (gates.ts)
    for (const code of ["57P01", "57P02", "57P03", "08006", "08003", "ECONNRESET"])
      assert.equal(connectionLost(withCode(code)), true, code);
    assert.equal(connectionLost(new Error("Connection terminated unexpectedly")), true);
    assert.equal(connectionLost(new Error("Client has encountered a connection error and is not queryable")), true);
    for (const code of ["23505", "42P01", "57014", "40001"]) assert.equal(connectionLost(withCode(code)), false, code);
    assert.equal(connectionLost(new Error("the lock session is closed")), false);
  });

  it("takes a lost connection, a lost race, a timeout and a stopped call for transient, and a refusal for not", () => {
    for (const code of ["57P01", "08006", "ECONNRESET", "40001", "40P01", "57014", "55P03", "53300"])
      assert.equal(isTransient(withCode(code)), true, code);
    assert.equal(isTransient(new Error("Connection terminated unexpectedly")), true);
    assert.equal(isTransient(Object.assign(new Error("stopped"), { name: "AbortError" })), true);
    for (const code of ["23505", "22001", "42P01", "42501"]) assert.equal(isTransient(withCode(code)), false, code);
    assert.equal(isTransient(new Error("syntax error")), false);
    assert.equal(isTransient("not an error"), false);
  });
});

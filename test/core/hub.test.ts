import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Type from "typebox";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { type ConfigIssue, checkHub, defineHub } from "../../src/core/hub.ts";
import { lookup } from "../../src/core/lookup.ts";
import { Customer } from "../support/fixtures.ts";

const crm = sqlite("crm", { file: "crm.db" });
const erp = sqlite("erp", { file: "erp.db" });
const source = bind(crm, Customer, { table: "customers", key: "id", cursor: "updated_at" });
const target = bind(erp, Customer, { table: "clients", key: "code" });

function issuesOf(spec: Parameters<typeof checkHub>[0]): Pick<ConfigIssue, "code" | "setting">[] {
  return checkHub(spec).map(({ code, setting }) => ({ code, setting }));
}

describe("hub configuration", () => {
  it("accepts a valid hub", () => {
    const hub = defineHub({
      systems: [crm, erp],
      entities: [Customer],
      flows: [flow("customers", { from: source, to: target })],
    });
    assert.equal(hub.flows.get("customers")?.chunkSize, 1000);
    assert.equal(hub.flows.get("customers")?.transformConcurrency, 2);
    assert.equal(hub.bindings.get("erp.Customer"), target);
  });

  it("names a system that the hub does not declare", () => {
    assert.deepEqual(
      issuesOf({ systems: [crm], entities: [Customer], flows: [flow("customers", { from: source, to: target })] }),
      [{ code: ErrorCode.ConfigUnknownReference, setting: "flows.customers.to[0].system" }],
    );
  });

  it("names duplicate names, bad cron, bad chunk size and unknown flow settings, all at once", () => {
    const spec = {
      systems: [crm, erp, sqlite("crm", { file: "other.db" })],
      entities: [Customer],
      flows: [
        flow("customers", {
          from: source,
          to: [target],
          schedule: "every monday",
          chunkSize: 0,
          transformConcurrency: 0,
          ...{ chunksize: 500 },
        }),
        flow("customers", { from: source, to: target }),
      ],
    };
    assert.deepEqual(issuesOf(spec), [
      { code: ErrorCode.ConfigDuplicateName, setting: "systems.crm" },
      { code: ErrorCode.ConfigDuplicateName, setting: "flows.customers" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.customers.chunksize" },
      { code: ErrorCode.ConfigBadCron, setting: "flows.customers.schedule" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.customers.chunkSize" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.customers.transformConcurrency" },
    ]);
  });

  it("refuses an entity key that is not a required field of the schema", () => {
    const Broken = entity("Broken", {
      version: 1,
      key: "code" as never,
      schema: Type.Object({ id: Type.String(), note: Type.Optional(Type.String()) }),
    });
    const Optional = entity("Optional", {
      version: 0,
      key: "note",
      schema: Type.Object({ note: Type.Optional(Type.String()) }),
    });
    assert.deepEqual(issuesOf({ systems: [], entities: [Broken, Optional], flows: [] }), [
      { code: ErrorCode.ConfigInvalid, setting: "entities.Broken.key" },
      { code: ErrorCode.ConfigInvalid, setting: "entities.Optional.version" },
      { code: ErrorCode.ConfigInvalid, setting: "entities.Optional.key" },
    ]);
  });

  it("refuses settings that would do nothing: a cursor on a target, a mapping in the wrong direction, unknown connector options", () => {
    const cursorTarget = bind(erp, Customer, { name: "erp.a", table: "clients", cursor: "updated_at" });
    const wrongWay = bind(erp, Customer, { name: "erp.b", table: "clients", toCanonical: (row) => row as never });
    const typo = bind(erp, Customer, { name: "erp.c", ...({ tabel: "clients" } as unknown as { table: string }) });
    const issues = issuesOf({
      systems: [crm, erp],
      entities: [Customer],
      flows: [flow("f", { from: source, to: [cursorTarget, wrongWay, typo] })],
    });
    assert.deepEqual(issues, [
      { code: ErrorCode.ConfigInvalid, setting: "flows.f.to[0].cursor" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.f.to[1].toCanonical" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.f.to[2].tabel" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.f.to[2].table" },
    ]);
    const typoIssue = checkHub({
      systems: [crm, erp],
      entities: [Customer],
      flows: [flow("f", { from: source, to: [typo] })],
    }).find((issue) => issue.setting === "flows.f.to[0].tabel");
    assert.equal(typoIssue?.message, "is not a known setting (did you mean 'table'?)");
  });

  it("checks limits, failure policy and lookups", () => {
    const limited = sqlite("limited", {
      file: "x.db",
      limits: { concurrency: 0, rateLimit: { requests: 10, perMs: -1 }, ...({ retries: 3 } as object) },
    });
    const orphan = lookup("rate", { system: sqlite("ghost", { file: "g.db" }), get: async () => 1 });
    const issues = issuesOf({
      systems: [crm, erp, limited],
      entities: [Customer],
      lookups: [orphan],
      flows: [flow("f", { from: source, to: target, failure: { maxFailedRatio: 2, ...({ maxErrors: 1 } as object) } })],
    });
    assert.deepEqual(issues, [
      { code: ErrorCode.ConfigInvalid, setting: "systems.limited.limits.retries" },
      { code: ErrorCode.ConfigInvalid, setting: "systems.limited.limits.concurrency" },
      { code: ErrorCode.ConfigInvalid, setting: "systems.limited.limits.rateLimit.perMs" },
      { code: ErrorCode.ConfigUnknownReference, setting: "lookups.rate.system" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.f.failure.maxErrors" },
      { code: ErrorCode.ConfigInvalid, setting: "flows.f.failure.maxFailedRatio" },
    ]);
  });

  it("names unknown settings of the hub, its entities, their field notes and its lookups, and an empty hub name", () => {
    const Typo = entity("Typo", {
      version: 1,
      key: "id",
      schema: Type.Object({ id: Type.String(), email: Type.String() }),
      fields: { email: { PII: true } as never },
      ...({ descripton: "misspelled", name: "Other" } as object),
    });
    const cached = lookup("rate", { system: crm, get: async () => 1, ...({ ttl: 60_000 } as object) });
    const found = checkHub({
      name: " ",
      systems: [crm, erp],
      entities: [Customer, Typo],
      lookups: [cached],
      flows: [flow("customers", { from: source, to: target })],
      ...({ heartbeatMS: 1000 } as object),
    });
    assert.deepEqual(
      found.map(({ code, setting }) => ({ code, setting })),
      [
        { code: ErrorCode.ConfigInvalid, setting: "heartbeatMS" },
        { code: ErrorCode.ConfigInvalid, setting: "name" },
        { code: ErrorCode.ConfigInvalid, setting: "entities.Typo.descripton" },
        { code: ErrorCode.ConfigInvalid, setting: "entities.Typo.name" },
        { code: ErrorCode.ConfigInvalid, setting: "entities.Typo.fields.email.PII" },
        { code: ErrorCode.ConfigInvalid, setting: "lookups.rate.ttl" },
      ],
    );
    const messages = found.map((issue) => `${issue.setting}: ${issue.message}`);
    assert.ok(messages.includes("heartbeatMS: is not a hub setting (did you mean 'heartbeatMs'?)"), String(messages));
    assert.ok(messages.includes("lookups.rate.ttl: is not a lookup setting (did you mean 'ttlMs'?)"), String(messages));
    assert.ok(
      messages.includes("entities.Typo.descripton: is not an entity setting (did you mean 'description'?)"),
      String(messages),
    );
    // `name` is the factory's own argument, not a setting to suggest
    assert.ok(messages.includes("entities.Typo.name: is not an entity setting"), String(messages));
    // what the factories know is kept as it was, and what they do not know is not among its keys
    assert.equal(cached.ttlMs, undefined);
    assert.equal(Typo.name, "Typo");
    assert.deepEqual(Typo.fields, { email: { PII: true } });
    assert.deepEqual(Object.keys(cached).sort(), ["cacheKey", "get", "kind", "maxBatch", "name", "shared", "system"]);
  });

  it("wants staleAfterMs to be three heartbeats, the default heartbeat's too; a longer heartbeat lengthens its default", () => {
    const base = {
      systems: [crm, erp],
      entities: [Customer],
      flows: [flow("customers", { from: source, to: target })],
    };
    assert.deepEqual(issuesOf({ ...base, staleAfterMs: 5000 }), [
      { code: ErrorCode.ConfigInvalid, setting: "staleAfterMs" },
    ]);
    assert.match(
      checkHub({ ...base, staleAfterMs: 5000 })[0]?.message ?? "",
      /at least three heartbeats: 6000 \(3 × heartbeatMs, 2000 by default\), got 5000/,
    );
    assert.deepEqual(issuesOf({ ...base, heartbeatMs: 1000, staleAfterMs: 3000 }), []);
    assert.equal(defineHub(base).staleAfterMs, 15_000);
    assert.equal(defineHub({ ...base, heartbeatMs: 10_000 }).staleAfterMs, 30_000);
    assert.equal(defineHub({ ...base, heartbeatMs: 10_000, staleAfterMs: 45_000 }).staleAfterMs, 45_000);
    assert.equal(defineHub({ ...base, name: "Order to cash" }).name, "Order to cash");
  });

  it("throws one error listing every problem, with the first setting named", () => {
    assert.throws(
      () => defineHub({ systems: [crm], entities: [], flows: [flow("customers", { from: source, to: target })] }),
      (error: unknown) =>
        error instanceof FrancaError &&
        error.setting === "flows.customers.from.entity" &&
        /2 problems/.test(error.message) &&
        /flows\.customers\.to\[0\]\.system/.test(error.message),
    );
  });

  it("refuses a store URL of a scheme no store has, suggesting the one meant, and never echoes the URL", () => {
    const base = {
      systems: [crm, erp],
      entities: [Customer],
      flows: [flow("customers", { from: source, to: target })],
    };
    const typo = checkHub({ ...base, store: "postgress://franca:secret@db/franca" });
    assert.deepEqual(
      typo.map(({ code, setting }) => ({ code, setting })),
      [{ code: ErrorCode.ConfigInvalid, setting: "store" }],
    );
    const message = typo[0]?.message ?? "";
    assert.match(message, /'postgress:\/\/' is not a store scheme \(did you mean 'postgres'\?\)/);
    assert.match(message, /postgres:\/\/ \(postgresql:\/\/\)/, "names the schemes a store may have");
    assert.match(message, /sqlite:<path>/);
    assert.doesNotMatch(message, /secret/);
    for (const store of ["mysql://db/franca", "file:///var/franca.db", "SQLITE://franca.db"]) {
      assert.deepEqual(issuesOf({ ...base, store }), [{ code: ErrorCode.ConfigInvalid, setting: "store" }], store);
    }
    // a PostgreSQL URL in capitals or with one slash would be taken for a file name
    for (const store of ["Postgres://db/franca", "postgres:/db/franca", "postgresql:db"]) {
      assert.match(checkHub({ ...base, store })[0]?.message ?? "", /a PostgreSQL store is a postgres:\/\//, store);
    }
    for (const store of [
      "postgres://db/franca",
      "postgresql://franca@db:5432/franca",
      "sqlite:data/franca.db",
      "sqlite::memory:",
      "data/franca.db",
      "/var/lib/franca/franca.db",
      "C://franca/franca.db",
      "runs:2024.db",
    ]) {
      assert.deepEqual(issuesOf({ ...base, store }), [], store);
    }
    assert.throws(
      () => defineHub({ ...base, store: "postgress://db/franca" }),
      (error: unknown) =>
        error instanceof FrancaError && error.code === ErrorCode.ConfigInvalid && error.setting === "store",
    );
  });

  it("names a misspelled top-level setting with the one meant, besides the setting then missing", () => {
    const found = checkHub({ systems: [crm], flows: [], ...({ entites: [Customer] } as object) } as never);
    assert.deepEqual(
      found.map((issue) => `${issue.setting}: ${issue.message}`),
      ["entites: is not a hub setting (did you mean 'entities'?)", "entities: must be an array, got undefined"],
    );
  });

  it("suggests bind()'s own settings for their typos, which the connector does not know", () => {
    const typoSource = bind(crm, Customer, { table: "customers", key: "id", ...({ cursr: "updated_at" } as object) });
    const typoTarget = bind(erp, Customer, {
      table: "clients",
      key: "code",
      ...({ fromCannonical: (record: unknown) => record, descripton: "clients" } as object),
    });
    const found = checkHub({
      systems: [crm, erp],
      entities: [Customer],
      flows: [flow("customers", { from: typoSource, to: typoTarget })],
    });
    assert.deepEqual(
      found.map((issue) => `${issue.setting}: ${issue.message}`),
      [
        "flows.customers.from.cursr: is not a known setting (did you mean 'cursor'?)",
        "flows.customers.to[0].fromCannonical: is not a known setting (did you mean 'fromCanonical'?)",
        "flows.customers.to[0].descripton: is not a known setting (did you mean 'description'?)",
      ],
    );
  });

  it("shows a wrong value as JSON, so that a string is told from a number", () => {
    const base = { systems: [crm, erp], entities: [Customer] };
    const messages = checkHub({
      ...base,
      heartbeatMs: "2000" as never,
      flows: [
        flow("customers", {
          from: source,
          to: target,
          chunkSize: "500" as never,
          loadConcurrency: 0,
          deadlineMs: "1h" as never,
        }),
      ],
    }).map((issue) => `${issue.setting}: ${issue.message}`);
    assert.ok(
      messages.includes('flows.customers.chunkSize: must be an integer from 1 to 100000, got "500"'),
      String(messages),
    );
    assert.ok(
      messages.includes("flows.customers.loadConcurrency: must be an integer from 1 to 256, got 0"),
      String(messages),
    );
    assert.ok(messages.includes('flows.customers.deadlineMs: must be a positive number, got "1h"'), String(messages));
    assert.ok(messages.includes('heartbeatMs: must be a positive number, got "2000"'), String(messages));
    const badName = checkHub({ ...base, flows: [flow("1st", { from: source, to: target })] });
    assert.match(badName[0]?.message ?? "", /^"1st" is not a valid name/);
  });

  it("refuses entity fields that JSON cannot hold, naming each, and reads const and default values as data", () => {
    const Odd = entity("Odd", {
      version: 1,
      key: "id",
      schema: Type.Object({
        id: Type.String(),
        total: Type.BigInt(),
        lines: Type.Array(Type.Object({ at: Type.String(), format: Type.Function([], Type.String()) })),
        gone: Type.Optional(Type.Union([Type.String(), Type.Undefined()])),
        // data that looks like a schema is not one
        note: Type.String({ default: { type: "bigint" } as never }),
        kind: Type.Literal("odd"),
      }),
    });
    const issues = checkHub({ systems: [], entities: [Odd], flows: [] });
    assert.deepEqual(
      issues.map(({ code, setting }) => ({ code, setting })),
      [
        { code: ErrorCode.ConfigInvalid, setting: "entities.Odd.schema.total" },
        { code: ErrorCode.ConfigInvalid, setting: "entities.Odd.schema.lines[].format" },
        { code: ErrorCode.ConfigInvalid, setting: "entities.Odd.schema.gone.anyOf[1]" },
      ],
    );
    assert.match(issues[0]?.message ?? "", /Type\.BigInt\(\), which JSON cannot hold/);
    assert.throws(
      () => defineHub({ systems: [], entities: [Odd], flows: [] }),
      (error: unknown) => error instanceof FrancaError && error.code === ErrorCode.ConfigInvalid,
    );
  });
});

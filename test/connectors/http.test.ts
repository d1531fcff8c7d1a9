import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it, type TestContext } from "node:test";
import Type from "typebox";
import { type JsonRecord, type SimApi, type SimApiOptions, startSimApi } from "../../sim/api.ts";
import { type HttpClient, type HttpSystemOptions, http, httpDriver } from "../../src/connectors/http/index.ts";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import type { Connection, ItemResult, ReadBatch, ReadRequest, WriteItem } from "../../src/connectors/types.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { ErrorCode, FrancaError } from "../../src/core/errors.ts";
import { flow } from "../../src/core/flow.ts";
import { digest } from "../../src/core/hash.ts";
import { defineHub } from "../../src/core/hub.ts";
import type { CommonSystemSettings } from "../../src/core/system.ts";
import { Engine } from "../../src/engine/engine.ts";
import { SystemPolicy } from "../../src/engine/policy.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { readGrowing } from "../support/growing-read.ts";
import { until } from "../support/poll.ts";

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

interface Invoice extends JsonRecord {
  number: number;
  customer: string;
  amount: number;
  updatedAt: string;
}

/** `n` invoices numbered 1..n; updatedAt repeats every 500 records, so the `updatedSince` order has ties. */
function invoices(n: number): Invoice[] {
  return Array.from({ length: n }, (_, i) => ({
    number: i + 1,
    customer: `C${(i % 37) + 1}`,
    amount: (i + 1) * 1.25,
    updatedAt: new Date(Date.UTC(2024, 0, 1) + (i % 500) * 60_000).toISOString(),
  }));
}

async function sim(t: TestContext, options: SimApiOptions): Promise<SimApi> {
  const api = await startSimApi(options);
  t.after(() => api.close());
  return api;
}

function connect(settings: HttpSystemOptions & CommonSystemSettings): Connection {
  assert.deepEqual(httpDriver.validateSystem(settings), [], "test system settings must be valid");
  return httpDriver.open(http("billing", settings), { baseDir: tmpdir() });
}

function checkBinding(options: Record<string, unknown>, role: "source" | "target"): void {
  assert.deepEqual(httpDriver.validateBinding(options, role), [], "test binding settings must be valid");
}

type ReadExtra = Partial<Pick<ReadRequest, "from" | "cursor" | "batchSize" | "call">>;

async function readAll(connection: Connection, options: Record<string, unknown>, extra: ReadExtra = {}) {
  checkBinding(options, "source");
  const read = connection.read?.bind(connection);
  assert.ok(read);
  const controller = new AbortController();
  const batches: ReadBatch[] = [];
  for await (const batch of read({
    options,
    key: ["number"],
    batchSize: 100,
    signal: controller.signal,
    call: (fn) => fn(controller.signal),
    ...extra,
  })) {
    batches.push(batch);
  }
  return { batches, rows: batches.flatMap((batch) => batch.rows) };
}

function items(rows: readonly JsonRecord[], tag = ""): WriteItem[] {
  return rows.map((row) => ({
    key: String(row.number),
    row,
    idempotencyKey: digest("billing.Invoice", String(row.number), JSON.stringify(row), tag),
    hash: digest(JSON.stringify(row)),
  }));
}

async function write(
  connection: Connection,
  options: Record<string, unknown>,
  writeItems: readonly WriteItem[],
  signal = new AbortController().signal,
): Promise<ItemResult[]> {
  checkBinding(options, "target");
  const writeFn = connection.write?.bind(connection);
  assert.ok(writeFn);
  // As the engine does: calls of at most maxWriteBatch items.
  const size = connection.maxWriteBatch?.(options) ?? writeItems.length;
  const results: ItemResult[] = [];
  for (let i = 0; i < writeItems.length; i += size) {
    const batch = writeItems.slice(i, i + size);
    results.push(
      ...(await writeFn({
        options,
        key: ["number"],
        target: "billing.Invoice",
        run: 1,
        chunk: 0,
        items: batch,
        signal,
      })),
    );
  }
  return results;
}

/** Runs `fn`, expecting a FrancaError, and returns it. */
async function failure(fn: () => Promise<unknown>): Promise<FrancaError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof FrancaError, `expected a FrancaError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected an error");
}

/** The newest updatedAt (ISO text: the greatest string). */
const latest = (records: readonly Invoice[]) => records.map((record) => record.updatedAt).sort()[records.length - 1];
const numbers = (rows: readonly JsonRecord[]) => rows.map((row) => row.number);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// ---------------------------------------------------------------------------------------------------------------

describe("http connector: pagination", () => {
  const styles = {
    page: { style: "page" },
    offset: { style: "offset" },
    cursor: { style: "cursor", nextPath: "next" },
    link: { style: "link" },
  } as const;

  for (const [style, pagination] of Object.entries(styles)) {
    it(`${style}: reads 2,500 records exactly once, in order, and resumes from a mid position`, async (t) => {
      const api = await sim(t, {
        collections: { invoices: { key: "number", pagination: style as keyof typeof styles, records: invoices(2500) } },
      });
      const connection = connect({ baseUrl: api.url });
      const options = { path: "/invoices", pagination };
      const { batches, rows } = await readAll(connection, options);
      assert.deepEqual(numbers(rows), range(1, 2500));
      assert.equal(batches.length, 25);
      // Page and offset end at an empty page; cursor and link at the missing next.
      assert.equal(api.stats.requests.list, style === "page" || style === "offset" ? 26 : 25);
      // Positions are JSON and survive a round trip through the store.
      const mid = JSON.parse(JSON.stringify((batches[9] as ReadBatch).position)) as unknown;
      const resumed = await readAll(connection, options, { from: mid });
      assert.deepEqual(numbers(resumed.rows), range(1001, 2500));
      // Resuming from the end reads nothing more.
      const end = (batches[batches.length - 1] as ReadBatch).position;
      const after = await readAll(connection, options, { from: end });
      assert.deepEqual(after.rows, []);
    });
  }

  it("page size capped by the server: short pages are not taken for the end", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number", pagination: "offset", maxPageSize: 70, records: invoices(1000) } },
    });
    const connection = connect({ baseUrl: api.url });
    for (const pagination of [{ style: "offset", limit: 500 }]) {
      const { rows } = await readAll(connection, { path: "/invoices", pagination });
      assert.deepEqual(numbers(rows), range(1, 1000));
    }
    api.configureCollection("invoices", { pagination: "page" });
    const { rows } = await readAll(connection, { path: "/invoices", pagination: { style: "page", pageSize: 500 } });
    assert.deepEqual(numbers(rows), range(1, 1000));
  });

  it("without a size set: offset pages follow the growing batch size, page and cursor reads keep the flow's chunk size", async (t) => {
    // The engine's batch size grows over a run's first chunks (2, 4, 8, then 16 here; its full size, the flow's chunk
    // size, 16). An offset is a record count, so its pages may grow; a page number, or a cursor that may stand for one
    // (page × limit), needs one size for the whole read.
    const asked: Record<string, number[]> = { "/offset": [], "/cursor": [], "/page": [] };
    const all = range(1, 45).map((number) => ({ number }));
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const size = Number(url.searchParams.get(url.pathname === "/page" ? "pageSize" : "limit"));
      asked[url.pathname]?.push(size);
      const start =
        url.pathname === "/page"
          ? (Number(url.searchParams.get("page")) - 1) * size
          : Number(url.searchParams.get(url.pathname === "/offset" ? "offset" : "cursor") ?? 0);
      const end = Math.min(start + size, all.length);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ items: all.slice(start, end), next: end < all.length ? String(end) : null }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const connection = connect({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    for (const [path, pagination] of [
      ["/offset", { style: "offset" }],
      ["/cursor", { style: "cursor", nextPath: "next" }],
      ["/page", { style: "page" }],
    ] as const) {
      const options = { path, records: "items", pagination };
      checkBinding(options, "source");
      const { rows } = await readGrowing(connection, { options, key: ["number"], fullBatchSize: 16 });
      assert.deepEqual(
        rows.map((row) => row.number),
        range(1, 45),
        path,
      );
    }
    // the offset style ends on an empty page; the page style too; the cursor style on a missing next cursor
    assert.deepEqual(asked, { "/offset": [2, 4, 8, 16, 16, 16], "/cursor": [16, 16, 16], "/page": [16, 16, 16, 16] });
  });

  it("custom parameter names, first page 0, extra query, nested and bare record arrays", async (t) => {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const p = Number(url.searchParams.get("p"));
      const n = Number(url.searchParams.get("n"));
      const all = url.searchParams.get("status") === "open" ? range(1, 45) : [];
      const slice = all.slice(p * n, p * n + n).map((number) => ({ number }));
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(url.pathname === "/bare" ? slice : { result: { items: slice } }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const connection = connect({ baseUrl });
    const pagination = { style: "page", pageParam: "p", sizeParam: "n", pageSize: 10, firstPage: 0 };
    const nested = await readAll(connection, {
      path: "/nested",
      records: "result.items",
      query: { status: "open" },
      pagination,
    });
    assert.deepEqual(numbers(nested.rows), range(1, 45));
    const bare = await readAll(connection, { path: "/bare", records: "", query: { status: "open" }, pagination });
    assert.deepEqual(numbers(bare.rows), range(1, 45));
  });

  it("a response without the records array, or not JSON, is a permanent error naming the path", async (t) => {
    const api = await sim(t, { collections: { invoices: { key: "number", records: invoices(10) } } });
    const connection = connect({ baseUrl: api.url });
    const missing = await failure(() => readAll(connection, { path: "/invoices", records: "items" }));
    assert.equal(missing.errorClass, "permanent");
    assert.match(missing.message, /no array at 'items'/);
    api.configure({ list: { force: { status: 200, body: "<html>maintenance</html>" } } });
    const html = await failure(() => readAll(connection, { path: "/invoices" }));
    assert.equal(html.errorClass, "permanent");
    assert.match(html.message, /not JSON/);
  });

  it("items that are not objects are yielded as unreadable rows, not dropped", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number" } },
      list: { force: { status: 200, body: { data: [{ number: 1 }, 5, "x", { number: 2 }] } } },
    });
    const { rows } = await readAll(connect({ baseUrl: api.url }), { path: "/invoices" });
    assert.equal(rows.length, 4);
    assert.deepEqual(rows[0], { number: 1 });
    assert.match(String(rows[1]?.$error), /number, not a JSON object/);
    assert.equal(rows[2]?.$raw, '"x"');
    assert.deepEqual(rows[3], { number: 2 });
  });

  it("incremental: the next run asks for records changed since the newest change seen", async (t) => {
    const records = invoices(2500);
    const api = await sim(t, { collections: { invoices: { key: "number", pagination: "cursor", records } } });
    const connection = connect({ baseUrl: api.url });
    const options = {
      path: "/invoices",
      pagination: { style: "cursor", nextPath: "next" },
      since: { param: "updatedSince" },
    };
    const first = await readAll(connection, options, { cursor: "updatedAt" });
    assert.equal(first.rows.length, 2500);
    const end = JSON.parse(JSON.stringify((first.batches[first.batches.length - 1] as ReadBatch).position));
    const newest = latest(records);
    assert.equal(end.maxSeen, newest);

    const changedAt = new Date(Date.UTC(2024, 5, 1)).toISOString();
    api.upsert("invoices", [
      { ...(records[9] as Invoice), amount: 1, updatedAt: changedAt },
      { ...(records[1999] as Invoice), amount: 2, updatedAt: changedAt },
    ]);
    const from = connection.nextRunFrom?.(end);
    assert.deepEqual(from, { since: newest });
    const second = await readAll(connection, options, { cursor: "updatedAt", from });
    // Inclusive filter: the records at the previous newest time again (harmless: unchanged), then the changes.
    const atNewest = records.filter((record) => record.updatedAt === newest).map((record) => record.number);
    assert.deepEqual(new Set(numbers(second.rows)), new Set([...atNewest, 10, 2000]));
    assert.ok(api.log().some((entry) => entry.url.includes(`updatedSince=${encodeURIComponent(newest)}`)));
    const secondEnd = (second.batches[second.batches.length - 1] as ReadBatch).position;
    assert.deepEqual(connection.nextRunFrom?.(secondEnd), { since: changedAt });

    // A paged source without `since` starts each run from the beginning.
    assert.equal(connection.nextRunFrom?.({ page: 7 }), undefined);
  });

  it("since and the binding's cursor go together: either alone is a configuration error", async (t) => {
    const api = await sim(t, { collections: { invoices: { key: "number", records: invoices(5) } } });
    const connection = connect({ baseUrl: api.url });
    const noCursor = await failure(() => readAll(connection, { path: "/invoices", since: { param: "updatedSince" } }));
    assert.equal(noCursor.code, ErrorCode.ConfigInvalid);
    assert.equal(noCursor.setting, "since");
    const noSince = await failure(() => readAll(connection, { path: "/invoices" }, { cursor: "updatedAt" }));
    assert.equal(noSince.code, ErrorCode.ConfigInvalid);
    assert.equal(noSince.setting, "since");
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("http connector: auth", () => {
  const cases: { name: string; server: SimApiOptions["defaults"]; good: HttpSystemOptions["auth"]; secret: string }[] =
    [
      {
        name: "bearer",
        server: { auth: { bearer: "tok-7f3a9c" } },
        good: { type: "bearer", token: "tok-7f3a9c" },
        secret: "tok-wrong-51d2",
      },
      {
        name: "basic",
        server: { auth: { basic: { username: "franca", password: "pw-88c1e0" } } },
        good: { type: "basic", username: "franca", password: "pw-88c1e0" },
        secret: "pw-wrong-3b7e",
      },
      {
        name: "apiKey header",
        server: { auth: { apiKey: { header: "X-Api-Token", value: "key-0e41b2" } } },
        good: { type: "apiKey", header: "X-Api-Token", value: "key-0e41b2" },
        secret: "key-wrong-9a0f",
      },
      {
        name: "apiKey query",
        server: { auth: { apiKey: { query: "api_key", value: "key-q-61fd" } } },
        good: { type: "apiKey", query: "api_key", value: "key-q-61fd" },
        secret: "key-q-wrong-2c5a",
      },
    ];

  for (const { name, server, good, secret } of cases) {
    it(`${name}: accepted; a wrong credential is a permanent error that does not show it`, async (t) => {
      const api = await sim(t, {
        collections: { invoices: { key: "number", pagination: "link", records: invoices(250) } },
        ...(server === undefined ? {} : { defaults: server }),
      });
      const options = { path: "/invoices", pagination: { style: "link" } };
      // Link pages are followed with the credentials too (the API key query parameter is added back).
      const { rows, batches } = await readAll(connect({ baseUrl: api.url, auth: good }), options);
      assert.deepEqual(numbers(rows), range(1, 250));
      assert.ok(
        !JSON.stringify(batches.map((batch) => batch.position)).includes(String(Object.values(good ?? {}).at(-1))),
      );

      const wrong = structuredClone(good) as Record<string, unknown>;
      const field = good?.type === "bearer" ? "token" : good?.type === "basic" ? "password" : "value";
      wrong[field] = secret;
      const connection = connect({ baseUrl: api.url, auth: wrong as HttpSystemOptions["auth"] });
      const error = await failure(() => readAll(connection, options));
      assert.equal(error.errorClass, "permanent");
      assert.equal(error.code, ErrorCode.SystemError);
      assert.equal(error.status, 401);
      assert.match(error.message, /authentication refused by billing/);
      assert.ok(!error.message.includes(secret), error.message);
      assert.ok(!JSON.stringify(error.toJSON()).includes(secret));
      // On a write too: the system's problem, never a record's.
      const writeError = await failure(() => write(connection, { path: "/invoices" }, items(invoices(1))));
      assert.equal(writeError.code, ErrorCode.SystemError);
      assert.ok(!writeError.message.includes(secret));
    });
  }

  it("a server that echoes the credential: it is redacted from the error", async (t) => {
    const token = "tok-echoed-4e2b";
    const api = await sim(t, {
      collections: { invoices: { key: "number" } },
      list: { force: { status: 400, body: { error: `token ${token} lacks scope invoices:read` } } },
    });
    const error = await failure(() =>
      readAll(connect({ baseUrl: api.url, auth: { type: "bearer", token } }), { path: "/invoices" }),
    );
    assert.equal(error.status, 400);
    assert.match(error.message, /token \*\*\* lacks scope/);
    assert.ok(!error.message.includes(token));
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("http connector: writes", () => {
  it("single mode: one request per record with its idempotency key; a second write creates nothing", async (t) => {
    const api = await sim(t, { collections: { invoices: { key: "number", idField: "id", idPrefix: "inv_" } } });
    const connection = connect({ baseUrl: api.url });
    const options = { path: "/invoices", idPath: "id" };
    assert.equal(connection.maxWriteBatch?.(options), 1);
    const batch = items(invoices(40));
    const results = await write(connection, options, batch);
    assert.equal(results.length, 40);
    assert.ok(results.every((result) => result.ok));
    assert.deepEqual(
      results.map((result) => (result.ok ? result.targetId : undefined)),
      range(1, 40).map((n) => `inv_${n}`),
    );
    assert.equal(api.records("invoices").length, 40);
    const sent = api.log().filter((entry) => entry.route === "create");
    assert.deepEqual(
      sent.map((entry) => entry.headers["idempotency-key"]),
      batch.map((item) => item.idempotencyKey),
    );

    const again = await write(connection, options, batch);
    assert.ok(again.every((result) => result.ok));
    assert.equal(api.stats.replays, 40);
    assert.ok([...api.creates("invoices").values()].every((count) => count === 1));
    assert.equal(api.duplicates(), 0);
  });

  it("without idempotency keys the same writes are duplicates: the sim detects what the header prevents", async (t) => {
    const api = await sim(t, { collections: { invoices: { key: "number" } } });
    const connection = connect({ baseUrl: api.url });
    const options = { path: "/invoices", idempotencyHeader: false };
    const batch = items(invoices(10));
    await write(connection, options, batch);
    await write(connection, options, batch);
    assert.ok(api.log().every((entry) => entry.headers["idempotency-key"] === undefined));
    assert.equal(api.duplicates(), 10);
  });

  it("a lost response (stored, then 500): the retry with the same key is replayed, not applied again", async (t) => {
    const api = await sim(t, { collections: { invoices: { key: "number" } }, create: { faultAfterStoreRate: 1 } });
    const connection = connect({ baseUrl: api.url });
    const batch = items(invoices(1));
    const error = await failure(() => write(connection, { path: "/invoices" }, batch));
    assert.equal(error.errorClass, "transient");
    assert.equal(api.records("invoices").length, 1);
    api.configure({ create: { faultAfterStoreRate: 0 } });
    const results = await write(connection, { path: "/invoices" }, batch);
    assert.ok(results[0]?.ok);
    assert.equal(api.stats.replays, 1);
    assert.equal(api.creates("invoices").get("1"), 1);
    assert.equal(api.duplicates(), 0);
  });

  it("PUT to a path template: fields URL-encoded; a row without the field is that record's refusal", async (t) => {
    const api = await sim(t, { collections: { accounts: { key: "code" } } });
    const connection = connect({ baseUrl: `${api.url}/` });
    const options = { path: "/accounts/{code}", method: "PUT" };
    const rows = [{ code: "A/1 b?c", name: "slashes" }, { name: "no code" }, { code: "B-2", name: "plain" }];
    const results = await write(
      connection,
      options,
      rows.map((row, i) => ({ key: String(i), row, idempotencyKey: `k${i}`, hash: `h${i}` })),
    );
    assert.deepEqual(
      results.map((result) => result.ok),
      [true, false, true],
    );
    const refused = results[1] as { ok: false; error: FrancaError };
    assert.equal(refused.error.code, ErrorCode.TargetRejected);
    assert.match(refused.error.message, /\{code\}/);
    assert.deepEqual(api.record("accounts", "A/1 b?c"), { code: "A/1 b?c", name: "slashes" });
    assert.ok(api.log().some((entry) => entry.url === "/accounts/A%2F1%20b%3Fc"));
  });

  it("batch mode: one request per batch, keyed by a digest of the items' keys; a second write is replayed", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number", idField: "id", idPrefix: "inv_", batchItemsField: "records" } },
    });
    const connection = connect({ baseUrl: api.url });
    const options = {
      path: "/invoices",
      batchPath: "/invoices/batch",
      mode: "batch",
      batchSize: 100,
      itemsField: "records",
      idPath: "id",
    };
    assert.equal(connection.maxWriteBatch?.(options), 100);
    const batch = items(invoices(250));
    const results = await write(connection, options, batch);
    assert.equal(results.length, 250);
    assert.deepEqual(
      results.map((result) => (result.ok ? result.targetId : "failed")),
      range(1, 250).map((n) => `inv_${n}`),
    );
    assert.equal(api.stats.requests.batch, 3);
    const first = api.log().find((entry) => entry.route === "batch");
    assert.equal(first?.headers["idempotency-key"], digest(...batch.slice(0, 100).map((item) => item.idempotencyKey)));
    await write(connection, options, batch);
    assert.equal(api.stats.replays, 3);
    assert.equal(api.records("invoices").length, 250);
    assert.ok([...api.creates("invoices").values()].every((count) => count === 1));
    assert.equal(api.duplicates(), 0);
  });

  it("batch partial failure: per-item results, the refused ones with the server's reason", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number" } },
      batch: {
        reject: { when: (record) => Number(record.number) % 4 === 0, error: (r) => `invoice ${r.number} is locked` },
      },
    });
    const connection = connect({ baseUrl: api.url });
    const results = await write(connection, { path: "/invoices/batch", mode: "batch" }, items(invoices(20)));
    assert.deepEqual(
      results.map((result) => result.ok),
      range(1, 20).map((n) => n % 4 !== 0),
    );
    const refused = results[3] as { ok: false; error: FrancaError };
    assert.equal(refused.error.code, ErrorCode.TargetRejected);
    assert.equal(refused.error.errorClass, "permanent");
    assert.equal(refused.error.status, 422);
    assert.match(refused.error.message, /invoice 4 is locked/);
    assert.equal(api.records("invoices").length, 15);
  });

  it("batch: a per-item 5xx is a transient failure of that record", async (t) => {
    const api = await sim(t, { collections: { invoices: { key: "number" } }, batch: { itemFaultRate: 1 } });
    const results = await write(
      connect({ baseUrl: api.url }),
      { path: "/invoices/batch", mode: "batch" },
      items(invoices(3)),
    );
    for (const result of results) {
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.error.errorClass, "transient");
        assert.equal(result.error.status, 500);
      }
    }
  });

  it("batch: a whole-batch 422 throws TARGET_REJECTED (the engine splits it); fewer results is permanent", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number" } },
      batch: { force: { status: 422, body: { error: "batch refused: duplicate numbers" } } },
    });
    const connection = connect({ baseUrl: api.url });
    const options = { path: "/invoices/batch", mode: "batch" };
    const refused = await failure(() => write(connection, options, items(invoices(5))));
    assert.equal(refused.code, ErrorCode.TargetRejected);
    assert.equal(refused.errorClass, "permanent");
    assert.equal(refused.status, 422);
    assert.match(refused.message, /duplicate numbers/);

    api.configure({ batch: { force: { status: 200, body: { results: [{ status: 201 }] } } } });
    const short = await failure(() => write(connection, options, items(invoices(5))));
    assert.equal(short.code, ErrorCode.SystemError);
    assert.equal(short.errorClass, "permanent");
    assert.match(short.message, /1 results at 'results' for 5 items/);

    api.configure({ batch: { force: { status: 413 } } });
    assert.equal((await failure(() => write(connection, options, items(invoices(5))))).code, ErrorCode.TargetRejected);
  });

  it("429 carries retryAfterMs from Retry-After, in seconds or as an HTTP date", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number" } },
      create: { rateLimit: { requests: 1, windowMs: 60_000, retryAfterSec: 7 } },
    });
    const connection = connect({ baseUrl: api.url });
    await write(connection, { path: "/invoices" }, items(invoices(1)));
    const limited = await failure(() => write(connection, { path: "/invoices" }, items(invoices(2)).slice(1)));
    assert.equal(limited.code, ErrorCode.SystemRateLimited);
    assert.equal(limited.errorClass, "transient");
    assert.equal(limited.retryAfterMs, 7000);
    assert.equal(api.stats.rateLimited, 1);

    const later = new Date(Date.now() + 3_600_000).toUTCString();
    api.configure({ list: { force: { status: 429, headers: { "Retry-After": later } } } });
    const dated = await failure(() => readAll(connection, { path: "/invoices" }));
    assert.equal(dated.code, ErrorCode.SystemRateLimited);
    assert.ok(dated.retryAfterMs !== undefined && dated.retryAfterMs > 3_000_000 && dated.retryAfterMs <= 3_600_000);
  });

  it("5xx and 408 are transient, other 4xx on a read and 501 are permanent", async (t) => {
    const api = await sim(t, { collections: { invoices: { key: "number", records: invoices(3) } } });
    const connection = connect({ baseUrl: api.url });
    const expectations: [number, string, string][] = [
      [503, "transient", ErrorCode.SystemUnavailable],
      [500, "transient", ErrorCode.SystemUnavailable],
      [502, "transient", ErrorCode.SystemUnavailable],
      [504, "transient", ErrorCode.SystemTimeout],
      [408, "transient", ErrorCode.SystemTimeout],
      [425, "transient", ErrorCode.SystemUnavailable],
      [400, "permanent", ErrorCode.SystemError],
      [404, "permanent", ErrorCode.SystemError],
      [501, "permanent", ErrorCode.SystemError],
      [302, "permanent", ErrorCode.SystemError],
    ];
    for (const [status, errorClass, code] of expectations) {
      api.configure({ list: { force: { status } } });
      const error = await failure(() => readAll(connection, { path: "/invoices" }));
      assert.equal(error.errorClass, errorClass, `status ${status}`);
      assert.equal(error.code, code, `status ${status}`);
      assert.equal(error.status, status);
    }
    api.configure({ create: { force: { status: 503, headers: { "Retry-After": "3" } } } });
    const down = await failure(() => write(connection, { path: "/invoices" }, items(invoices(1))));
    assert.equal(down.errorClass, "transient");
    assert.equal(down.retryAfterMs, 3000);
  });

  it("an unreachable system is a transient SYSTEM_UNAVAILABLE", async (t) => {
    const api = await sim(t, { collections: {} });
    const baseUrl = api.url;
    await api.close();
    const error = await failure(() => readAll(connect({ baseUrl }), { path: "/invoices" }));
    assert.equal(error.code, ErrorCode.SystemUnavailable);
    assert.equal(error.errorClass, "transient");
    assert.equal(error.status, "ECONNREFUSED");
  });

  it("the call's timeout aborts the request itself, not just the wait for it", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number", records: invoices(3) } },
      defaults: { latencyMs: 60_000 },
    });
    const connection = connect({ baseUrl: api.url });
    // Through the engine's policy, as the engine reads: its timeout's signal reaches fetch. The timeout leaves the
    // request ample time to reach the server (which holds it for a minute), so that the server sees it aborted.
    const policy = new SystemPolicy("billing", { timeoutMs: 1000 });
    const outer = new AbortController();
    const read = readAll(connection, { path: "/invoices" }, { call: (fn) => policy.attempt(fn, outer.signal) });
    await assert.rejects(read);
    // And a write given a signal that aborts once the server has it: the request fails as aborted, and the server
    // sees the client leave.
    const controller = new AbortController();
    const writing = write(connection, { path: "/invoices" }, items(invoices(1)), controller.signal);
    await until(() => api.stats.requests.create >= 1, "the write reached the server");
    assert.equal(api.stats.requests.create, 1, "the write reached the server");
    controller.abort();
    const error = await failure(() => writing);
    assert.equal(error.code, ErrorCode.SystemTimeout);
    assert.equal(error.errorClass, "transient");
    await until(() => api.stats.clientAborts >= 2, "the server saw both requests aborted");
    assert.equal(api.stats.requests.list, 1, "the read reached the server");
    assert.equal(api.stats.clientAborts, 2);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("http connector: client, health, settings", () => {
  it("client: GET, POST, query and headers with the system's auth; 404 is a permanent error with status 404", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number", records: invoices(3) } },
      defaults: { auth: { bearer: "tok-client-1" } },
    });
    const connection = connect({ baseUrl: api.url, auth: { type: "bearer", token: "tok-client-1" } });
    const client = connection.client?.() as HttpClient;
    assert.deepEqual(await client.get("/invoices/2"), invoices(3)[1]);
    const created = await client.post<JsonRecord>(
      "/invoices",
      { number: 9, customer: "C9" },
      { headers: { "X-Trace": "t1" } },
    );
    assert.equal(created.number, 9);
    assert.equal(api.log().at(-1)?.headers["x-trace"], "t1");
    const page = await client.get<{ data: JsonRecord[] }>("/invoices", { query: { page: 1, pageSize: 2 } });
    assert.deepEqual(numbers(page.data), [1, 2]);
    const missing = await failure(() => client.get("/invoices/404"));
    assert.equal(missing.status, 404);
    assert.equal(missing.errorClass, "permanent");
    const patched = await client.request<JsonRecord>("PATCH", "/invoices/1", { body: { customer: "Z" } });
    assert.equal(patched.customer, "Z");
    // an answer that is not JSON is a permanent error naming the request
    api.configure({ get: { force: { status: 200, body: "<html>maintenance</html>" } } });
    const html = await failure(() => client.get("/invoices/2", { query: { view: "full" } }));
    assert.equal(html.errorClass, "permanent");
    assert.match(html.message, /GET \/invoices\/2\?view=full/);
    assert.match(html.message, /not JSON/);
  });

  it("health: any answer below 500 is reachable; a 5xx or a closed port is not", async (t) => {
    const api = await sim(t, {
      collections: { invoices: { key: "number" } },
      defaults: { auth: { bearer: "x-token" } },
    });
    const baseUrl = `${api.url}/invoices`;
    const health = await connect({ baseUrl }).health(new AbortController().signal);
    assert.equal(health.ok, true);
    assert.equal(health.message, "answered 401");
    assert.ok(health.latencyMs >= 0);
    api.configure({ defaults: { auth: null, force: { status: 503 } } });
    const failing = await connect({ baseUrl }).health(new AbortController().signal);
    assert.equal(failing.ok, false);
    assert.equal(failing.message, "answered 503");
    await api.close();
    const down = await connect({ baseUrl }).health(new AbortController().signal);
    assert.equal(down.ok, false);
    assert.match(down.message ?? "", /failed: (ECONNREFUSED|UND_ERR_SOCKET)/);
  });

  it("system settings: baseUrl must be http(s); auth checked against its type; unknown settings named", () => {
    const issues = (options: unknown) => httpDriver.validateSystem(options).map((issue) => issue.setting);
    assert.deepEqual(issues({ baseUrl: "https://api.example.com/v2" }), []);
    assert.deepEqual(issues({ baseUrl: "ftp://files.example.com" }), ["baseUrl"]);
    assert.deepEqual(issues({ baseUrl: "not a url" }), ["baseUrl"]);
    assert.deepEqual(issues({ baseUrl: "https://user:pw@api.example.com" }), ["baseUrl"]);
    assert.deepEqual(issues({}), ["baseUrl"]);
    assert.deepEqual(issues({ baseUrl: "https://x.org", auth: { type: "bearer" } }), ["auth.token"]);
    assert.deepEqual(issues({ baseUrl: "https://x.org", auth: { type: "oauth" } }), ["auth.type"]);
    assert.deepEqual(issues({ baseUrl: "https://x.org", auth: { type: "basic", username: "u", token: "t" } }).sort(), [
      "auth.password",
      "auth.token",
    ]);
    assert.deepEqual(
      issues({ baseUrl: "https://x.org", auth: { type: "apiKey", header: "K", query: "k", value: "v" } }),
      ["auth.query"],
    );
    assert.deepEqual(issues({ baseUrl: "https://x.org", timeout: 5 }), ["timeout"]);
    const system = http("bad", { baseUrl: "mailto:someone@example.com" });
    assert.deepEqual(
      httpDriver.preflight?.(system, { baseDir: "." }).map((issue) => issue.setting),
      ["baseUrl"],
    );
  });

  it("binding settings: combinations that would do nothing are errors naming the setting", () => {
    const issues = (options: unknown, role: "source" | "target") =>
      httpDriver.validateBinding(options, role).map((issue) => `${issue.setting}: ${issue.message}`);
    assert.deepEqual(issues({ path: "/invoices", mode: "batch", batchSize: 50 }, "target"), []);
    assert.deepEqual(issues({ path: "/invoices", batchSize: 50 }, "target"), ['batchSize: needs mode: "batch"']);
    assert.deepEqual(issues({ path: "/invoices", itemsField: "records" }, "target"), [
      'itemsField: needs mode: "batch"',
    ]);
    assert.deepEqual(issues({ path: "/invoices/{number}", mode: "batch" }, "target"), [
      "path: a batch goes to one URL, so it cannot have {placeholders}; give batchPath",
    ]);
    assert.deepEqual(issues({ path: "/invoices", pagination: { style: "page" } }, "target"), [
      "pagination: has no effect on a target",
    ]);
    assert.deepEqual(issues({ path: "/invoices", mode: "batch" }, "source"), ["mode: has no effect on a source"]);
    assert.deepEqual(issues({ path: "/invoices/{id}" }, "source"), [
      "path: a source path cannot have {placeholders}: there is no row to fill them",
    ]);
    assert.deepEqual(issues({ path: "invoices" }, "source"), ["path: must start with '/' (it is under baseUrl)"]);
    assert.deepEqual(issues({ path: "/i", pagination: { style: "cursor" } }, "source"), [
      "pagination.nextPath: is required",
    ]);
    assert.deepEqual(issues({ path: "/i", pagination: { style: "pages" } }, "source"), [
      'pagination.style: must be one of "page", "offset", "cursor", "link", "none"',
    ]);
    assert.deepEqual(issues({ path: "/i", pagination: { style: "link", limit: 5 } }, "source"), [
      "pagination.limit: is not a known setting",
    ]);
    assert.deepEqual(issues({ path: "/i", method: "DELETE" }, "target"), [
      'method: must be one of "POST", "PUT", "PATCH"',
    ]);
    assert.ok(
      issues({ path: "/i", idempotencyHeader: true }, "target").some((issue) => issue.startsWith("idempotencyHeader:")),
    );
    assert.deepEqual(issues({ table: "x" }, "source").sort(), ["path: is required", "table: is not a known setting"]);
    // a misspelled setting is given the one it most likely meant, at its own depth
    assert.deepEqual(issues({ pth: "/i" }, "source").sort(), [
      "path: is required",
      "pth: is not a known setting (did you mean 'path'?)",
    ]);
    assert.deepEqual(issues({ path: "/i", pagination: { style: "page", pageParm: "p" } }, "source"), [
      "pagination.pageParm: is not a known setting (did you mean 'pageParam'?)",
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("http connector: end to end through the engine", () => {
  const Invoice = entity("Invoice", {
    version: 1,
    key: "number",
    schema: Type.Object(
      { number: Type.String(), customer: Type.String(), amount: Type.Number() },
      { additionalProperties: false },
    ),
  });

  interface Setup {
    engine: Engine;
    store: SqliteStore;
    dir: string;
  }

  /** A SQLite source of `count` invoices (amounts negative where `negative(n)`) → the sim's invoices, in batches. */
  async function setup(t: TestContext, api: SimApi, count: number, negative: (n: number) => boolean): Promise<Setup> {
    const dir = mkdtempSync(join(tmpdir(), "franca-http-"));
    const db = new DatabaseSync(join(dir, "erp.db"));
    db.exec("CREATE TABLE invoices (number INTEGER PRIMARY KEY, customer TEXT, amount REAL)");
    const insert = db.prepare("INSERT INTO invoices VALUES (?, ?, ?)");
    db.exec("BEGIN");
    for (let n = 1; n <= count; n++) insert.run(n, `C${n % 37}`, negative(n) ? -n : n * 1.5);
    db.exec("COMMIT");
    db.close();
    const erp = sqlite("erp", { file: "erp.db" });
    const billing = http("billing", {
      baseUrl: api.url,
      auth: { type: "bearer", token: "tok-e2e" },
      limits: {
        concurrency: 4,
        retry: { maxAttempts: 12, initialDelayMs: 2, maxDelayMs: 20, maxTotalDelayMs: 30_000 },
        breaker: { consecutiveFailures: 1000 },
      },
    });
    const source = bind(erp, Invoice, {
      table: "invoices",
      key: "number",
      toCanonical: (row) => ({
        number: String(row.number),
        customer: String(row.customer),
        amount: Number(row.amount),
      }),
    });
    const target = bind(billing, Invoice, {
      name: "billing.invoices",
      path: "/invoices",
      batchPath: "/invoices/batch",
      mode: "batch",
      batchSize: 25,
      idPath: "id",
      fromCanonical: (invoice) => ({ ...invoice }),
    });
    const hub = defineHub({
      systems: [erp, billing],
      entities: [Invoice],
      flows: [flow("invoices", { from: source, to: target, chunkSize: 500 })],
    });
    const store = new SqliteStore(join(dir, "franca.db"));
    await store.migrate();
    const engine = await Engine.open({ hub, baseDir: dir, store });
    t.after(async () => {
      await engine.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return { engine, store, dir };
  }

  it("SQLite → HTTP batches with 5% faults and lost responses: every record delivered exactly once", async (t) => {
    const api = await sim(t, {
      seed: 7,
      collections: { invoices: { key: "number", idField: "id", idPrefix: "inv_" } },
      defaults: { auth: { bearer: "tok-e2e" } },
      batch: { latencyMs: 1, jitterMs: 2, faultRate: 0.05, faultAfterStoreRate: 0.05 },
    });
    const { engine } = await setup(t, api, 3000, () => false);
    const summary = await engine.run("invoices", { trigger: "test" });
    assert.equal(summary.run.status, "succeeded", JSON.stringify(summary.run.error));
    const counts = summary.counts.targets["billing.invoices"];
    assert.equal(counts?.loaded, 3000);
    assert.equal(counts?.failed, 0);
    assert.equal(api.records("invoices").length, 3000);
    const creates = api.creates("invoices");
    assert.equal(creates.size, 3000);
    assert.ok([...creates.values()].every((n) => n === 1));
    assert.equal(api.duplicates(), 0);
    // The faults did happen, and were got past by retries.
    assert.ok(api.stats.faults + api.stats.faultsAfterStore > 0);
    assert.ok(api.stats.maxInFlightByRoute.batch <= 4);
    // The ledger holds the target's ids.
    const one = await engine.store.records(summary.run.id, { key: "17" });
    assert.equal(one[0]?.targetId, (api.record("invoices", 17) as JsonRecord).id);

    // A second run sends nothing more.
    const before = api.stats.requests.batch;
    const second = await engine.run("invoices", { trigger: "test" });
    assert.equal(second.run.status, "succeeded");
    assert.equal(api.stats.requests.batch, before);
    assert.equal(api.duplicates(), 0);
  });

  for (const mode of ["per-item 422", "whole-batch 422"] as const) {
    it(`a target refusing some records (${mode}): those are quarantined with the reason, the others loaded`, async (t) => {
      const bad = (n: number) => n % 97 === 0;
      const negative = (record: unknown) => Number((record as JsonRecord).amount) < 0;
      const api = await sim(t, {
        collections: { invoices: { key: "number", idField: "id" } },
        defaults: { auth: { bearer: "tok-e2e" } },
        batch:
          mode === "per-item 422"
            ? { reject: { when: negative, error: (r) => `amount ${r.amount} must not be negative` } }
            : {
                force: {
                  status: 422,
                  when: (request) => (request.items ?? []).some(negative),
                  body: { error: "amount must not be negative" },
                },
              },
      });
      const { engine } = await setup(t, api, 1000, bad);
      const summary = await engine.run("invoices", { trigger: "test" });
      const badCount = range(1, 1000).filter(bad).length;
      assert.equal(summary.run.status, "partial");
      assert.equal(summary.counts.targets["billing.invoices"]?.quarantined, badCount);
      assert.equal(summary.counts.targets["billing.invoices"]?.loaded, 1000 - badCount);
      assert.equal(api.records("invoices").length, 1000 - badCount);
      const quarantined = await engine.store.records(summary.run.id, { status: "quarantined", limit: 100 });
      assert.deepEqual(
        quarantined.map((record) => Number(record.key)).sort((a, b) => a - b),
        range(1, 1000).filter(bad),
      );
      for (const record of quarantined) {
        assert.equal(record.code, ErrorCode.TargetRejected);
        assert.match(record.message ?? "", /must not be negative/);
      }
    });
  }

  it("HTTP source → SQLite: the second run reads only what changed since the first", async (t) => {
    const records = invoices(1000);
    const api = await sim(t, {
      collections: { invoices: { key: "number", pagination: "cursor", records } },
      list: { latencyMs: 1 },
    });
    const dir = mkdtempSync(join(tmpdir(), "franca-http-src-"));
    const db = new DatabaseSync(join(dir, "dw.db"));
    db.exec("CREATE TABLE invoices (number TEXT PRIMARY KEY, customer TEXT, amount REAL)");
    const billing = http("billing", { baseUrl: api.url });
    const dw = sqlite("dw", { file: "dw.db" });
    const source = bind(billing, Invoice, {
      path: "/invoices",
      pagination: { style: "cursor", nextPath: "next", limit: 200 },
      since: { param: "updatedSince" },
      key: "number",
      cursor: "updatedAt",
      toCanonical: (row) => ({
        number: String(row.number),
        customer: String(row.customer),
        amount: Number(row.amount),
      }),
    });
    const target = bind(dw, Invoice, { name: "dw.invoices", table: "invoices", key: "number" });
    const hub = defineHub({
      systems: [billing, dw],
      entities: [Invoice],
      flows: [flow("pull", { from: source, to: target, chunkSize: 300 })],
    });
    const store = new SqliteStore(join(dir, "franca.db"));
    await store.migrate();
    const engine = await Engine.open({ hub, baseDir: dir, store });
    t.after(async () => {
      await engine.close();
      await store.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const first = await engine.run("pull", { trigger: "test" });
    assert.equal(first.run.status, "succeeded", JSON.stringify(first.run.error));
    assert.equal(first.counts.targets["dw.invoices"]?.loaded, 1000);

    const changedAt = "2024-06-01T00:00:00.000Z";
    api.upsert("invoices", [
      { ...(records[4] as Invoice), amount: 999, updatedAt: changedAt },
      { ...(records[800] as Invoice), customer: "Moved", updatedAt: changedAt },
    ]);
    const listsBefore = api.stats.requests.list;
    const second = await engine.run("pull", { trigger: "test" });
    assert.equal(second.run.status, "succeeded", JSON.stringify(second.run.error));
    const newest = latest(records);
    const atNewest = records.filter((record) => record.updatedAt === newest).length;
    assert.equal(second.counts.extracted, atNewest + 2);
    assert.equal(second.counts.targets["dw.invoices"]?.loaded, 2);
    assert.equal(api.stats.requests.list - listsBefore, 1);
    assert.deepEqual({ ...db.prepare("SELECT amount FROM invoices WHERE number = '5'").get() }, { amount: 999 });
    assert.deepEqual(
      { ...db.prepare("SELECT customer FROM invoices WHERE number = '801'").get() },
      { customer: "Moved" },
    );
  });
});

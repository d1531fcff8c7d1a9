import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Engine } from "../../src/engine/engine.ts";
import { createLogger, type Logger } from "../../src/observe/logger.ts";
import type { Store } from "../../src/store/types.ts";
import { createClientsTarget, createCustomerSource, customersHub, openStore, tempDir } from "../support/fixtures.ts";

const rows = 400;
const warning = "could not release a chunk's staged output";

/** A logger that keeps the lines it writes, parsed. */
function keptLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
  return { logger: createLogger({ level: "warn", destination: destination as never }), lines };
}

/** The real store with `releaseStaged` replaced (given the real store to call); every other method its own. */
function withRelease(real: Store, releaseStaged: Store["releaseStaged"]): Store {
  return new Proxy(real, {
    get(target, property) {
      if (property === "releaseStaged") return releaseStaged;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Runs the flow over `rows` clean customers on a store whose `releaseStaged` is `release` (called with the real store),
 * with a logger that keeps its warnings; returns the run's summary, the warnings and the target's rows.
 */
async function runWith(release: (real: Store, runId: number, seq: number) => Promise<void>) {
  using tmp = tempDir();
  createCustomerSource(join(tmp.dir, "crm.db"), { rows });
  const target = createClientsTarget(join(tmp.dir, "erp.db"));
  const { logger, lines } = keptLogger();
  await using store = await openStore(tmp.dir);
  const watchedStore = withRelease(store, (runId, seq) => release(store, runId, seq));
  await using engine = await Engine.open({
    hub: customersHub(tmp.dir, { chunkSize: 50 }),
    baseDir: tmp.dir,
    store: watchedStore,
    logger,
  });
  const summary = await engine.run("customers", { trigger: "test" });
  const warnings = lines.filter((line) => line.msg === warning);
  const codes = target.prepare("SELECT code FROM clients").all() as { code: string }[];
  const problems = [
    ...(await store.records(summary.run.id, { status: "quarantined" })),
    ...(await store.records(summary.run.id, { status: "failed" })),
  ];
  target.close();
  return { summary, warnings, lines, codes, problems };
}

/** The run succeeded, with every source row loaded to the target and no record quarantined or failed. */
function assertEverythingLoaded(result: Awaited<ReturnType<typeof runWith>>): void {
  const { summary, codes, problems } = result;
  assert.equal(summary.run.status, "succeeded", "a failing release never fails the run");
  assert.equal(summary.run.error, undefined);
  assert.equal(summary.counts.extracted, rows);
  assert.equal(summary.counts.targets["erp.Customer"]?.loaded, rows);
  assert.deepEqual(problems, []);
  assert.equal(codes.length, rows);
  assert.deepEqual(
    new Set(codes.map((row) => row.code)),
    new Set(Array.from({ length: rows }, (_, index) => String(index + 1))),
  );
}

describe("releasing a chunk's staged output", () => {
  it("releases every chunk loaded clean to every target, once", async () => {
    const released: number[] = [];
    const result = await runWith(async (real, runId, seq) => {
      await real.releaseStaged(runId, seq);
      released.push(seq);
    });
    assertEverythingLoaded(result);
    assert.ok(result.summary.counts.chunks > 3, `several chunks (${result.summary.counts.chunks})`);
    assert.equal(released.length, result.summary.counts.chunks, "each clean chunk released");
    assert.equal(new Set(released).size, released.length, "none twice");
    assert.deepEqual(result.warnings, []);
  });

  it("a release that throws for every chunk is a warning per chunk: the run still succeeds with every record loaded", async () => {
    const attempted: number[] = [];
    let runOf: number | undefined;
    const result = await runWith(async (_real, runId, seq) => {
      runOf = runId;
      attempted.push(seq);
      throw new Error(`staging unavailable for chunk ${seq}`);
    });
    assertEverythingLoaded(result);
    const { summary, warnings } = result;
    assert.ok(summary.counts.chunks > 3, `several chunks (${summary.counts.chunks})`);
    assert.equal(runOf, summary.run.id);
    assert.equal(attempted.length, summary.counts.chunks, "a release was attempted for each chunk");
    assert.equal(warnings.length, attempted.length, "one warning per failed release");
    for (const seq of attempted) {
      const line = warnings.find((warned) => warned.chunk === seq);
      assert.ok(line !== undefined, `a warning names chunk ${seq}`);
      assert.equal(line.level, "warn");
      assert.equal(line.run, summary.run.id);
      assert.equal(line.err, `staging unavailable for chunk ${seq}`);
    }
  });

  it("a release that throws for one chunk is a warning for that chunk; the other chunks are still released", async () => {
    const attempted: number[] = [];
    const released: number[] = [];
    let failing: number | undefined;
    const result = await runWith(async (real, runId, seq) => {
      attempted.push(seq);
      // the second chunk released fails (chunks load in order, so the later ones are released after it)
      if (attempted.length === 2) {
        failing = seq;
        throw new Error("staging file locked");
      }
      await real.releaseStaged(runId, seq);
      released.push(seq);
    });
    assertEverythingLoaded(result);
    const { summary, warnings } = result;
    assert.ok(failing !== undefined, "a release failed");
    assert.equal(attempted.length, summary.counts.chunks, "a release was attempted for each chunk");
    assert.ok(attempted.indexOf(failing) < attempted.length - 1, "chunks were released after the failing one");
    assert.deepEqual(
      [...released].sort((a, b) => a - b),
      attempted.filter((seq) => seq !== failing).sort((a, b) => a - b),
      "every other chunk was released",
    );
    assert.equal(warnings.length, 1, "one warning, for the failed release only");
    assert.equal(warnings[0]?.chunk, failing);
    assert.equal(warnings[0]?.run, summary.run.id);
    assert.equal(warnings[0]?.err, "staging file locked");
  });
});

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { describe, it } from "node:test";
import { bin, customersDeclarations, driftedAfterFirstRun, franca, francaWith } from "../support/cli.ts";
import { createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";

function writeConfig(dir: string, body: string): void {
  writeFileSync(join(dir, "franca.config.ts"), `${customersDeclarations}\n${body}`);
}

const validHub = `export default defineHub({ systems: [crm, erp], entities: [Customer], flows: [flow("customers", { from: source, to: target })] });`;

describe("command line", () => {
  it("an invalid configuration exits 2, names the setting and writes nothing", () => {
    using tmp = tempDir();
    writeConfig(
      tmp.dir,
      `export default defineHub({ systems: [crm], entities: [Customer], flows: [flow("customers", { from: source, to: target, schedule: "often" })] });`,
    );
    const result = franca(tmp.dir, "run", "customers");
    assert.equal(result.code, 2);
    assert.match(result.stderr, /flows\.customers\.to\[0\]\.system: unknown system 'erp'/);
    assert.match(result.stderr, /flows\.customers\.schedule: 'often' is not a valid cron expression/);
    assert.equal(existsSync(join(tmp.dir, ".franca")), false, "no store was created");
  });

  it("an unreachable setting (a missing database file) exits 2 before anything is written", () => {
    using tmp = tempDir();
    writeConfig(tmp.dir, validHub);
    createClientsTarget(join(tmp.dir, "erp.db"));
    const result = franca(tmp.dir, "run", "customers");
    assert.equal(result.code, 2);
    assert.match(result.stderr, /CONFIG_UNREACHABLE: .*systems\.crm\.file: .*crm\.db does not exist/s);
    assert.equal(existsSync(join(tmp.dir, ".franca")), false);
  });

  it("runs a flow, exits 3 when records were quarantined, and answers ledger queries", () => {
    using tmp = tempDir();
    writeConfig(tmp.dir, validHub);
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 120, badEmails: [42] });
    createClientsTarget(join(tmp.dir, "erp.db"));

    const run = franca(tmp.dir, "run", "customers");
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stdout, /run 1 · flow customers · PARTIAL/);
    assert.match(run.stdout, /franca records 1 --status quarantined/);

    const again = franca(tmp.dir, "run", "customers", "--json");
    assert.equal(again.code, 0);
    const summary = JSON.parse(again.stdout) as { run: { id: number; status: string }; counts: { extracted: number } };
    assert.equal(summary.run.status, "succeeded");
    assert.equal(summary.counts.extracted, 0);

    const quarantined = franca(tmp.dir, "records", "1", "--status", "quarantined", "--json");
    const records = JSON.parse(quarantined.stdout) as { key: string; code: string; path: string }[];
    assert.deepEqual(
      records.map((record) => [record.key, record.code, record.path]),
      [["42", "VALIDATION_FAILED", "/email"]],
    );

    const byKey = franca(tmp.dir, "records", "1", "--key", "7");
    assert.match(byKey.stdout, /7\s+erp\.Customer\s+loaded/);

    // --resend: read whole and sent again, though nothing changed
    const resent = franca(tmp.dir, "run", "customers", "--resend");
    assert.equal(resent.code, 3, resent.stderr);
    assert.match(resent.stdout, /run 3 · flow customers · PARTIAL/);
    assert.match(resent.stdout, /resending every record/);
    assert.match(resent.stdout, /erp\.Customer\s+119\s+0\s+0\s+0/);

    const runs = franca(tmp.dir, "runs");
    assert.match(runs.stdout, /1\s+customers\s+partial/);
    const show = JSON.parse(franca(tmp.dir, "runs", "show", "1", "--json").stdout) as {
      counts: { targets: Record<string, { loaded: number }> };
    };
    assert.equal(show.counts.targets["erp.Customer"]?.loaded, 119);
  });

  it("a run stopped by source drift says how to take the source as it is; --accept-drift does", () => {
    using tmp = tempDir();
    driftedAfterFirstRun(tmp.dir);
    const stopped = franca(tmp.dir, "run", "customers");
    assert.equal(stopped.code, 1, stopped.stderr);
    assert.match(stopped.stdout, /run 2 · flow customers · FAILED/);
    assert.match(stopped.stdout, /source drift: new region\n/);
    assert.match(stopped.stdout, /error SOURCE_DRIFT: source drift in crm\.Customer: new field\(s\) region/);
    assert.match(stopped.stdout, /franca resume 2 --accept-drift/);

    const accepted = franca(tmp.dir, "resume", "2", "--accept-drift");
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(accepted.stdout, /run 2 · flow customers · SUCCEEDED/);
    assert.match(accepted.stdout, /source drift: new region \(accepted\)/);
    assert.match(accepted.stdout, /extracted 1 record in 1 chunk/);
  });

  it("check reports each system's health and fails when one has a problem", () => {
    using tmp = tempDir();
    writeConfig(tmp.dir, validHub);
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    const healthy = franca(tmp.dir, "check", "--json");
    assert.equal(healthy.code, 0, healthy.stdout);
    const report = JSON.parse(healthy.stdout) as { systems: { system: string; ok: boolean; owner: string }[] };
    assert.deepEqual(
      report.systems.map((item) => [item.system, item.ok, item.owner]),
      [
        ["crm", true, "sales"],
        ["erp", true, "finance"],
      ],
    );
    rmSync(join(tmp.dir, "crm.db"));
    const down = franca(tmp.dir, "check");
    assert.equal(down.code, 2, "a missing file is a problem of the configuration");
    assert.match(down.stdout, /systems\.crm\.file: .*crm\.db does not exist/);
  });

  it("usage errors exit 2", () => {
    using tmp = tempDir();
    writeConfig(tmp.dir, validHub);
    assert.equal(franca(tmp.dir, "run").code, 2);
    assert.equal(franca(tmp.dir, "frobnicate").code, 2);
    assert.equal(franca(tmp.dir, "run", "nope").code, 2);
    assert.equal(franca(tmp.dir, "records", "1", "--status", "lost").code, 2);
    assert.equal(franca(tmp.dir, "runs", "--bogus").code, 2);
  });

  it("exports entities as JSON Schema", () => {
    using tmp = tempDir();
    writeConfig(tmp.dir, validHub);
    const result = franca(tmp.dir, "schema", "Customer");
    assert.equal(result.code, 0);
    const schema = JSON.parse(result.stdout) as { title: string; "x-franca-key": string[] };
    assert.equal(schema.title, "Customer");
    assert.deepEqual(schema["x-franca-key"], ["id"]);
  });

  it("keeps Node's compile cache, in the main thread and in the store's thread", () => {
    using tmp = tempDir();
    writeConfig(tmp.dir, validHub);
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 5 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    // no NODE_COMPILE_CACHE: the command enables the cache itself, in its default place under the temporary directory
    // (spawn leaves out variables set to undefined)
    const env: NodeJS.ProcessEnv = {
      TMPDIR: tmp.dir,
      NODE_COMPILE_CACHE: undefined,
      NODE_DISABLE_COMPILE_CACHE: undefined,
    };
    const run = francaWith(env, tmp.dir, "run", "customers");
    assert.equal(run.code, 0, run.stderr);
    const cacheRoot = join(tmp.dir, "node-compile-cache");
    assert.ok(existsSync(cacheRoot), "the command enabled no compile cache");
    const entries = readdirSync(cacheRoot, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => readFileSync(join(entry.parentPath, entry.name), "latin1"));
    const cached = (path: string) => entries.some((entry) => entry.includes(path));
    assert.ok(cached("src/cli/main.ts"), "the main thread's modules are not cached");
    // loaded by the store's thread only: the thread took the setting over
    assert.ok(cached("src/store/sqlite/worker.ts"), "the store thread's modules are not cached");
  });

  it("starts Node with its V8 flags and glibc's settings, keeping the caller's", () => {
    using tmp = tempDir();
    // the configuration module writes down the settings of the process that loads it
    writeConfig(
      tmp.dir,
      `import { writeFileSync } from "node:fs";
writeFileSync("settings.json", JSON.stringify({ flags: process.execArgv, arenas: process.env.MALLOC_ARENA_MAX ?? null, threshold: process.env.MALLOC_MMAP_THRESHOLD_ ?? null }));
${validHub}`,
    );
    const settings = (env: NodeJS.ProcessEnv) => {
      const result = francaWith(env, tmp.dir, "schema", "Customer");
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(readFileSync(join(tmp.dir, "settings.json"), "utf8")) as Record<string, unknown>;
    };
    // (NODE_OPTIONS naming a semi-space size would make the command run in this process, as it is)
    assert.deepEqual(
      settings({ MALLOC_ARENA_MAX: undefined, MALLOC_MMAP_THRESHOLD_: undefined, NODE_OPTIONS: undefined }),
      {
        flags: ["--max-semi-space-size=4", "--heap-growing-percent=100"],
        arenas: "2",
        threshold: "131072",
      },
    );
    assert.deepEqual(settings({ MALLOC_ARENA_MAX: "4", MALLOC_MMAP_THRESHOLD_: "65536", NODE_OPTIONS: undefined }), {
      flags: ["--max-semi-space-size=4", "--heap-growing-percent=100"],
      arenas: "4",
      threshold: "65536",
    });
  });

  it("started by a Node older than 24 (the machine's own), runs on the project's pinned Node 24", () => {
    // the first `node` on the PATH after the project's own (npm puts node_modules/node/bin first)
    const older = (process.env.PATH ?? "")
      .split(delimiter)
      .map((dir) => join(dir, "node"))
      .find((file) => {
        if (!existsSync(file)) return false;
        const version = spawnSync(file, ["--version"], { encoding: "utf8" }).stdout.trim();
        return Number(version.slice(1).split(".")[0]) < 24;
      });
    assert.ok(older !== undefined, "this machine has a Node older than 24 on its PATH (its own, 20)");
    using tmp = tempDir();
    writeConfig(
      tmp.dir,
      `import { writeFileSync } from "node:fs";
writeFileSync("version.json", JSON.stringify(process.version));
${validHub}`,
    );
    const result = spawnSync(older, [bin, "schema", "Customer"], {
      cwd: tmp.dir,
      encoding: "utf8",
      env: { ...process.env, FRANCA_LOG_LEVEL: "silent", NODE_OPTIONS: undefined },
    });
    assert.equal(result.status, 0, result.stderr);
    const version = JSON.parse(readFileSync(join(tmp.dir, "version.json"), "utf8")) as string;
    assert.ok(Number(version.slice(1).split(".")[0]) >= 24, version);
  });
});

/**
 * `franca check` acts on nothing it found wrong (a missing SQLite file is not created, a system with a problem is not
 * contacted) and tells configuration problems (exit 2) from systems down (exit 1); `franca serve` in one process runs
 * its schedules until stopped, and says so when there is nothing to schedule.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { api, bin, franca } from "../support/cli.ts";
import { createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";
import { until } from "../support/poll.ts";

const env = { ...process.env, FRANCA_LOG_LEVEL: "silent" };

/** A hub of two SQLite systems and one flow; `extra` adds systems (declared in `systems`), `schedule` a cron. */
function writeHub(
  dir: string,
  options: { extra?: string; systems?: string; schedule?: string; cursor?: string; table?: string } = {},
): void {
  const schedule = options.schedule === undefined ? "" : `, schedule: ${JSON.stringify(options.schedule)}`;
  writeFileSync(
    join(dir, "franca.config.ts"),
    `import { bind, defineHub, entity, flow, Money, postgres, sqlite, Type } from ${JSON.stringify(api)};
const Customer = entity("Customer", { version: 1, key: "id", schema: Type.Object({ id: Type.String(), name: Type.String(), email: Type.String({ format: "email" }), balance: Money() }, { additionalProperties: false }) });
const crm = sqlite("crm", { file: "crm.db", owner: "sales" });
const erp = sqlite("erp", { file: "erp.db", owner: "finance" });
${options.extra ?? ""}
const source = bind(crm, Customer, { table: ${JSON.stringify(options.table ?? "customers")}, key: "id", cursor: ${JSON.stringify(options.cursor ?? "updated_at")}, toCanonical: (r) => ({ id: String(r.id), name: String(r.name), email: String(r.email), balance: String(r.balance) }) });
const target = bind(erp, Customer, { table: "clients", key: "code", fromCanonical: (c) => ({ code: c.id, full_name: c.name, mail: c.email, balance: c.balance }) });
export default defineHub({ systems: [crm, erp${options.systems ?? ""}], entities: [Customer], flows: [flow("customers", { from: source, to: target${schedule} })] });`,
  );
}

interface CheckReport {
  ok: boolean;
  problems: { code: string; setting: string; message: string }[];
  systems: { system: string; ok: boolean }[];
  notChecked: string[];
}

/** A port on loopback that nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("franca check", () => {
  it("a missing SQLite file is a configuration problem (exit 2): reported with its code, not created, not contacted", () => {
    using tmp = tempDir();
    writeHub(tmp.dir);
    createClientsTarget(join(tmp.dir, "erp.db"));
    const first = franca(tmp.dir, "check");
    assert.equal(first.code, 2, first.stdout + first.stderr);
    assert.match(first.stdout, /CONFIG_UNREACHABLE systems\.crm\.file: .*crm\.db does not exist/);
    assert.match(first.stdout, /crm\s+sqlite\s+sales\s+not checked/);
    assert.match(first.stdout, /erp\s+sqlite\s+finance\s+ok/);
    assert.equal(existsSync(join(tmp.dir, "crm.db")), false, "check created the file it found missing");
    // and so a second check finds the same problem, rather than a new empty database that passes
    const second = franca(tmp.dir, "check", "--json");
    assert.equal(second.code, 2);
    const report = JSON.parse(second.stdout) as CheckReport;
    assert.equal(report.ok, false);
    assert.deepEqual(report.notChecked, ["crm"]);
    assert.deepEqual(
      report.problems.map((problem) => [problem.code, problem.setting]),
      [["CONFIG_UNREACHABLE", "systems.crm.file"]],
    );
    assert.deepEqual(
      report.systems.map((item) => [item.system, item.ok]),
      [["erp", true]],
    );
  });

  it("a system that does not answer is down (exit 1), the configuration being valid", async () => {
    using tmp = tempDir();
    const port = await closedPort();
    writeHub(tmp.dir, {
      extra: `const warehouse = postgres("warehouse", { url: "postgres://postgres@127.0.0.1:${port}/test" });`,
      systems: ", warehouse",
    });
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    const result = franca(tmp.dir, "check", "--json");
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const report = JSON.parse(result.stdout) as CheckReport;
    assert.deepEqual(report.problems, []);
    assert.deepEqual(
      report.systems.map((item) => [item.system, item.ok]),
      [
        ["crm", true],
        ["erp", true],
        ["warehouse", false],
      ],
    );
  });

  it("names a binding's cursor or table that its system does not have (exit 2); a run stops on it before it starts", () => {
    using tmp = tempDir();
    writeHub(tmp.dir, { cursor: "updatedat" });
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 3 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    const check = franca(tmp.dir, "check");
    assert.equal(check.code, 2, check.stdout + check.stderr);
    assert.match(
      check.stdout,
      /CONFIG_INVALID flows\.customers\.from\.cursor: column 'updatedat' is not in table customers \(did you mean 'updated_at'\?\)/,
    );
    const run = franca(tmp.dir, "run", "customers");
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /CONFIG_INVALID: .*flows\.customers\.from\.cursor: column 'updatedat'/s);
    assert.equal(franca(tmp.dir, "runs").stdout.match(/^\s*\d+\s/m), null, "no run was recorded");

    writeHub(tmp.dir, { table: "customer" });
    const missing = franca(tmp.dir, "check", "--json");
    assert.equal(missing.code, 2);
    const report = JSON.parse(missing.stdout) as CheckReport;
    assert.deepEqual(
      report.problems.map((problem) => [problem.code, problem.setting]),
      [["CONFIG_UNREACHABLE", "flows.customers.from.table"]],
    );
    assert.match(report.problems[0]?.message ?? "", /no such table/);
  });

  it("a run does not create a SQLite source file that is missing either", () => {
    using tmp = tempDir();
    writeHub(tmp.dir);
    createClientsTarget(join(tmp.dir, "erp.db"));
    const result = franca(tmp.dir, "run", "customers");
    assert.equal(result.code, 2, result.stderr);
    assert.equal(existsSync(join(tmp.dir, "crm.db")), false);
  });
});

describe("franca serve, in one process", () => {
  it("with no flow on a schedule, says there is nothing to serve (exit 2) rather than ending unsettled", () => {
    using tmp = tempDir();
    writeHub(tmp.dir);
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1 });
    createClientsTarget(join(tmp.dir, "erp.db"));
    const result = franca(tmp.dir, "serve");
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /no flow has a schedule: 'franca serve' has nothing to run in one process/);
    assert.doesNotMatch(result.stderr, /unsettled top-level await/);
  });

  it("runs a scheduled flow on its tick and keeps serving until SIGTERM, then exits 0", async () => {
    using tmp = tempDir();
    writeHub(tmp.dir, { schedule: "* * * * * *" });
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 5 });
    const target = createClientsTarget(join(tmp.dir, "erp.db"));
    const child = spawn(process.execPath, [bin, "serve"], { cwd: tmp.dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (data: Buffer) => {
      stderr += data.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      // the first tick's run loaded the source's rows, and a later tick found the process still serving
      const loaded = () => {
        try {
          return (target.prepare("SELECT count(*) AS n FROM clients").get() as { n: number }).n === 5;
        } catch (error) {
          // the run writing the table at that moment
          if (/database is locked/.test((error as Error).message)) return false;
          throw error;
        }
      };
      await until(loaded, "the scheduled run's rows in the target");
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(child.exitCode, null, `serve ended early: ${stderr}`);
      child.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
    } finally {
      // SIGTERM, which the franca command hands on to the Node it starts (SIGKILL would leave that one running)
      if (child.exitCode === null) child.kill("SIGTERM");
      target.close();
    }
  });
  it("keeps serving a schedule that has no next tick (its timer stops) until SIGTERM, then exits 0", async () => {
    using tmp = tempDir();
    // February 30th: a valid pattern that never comes
    writeHub(tmp.dir, { schedule: "0 0 30 2 *" });
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1 });
    createClientsTarget(join(tmp.dir, "erp.db")).close();
    const child = spawn(process.execPath, [bin, "serve"], { cwd: tmp.dir, env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (data: Buffer) => {
      stderr += data.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      await until(() => stderr.includes("next run never"), "serve started");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(child.exitCode, null, `serve ended with nothing to wait on: ${stderr}`);
      child.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
    } finally {
      if (child.exitCode === null) child.kill("SIGTERM");
    }
  });

  it("the Node the franca command starts dies with it, even by SIGKILL, which cannot be handed on", async () => {
    using tmp = tempDir();
    writeHub(tmp.dir, { schedule: "0 0 1 1 *" });
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 1 });
    createClientsTarget(join(tmp.dir, "erp.db")).close();
    // without V8 flags of its own, the command starts Node again with them: a child process
    const launcher = spawn(process.execPath, [bin, "serve"], { cwd: tmp.dir, env, stdio: "ignore" });
    const pid = launcher.pid as number;
    const childrenOf = (parent: number) => {
      try {
        return readFileSync(`/proc/${parent}/task/${parent}/children`, "utf8")
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map(Number);
      } catch {
        return [];
      }
    };
    let child: number | undefined;
    await until(() => {
      child = childrenOf(pid)[0];
      return child !== undefined;
    }, "the franca command's child process");
    const alive = (process: number) => {
      try {
        return !/^State:\s+Z/m.test(readFileSync(`/proc/${process}/status`, "utf8"));
      } catch {
        return false;
      }
    };
    assert.equal(alive(child as number), true);
    launcher.kill("SIGKILL");
    await until(() => !alive(child as number), "the child's end after its launcher was killed");
  });
});

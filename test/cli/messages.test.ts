/**
 * What the command line says when something is off: bad option values, unknown options and commands, queries that
 * find nothing, long ledgers, run summaries, `init`, a configuration that does not parse. Each test spawns the real
 * `franca` command on a temporary hub with a SQLite store, as test/cli/cli.test.ts does.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { describeRun, nextSteps } from "../../src/cli/summary.ts";
import type { RunCounts, RunError, RunRecord } from "../../src/store/types.ts";
import { api, driftedAfterFirstRun, franca, francaWith, writeCustomersConfig } from "../support/cli.ts";
import { createClientsTarget, createCustomerSource, tempDir } from "../support/fixtures.ts";

/** A usage error: exit 2 and one line on stderr, with the USAGE code and what `pattern` says. */
function assertUsage(result: ReturnType<typeof franca>, pattern: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line, not the parser's text or the help:\n${result.stderr}`);
  assert.match(lines[0] as string, /^franca: USAGE: /);
  assert.match(lines[0] as string, pattern);
}

/** A hub whose flow `customers` has run once over `rows` customers (one quarantined): run 1, partial. */
function hubWithRun(dir: string, rows = 20): void {
  writeCustomersConfig(dir);
  createCustomerSource(join(dir, "crm.db"), { rows, badEmails: [2] });
  createClientsTarget(join(dir, "erp.db"));
  const run = franca(dir, "run", "customers");
  assert.equal(run.code, 3, run.stderr);
}

describe("command-line messages", () => {
  it("a bad option value is a usage error naming the option, before anything is opened", () => {
    using tmp = tempDir();
    hubWithRun(tmp.dir);
    assertUsage(franca(tmp.dir, "runs", "--limit", "abc"), /--limit must be a whole number ≥ 0 \(got 'abc'\)/);
    assertUsage(franca(tmp.dir, "runs", "--limit", "2.5"), /--limit must be a whole number ≥ 0 \(got '2\.5'\)/);
    assertUsage(franca(tmp.dir, "records", "1", "--offset", "abc"), /--offset must be a whole number ≥ 0/);
    assertUsage(franca(tmp.dir, "records", "1", "--limit", "1e2"), /--limit must be a whole number ≥ 0/);
    assertUsage(
      franca(tmp.dir, "runs", "--log-level", "nope"),
      /--log-level must be one of trace, debug, info, warn, error, fatal, silent \(got 'nope'\)/,
    );
    assertUsage(franca(tmp.dir, "runs", "--log-level", "wran"), /did you mean 'warn'\?/);
    assertUsage(
      francaWith({ FRANCA_LOG_LEVEL: "loud" }, tmp.dir, "runs"),
      /FRANCA_LOG_LEVEL must be one of .* \(got 'loud'\)/,
    );
    // a good value still works
    assert.equal(franca(tmp.dir, "records", "1", "--limit", "5", "--offset", "1").code, 0);
  });

  it("schema check names the file that is missing, not JSON, or not an exported schema", () => {
    using tmp = tempDir();
    writeCustomersConfig(tmp.dir);
    writeFileSync(join(tmp.dir, "notes.json"), "not json\n");
    writeFileSync(join(tmp.dir, "empty.json"), "{}\n");
    writeFileSync(join(tmp.dir, "other.json"), JSON.stringify({ title: "Custmer", "x-franca-version": 1 }));
    assertUsage(franca(tmp.dir, "schema", "check", "nonexist.json"), /cannot read nonexist\.json .*: no such file/);
    assertUsage(franca(tmp.dir, "schema", "check", "notes.json"), /notes\.json is not JSON/);
    assertUsage(
      franca(tmp.dir, "schema", "check", "empty.json"),
      /empty\.json is not an entity schema exported by 'franca schema'/,
    );
    assertUsage(
      franca(tmp.dir, "schema", "check", "other.json"),
      /other\.json describes entity 'Custmer', which the hub does not declare \(did you mean 'Customer'\?\)/,
    );
    // an export without its version (older, or written by hand) is version 0, not refused
    const exported = JSON.parse(franca(tmp.dir, "schema", "Customer").stdout) as Record<string, unknown>;
    delete exported["x-franca-version"];
    writeFileSync(join(tmp.dir, "unversioned.json"), JSON.stringify(exported));
    const unversioned = franca(tmp.dir, "schema", "check", "unversioned.json");
    assert.equal(unversioned.code, 0, unversioned.stderr);
    assert.match(unversioned.stdout, /Customer v0 → v1: compatible/);
  });

  it("negative numbers, unknown options and unknown commands give one line with a hint, exit 2", () => {
    using tmp = tempDir();
    writeCustomersConfig(tmp.dir);
    assertUsage(franca(tmp.dir, "runs", "--limit", "-5"), /--limit must be a whole number ≥ 0 \(got '-5'\)/);
    assertUsage(
      franca(tmp.dir, "run", "customers", "--threads", "-1"),
      /--threads must be a whole number ≥ 0 \(got '-1'\); see 'franca run --help'/,
    );
    assertUsage(franca(tmp.dir, "runs", "--bogus"), /unknown option '--bogus'; see 'franca runs --help'/);
    assertUsage(franca(tmp.dir, "runs", "--limt", "3"), /unknown option '--limt' \(did you mean '--limit'\?\)/);
    assertUsage(franca(tmp.dir, "runs", "--json=yes"), /option '--json' takes no value/);
    assertUsage(franca(tmp.dir, "records", "1", "--key"), /option '--key' needs a value/);
    assertUsage(franca(tmp.dir, "runs", "--log", "--fresh"), /option '--log' needs a value/);
    // '-' is a value ('--log -': the logs on stderr), not an option
    const dash = franca(tmp.dir, "runs", "--log", "-");
    assert.equal(dash.code, 0, dash.stderr);
    assertUsage(franca(tmp.dir, "frobnicate"), /unknown command 'frobnicate'; see 'franca --help'/);
    assertUsage(franca(tmp.dir, "rnus"), /unknown command 'rnus' \(did you mean 'runs'\?\)/);
    // with --json the error is JSON on stdout
    const json = franca(tmp.dir, "runs", "--bogus", "--json");
    assert.equal(json.code, 2);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, "USAGE");
    // the hint's help: the command's own lines
    const help = franca(tmp.dir, "runs", "--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, /runs \[--flow f\] \[--status s\] \[--limit n\]/);
    assert.match(help.stdout, /runs show <run>/);
    assert.doesNotMatch(help.stdout, /store migrate/);
  });

  it("runs that find nothing say what is true; an unknown flow or target is named as such", () => {
    using tmp = tempDir();
    hubWithRun(tmp.dir);
    assertUsage(franca(tmp.dir, "runs", "--flow", "nope"), /unknown flow 'nope' \(flows: customers\)/);
    assertUsage(
      franca(tmp.dir, "runs", "--flow", "custmers"),
      /unknown flow 'custmers' \(did you mean 'customers'\?\)/,
    );
    const none = franca(tmp.dir, "runs", "--limit", "0");
    assert.equal(none.code, 0);
    assert.doesNotMatch(none.stdout, /no runs yet/);
    assert.match(none.stdout, /no runs shown: --limit 0/);
    const failed = franca(tmp.dir, "runs", "--flow", "customers", "--status", "failed");
    assert.equal(failed.stdout.trim(), "no failed runs of flow 'customers'");
    assertUsage(
      franca(tmp.dir, "records", "1", "--target", "nope"),
      /run 1 has no target 'nope' \(its targets: erp\.Customer\)/,
    );
    const noneFailed = franca(tmp.dir, "records", "1", "--status", "failed");
    assert.equal(noneFailed.stdout.trim(), "no records of run 1 match --status failed");
    assertUsage(
      franca(tmp.dir, "records", "1", "--key", "1", "--offset", "1"),
      /--offset pages a run's records: with --key, every outcome of each key is shown/,
    );
    const noKey = franca(tmp.dir, "records", "1", "--key", "INV-9");
    assert.match(noKey.stdout, /no records of run 1 match --key INV-9 \(a record that failed before its mapping/);
  });

  it("a ledger page that is not the last says how many rows there are and how to see the next", () => {
    using tmp = tempDir();
    hubWithRun(tmp.dir, 250);
    const first = franca(tmp.dir, "records", "1");
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /\nrows 1–100 of 250; next page: franca records 1 --offset 100\n$/);
    const second = franca(tmp.dir, "records", "1", "--status", "loaded", "--limit", "100", "--offset", "100");
    assert.match(
      second.stdout,
      /rows 101–200 of 249; next page: franca records 1 --status loaded --limit 100 --offset 200/,
    );
    const last = franca(tmp.dir, "records", "1", "--offset", "200");
    assert.doesNotMatch(last.stdout, /next page/);
    const past = franca(tmp.dir, "records", "1", "--offset", "900");
    assert.equal(past.stdout.trim(), "no records of run 1 at --offset 900: it has 250 records");
  });

  it("run summaries count in the singular for one, and say nothing was staged when a run stopped first", () => {
    using tmp = tempDir();
    driftedAfterFirstRun(tmp.dir);
    const stopped = franca(tmp.dir, "run", "customers");
    assert.equal(stopped.code, 1, stopped.stderr);
    assert.doesNotMatch(stopped.stdout, /extracted 0 records in 0 chunks/);
    assert.match(stopped.stdout, /nothing staged: the run stopped before it recorded its first chunk/);
    const accepted = franca(tmp.dir, "resume", "2", "--accept-drift");
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(accepted.stdout, /extracted 1 record in 1 chunk · canonical 1/);
  });

  it("a target that refuses once is '1 refusal'", () => {
    using tmp = tempDir();
    writeCustomersConfig(tmp.dir);
    createCustomerSource(join(tmp.dir, "crm.db"), { rows: 5 });
    // the table is there (a run's start checks it), but lacks a column the mapping writes: every write is refused
    createClientsTarget(join(tmp.dir, "erp.db")).exec("ALTER TABLE clients DROP COLUMN mail");
    const run = franca(tmp.dir, "run", "customers");
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /error SYSTEM_ERROR \(system erp\): cannot write table 'clients'/);
    assert.match(run.stdout, /\n {2}erp: 1 refusal\n/);
  });

  it("next steps point at the ledger's statuses that hold records, else at the run's error", () => {
    const run: RunRecord = {
      id: 7,
      flow: "customers",
      kind: "flow",
      trigger: "cli",
      status: "failed",
      targets: ["erp.Customer"],
      startedAt: 0,
      endedAt: 1,
      extractDone: false,
      error: { code: "SYSTEM_ERROR", message: "no such table: clients", errorClass: "permanent" },
      stats: {},
    };
    const counts = (quarantined: number, failed: number): RunCounts => ({
      chunks: 1,
      extracted: 5,
      canonical: 5 - quarantined,
      quarantined,
      failed: 0,
      targets: { "erp.Customer": { loaded: 0, unchanged: 0, quarantined: 0, failed } },
    });
    const none = nextSteps(run, "store.db", counts(0, 0));
    assert.doesNotMatch(none, /franca records/);
    assert.match(none, /see why: the run's error above \(SYSTEM_ERROR\)\n {2}no record was quarantined or failed/);
    assert.match(none, /continue: franca resume 7/);
    // a run its error stopped: the error is why, whatever records it quarantined besides
    const failedOnly = nextSteps(run, "store.db", counts(0, 3));
    assert.match(
      failedOnly,
      /see why: the run's error above \(SYSTEM_ERROR\)\n {2}records: franca records 7 --status failed\n/,
    );
    assert.doesNotMatch(failedOnly, /--status quarantined/);
    assert.match(
      nextSteps(run, "store.db", counts(2, 3)),
      /records: franca records 7 --status quarantined {3}\(or --status failed\)/,
    );
    // a partial run (no error): its records are why
    const partial = nextSteps({ ...run, status: "partial", error: undefined }, "store.db", counts(2, 0));
    assert.match(partial, /see why: franca records 7 --status quarantined$/);
    // the run's error names the system at fault when its message does not
    assert.match(
      describeRun({ ...run, error: { ...(run.error as RunError), system: "erp" } }, counts(0, 3)),
      /error SYSTEM_ERROR \(system erp\): no such table: clients/,
    );
  });

  it("init lists every file it writes and names package.json after its folder", () => {
    using tmp = tempDir();
    const dir = join(tmp.dir, "Acme Sales");
    mkdirSync(dir);
    writeFileSync(join(dir, "README.md"), "mine\n");
    const result = franca(tmp.dir, "init", "Acme Sales");
    assert.equal(result.code, 0, result.stderr);
    for (const file of ["franca.config.ts", "data/customers.csv", "package.json"])
      assert.match(result.stdout, new RegExp(`\\n {2}${file.replace(".", "\\.")}\\n`));
    assert.match(result.stdout, /kept as they were: README\.md/);
    assert.equal(readFileSync(join(dir, "README.md"), "utf8"), "mine\n");
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name: string };
    assert.equal(manifest.name, "acme-sales");
    assert.match(result.stdout, /next: cd 'Acme Sales' && npm install && npx franca run customers/);
  });

  it("a configuration that does not parse is reported with its file, line and column", () => {
    using tmp = tempDir();
    const config = join(tmp.dir, "franca.config.ts");
    writeFileSync(config, `import { defineHub } from ${JSON.stringify(api)};\nconst = 5;\nexport default defineHub;\n`);
    const syntax = franca(tmp.dir, "check");
    assert.equal(syntax.code, 2);
    assert.ok(
      syntax.stderr.includes(`CONFIG_INVALID: cannot load ${config}: line 2, column 7: Unexpected token`),
      syntax.stderr,
    );
    writeFileSync(config, `import { defineHub } from ${JSON.stringify(api)};\nconst hub = {\n  flows: [],\n`);
    const unfinished = franca(tmp.dir, "check");
    assert.equal(unfinished.code, 2);
    assert.ok(
      unfinished.stderr.includes(`cannot load ${config}: line 3: Unexpected token \`<eof>\``),
      unfinished.stderr,
    );
    writeFileSync(join(tmp.dir, "helper.ts"), "export const x = ;\n");
    writeFileSync(config, `import { x } from "./helper.ts";\nexport default x;\n`);
    const imported = franca(tmp.dir, "check");
    assert.ok(
      imported.stderr.includes(`cannot load ${config}: in ${join(tmp.dir, "helper.ts")}, line 1, column 18:`),
      imported.stderr,
    );
  });
});

/** Child process of the PostgreSQL crash test: runs (or continues) the flow once, then exits with the run's exit code. */
import { Engine } from "../../src/engine/engine.ts";
import { type PgCrashTarget, pgCrashHub } from "./pg-crash-hub.ts";

const dir = process.env.FRANCA_CRASH_DIR as string;
const schema = process.env.FRANCA_CRASH_SCHEMA as string;
const table = process.env.FRANCA_CRASH_TABLE as PgCrashTarget;
const engine = await Engine.open({ hub: pgCrashHub(schema, table), baseDir: dir });
const summary = await engine.run("items", { trigger: "crash-test" });
await engine.close();
// A run that fails on its own (not killed) says why, for the test's output.
if (summary.exitCode !== 0) console.error(JSON.stringify(summary, null, 2));
process.exitCode = summary.exitCode;

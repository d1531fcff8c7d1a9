/**
 * Child process of the crash tests of a PostgreSQL source: runs (or continues) the flow once, into the PostgreSQL table
 * FRANCA_CRASH_TABLE or, with FRANCA_CRASH_MARIA, into that MariaDB database's `dst`; then exits with the run's exit
 * code.
 */
import { Engine } from "../../src/engine/engine.ts";
import { type PgCrashTarget, pgCrashHub } from "./pg-crash-hub.ts";

const dir = process.env.FRANCA_CRASH_DIR as string;
const schema = process.env.FRANCA_CRASH_SCHEMA as string;
const maria = process.env.FRANCA_CRASH_MARIA;
const table = maria === undefined ? (process.env.FRANCA_CRASH_TABLE as PgCrashTarget) : { maria };
const engine = await Engine.open({ hub: pgCrashHub(schema, table), baseDir: dir });
const summary = await engine.run("items", { trigger: "crash-test" });
await engine.close();
// A run that fails on its own (not killed) says why, for the test's output.
if (summary.exitCode !== 0) console.error(JSON.stringify(summary, null, 2));
process.exitCode = summary.exitCode;

/** Child process of the crash test: runs (or continues) the flow once, then exits with the run's exit code. */
import { Engine } from "../../src/engine/engine.ts";
import { crashHub } from "./crash-hub.ts";

const dir = process.env.FRANCA_CRASH_DIR as string;
const engine = await Engine.open({ hub: crashHub(dir), baseDir: dir });
const summary = await engine.run("customers", { trigger: "crash-test" });
await engine.close();
process.exitCode = summary.exitCode;

import type { Cli } from "../context.ts";
import { duration, table } from "../output.ts";

/** `franca check`: the configuration is valid (it loaded), each flow passes its local checks, each system answers. */
export async function checkCommand(cli: Cli): Promise<number> {
  const { engine, hub, file } = await cli.open();
  const problems: string[] = [];
  for (const flow of hub.flows.values()) {
    try {
      engine.preflight(flow);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const health = await engine.health();
  const ok = problems.length === 0 && health.every((item) => item.ok);
  if (cli.values.json === true) {
    cli.printJson({ ok, config: file, flows: [...hub.flows.keys()], problems, systems: health });
    return ok ? 0 : 1;
  }
  cli.print(
    `configuration ${file}: ${hub.systems.size} systems, ${hub.entities.size} entities, ${hub.flows.size} flows, ${hub.lookups.size} lookups`,
  );
  for (const problem of problems) cli.print(problem);
  cli.print(
    table(
      health.map((item) => [
        item.system,
        item.type,
        item.owner ?? "",
        item.ok ? "ok" : "DOWN",
        duration(item.latencyMs),
        item.message ?? "",
      ]),
      ["system", "type", "owner", "health", "latency", "message"],
    ),
  );
  return ok ? 0 : 1;
}

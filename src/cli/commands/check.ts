import type { Cli } from "../context.ts";
import { duration, table } from "../output.ts";

/**
 * `franca check`: the configuration is valid (it loaded), each system passes its local checks (files exist, URLs
 * parse), each system that passed them answers, and each flow's tables, in systems that answer, have the key and
 * cursor columns its bindings name. A system with a problem is not contacted: its health call would
 * act on the setting found wrong (open, and so create, a SQLite file that is not there; speak PostgreSQL to another
 * server). Exit code 2 for a problem in the configuration, 1 for a system that does not answer, 0 otherwise.
 */
export async function checkCommand(cli: Cli): Promise<number> {
  const { engine, hub, file } = await cli.open();
  const issues = engine.systemIssues();
  const problems = [...issues.values()].flat();
  const checked = [...hub.systems.keys()].filter((name) => !issues.has(name));
  const health = await engine.health(checked);
  const down = health.filter((item) => !item.ok);
  // the bindings of each flow whose systems all answer, against their tables: key and cursor columns there
  problems.push(...(await engine.bindingIssues(new Set(health.filter((item) => item.ok).map((item) => item.system)))));
  const code = problems.length > 0 ? 2 : down.length > 0 ? 1 : 0;
  if (cli.values.json === true) {
    cli.printJson({
      ok: code === 0,
      config: file,
      flows: [...hub.flows.keys()],
      problems,
      systems: health,
      notChecked: [...issues.keys()],
    });
    return code;
  }
  cli.print(
    `configuration ${file}: ${hub.systems.size} systems, ${hub.entities.size} entities, ${hub.flows.size} flows, ${hub.lookups.size} lookups`,
  );
  for (const problem of problems) cli.print(`${problem.code} ${problem.setting}: ${problem.message}`);
  const rows = [...hub.systems.values()].map((system) => {
    const item = health.find((entry) => entry.system === system.name);
    if (item === undefined) return [system.name, system.type, system.owner ?? "", "not checked", "", "see above"];
    return [
      item.system,
      item.type,
      item.owner ?? "",
      item.ok ? "ok" : "DOWN",
      duration(item.latencyMs),
      item.message ?? "",
    ];
  });
  cli.print(table(rows, ["system", "type", "owner", "health", "latency", "message"]));
  return code;
}

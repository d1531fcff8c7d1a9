import { isDriver } from "../connectors/types.ts";
import { ErrorCode } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import { type ConfigIssue, configIssuesError } from "../core/hub.ts";
import type { System } from "../core/system.ts";

/** Local checks of one system (files exist, URLs parse), no network; each issue names its setting. */
export function systemIssues(system: System, baseDir: string): ConfigIssue[] {
  const driver = system.driver as unknown;
  if (!isDriver(driver) || driver.preflight === undefined) return [];
  return driver.preflight(system, { baseDir }).map((issue) => ({
    code: ErrorCode.ConfigUnreachable,
    setting: `systems.${system.name}.${issue.setting}`,
    message: issue.message,
  }));
}

/**
 * Local checks of every system a flow uses. A problem stops the flow before anything is written, the store
 * included, with the setting named.
 */
export function preflight(flow: Flow, baseDir: string): void {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const binding of [flow.from, ...flow.to]) {
    const system = binding.system;
    if (seen.has(system.name)) continue;
    seen.add(system.name);
    issues.push(...systemIssues(system, baseDir));
  }
  if (issues.length > 0) throw configIssuesError(issues);
}

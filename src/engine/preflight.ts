import { isDriver } from "../connectors/types.ts";
import { ErrorCode } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import { type ConfigIssue, configIssuesError } from "../core/hub.ts";

/**
 * Local checks of every system a flow uses (files exist, URLs parse), no network. A problem stops the flow before
 * anything is written, the store included, with the setting named.
 */
export function preflight(flow: Flow, baseDir: string): void {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const binding of [flow.from, ...flow.to]) {
    const system = binding.system;
    if (seen.has(system.name)) continue;
    seen.add(system.name);
    const driver = system.driver as unknown;
    if (!isDriver(driver) || driver.preflight === undefined) continue;
    for (const issue of driver.preflight(system, { baseDir })) {
      issues.push({
        code: ErrorCode.ConfigUnreachable,
        setting: `systems.${system.name}.${issue.setting}`,
        message: issue.message,
      });
    }
  }
  if (issues.length > 0) throw configIssuesError(issues);
}

import { type Connection, isDriver } from "../connectors/types.ts";
import { ErrorCode } from "../core/errors.ts";
import type { Flow } from "../core/flow.ts";
import { type ConfigIssue, configIssuesError } from "../core/hub.ts";
import { didYouMean } from "../core/suggest.ts";
import type { System } from "../core/system.ts";
import { classify } from "./classify.ts";

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

/**
 * Each binding of `flow` against its system's relation (`Connection.columns`): a key or cursor column the table or
 * query does not have is a problem of that setting, found before anything is written. `unreadable`: what to do when
 * the relation cannot be read — report it (`franca check`), or, at a run's start, report it only when the system
 * answered (a table that is not there, a login refused) and skip it when it did not (down for a moment, which the
 * run's policy retries); a query binding, whose read is the user's query, is not run at a run's start just to look.
 * `scope`: the bindings a run uses (a replay reads no source; a run loads the targets it started with), every one by
 * default.
 */
export async function columnIssues(
  flow: Flow,
  connectionOf: (system: System) => Connection,
  unreadable: "report" | "skip",
  scope: { source: boolean; targets?: readonly string[] } = { source: true },
): Promise<ConfigIssue[]> {
  const base = `flows.${flow.name}`;
  const bindings = [
    ...(scope.source ? [{ binding: flow.from, setting: `${base}.from`, source: true }] : []),
    ...flow.to
      .map((binding, index) => ({ binding, setting: `${base}.to[${index}]`, source: false }))
      .filter(({ binding }) => scope.targets === undefined || scope.targets.includes(binding.name)),
  ];
  const found = await Promise.all(
    bindings.map(async ({ binding, setting, source }): Promise<ConfigIssue[]> => {
      const connection = connectionOf(binding.system);
      const relation = binding.options.query !== undefined ? "query" : "table";
      if (connection.columns === undefined || (unreadable === "skip" && relation === "query")) return [];
      let columns: { names: string[]; caseSensitive: boolean };
      try {
        // a run's start asks for a moment only: a system that does not answer is the run's to meet, under its policy
        const timeoutMs = binding.system.limits.timeoutMs ?? 10_000;
        columns = await connection.columns(
          binding.options,
          AbortSignal.timeout(unreadable === "skip" ? Math.min(timeoutMs, 3000) : timeoutMs),
        );
      } catch (error) {
        // At a run's start, a system that does not answer (a timeout, a refused connection) is the run's to meet under
        // its policy; one that answers that the table is not there, or refuses the login, will not do better later:
        // the run stops before anything is written, naming the setting.
        if (unreadable === "skip" && classify(error, binding.system.name).transient) return [];
        return [
          { code: ErrorCode.ConfigUnreachable, setting: `${setting}.${relation}`, message: (error as Error).message },
        ];
      }
      const name = (column: string) => (columns.caseSensitive ? column : column.toLowerCase());
      const has = new Set(columns.names.map(name));
      const named = [
        ...binding.key.map((column) => ({ column, field: "key" })),
        ...(source && binding.cursor !== undefined ? [{ column: binding.cursor, field: "cursor" }] : []),
      ];
      const where = relation === "query" ? "the query's columns" : `table ${String(binding.options.table)}`;
      return named
        .filter(({ column }) => !has.has(name(column)))
        .map(({ column, field }) => ({
          code: ErrorCode.ConfigInvalid,
          setting: `${setting}.${field}`,
          message: `column '${column}' is not in ${where}${didYouMean(column, columns.names)} (its columns: ${columns.names.join(", ")})`,
        }));
    }),
  );
  return found.flat();
}

import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { normalizeKeyInput } from "../../core/key.ts";
import { type RecordStatus, recordStatuses } from "../../core/record.ts";
import { didYouMean } from "../../core/suggest.ts";
import type { RecordQuery, Store } from "../../store/types.ts";
import { type Cli, usageError, wholeNumber } from "../context.ts";
import { count, plural, table } from "../output.ts";

/** Rows read past a page (or before an offset) to say how many there are; beyond them, "at least". */
const countAhead = 10_000;

/** `franca records <run> [--status s] [--key k] [--target t] [--limit n] [--offset n]`: the ledger of one run. */
export async function recordsCommand(cli: Cli): Promise<number> {
  const id = Number(cli.positionals[1]);
  if (!Number.isInteger(id) || id <= 0) {
    throw usageError(
      "usage: franca records <run-id> [--status loaded|unchanged|quarantined|failed] [--key <key>] [--target <target>] [--limit <n>] [--offset <n>]",
    );
  }
  // a key's outcomes are one per target: every one is shown, and an offset would page each key's on its own
  if (cli.values.key !== undefined && cli.values.offset !== undefined)
    throw usageError("--offset pages a run's records: with --key, every outcome of each key is shown");
  const status = cli.values.status;
  if (status !== undefined && !recordStatuses.includes(status as RecordStatus)) {
    throw usageError(`--status must be one of ${recordStatuses.join(", ")}${didYouMean(status, recordStatuses)}`);
  }
  const { engine } = await cli.open();
  const run = await engine.store.getRun(id);
  if (run === undefined) throw new FrancaError(ErrorCode.RunNotFound, `run ${id} does not exist`);
  const target = cli.values.target;
  if (target !== undefined && !run.targets.includes(target))
    throw usageError(
      `run ${id} has no target '${target}'${didYouMean(target, run.targets)} (its targets: ${run.targets.join(", ") || "none"})`,
    );
  const limit = wholeNumber(cli.values, "limit") ?? 100;
  const offset = wholeNumber(cli.values, "offset") ?? 0;
  const query: RecordQuery & { limit: number; offset: number } = {
    ...(status === undefined ? {} : { status: status as RecordStatus }),
    ...(target === undefined ? {} : { target }),
    limit,
    offset,
  };
  const keys = cli.values.key ?? [];
  const records =
    keys.length === 0
      ? await engine.store.records(id, query)
      : (
          await Promise.all(keys.map((key) => engine.store.records(id, { ...query, key: normalizeKeyInput(key) })))
        ).flat();
  if (cli.values.json === true) {
    cli.printJson(records);
    return 0;
  }
  const filters = [
    status === undefined ? "" : ` --status ${status}`,
    target === undefined ? "" : ` --target ${target}`,
    ...keys.map((key) => ` --key ${key}`),
  ].join("");
  if (records.length === 0) {
    cli.print(
      keys.length === 0 || limit === 0
        ? await noRecords(engine.store, id, query, filters)
        : // a record that failed before it had a canonical key (its mapping, a lookup) is filed by its source id
          `no records of run ${id} match${filters} (a record that failed before its mapping gave it a key is filed under its source id: --key <source id>)`,
    );
    return 0;
  }
  cli.print(
    table(
      records.map((record) => [
        record.key,
        record.target ?? "(transform)",
        record.status,
        record.attempts,
        record.code ?? "",
        record.path ?? "",
        record.targetId ?? "",
        (record.message ?? "").slice(0, 120),
      ]),
      ["key", "target", "status", "attempts", "code", "path", "target id", "reason"],
    ),
  );
  // a full page may have more after it (a key's rows are few: a page by key is not followed)
  if (keys.length === 0 && records.length === limit) {
    const next = offset + limit;
    const after = (await engine.store.records(id, { ...query, offset: next, limit: countAhead })).length;
    if (after > 0) {
      const total = after < countAhead ? `of ${count(next + after)}` : `of at least ${count(next + countAhead)}`;
      cli.print(
        `rows ${count(offset + 1)}–${count(next)} ${total}; next page: franca records ${id}${filters}${
          cli.values.limit === undefined ? "" : ` --limit ${limit}`
        } --offset ${next}`,
      );
    }
  }
  return 0;
}

/** What is true when a page of the ledger is empty: --limit 0, an offset past the rows that match, or none match. */
async function noRecords(
  store: Store,
  id: number,
  query: RecordQuery & { limit: number; offset: number },
  filters: string,
): Promise<string> {
  if (query.limit === 0) return "no records shown: --limit 0";
  const upTo = Math.min(query.offset, countAhead);
  const before = upTo === 0 ? 0 : (await store.records(id, { ...query, offset: 0, limit: upTo })).length;
  if (before === 0) return `no records of run ${id} match${filters === "" ? " (its ledger is empty)" : filters}`;
  const how = before < upTo || upTo === query.offset ? plural(before, "record") : `at least ${count(before)} records`;
  return `no records of run ${id} at --offset ${count(query.offset)}: it has ${how}${filters === "" ? "" : ` matching${filters}`}`;
}

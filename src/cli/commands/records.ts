import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { normalizeKeyInput } from "../../core/key.ts";
import { type RecordStatus, recordStatuses } from "../../core/record.ts";
import { type Cli, usageError } from "../context.ts";
import { table } from "../output.ts";

/** `franca records <run> [--status s] [--key k] [--target t] [--limit n] [--offset n]`: the ledger of one run. */
export async function recordsCommand(cli: Cli): Promise<number> {
  const id = Number(cli.positionals[1]);
  if (!Number.isInteger(id) || id <= 0) {
    throw usageError(
      "usage: franca records <run-id> [--status loaded|unchanged|quarantined|failed] [--key <key>] [--target <target>] [--limit <n>]",
    );
  }
  const status = cli.values.status;
  if (status !== undefined && !recordStatuses.includes(status as RecordStatus)) {
    throw usageError(`--status must be one of ${recordStatuses.join(", ")}`);
  }
  const { engine } = await cli.open();
  if ((await engine.store.getRun(id)) === undefined)
    throw new FrancaError(ErrorCode.RunNotFound, `run ${id} does not exist`);
  const query = {
    ...(status === undefined ? {} : { status: status as RecordStatus }),
    ...(cli.values.target === undefined ? {} : { target: cli.values.target }),
    limit: Number(cli.values.limit ?? 100),
    offset: Number(cli.values.offset ?? 0),
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
  if (records.length === 0) {
    cli.print("no records match");
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
  return 0;
}

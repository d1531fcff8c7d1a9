import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ErrorCode, FrancaError } from "../../core/errors.ts";
import { checkCompatibility } from "../../core/schema-compat.ts";
import { entityJsonSchema } from "../../core/schema-export.ts";
import { type Cli, usageError } from "../context.ts";

/**
 * `franca schema [entity] [--out dir]` prints (or writes) entities as JSON Schema;
 * `franca schema check <old.json>` compares an earlier export with the entity's current schema.
 */
export async function schemaCommand(cli: Cli): Promise<number> {
  const { hub } = await cli.open();
  if (cli.positionals[1] === "check") {
    const file = cli.positionals[2];
    if (file === undefined) throw usageError("usage: franca schema check <exported-schema.json>");
    const before = JSON.parse(readFileSync(resolve(cli.cwd, file), "utf8")) as Record<string, unknown>;
    const entity = hub.entities.get(String(before.title));
    if (entity === undefined)
      throw new FrancaError(
        ErrorCode.Usage,
        `${file} describes entity '${String(before.title)}', which the hub does not declare`,
      );
    const result = checkCompatibility(before, entityJsonSchema(entity));
    if (cli.values.json === true) cli.printJson(result);
    else {
      cli.print(
        `${entity.name} v${String(before["x-franca-version"])} → v${entity.version}: ${result.compatible ? "compatible" : "BREAKING"}`,
      );
      for (const change of result.changes)
        cli.print(`  ${change.breaking ? "✗" : "✓"} ${change.path || "/"} ${change.change}`);
      if (result.versionTooLow)
        cli.print(`  the breaking change needs a version above ${String(before["x-franca-version"])}`);
    }
    return result.compatible || !result.versionTooLow ? 0 : 1;
  }
  const name = cli.positionals[1];
  const entities = name === undefined ? [...hub.entities.values()] : [hub.entities.get(name)];
  if (entities.some((item) => item === undefined))
    throw usageError(`unknown entity '${name}' (entities: ${[...hub.entities.keys()].join(", ")})`);
  const schemas = entities.map((item) => entityJsonSchema(item as NonNullable<typeof item>));
  if (cli.values.out !== undefined) {
    const dir = resolve(cli.cwd, cli.values.out);
    mkdirSync(dir, { recursive: true });
    for (const schema of schemas) {
      const path = join(dir, `${String(schema.title)}.v${String(schema["x-franca-version"])}.json`);
      writeFileSync(path, `${JSON.stringify(schema, null, 2)}\n`);
      cli.print(`wrote ${path}`);
    }
    return 0;
  }
  cli.printJson(schemas.length === 1 ? schemas[0] : schemas);
  return 0;
}

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { checkCompatibility } from "../../core/schema-compat.ts";
import { entityJsonSchema } from "../../core/schema-export.ts";
import { didYouMean } from "../../core/suggest.ts";
import { type Cli, usageError } from "../context.ts";

/**
 * `franca schema [entity] [--out dir]` prints (or writes) entities as JSON Schema;
 * `franca schema check <old.json>` compares an earlier export with the entity's current schema.
 */
export async function schemaCommand(cli: Cli): Promise<number> {
  if (cli.positionals[1] === "check") {
    const file = cli.positionals[2];
    if (file === undefined) throw usageError("usage: franca schema check <exported-schema.json>");
    const before = readExport(resolve(cli.cwd, file), file);
    const { hub } = await cli.open();
    const entity = hub.entities.get(before.title);
    if (entity === undefined)
      throw usageError(
        `${file} describes entity '${before.title}', which the hub does not declare${didYouMean(before.title, hub.entities.keys())} (entities: ${[...hub.entities.keys()].join(", ") || "none"})`,
      );
    const result = checkCompatibility(before, entityJsonSchema(entity));
    if (cli.values.json === true) cli.printJson(result);
    else {
      cli.print(
        `${entity.name} v${String(before["x-franca-version"] ?? 0)} → v${entity.version}: ${result.compatible ? "compatible" : "BREAKING"}`,
      );
      for (const change of result.changes)
        cli.print(`  ${change.breaking ? "✗" : "✓"} ${change.path || "/"} ${change.change}`);
      if (result.versionTooLow)
        cli.print(`  the breaking change needs a version above ${String(before["x-franca-version"] ?? 0)}`);
    }
    return result.compatible || !result.versionTooLow ? 0 : 1;
  }
  const { hub } = await cli.open();
  const name = cli.positionals[1];
  const entities = name === undefined ? [...hub.entities.values()] : [hub.entities.get(name)];
  if (entities.some((item) => item === undefined))
    throw usageError(
      `unknown entity '${name}'${didYouMean(String(name), hub.entities.keys())} (entities: ${[...hub.entities.keys()].join(", ")})`,
    );
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

/**
 * An entity's schema as `franca schema` exported it: JSON whose `title` names the entity and `x-franca-version` its
 * version. Each way a file can fail to be one (missing, unreadable, not JSON, another JSON) is a usage error naming it.
 */
function readExport(path: string, given: string): Record<string, unknown> & { title: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (error as Error).message;
    throw usageError(`cannot read ${given} (${path}): ${why}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw usageError(`${given} is not JSON: ${(error as Error).message.replace(/\s+/g, " ")}`);
  }
  const schema = value as Record<string, unknown> | null;
  if (typeof schema !== "object" || schema === null || Array.isArray(schema) || typeof schema.title !== "string")
    // an export without "x-franca-version" (an older one, or written by hand) is version 0, as schema-compat reads it
    throw usageError(
      `${given} is not an entity schema exported by 'franca schema' (it needs a "title" naming the entity): export one with 'franca schema <entity> --out <dir>'`,
    );
  return schema as Record<string, unknown> & { title: string };
}

import type { TSchema } from "typebox";
import { Compile } from "typebox/compile";
import { didYouMean, notKnownSetting, shown } from "../core/suggest.ts";
import type { SettingIssue } from "../core/system.ts";

interface SchemaError {
  keyword: string;
  instancePath: string;
  message: string;
  params?: Record<string, unknown>;
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  anyOf?: SchemaNode[];
}

/**
 * The settings a schema knows in the object at `path` (`/pagination`): its properties, or those of every object
 * branch of a union there; none where the path leads nowhere known.
 */
function settingsAt(schema: TSchema, path: string): string[] {
  let nodes: SchemaNode[] = [schema as SchemaNode];
  for (const part of path.split("/").slice(1)) {
    nodes = nodes
      .flatMap((node) => [node, ...(node.anyOf ?? [])])
      .flatMap((node) => (node.properties?.[part] === undefined ? [] : [node.properties[part] as SchemaNode]));
  }
  return nodes.flatMap((node) => [node, ...(node.anyOf ?? [])]).flatMap((node) => Object.keys(node.properties ?? {}));
}

/**
 * A type error's message with the value it got: `must be string, got 5`; for a setting that is there but undefined
 * (`baseUrl: process.env.TAX_URL` with the variable unset), says so, since "must be string" alone does not.
 */
function gotMessage(message: string, settings: unknown, path: string): string {
  let value: unknown = settings;
  for (const part of path === "" ? [] : path.split(".")) {
    value = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[part] : undefined;
  }
  if (value === undefined) return `${message}, got undefined (an environment variable it reads that is not set?)`;
  return `${message}, got ${shown(value)}`;
}

/**
 * Compiles a connector's settings schema into a checker that names each bad setting by its path
 * (`pagination.style`), including settings that are not known at all, so that a typo never goes unnoticed.
 */
export function settingsChecker(schema: TSchema): (value: unknown) => SettingIssue[] {
  const validator = Compile(schema);
  return (value) => {
    if (validator.Check(value)) return [];
    const issues: SettingIssue[] = [];
    const errors = validator.Errors(value) as SchemaError[];
    // A union of literals reports one "const" error per branch and then "anyOf": fold them into one message.
    const allowed = new Map<string, unknown[]>();
    for (const error of errors) {
      if (error.keyword === "const") {
        allowed.set(error.instancePath, [...(allowed.get(error.instancePath) ?? []), error.params?.allowedValue]);
      }
    }
    for (const error of errors) {
      if (error.keyword === "boolean") continue; // duplicate of the additionalProperties error below
      if (error.keyword === "const" && allowed.has(error.instancePath)) continue;
      const base = error.instancePath.replace(/^\//, "").replaceAll("/", ".");
      const choices = error.keyword === "anyOf" ? allowed.get(error.instancePath) : undefined;
      if (choices !== undefined) {
        issues.push({
          setting: base,
          message: `must be one of ${choices.map((item) => JSON.stringify(item)).join(", ")}`,
        });
        continue;
      }
      const unknown = error.params?.additionalProperties;
      if (Array.isArray(unknown)) {
        for (const name of unknown) {
          issues.push({
            setting: base === "" ? String(name) : `${base}.${String(name)}`,
            message: `${notKnownSetting}${didYouMean(String(name), settingsAt(schema, error.instancePath))}`,
          });
        }
      } else if (error.keyword === "required" && Array.isArray(error.params?.requiredProperties)) {
        for (const name of error.params.requiredProperties as string[]) {
          issues.push({ setting: base === "" ? name : `${base}.${name}`, message: "is required" });
        }
      } else {
        issues.push({ setting: base === "" ? "(settings)" : base, message: gotMessage(error.message, value, base) });
      }
    }
    return issues;
  };
}

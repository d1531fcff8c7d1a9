import { Compile } from "typebox/compile";
import { compileCanonicalJson } from "./canonical-json.ts";
import type { Entity } from "./entity.ts";
import { ErrorCode, FrancaError } from "./errors.ts";
import { installFormats } from "./formats.ts";
import { contentHash } from "./hash.ts";
import { type KeyOf, keyOf } from "./key.ts";

/** What the hot path needs of an entity, compiled once per process. */
export interface CompiledEntity {
  readonly entity: Entity;
  /** Returns undefined when the value is a valid canonical record, else a VALIDATION_FAILED error with its path. */
  validate(value: unknown): FrancaError | undefined;
  /** Canonical JSON (sorted keys) of a valid record. */
  serialize(value: unknown): string;
  key: KeyOf;
  /** Canonical JSON and its content hash, in one pass. */
  fingerprint(value: unknown): { json: string; hash: string };
}

interface SchemaError {
  keyword: string;
  instancePath: string;
  message: string;
  params?: Record<string, unknown>;
}

const compiled = new WeakMap<Entity, CompiledEntity>();

/** Turns the validator's error list into one error: the first meaningful problem's path, all problems in the text. */
export function validationError(errors: readonly SchemaError[]): FrancaError {
  // "boolean: schema is false" repeats an additionalProperties error with less information; keep the informative one
  const useful = errors.filter((error) => error.keyword !== "boolean");
  const list = useful.length > 0 ? useful : errors;
  const describe = (error: SchemaError): string => {
    const extra = error.params?.additionalProperties;
    const path = error.instancePath === "" ? "/" : error.instancePath;
    return Array.isArray(extra) ? `${path} has unknown field(s) ${extra.join(", ")}` : `${path} ${error.message}`;
  };
  const first = list[0];
  const shown = list.slice(0, 5).map(describe).join("; ");
  const more = list.length > 5 ? ` (and ${list.length - 5} more)` : "";
  const path =
    first === undefined
      ? "/"
      : Array.isArray(first.params?.additionalProperties)
        ? `${first.instancePath}/${String((first.params.additionalProperties as unknown[])[0])}`
        : first.instancePath === ""
          ? "/"
          : first.instancePath;
  return new FrancaError(ErrorCode.ValidationFailed, `${shown}${more}`, { path });
}

export function compileEntity(entity: Entity): CompiledEntity {
  const cached = compiled.get(entity);
  if (cached !== undefined) return cached;
  installFormats();
  const validator = Compile(entity.schema);
  const serialize = compileCanonicalJson(entity.schema);
  const result: CompiledEntity = {
    entity,
    validate(value) {
      if (validator.Check(value)) return undefined;
      return validationError(validator.Errors(value) as SchemaError[]);
    },
    serialize,
    key: keyOf(entity.key),
    fingerprint(value) {
      const json = serialize(value);
      return { json, hash: contentHash(json) };
    },
  };
  compiled.set(entity, result);
  return result;
}

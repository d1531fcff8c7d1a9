import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { Hub } from "../core/hub.ts";

export const configFileName = "franca.config.ts";

/** The configuration file: the one given, or franca.config.ts in the current directory or the nearest parent. */
export function findConfig(explicit: string | undefined, cwd: string): string {
  if (explicit !== undefined) {
    const file = resolve(cwd, explicit);
    if (!existsSync(file))
      throw new FrancaError(ErrorCode.ConfigNotFound, `configuration file ${file} does not exist`, {
        setting: "--config",
      });
    return file;
  }
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const file = join(dir, configFileName);
    if (existsSync(file)) return file;
    if (dirname(dir) === dir) break;
  }
  throw new FrancaError(
    ErrorCode.ConfigNotFound,
    `no ${configFileName} in ${resolve(cwd)} or its parents: create one with 'franca init', or pass --config <file>`,
    { setting: "--config" },
  );
}

/** Imports the configuration and checks that its default export is a hub (defineHub already validated it). */
export async function loadHub(file: string): Promise<{ hub: Hub; baseDir: string; file: string }> {
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (error) {
    if (error instanceof FrancaError) throw error;
    const where = failedAt(error, file);
    throw new FrancaError(
      ErrorCode.ConfigInvalid,
      `cannot load ${file}: ${where === undefined ? "" : `${where}: `}${(error as Error).message}`,
      { setting: file, cause: error },
    );
  }
  const hub = module.default as Hub | undefined;
  if (hub === undefined || hub === null || (hub as { kind?: unknown }).kind !== "hub") {
    throw new FrancaError(
      ErrorCode.ConfigInvalid,
      `${file} must default-export defineHub({ systems, entities, flows })`,
      {
        setting: "export default",
      },
    );
  }
  return { hub, baseDir: dirname(file), file };
}

/** A file path from a stack's file name: a `file:` URL or a path as it is. */
function pathOf(name: string): string {
  return name.startsWith("file:") ? fileURLToPath(name) : name;
}

/**
 * Where an error met importing the configuration points: `line 3, column 7` in the configuration itself, or
 * `in <file>, line 3, column 7` in a module it imports; undefined when the error does not say. Node gives it in the
 * stack, not as properties. A syntax error (type stripping's, or V8's) starts its stack with `<file>:<line>`, the
 * source up to that line and, under it, a caret at the column (none at the end of the file). An error thrown while
 * the module ran has it in its frames, `(<url>:<line>:<column>)`: the configuration's own frame, else the first one.
 */
function failedAt(error: unknown, configFile: string): string | undefined {
  const stack = error instanceof Error && typeof error.stack === "string" ? error.stack : undefined;
  if (stack === undefined) return undefined;
  const lines = stack.split("\n");
  let found: { file: string; line: string; column?: number } | undefined;
  const head = /^((?:file:\/\/)?\/.*|[A-Za-z]:\\.*):(\d+)$/.exec(lines[0] ?? "");
  if (head !== null) {
    // the source shown may take more than the error's line: the caret is under the last one shown
    const blank = lines.indexOf("", 1);
    const shown = lines.slice(1, blank === -1 ? undefined : blank);
    const caret = shown.map((line) => /^(\s*)\^+\s*$/.exec(line)).find((match) => match !== null) ?? null;
    found = {
      file: pathOf(head[1] as string),
      line: head[2] as string,
      ...(caret === null ? {} : { column: (caret[1] as string).length + 1 }),
    };
  } else {
    const frames = [...stack.matchAll(/\(?(file:\/\/[^\s()]+):(\d+):(\d+)\)?$/gm)].map((frame) => ({
      file: pathOf(frame[1] as string),
      line: frame[2] as string,
      column: Number(frame[3]),
    }));
    found = frames.find((frame) => frame.file === configFile) ?? frames[0];
  }
  if (found === undefined) return undefined;
  const at = `line ${found.line}${found.column === undefined ? "" : `, column ${found.column}`}`;
  return found.file === configFile ? at : `in ${found.file}, ${at}`;
}

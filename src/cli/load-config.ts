import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
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
    throw new FrancaError(ErrorCode.ConfigInvalid, `cannot load ${file}: ${(error as Error).message}`, {
      setting: file,
      cause: error,
    });
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

import { constants, statSync } from "node:fs";
import { access, stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import type { SettingIssue, System } from "../../core/system.ts";
import { settingsChecker } from "../settings.ts";
import type { Connection, Driver, DriverEnv } from "../types.ts";
import { isNotFound } from "./errors.ts";
import { FileBindingOptions, FileSystemOptions, placeholderNames } from "./options.ts";
import { readFileSource } from "./read.ts";
import { completeChunks, type FileTarget, writeChunk } from "./write.ts";

const checkSystem = settingsChecker(FileSystemOptions);
const checkBinding = settingsChecker(FileBindingOptions);

/** What lookups and users' code get: the system's directory, absolute. */
export interface FileClient {
  readonly dir: string;
}

function directoryOf(system: System, env: DriverEnv): string {
  return resolve(env.baseDir, (system.options as FileSystemOptions).dir);
}

/** Checks beyond the schema. A `cursor` on a source is not seen here (only the connector settings are): see README. */
function bindingIssues(options: Partial<FileBindingOptions>, role: "source" | "target"): SettingIssue[] {
  const issues: SettingIssue[] = [];
  const { path, format, csv, encoding } = options;
  if (typeof path === "string") {
    if (isAbsolute(path)) issues.push({ setting: "path", message: "must be relative to the system's dir" });
    if (/[/\\]$/.test(path)) issues.push({ setting: "path", message: "must name a file, not a directory" });
    const placeholders = [...path.matchAll(/\{([^}]*)\}/g)].map((match) => match[1] as string);
    if (role === "source" && placeholders.length > 0) {
      issues.push({
        setting: "path",
        message: `placeholders ({run}, {date}) are for targets; a source reads one file, found {${placeholders[0]}}`,
      });
    }
    if (role === "target") {
      for (const name of placeholders) {
        if (!(placeholderNames as readonly string[]).includes(name)) {
          issues.push({ setting: "path", message: `unknown placeholder {${name}} (known: {run}, {date})` });
        }
      }
    }
  }
  if (csv === undefined || csv === null || typeof csv !== "object") return issues;
  if (format === "ndjson") {
    issues.push({ setting: "csv", message: "applies to format csv only; this binding's format is ndjson" });
    return issues;
  }
  const { delimiter, quote, columns, header, bom } = csv;
  for (const [name, value] of [
    ["delimiter", delimiter],
    ["quote", quote],
  ] as const) {
    if (value === "\n" || value === "\r") issues.push({ setting: `csv.${name}`, message: "cannot be a line break" });
  }
  if ((quote ?? '"') === (delimiter ?? ",")) {
    issues.push({ setting: "csv.quote", message: "must differ from the delimiter" });
  }
  if (Array.isArray(columns)) {
    const seen = new Set<string>();
    for (const column of columns) {
      if (seen.has(column)) issues.push({ setting: "csv.columns", message: `names '${column}' twice` });
      seen.add(column);
    }
  }
  if (role === "source" && header === false && columns === undefined) {
    issues.push({
      setting: "csv.columns",
      message: "is required when csv.header is false: it names the file's columns",
    });
  }
  if (role === "source" && header !== false && columns !== undefined) {
    issues.push({
      setting: "csv.columns",
      message: "names the columns of a file without a header line (csv.header: false); here the header names them",
    });
  }
  if (bom === true && encoding === "latin1") {
    issues.push({ setting: "csv.bom", message: "needs a Unicode encoding (utf8 or utf16le), not latin1" });
  }
  return issues;
}

function open(system: System, env: DriverEnv): Connection {
  const options = system.options as FileSystemOptions;
  const dir = directoryOf(system, env);
  const target: FileTarget = { dir, create: options.create === true, system: system.name };
  return {
    read(request) {
      return readFileSource(resolve(dir, (request.options as FileBindingOptions).path), system.name, request);
    },
    // A file is read whole every run (unchanged records are skipped downstream by their content hash).
    nextRunFrom() {
      return undefined;
    },
    write(request) {
      return writeChunk(target, request);
    },
    complete(request) {
      return completeChunks(target, request);
    },
    client(): FileClient {
      return { dir };
    },
    async health() {
      const started = performance.now();
      const result = (ok: boolean, message?: string) => ({
        ok,
        latencyMs: performance.now() - started,
        ...(message === undefined ? {} : { message }),
      });
      try {
        const found = await stat(dir);
        if (!found.isDirectory()) return result(false, `${dir} is not a directory`);
        await access(dir, constants.R_OK);
        return result(true);
      } catch (error) {
        if (isNotFound(error)) {
          return target.create
            ? result(true, `${dir} does not exist yet; it is created when a target is written`)
            : result(false, `${dir} does not exist`);
        }
        return result(false, (error as Error).message);
      }
    },
    async close() {},
  };
}

export const fileDriver: Driver = {
  type: "file",
  canRead: true,
  canWrite: true,
  incremental: false,
  validateSystem: (options) => checkSystem(options),
  validateBinding(options, role) {
    const issues = checkBinding(options);
    if (options !== null && typeof options === "object") {
      issues.push(...bindingIssues(options as Partial<FileBindingOptions>, role));
    }
    return issues;
  },
  preflight(system, env) {
    const dir = directoryOf(system, env);
    try {
      if (!statSync(dir).isDirectory()) return [{ setting: "dir", message: `${dir} is not a directory` }];
      return [];
    } catch (error) {
      if (!isNotFound(error)) return [{ setting: "dir", message: (error as Error).message }];
      if ((system.options as FileSystemOptions).create === true) return [];
      return [{ setting: "dir", message: `${dir} does not exist (set create: true to create it for targets)` }];
    }
  },
  // a CSV file's readable records carry every column of its header (a record with more or fewer is unreadable, and
  // not profiled); NDJSON documents may leave fields out
  fieldsInEveryRow: (options) => (options as Partial<FileBindingOptions>).format === "csv",
  open,
};

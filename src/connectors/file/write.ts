import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { stringify } from "csv-stringify/sync";
import type { Row } from "../../core/binding.ts";
import { FrancaError } from "../../core/errors.ts";
import type { CompleteRequest, ItemResult, WriteRequest } from "../types.ts";
import { fileError, filePermanent, isNotFound } from "./errors.ts";
import type { FileBindingOptions, FileEncoding } from "./options.ts";
import { type RawRecord, RecordSplitter } from "./read.ts";

/**
 * Exactly-once file targets. `write` stages a chunk's rows in a part file, `<dir>/.franca-parts/<target>/<run>/
 * <chunk>.part`, written to a temporary file and renamed over the part (so a chunk written again replaces its part,
 * and a crash leaves either the old part or the new one). `complete` concatenates the parts of the run's chunks, in
 * chunk order, into a temporary file beside the final one, renames it into place and removes the parts. A crash
 * anywhere before the removal leaves the parts, so completing again (after a resume has written the chunks that were
 * missing) writes the same file again: every row lands exactly once.
 *
 * Part format: one JSON text per line. NDJSON: the row. CSV: the first line is the part's columns (a JSON array),
 * then one JSON array of cell texts (or null) per row.
 */

export interface FileTarget {
  /** Absolute base directory of the system. */
  dir: string;
  create: boolean;
  system: string;
}

const partsFolder = ".franca-parts";
const manifestName = "publish.json";
const csvRowsPerWrite = 500;
const writeBufferChars = 64 * 1024;

interface Manifest {
  /** The final path, relative to dir, placeholders filled: fixed at the first attempt to complete. */
  path: string;
}

function safeName(name: string): string {
  const encoded = encodeURIComponent(name);
  return encoded.startsWith(".") ? `%2E${encoded.slice(1)}` : encoded;
}

/** Directory of a run's parts for one target. */
export function partsDirOf(dir: string, target: string, run: number): string {
  return join(dir, partsFolder, safeName(target), String(run));
}

/** Fills `{run}` and `{date}` (YYYY-MM-DD, UTC) in a target path. */
export function fillPlaceholders(path: string, run: number, now: Date): string {
  return path.replaceAll("{run}", String(run)).replaceAll("{date}", now.toISOString().slice(0, 10));
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * The text of a CSV cell: strings as they are, numbers, bigints and booleans as text, dates as ISO 8601, objects and
 * arrays as JSON; null and undefined are empty (so are functions and symbols).
 */
export function cellText(value: unknown): string | null {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "bigint":
    case "boolean":
      return String(value);
    case "object":
      if (value === null) return null;
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      return JSON.stringify(value, jsonReplacer);
    default:
      return null;
  }
}

function csvPart(rows: readonly Row[], fixed: readonly string[] | undefined): string {
  let columns: string[];
  if (fixed !== undefined) {
    columns = [...fixed];
  } else {
    const seen = new Set<string>();
    for (const row of rows) for (const key of Object.keys(row)) seen.add(key);
    columns = [...seen];
  }
  const lines = [JSON.stringify(columns)];
  for (const row of rows) {
    lines.push(JSON.stringify(columns.map((column) => (Object.hasOwn(row, column) ? cellText(row[column]) : null))));
  }
  lines.push("");
  return lines.join("\n");
}

function ndjsonPart(rows: readonly Row[]): string {
  const lines = rows.map((row) => JSON.stringify(row, jsonReplacer));
  lines.push("");
  return lines.join("\n");
}

/** Makes a rename durable (best effort: some platforms cannot sync a directory). */
async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch {
    // not supported here; the rename itself is still atomic
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Writes `data` to a temporary file, syncs it and renames it over `path`. */
async function writeAtomic(path: string, data: string, system: string): Promise<void> {
  const temp = `${path}.${process.pid}-${randomUUID().slice(0, 8)}.tmp`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, "w");
    await handle.writeFile(data, "utf8");
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw fileError(error, system, `cannot write ${path}`);
  }
  await syncDir(dirname(path));
}

/** Checks that a directory exists; creates it when `create` is set. */
export async function ensureDir(path: string, create: boolean, system: string): Promise<void> {
  try {
    const found = await stat(path);
    if (found.isDirectory()) return;
    throw filePermanent(system, `${path} is not a directory`);
  } catch (error) {
    if (error instanceof FrancaError) throw error;
    if (!isNotFound(error)) throw fileError(error, system, `cannot access ${path}`);
  }
  if (!create) throw filePermanent(system, `directory ${path} does not exist (set create: true to create it)`);
  try {
    await mkdir(path, { recursive: true });
  } catch (error) {
    throw fileError(error, system, `cannot create directory ${path}`);
  }
}

async function exists(path: string, system: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw fileError(error, system, `cannot access ${path}`);
  }
}

/** Stages one chunk's rows as its part file. Every row is accepted: a file refuses none. */
export async function writeChunk(target: FileTarget, request: WriteRequest): Promise<ItemResult[]> {
  const options = request.options as FileBindingOptions;
  if (request.items.length === 0) return [];
  await ensureDir(target.dir, target.create, target.system);
  const parent = dirname(options.path);
  // Fail at the first chunk, not at the end of the run, when the final file's directory is missing.
  if (!parent.includes("{")) await ensureDir(resolve(target.dir, parent), target.create, target.system);
  const parts = partsDirOf(target.dir, request.target, request.run);
  try {
    await mkdir(parts, { recursive: true });
  } catch (error) {
    throw fileError(error, target.system, `cannot create ${parts}`);
  }
  const rows = request.items.map((item) => item.row);
  const text = options.format === "csv" ? csvPart(rows, options.csv?.columns) : ndjsonPart(rows);
  await writeAtomic(join(parts, `${request.chunk}.part`), text, target.system);
  return request.items.map(() => ({ ok: true }));
}

/** The lines of a part file, streamed. */
async function* partLines(file: string): AsyncIterable<string> {
  const stream = createReadStream(file, { encoding: "utf8", highWaterMark: 64 * 1024 });
  const splitter = new RecordSplitter(false, ",", '"', Number.POSITIVE_INFINITY);
  const lines: RawRecord[] = [];
  try {
    for await (const chunk of stream) {
      splitter.push(chunk as string, lines);
      for (const line of lines) yield line.text;
      lines.length = 0;
    }
    splitter.end(lines);
    for (const line of lines) yield line.text;
  } finally {
    stream.destroy();
  }
}

async function partColumns(file: string): Promise<string[]> {
  for await (const line of partLines(file)) return JSON.parse(line) as string[];
  return [];
}

/** Batches text into large writes in the file's encoding. */
class TextWriter {
  readonly #handle: FileHandle;
  readonly #encoding: FileEncoding;
  #pending: string[] = [];
  #size = 0;

  constructor(handle: FileHandle, encoding: FileEncoding) {
    this.#handle = handle;
    this.#encoding = encoding;
  }

  async add(text: string): Promise<void> {
    this.#pending.push(text);
    this.#size += text.length;
    if (this.#size >= writeBufferChars) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#size === 0) return;
    const text = this.#pending.join("");
    this.#pending = [];
    this.#size = 0;
    await this.#handle.write(text, null, this.#encoding);
  }
}

/**
 * The final file's CSV columns: `csv.columns`, else every column of the parts in first-seen order (the parts in
 * chunk order, each part's columns in the order its rows first showed them).
 */
async function finalColumns(options: FileBindingOptions, files: readonly string[]): Promise<string[]> {
  if (options.csv?.columns !== undefined) return [...options.csv.columns];
  const seen = new Set<string>();
  for (const file of files) for (const column of await partColumns(file)) seen.add(column);
  return [...seen];
}

async function writeFinal(out: TextWriter, options: FileBindingOptions, files: readonly string[]): Promise<void> {
  if (options.format !== "csv") {
    for (const file of files) for await (const line of partLines(file)) await out.add(`${line}\n`);
    return;
  }
  const quote = options.csv?.quote ?? '"';
  const dialect = { delimiter: options.csv?.delimiter ?? ",", quote, escape: quote };
  const columns = await finalColumns(options, files);
  if (options.csv?.bom === true) await out.add("\uFEFF");
  if (options.csv?.header !== false) await out.add(stringify([columns], dialect));
  for (const file of files) {
    let index: number[] | undefined;
    let pending: (string | null)[][] = [];
    for await (const line of partLines(file)) {
      if (index === undefined) {
        const positions = new Map((JSON.parse(line) as string[]).map((column, i) => [column, i]));
        index = columns.map((column) => positions.get(column) ?? -1);
        continue;
      }
      const cells = JSON.parse(line) as (string | null)[];
      pending.push(index.map((i) => (i < 0 ? null : (cells[i] ?? null))));
      if (pending.length >= csvRowsPerWrite) {
        await out.add(stringify(pending, dialect));
        pending = [];
      }
    }
    if (pending.length > 0) await out.add(stringify(pending, dialect));
  }
}

/** Writes the parts into the final file through a temporary file beside it, then renames it into place. */
async function publish(
  target: FileTarget,
  options: FileBindingOptions,
  run: number,
  files: readonly string[],
  final: string,
): Promise<void> {
  // Hidden, and one per run and file: a crash leaves at most this one, which completing again overwrites.
  const temp = join(dirname(final), `.${basename(final)}.${run}.franca-tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, "w");
    const out = new TextWriter(handle, options.encoding ?? "utf8");
    await writeFinal(out, options, files);
    await out.flush();
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, final);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw fileError(error, target.system, `cannot write ${final}`);
  }
  await syncDir(dirname(final));
}

async function readManifest(path: string, system: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw fileError(error, system, `cannot read ${path}`);
  }
  const manifest = JSON.parse(text) as Manifest;
  return typeof manifest.path === "string" ? manifest : undefined;
}

/** Removes a run's parts: renamed away first (atomic), so a crash never leaves a half-deleted set of parts. */
async function removeParts(parts: string, system: string): Promise<void> {
  const trash = `${parts}.removed-${randomUUID().slice(0, 8)}`;
  try {
    await rename(parts, trash);
  } catch (error) {
    if (isNotFound(error)) return;
    throw fileError(error, system, `cannot remove ${parts}`);
  }
  await rm(trash, { recursive: true, force: true }).catch(() => undefined);
  await rmdir(dirname(parts)).catch(() => undefined); // the target's folder, when no other run has parts there
}

/** Folders of parts already published whose removal a crash interrupted. */
async function removeLeftovers(targetParts: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(targetParts);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.includes(".removed-")) await rm(join(targetParts, name), { recursive: true, force: true }).catch(() => {});
  }
}

async function completeRun(target: FileTarget, request: CompleteRequest): Promise<void> {
  const options = request.options as FileBindingOptions;
  const parts = partsDirOf(target.dir, request.target, request.run);
  await removeLeftovers(dirname(parts));
  if (!(await exists(parts, target.system))) return; // published already, or no chunk had anything to write
  const manifestPath = join(parts, manifestName);
  let manifest = await readManifest(manifestPath, target.system);
  if (manifest === undefined) {
    manifest = { path: fillPlaceholders(options.path, request.run, new Date()) };
    await writeAtomic(manifestPath, JSON.stringify(manifest), target.system);
  }
  const files: string[] = [];
  for (const chunk of request.chunks) {
    const file = join(parts, `${chunk}.part`);
    if (await exists(file, target.system)) files.push(file);
  }
  if (files.length > 0) {
    const final = resolve(target.dir, manifest.path);
    await ensureDir(dirname(final), target.create, target.system);
    await publish(target, options, request.run, files, final);
  }
  await removeParts(parts, target.system);
}

// Completions in flight, by parts folder: a retry after a timeout joins the attempt still running instead of
// writing the same file beside it.
const inFlight = new Map<string, Promise<void>>();

/**
 * Publishes a run's output: the parts of `request.chunks` in order (a chunk without a part had nothing to write)
 * into the final file, then removes the parts. No part at all: no file is created. Safe to call again.
 */
export function completeChunks(target: FileTarget, request: CompleteRequest): Promise<void> {
  const key = partsDirOf(target.dir, request.target, request.run);
  const running = inFlight.get(key);
  if (running !== undefined) return running;
  const attempt = completeRun(target, request).finally(() => inFlight.delete(key));
  inFlight.set(key, attempt);
  return attempt;
}

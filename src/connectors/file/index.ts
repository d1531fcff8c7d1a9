import type { CommonSystemSettings, System } from "../../core/system.ts";
import { defineSystem } from "../../core/system.ts";
import { type FileClient, fileDriver } from "./driver.ts";
import type { CsvOptions, FileBindingOptions, FilePosition, FileSystemOptions } from "./options.ts";

export type { CsvOptions, FileBindingOptions, FileClient, FilePosition, FileSystemOptions };
export { fileDriver };

/*
 * The file connector: CSV and NDJSON files in one directory (`dir`, relative to the configuration's directory).
 *
 * Reading (read.ts): the file is streamed and read whole at every run — there is no incremental read: `nextRunFrom`
 * is undefined and unchanged records are skipped downstream by their content hash. A `cursor` on a file source
 * binding therefore means nothing; the connector cannot see it (it gets the connector settings only), so the
 * configuration checks must refuse it. The position `{ records: n }` counts the records emitted (unreadable ones
 * included); resuming parses the file from its start again and skips n records (O(file size)). CSV values stay
 * strings. A record that cannot be parsed is yielded as `{ $error, $raw, $line }` and quarantined downstream.
 *
 * Writing (write.ts): each chunk is staged as a part file and `complete` publishes the run's parts as one file,
 * atomically, exactly once across crashes and resumes. CSV columns: `csv.columns` when set (other fields left out),
 * else every field of the run's rows in first-seen order (chunk order, then row order). A run with nothing to write
 * creates no file. A path without `{run}` or `{date}` is replaced by each run that writes something. Each write call
 * must carry a whole chunk (the connector sets no maxWriteBatch and refuses no row, so the engine never splits one).
 */

/**
 * A directory of CSV and NDJSON files: `file("drop", { dir: "data", create: true })`, bound with
 * `bind(drop, Invoice, { path: "out/invoices-{run}.csv", format: "csv" })`.
 */
export function file(
  name: string,
  settings: FileSystemOptions & CommonSystemSettings,
): System<FileBindingOptions, FileClient> {
  return defineSystem(fileDriver, name, settings as unknown as Record<string, unknown>);
}

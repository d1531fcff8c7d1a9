import { type FileHandle, open } from "node:fs/promises";
import { parse as parseCsv } from "csv-parse/sync";
import type { Row } from "../../core/binding.ts";
import type { ReadBatch, ReadRequest, UnreadableRow } from "../types.ts";
import { fileError, filePermanent, isNotFound } from "./errors.ts";
import type { FileBindingOptions, FilePosition } from "./options.ts";

/** A record longer than this (an unclosed quote swallowing the rest of a file, say) is unreadable, not kept whole. */
export const maxRecordChars = 16 * 1024 * 1024;
/** `$raw` of an unreadable record keeps at most this many characters. */
export const maxRawChars = 64 * 1024;

/** One record's text as it is in the file, without its line break, and the line it starts on (1-based). */
export interface RawRecord {
  text: string;
  line: number;
  /** Longer than `maxRecordChars`: `text` holds its beginning only. */
  tooLong: boolean;
}

const LF = 10;
const CR = 13;
const BOM = 0xfeff;
// CSV scanner states
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_SEEN = 3; // a quote inside a quoted field: closes it, or starts a doubled quote

/**
 * Cuts decoded text into records, chunk by chunk, keeping only the record in progress in memory.
 *
 * Lines (NDJSON): a record ends at every line break (LF, CRLF or CR); blank lines are skipped.
 * CSV: a line break ends a record unless it is inside a quoted field (RFC 4180). A quote opens a quoted field only
 * at the start of a field; inside one, a doubled quote is a quote and a single quote closes it. A quote followed by
 * something else than a delimiter or a line break is a broken field: it is closed there, so that the record still
 * ends at the next line break and the records after it are read normally (the field parser then reports it). Empty
 * lines are skipped. A quote never closed takes the rest of the file into one (unreadable) record.
 *
 * A byte order mark at the start of the file is skipped.
 */
export class RecordSplitter {
  readonly #csv: boolean;
  readonly #delimiter: number;
  readonly #quote: number;
  readonly #maxChars: number;
  #state = FIELD_START;
  #pieces: string[] = [];
  #length = 0;
  #tooLong = false;
  #line = 1;
  #recordLine = 1;
  #afterCR = false;
  #skipLF = false;
  #first = true;

  constructor(csv: boolean, delimiter = ",", quote = '"', maxChars = maxRecordChars) {
    this.#csv = csv;
    this.#delimiter = delimiter.charCodeAt(0);
    this.#quote = quote.charCodeAt(0);
    this.#maxChars = maxChars;
  }

  /** Appends the records that `chunk` completes to `out`. */
  push(chunk: string, out: RawRecord[]): void {
    let i = 0;
    if (this.#first) {
      this.#first = false;
      if (chunk.charCodeAt(0) === BOM) i = 1;
    }
    let start = i;
    const n = chunk.length;
    const csv = this.#csv;
    const delimiter = this.#delimiter;
    const quote = this.#quote;
    let state = this.#state;
    for (; i < n; i++) {
      const c = chunk.charCodeAt(i);
      if (c === LF && this.#afterCR) {
        // The LF of a CRLF: the line was counted at the CR; when the CR ended a record, the LF belongs to no record.
        this.#afterCR = false;
        if (this.#skipLF) {
          this.#skipLF = false;
          start = i + 1;
        }
        continue;
      }
      this.#afterCR = c === CR;
      this.#skipLF = false;
      if (c === LF || c === CR) {
        this.#line++;
        if (csv && state === QUOTED) continue;
        this.#end(chunk.slice(start, i), out);
        this.#recordLine = this.#line;
        this.#skipLF = c === CR;
        start = i + 1;
        state = FIELD_START;
        continue;
      }
      if (!csv) continue;
      switch (state) {
        case FIELD_START:
          state = c === quote ? QUOTED : c === delimiter ? FIELD_START : UNQUOTED;
          break;
        case UNQUOTED:
          if (c === delimiter) state = FIELD_START;
          break;
        case QUOTED:
          if (c === quote) state = QUOTE_SEEN;
          break;
        default:
          state = c === quote ? QUOTED : c === delimiter ? FIELD_START : UNQUOTED;
      }
    }
    this.#state = state;
    if (start < n) this.#keep(chunk.slice(start));
  }

  /** Appends the last record (one without a final line break) to `out`. */
  end(out: RawRecord[]): void {
    if (this.#pieces.length > 0 || this.#tooLong) this.#end("", out);
  }

  #keep(piece: string): void {
    if (this.#tooLong) return;
    this.#pieces.push(piece);
    this.#length += piece.length;
    if (this.#length > this.#maxChars) {
      this.#tooLong = true;
      this.#pieces = [this.#pieces.join("").slice(0, maxRawChars)];
    }
  }

  #end(tail: string, out: RawRecord[]): void {
    let text: string;
    let tooLong = this.#tooLong;
    if (tooLong) {
      text = this.#pieces[0] as string;
    } else if (this.#pieces.length === 0) {
      text = tail;
    } else {
      this.#pieces.push(tail);
      text = this.#pieces.join("");
    }
    if (!tooLong && text.length > this.#maxChars) {
      tooLong = true;
      text = text.slice(0, maxRawChars);
    }
    this.#pieces = [];
    this.#length = 0;
    this.#tooLong = false;
    const blank = this.#csv ? text.length === 0 : text.trim().length === 0;
    if (!blank || tooLong) out.push({ text, line: this.#recordLine, tooLong });
  }
}

function unreadable(error: string, record: RawRecord): UnreadableRow {
  const raw = record.text.length > maxRawChars ? `${record.text.slice(0, maxRawChars)}…` : record.text;
  return { $error: error, $raw: raw, $line: record.line };
}

function tooLongError(): string {
  return `the record is longer than ${maxRecordChars} characters (a quote that is never closed?)`;
}

/** Turns raw records into rows: one row per record, an UnreadableRow when it cannot be parsed. */
interface RowDecoder {
  /** True while the next record is a header line to consume. */
  readonly wantsHeader: boolean;
  header(record: RawRecord): void;
  rows(records: readonly RawRecord[]): Row[];
}

class JsonLines implements RowDecoder {
  readonly wantsHeader = false;

  header(): void {}

  rows(records: readonly RawRecord[]): Row[] {
    const rows: Row[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as RawRecord;
      if (record.tooLong) {
        rows[i] = unreadable(tooLongError(), record) as unknown as Row;
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(record.text);
      } catch (error) {
        rows[i] = unreadable(`invalid JSON: ${(error as Error).message}`, record) as unknown as Row;
        continue;
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
        rows[i] = unreadable(`not a JSON object (${kind})`, record) as unknown as Row;
        continue;
      }
      rows[i] = value as Row;
    }
    return rows;
  }
}

interface CsvError {
  code?: string;
  message: string;
}

class CsvRows implements RowDecoder {
  readonly #parseOptions: Record<string, unknown>;
  readonly #file: string;
  readonly #system: string;
  #names: readonly string[] | undefined;
  #plainKeys = true;

  constructor(options: FileBindingOptions, file: string, system: string) {
    const quote = options.csv?.quote ?? '"';
    this.#parseOptions = {
      delimiter: options.csv?.delimiter ?? ",",
      quote,
      escape: quote,
      record_delimiter: "\n",
      relax_column_count: true,
      skip_empty_lines: false,
      bom: false,
    };
    this.#file = file;
    this.#system = system;
    if (options.csv?.header === false) this.#setNames(options.csv.columns ?? []);
  }

  get wantsHeader(): boolean {
    return this.#names === undefined;
  }

  #setNames(names: readonly string[]): void {
    this.#names = names;
    this.#plainKeys = !names.includes("__proto__");
  }

  header(record: RawRecord): void {
    const fields = record.tooLong ? undefined : this.#parseOne(record);
    if (!Array.isArray(fields)) {
      const why = record.tooLong ? tooLongError() : (fields as CsvError).message;
      throw filePermanent(this.#system, `${this.#file}: cannot read the header line (line ${record.line}): ${why}`);
    }
    const seen = new Set<string>();
    for (const name of fields) {
      if (seen.has(name)) {
        throw filePermanent(this.#system, `${this.#file}: the header line names column '${name}' twice`);
      }
      seen.add(name);
    }
    this.#setNames(fields);
  }

  /** The fields of one record, or the parser's error. */
  #parseOne(record: RawRecord): string[] | CsvError {
    try {
      const parsed = parseCsv(record.text, this.#parseOptions) as string[][];
      if (parsed.length !== 1) return { message: `expected one record, found ${parsed.length}` };
      return parsed[0] as string[];
    } catch (error) {
      return error as CsvError;
    }
  }

  rows(records: readonly RawRecord[]): Row[] {
    // The records of a batch are parsed in one call; when that fails, one by one, so each error has its record.
    let parsed: string[][] | undefined;
    if (!records.some((record) => record.tooLong)) {
      try {
        parsed = parseCsv(records.map((record) => record.text).join("\n"), this.#parseOptions) as string[][];
        if (parsed.length !== records.length) parsed = undefined;
      } catch {
        parsed = undefined;
      }
    }
    const rows: Row[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as RawRecord;
      if (record.tooLong) {
        rows[i] = unreadable(tooLongError(), record) as unknown as Row;
        continue;
      }
      const fields = parsed === undefined ? this.#parseOne(record) : (parsed[i] as string[]);
      rows[i] = Array.isArray(fields)
        ? this.#row(fields, record)
        : (unreadable(`invalid CSV: ${csvMessage(fields)}`, record) as unknown as Row);
    }
    return rows;
  }

  #row(fields: readonly string[], record: RawRecord): Row {
    const names = this.#names as readonly string[];
    if (fields.length !== names.length) {
      return unreadable(
        `the record has ${fields.length} field${fields.length === 1 ? "" : "s"}, the header ${names.length}`,
        record,
      ) as unknown as Row;
    }
    const row: Row = {};
    if (this.#plainKeys) {
      for (let i = 0; i < names.length; i++) row[names[i] as string] = fields[i];
    } else {
      for (let i = 0; i < names.length; i++) {
        Object.defineProperty(row, names[i] as string, {
          value: fields[i],
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
    }
    return row;
  }
}

/** csv-parse's message without its line number, which counts from the record, not from the file. */
function csvMessage(error: CsvError): string {
  return error.message.replace(/ at line \d+/, "");
}

function startOf(from: unknown, system: string): number {
  if (from === undefined || from === null) return 0;
  const records = (from as Partial<FilePosition>).records;
  if (typeof from === "object" && typeof records === "number" && Number.isInteger(records) && records >= 0) {
    return records;
  }
  throw filePermanent(system, `cannot continue a file from position ${JSON.stringify(from)} (expected { records: n })`);
}

/**
 * Reads a CSV or NDJSON file as a stream, in batches of `batchSize` rows, each batch with the position
 * `{ records: n }` (records emitted so far, unreadable ones included). Resuming from a position parses the file
 * from its start again and skips that many records (O(file size); records are found without parsing their fields).
 *
 * CSV values stay strings. A record that cannot be parsed (a quote error, a wrong number of fields, an NDJSON line
 * that is not a JSON object) is yielded as an UnreadableRow with its text and line, so it is quarantined, not lost.
 */
export async function* readFileSource(file: string, system: string, request: ReadRequest): AsyncIterable<ReadBatch> {
  const options = request.options as FileBindingOptions;
  const skip = startOf(request.from, system);
  // the size of the batch being filled: request.batchSize grows over a run's first chunks (the engine's slow start)
  let batchSize = Math.max(1, request.batchSize);
  if (request.signal.aborted) return;
  let handle: FileHandle;
  try {
    handle = await open(file, "r");
  } catch (error) {
    if (isNotFound(error)) throw filePermanent(system, `file ${file} does not exist`, error);
    throw fileError(error, system, `cannot open ${file}`);
  }
  const stream = handle.createReadStream({ encoding: options.encoding ?? "utf8", highWaterMark: 64 * 1024 });
  const csv = options.format === "csv";
  const splitter = new RecordSplitter(csv, options.csv?.delimiter, options.csv?.quote);
  const decoder: RowDecoder = csv ? new CsvRows(options, file, system) : new JsonLines();
  const completed: RawRecord[] = [];
  let batch: RawRecord[] = [];
  let count = 0;

  function* take(): Iterable<ReadBatch> {
    for (const record of completed) {
      if (decoder.wantsHeader) {
        decoder.header(record);
        continue;
      }
      count++;
      if (count <= skip) continue;
      batch.push(record);
      if (batch.length >= batchSize) {
        const rows = decoder.rows(batch);
        batch = [];
        yield { rows, position: { records: count } satisfies FilePosition };
        batchSize = Math.max(1, request.batchSize);
      }
    }
    completed.length = 0;
  }

  try {
    for await (const chunk of stream) {
      splitter.push(chunk as string, completed);
      for (const item of take()) {
        yield item;
        if (request.signal.aborted) return;
      }
      if (request.signal.aborted) return;
    }
    splitter.end(completed);
    yield* take();
    if (batch.length > 0) yield { rows: decoder.rows(batch), position: { records: count } satisfies FilePosition };
  } catch (error) {
    throw fileError(error, system, `cannot read ${file}`);
  } finally {
    stream.destroy();
  }
}

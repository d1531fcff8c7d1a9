import Type, { type Static } from "typebox";

export const FileSystemOptions = Type.Object(
  {
    /** Base directory of the system's files; relative paths resolve from the configuration's directory. */
    dir: Type.String({ minLength: 1 }),
    /**
     * Create the directory (and the directories of a target's path) when they are missing. Targets only: a source
     * file must exist. Default false.
     */
    create: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FileSystemOptions = Static<typeof FileSystemOptions>;

export const CsvOptions = Type.Object(
  {
    /** Field delimiter, one character. Default ",". */
    delimiter: Type.Optional(Type.String({ minLength: 1, maxLength: 1 })),
    /** The first line names the columns (read) / a header line is written (write). Default true. */
    header: Type.Optional(Type.Boolean()),
    /**
     * Writing: the columns, in this order (other fields are left out). Reading: the names of the columns of a file
     * without a header (`header: false`).
     */
    columns: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
    /** Quote character, one character; a quote inside a quoted field is doubled. Default '"'. */
    quote: Type.Optional(Type.String({ minLength: 1, maxLength: 1 })),
    /** Writing: start the file with a byte order mark (for spreadsheet programs). A BOM is always skipped on read. */
    bom: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CsvOptions = Static<typeof CsvOptions>;

export const FileFormat = Type.Union([Type.Literal("csv"), Type.Literal("ndjson")]);
export type FileFormat = Static<typeof FileFormat>;

export const FileEncoding = Type.Union([Type.Literal("utf8"), Type.Literal("utf16le"), Type.Literal("latin1")]);
export type FileEncoding = Static<typeof FileEncoding>;

export const FileBindingOptions = Type.Object(
  {
    /**
     * File path relative to the system's `dir`. A target's path may contain `{run}` (the run id) and `{date}`
     * (YYYY-MM-DD, UTC, the day the file is published), e.g. `out/invoices-{run}.csv`.
     */
    path: Type.String({ minLength: 1 }),
    /** `csv`, or `ndjson` (one JSON object per line). */
    format: FileFormat,
    /** CSV dialect; only with format csv. */
    csv: Type.Optional(CsvOptions),
    /** Text encoding of the file. Default utf8. */
    encoding: Type.Optional(FileEncoding),
  },
  { additionalProperties: false },
);
export type FileBindingOptions = Static<typeof FileBindingOptions>;

/** Where a file source stopped: the number of records (good and unreadable) emitted so far. */
export interface FilePosition {
  records: number;
}

export const placeholderNames = ["run", "date"] as const;

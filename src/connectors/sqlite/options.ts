import Type, { type Static } from "typebox";

export const SqliteSystemOptions = Type.Object(
  {
    /** Database file; relative paths resolve from the configuration's directory. */
    file: Type.String({ minLength: 1 }),
    /** Create the file when it does not exist (targets only; a source must exist). Default false. */
    create: Type.Optional(Type.Boolean()),
    /** How long to wait for a lock held by another process, in ms. Default 5,000. */
    busyTimeoutMs: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type SqliteSystemOptions = Static<typeof SqliteSystemOptions>;

export const SqliteBindingOptions = Type.Object(
  {
    /** Table read or written. */
    table: Type.Optional(Type.String({ minLength: 1 })),
    /** A SELECT read as a subquery (sources only); keyset reads wrap it, so it must expose the key and cursor. */
    query: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);
export type SqliteBindingOptions = Static<typeof SqliteBindingOptions>;

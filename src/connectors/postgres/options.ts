import Type, { type Static } from "typebox";

export const PostgresSystemOptions = Type.Object(
  {
    /** `postgres://user:password@host:5432/database?sslmode=…`; give either this or the discrete settings below. */
    url: Type.Optional(Type.String({ minLength: 1 })),
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    user: Type.Optional(Type.String({ minLength: 1 })),
    password: Type.Optional(Type.String()),
    database: Type.Optional(Type.String({ minLength: 1 })),
    /**
     * Pooled connections held at most by this process for the system (writes, keyset reads, lookups). Default 10.
     * A COPY read holds one more, of its own, for as long as it streams.
     */
    poolSize: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Server-side limit on one statement, in ms (PostgreSQL's statement_timeout). Default: the server's. */
    statementTimeoutMs: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Shown in pg_stat_activity. Default "franca". */
    applicationName: Type.Optional(Type.String({ minLength: 1 })),
    /** Connect over TLS (certificate verified). */
    ssl: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type PostgresSystemOptions = Static<typeof PostgresSystemOptions>;

/** The discrete connection settings, exclusive with `url`. */

export const PostgresBindingOptions = Type.Object(
  {
    /** Table read or written, optionally schema-qualified: `sales.orders`. */
    table: Type.Optional(Type.String({ minLength: 1 })),
    /** A SELECT read as a subquery (sources only); keyset reads wrap it, so it must expose the key and cursor. */
    query: Type.Optional(Type.String({ minLength: 1 })),
    /**
     * Move rows with COPY (default true). A source streams one `COPY (SELECT … ORDER BY key) TO STDOUT` over a
     * connection of its own (outside `poolSize`; the system's `statementTimeoutMs` bounds the whole stream, and the
     * engine resumes from the last persisted position when it strikes); a target copies each write into a temporary
     * staging table, then upserts from it. `false`: keyset pages of SELECT … LIMIT, multi-row INSERTs.
     */
    copy: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type PostgresBindingOptions = Static<typeof PostgresBindingOptions>;

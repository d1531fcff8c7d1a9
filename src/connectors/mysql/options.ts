import Type, { type Static } from "typebox";

/**
 * Settings of a MariaDB or MySQL system (the `mysql2` driver).
 *
 * Values are exact, whatever the server's or the process's defaults:
 * - DECIMAL/NUMERIC: strings, as the server renders them (`"12345678901234567890.0123456789"`, `"7.00"`).
 * - BIGINT (signed and unsigned): always strings (`"42"`, `"18446744073709551615"`), so that a column has one JS type
 *   whatever its values; INT, SMALLINT, TINYINT (BOOLEAN included: 0/1), MEDIUMINT and YEAR are numbers; FLOAT and
 *   DOUBLE are numbers.
 * - DATETIME, TIMESTAMP, DATE, TIME: the server's text (`"2024-03-01 10:00:00.000001"`, `"2024-03-01"`), never a JS
 *   Date (which keeps milliseconds only and applies the process's zone). Sessions run with `time_zone = '+00:00'`, so
 *   a TIMESTAMP reads as UTC; a DATETIME has no zone and Franca treats it as UTC: on write, a Date or a text with an
 *   offset (`…Z`, `…+05:30`, PostgreSQL's `…+00`) is converted to the UTC wall time, microseconds kept.
 * - JSON: parsed with JSON.parse, to objects, arrays, strings, numbers (MariaDB's JSON is LONGTEXT with a check; the
 *   connector knows it from the server's extended column metadata, MySQL's is a type of its own); a number a double
 *   cannot hold (an integer beyond ±2^53, a decimal with more significant digits than a double keeps) is a raw JSON
 *   value of its text (`JSON.rawJSON`), which JSON.stringify writes as it was. On write, a JSON column gets
 *   JSON.stringify of the value, whatever it is: what was read writes back unchanged, and a string is stored as a JSON
 *   string (JSON text in a string is not parsed). SQL NULL stays NULL.
 * - BINARY, VARBINARY, BLOB and BIT: Buffers, on read and on write; a mapping converts them (`toString("base64")`)
 *   when the canonical record wants text. A string written to such a column is stored as its UTF-8 bytes.
 * Sessions also run in strict mode (STRICT_ALL_TABLES added to the server's sql_mode, NO_BACKSLASH_ESCAPES removed),
 * so a value that does not fit is refused with an error naming its column rather than silently truncated.
 */
export const MysqlSystemOptions = Type.Object(
  {
    /** `mysql://user:password@host:3306/database` (or `mariadb://…`); give either this or the settings below. */
    url: Type.Optional(Type.String({ minLength: 1 })),
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    user: Type.Optional(Type.String({ minLength: 1 })),
    password: Type.Optional(Type.String()),
    database: Type.Optional(Type.String({ minLength: 1 })),
    /** Connections held at most by this process for the system. Default 10. */
    poolSize: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Time allowed to open a connection, in ms. Default 10,000. */
    connectTimeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Connect over TLS (certificate verified). */
    ssl: Type.Optional(Type.Boolean()),
    /**
     * Most bytes of SQL in one INSERT statement; a write call is split into statements of at most this size (one
     * transaction for all of them). Default 1 MiB; always kept below the server's max_allowed_packet.
     */
    maxStatementBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
  },
  { additionalProperties: false },
);
export type MysqlSystemOptions = Static<typeof MysqlSystemOptions>;

/** The discrete connection settings, exclusive with `url`. */

export const MysqlBindingOptions = Type.Object(
  {
    /**
     * Table read or written, optionally qualified by its database: `sales.orders`. A target table needs a PRIMARY
     * KEY or UNIQUE index on exactly the binding's key columns (the upsert is INSERT … ON DUPLICATE KEY UPDATE). By
     * MariaDB's rule, the table's other UNIQUE indexes take part in the conflict too: a row that collides on one of
     * them updates the row it collides with.
     */
    table: Type.Optional(Type.String({ minLength: 1 })),
    /** A SELECT read as a subquery (sources only); keyset reads wrap it, so it must expose the key and cursor. */
    query: Type.Optional(Type.String({ minLength: 1 })),
    /**
     * Write batches whose keys are all new with `LOAD DATA LOCAL INFILE` (default true), when the table and the rows
     * allow it (see write.ts): what lands is what the upsert would land. A server or client that refuses LOCAL INFILE
     * is remembered, and its writes go through INSERT. `false`: always multi-row INSERT … ON DUPLICATE KEY UPDATE.
     */
    load: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type MysqlBindingOptions = Static<typeof MysqlBindingOptions>;

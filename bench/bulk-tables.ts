/**
 * The tables of the database benchmarks, as constants in a module that imports nothing: bench/bulk-hub.ts (which the
 * engine's transform threads import, as they import a franca.config.ts) takes its table names from here, so that a
 * thread loads what a user's configuration would load, and not the benchmarks' own helpers (pg's client among them).
 */

/** The benchmark table: id bigint, name, email, amount numeric(12,2), updated_at timestamptz, a ~200-byte jsonb. */
export const sourceColumns =
  "id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, amount numeric(12,2) NOT NULL, updated_at timestamptz NOT NULL, doc jsonb";

/** The target tables (`<schema>.dst` in PostgreSQL, this one in MariaDB): the source's columns, renamed. */
export const mariaTarget = "franca_bench_dst";
export const targetNames = ["account_id", "display_name", "email", "balance", "changed_at", "profile"];
export const pgTargetColumns =
  "account_id bigint PRIMARY KEY, display_name text NOT NULL, email text NOT NULL, balance numeric(12,2) NOT NULL, changed_at timestamptz NOT NULL, profile jsonb";
export const mariaTargetColumns =
  "account_id BIGINT PRIMARY KEY, display_name VARCHAR(200) NOT NULL, email VARCHAR(200) NOT NULL, balance DECIMAL(12,2) NOT NULL, changed_at DATETIME(6) NOT NULL, profile JSON";

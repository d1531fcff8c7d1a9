/**
 * Versioned schema of the PostgreSQL store: the same tables as the SQLite store (store/sqlite/migrations.ts), plus
 * `staged`, which holds what SQLite keeps in staging files (workers on other machines must read a chunk another one
 * staged); its versions are its own. A migration is never edited once released: a change is a new entry.
 *
 * Every table lives in the store's schema (default `franca`): `sql` receives it quoted, ready to prefix table names.
 *
 * Types: ids and epoch-millisecond timestamps are BIGINT (pg returns them as strings: rows.ts converts), JSON
 * values are TEXT holding the JSON text (exactly as SQLite keeps them, so rows.ts reads both alike), keys and target
 * names are COLLATE "C" (byte order, as SQLite sorts them, and the cheapest comparison for the primary keys).
 */
export interface PostgresMigration {
  version: number;
  name: string;
  sql: (schema: string) => string;
}

export const migrations: readonly PostgresMigration[] = [
  {
    version: 1,
    name: "ledger, staging, cursors, hashes",
    sql: (s) => `
      CREATE TABLE ${s}.runs (
        id BIGSERIAL PRIMARY KEY,
        flow TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        parent_id BIGINT REFERENCES ${s}.runs(id),
        targets TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        heartbeat_at BIGINT,
        owner TEXT,
        cursor_from TEXT,
        cursor_to TEXT,
        extract_done BOOLEAN NOT NULL DEFAULT false,
        error TEXT,
        stats TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX runs_flow ON ${s}.runs (flow, id);
      CREATE INDEX runs_running ON ${s}.runs (status) WHERE status = 'running';
      -- at most one running run per flow, whatever process starts or claims it: the store's own locks make this
      -- never fire, the index makes it impossible
      CREATE UNIQUE INDEX runs_one_running ON ${s}.runs (flow) WHERE status = 'running';

      CREATE TABLE ${s}.chunks (
        run_id BIGINT NOT NULL REFERENCES ${s}.runs(id),
        seq INTEGER NOT NULL,
        position TEXT,
        records INTEGER NOT NULL,
        canonical INTEGER,
        quarantined INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        extracted_at BIGINT NOT NULL,
        transformed_at BIGINT,
        PRIMARY KEY (run_id, seq)
      );

      CREATE TABLE ${s}.chunk_loads (
        run_id BIGINT NOT NULL,
        target TEXT COLLATE "C" NOT NULL,
        seq INTEGER NOT NULL,
        loaded INTEGER NOT NULL,
        unchanged INTEGER NOT NULL,
        quarantined INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        loaded_at BIGINT NOT NULL,
        PRIMARY KEY (run_id, target, seq)
      );

      -- one row per record and target (target '' for outcomes decided before load)
      CREATE TABLE ${s}.outcomes (
        run_id BIGINT NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        target TEXT COLLATE "C" NOT NULL,
        status TEXT NOT NULL,
        seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        code TEXT,
        error_class TEXT,
        message TEXT,
        path TEXT,
        target_id TEXT,
        source_id TEXT,
        hash TEXT,
        PRIMARY KEY (run_id, key, target)
      );
      CREATE INDEX outcomes_problems ON ${s}.outcomes (run_id, status) WHERE status IN ('quarantined', 'failed');

      CREATE TABLE ${s}.cursors (
        flow TEXT COLLATE "C" PRIMARY KEY,
        position TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      );

      CREATE TABLE ${s}.profiles (
        flow TEXT COLLATE "C" PRIMARY KEY,
        profile TEXT NOT NULL,
        run_id BIGINT NOT NULL
      );

      CREATE TABLE ${s}.lookup_cache (
        lookup TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        value TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (lookup, key)
      );

      CREATE TABLE ${s}.target_hashes (
        target TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        hash TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        PRIMARY KEY (target, key)
      );

      -- a chunk's staged output of a stage ('extracted' or 'canonical'): JSON text, written once, read on resume
      CREATE TABLE ${s}.staged (
        run_id BIGINT NOT NULL,
        seq INTEGER NOT NULL,
        stage TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (run_id, stage, seq)
      );

      -- each system's rate limit across every worker: when the next call may start (epoch ms, the server's clock)
      CREATE TABLE ${s}.system_rates (
        system TEXT COLLATE "C" PRIMARY KEY,
        next_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "pending loads, for the order of a key's loads across workers",
    sql: (s) => `
      -- a chunk's loads not done yet, one row per target, from its extraction to the end of its load job, with a digest
      -- of the chunk's keys (null until the chunk is transformed): a load job waits while an earlier chunk of its run
      -- that may share a key with it is still to be loaded into the same target
      CREATE TABLE ${s}.pending_loads (
        run_id BIGINT NOT NULL,
        target TEXT COLLATE "C" NOT NULL,
        seq INTEGER NOT NULL,
        key_digests BYTEA,
        PRIMARY KEY (run_id, target, seq)
      );
    `,
  },
  {
    version: 3,
    name: "the chunk that last loaded a record",
    sql: (s) => `
      -- Store.laterInTarget: the chunk that last loaded a key into a target in a run, or found it unchanged there, which
      -- a later chunk's quarantine or failure does not overwrite as it does the outcome's status and seq
      ALTER TABLE ${s}.outcomes ADD COLUMN loaded_seq INTEGER;
      -- filled in for the runs that may be resumed (what their rows say); the others' stay NULL
      UPDATE ${s}.outcomes SET loaded_seq = seq
        WHERE run_id IN (SELECT id FROM ${s}.runs WHERE status IN ('running', 'failed', 'cancelled'))
          AND status IN ('loaded', 'unchanged');
    `,
  },
];

/** The newest schema version this code knows. */
export const latestVersion = migrations.reduce((latest, migration) => Math.max(latest, migration.version), 0);

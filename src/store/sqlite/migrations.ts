/**
 * Versioned schema of the SQLite store. A migration is never edited once released: a change is a new entry.
 * The PostgreSQL store has the same tables (store/postgres/migrations.ts); its versions are its own (SQLite's
 * version 2 changes how this store keeps keys, not what it holds).
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "ledger, staging, cursors, hashes",
    sql: `
      CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        kind TEXT NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        parent_id INTEGER REFERENCES runs(id),
        targets TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        heartbeat_at INTEGER,
        owner TEXT,
        cursor_from TEXT,
        cursor_to TEXT,
        extract_done INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        stats TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX runs_flow ON runs (flow, id);
      CREATE INDEX runs_running ON runs (status) WHERE status = 'running';

      CREATE TABLE chunks (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        position TEXT,
        records INTEGER NOT NULL,
        canonical INTEGER,
        quarantined INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        extracted_at INTEGER NOT NULL,
        transformed_at INTEGER,
        PRIMARY KEY (run_id, seq)
      ) WITHOUT ROWID;

      CREATE TABLE chunk_loads (
        run_id INTEGER NOT NULL,
        target TEXT NOT NULL,
        seq INTEGER NOT NULL,
        loaded INTEGER NOT NULL,
        unchanged INTEGER NOT NULL,
        quarantined INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        loaded_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, target, seq)
      ) WITHOUT ROWID;

      -- one row per record and target (target '' for outcomes decided before load)
      CREATE TABLE outcomes (
        run_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        target TEXT NOT NULL,
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
      ) WITHOUT ROWID;
      CREATE INDEX outcomes_problems ON outcomes (run_id, status) WHERE status IN ('quarantined', 'failed');

      CREATE TABLE cursors (
        flow TEXT PRIMARY KEY,
        position TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE profiles (
        flow TEXT PRIMARY KEY,
        profile TEXT NOT NULL,
        run_id INTEGER NOT NULL
      );

      CREATE TABLE lookup_cache (
        lookup TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (lookup, key)
      ) WITHOUT ROWID;

      CREATE TABLE target_hashes (
        target TEXT NOT NULL,
        key TEXT NOT NULL,
        hash TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        PRIMARY KEY (target, key)
      ) WITHOUT ROWID;
    `,
  },
  {
    // ledger-key.ts: the key columns of the ledger lose their TEXT affinity, and decimal integer keys are kept as
    // integers (in the order ids come in, not "10" before "9"); the tables are made again, their rows copied over
    version: 2,
    name: "ledger keys as integers where they are",
    sql: `
      CREATE TABLE outcomes_v2 (
        run_id INTEGER NOT NULL,
        key NOT NULL,
        target TEXT NOT NULL,
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
      ) WITHOUT ROWID;
      INSERT INTO outcomes_v2 (run_id, key, target, status, seq, attempts, code, error_class, message, path, target_id,
        source_id, hash)
        SELECT run_id, ${integerWhereItIs("key")}, target, status, seq, attempts, code, error_class, message, path,
          target_id, source_id, hash FROM outcomes;
      DROP TABLE outcomes;
      ALTER TABLE outcomes_v2 RENAME TO outcomes;
      CREATE INDEX outcomes_problems ON outcomes (run_id, status) WHERE status IN ('quarantined', 'failed');

      CREATE TABLE target_hashes_v2 (
        target TEXT NOT NULL,
        key NOT NULL,
        hash TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        PRIMARY KEY (target, key)
      ) WITHOUT ROWID;
      INSERT INTO target_hashes_v2 (target, key, hash, run_id)
        SELECT target, ${integerWhereItIs("key")}, hash, run_id FROM target_hashes;
      DROP TABLE target_hashes;
      ALTER TABLE target_hashes_v2 RENAME TO target_hashes;
    `,
  },
  {
    // Store.laterInTarget: the chunk that last loaded a key into a target in a run, or found it unchanged there, which
    // a later chunk's quarantine or failure does not overwrite as it does the outcome's status and seq. Filled in for
    // the runs that may be resumed (what their rows say); the others' stay NULL.
    version: 3,
    name: "the chunk that last loaded a record",
    sql: `
      ALTER TABLE outcomes ADD COLUMN loaded_seq INTEGER;
      UPDATE outcomes SET loaded_seq = seq
        WHERE run_id IN (SELECT id FROM runs WHERE status IN ('running', 'failed', 'cancelled'))
          AND status IN ('loaded', 'unchanged');
    `,
  },
];

/** The newest schema version this code knows. */
export const latestVersion = migrations.reduce((latest, migration) => Math.max(latest, migration.version), 0);

/** SQL of ledgerKey (ledger-key.ts): the text key as an INTEGER when it is a plain decimal of at most 15 digits. */
function integerWhereItIs(column: string): string {
  return `CASE WHEN ${column} = '0' OR (${column} GLOB '[1-9]*' AND ${column} NOT GLOB '*[^0-9]*' AND length(${column}) <= 15)
    THEN CAST(${column} AS INTEGER) ELSE ${column} END`;
}

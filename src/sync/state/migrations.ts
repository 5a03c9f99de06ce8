/** Ordered, append-only schema migrations; the index + 1 is the schema version stored in PRAGMA user_version. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE watermarks (
     connector TEXT PRIMARY KEY,
     watermark TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE runs (
     id TEXT PRIMARY KEY,
     connector TEXT NOT NULL,
     state TEXT NOT NULL,
     trigger TEXT NOT NULL,
     since TEXT NOT NULL,
     until TEXT NOT NULL,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     counts TEXT NOT NULL,
     error TEXT,
     spool_path TEXT,
     rejects_path TEXT,
     dry_run INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX runs_by_connector ON runs (connector, started_at);
   CREATE TABLE blocks (
     spool_sha256 TEXT NOT NULL,
     idx INTEGER NOT NULL,
     state TEXT NOT NULL,
     rows INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     possibly_duplicated INTEGER NOT NULL DEFAULT 0,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (spool_sha256, idx)
   );
   CREATE TABLE seen_events (
     connector TEXT NOT NULL,
     event_key TEXT NOT NULL,
     recorded TEXT NOT NULL,
     PRIMARY KEY (connector, event_key)
   ) WITHOUT ROWID;
   CREATE INDEX seen_by_time ON seen_events (connector, recorded);
   CREATE TABLE pending_seen (
     run_id TEXT NOT NULL,
     event_key TEXT NOT NULL,
     recorded TEXT NOT NULL,
     PRIMARY KEY (run_id, event_key)
   ) WITHOUT ROWID;`,
];

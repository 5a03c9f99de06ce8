/** v8: a destination key `origin|tenant|job` without its tenant, `origin|job` (SQL over `column`). */
function withoutTenant(column: string): string {
  const rest = `substr(${column}, instr(${column}, '|') + 1)`;
  return `substr(${column}, 1, instr(${column}, '|')) || substr(${rest}, instr(${rest}, '|') + 1)`;
}

/**
 * Gives every destination key matching `pattern` (SQL LIKE) its new form, `newKey` (SQL over a column): keys that become
 * one merge into the oldest, nothing forgotten, and what the job may hold twice is flagged (v8 says how).
 */
function mergeDestinations(newKey: (column: string) => string, pattern: string): string {
  return `CREATE TEMP TABLE destination_moves AS
     SELECT id, ${newKey('key')} AS new_key
     FROM destinations WHERE key LIKE '${pattern}';
   CREATE TEMP TABLE destination_merges AS
     SELECT m.id AS id, (SELECT min(k.id) FROM destination_moves k WHERE k.new_key = m.new_key) AS keep FROM destination_moves m;
   DELETE FROM destination_merges WHERE id = keep;
   CREATE TEMP TABLE destination_involved AS SELECT id, keep FROM destination_merges UNION SELECT keep, keep FROM destination_merges;
   CREATE TEMP TABLE destination_claims AS
     SELECT coalesce(g.keep, e.destination_id) AS keep, e.destination_id AS was, e.source_id, e.day, e.event_key, e.block_id,
       coalesce(b.state = 'acked', 0) AS acked, (b.id IS NULL OR b.state = 'acked' OR (b.attempts > 0 AND b.refused = 0) OR e.maybe_sent = 1) AS reached
     FROM delivered_events e LEFT JOIN destination_merges g ON g.id = e.destination_id LEFT JOIN delivery_blocks b ON b.id = e.block_id
     WHERE e.destination_id IN (SELECT id FROM destination_involved);
   CREATE TEMP TABLE destination_doubles (
     keep INTEGER NOT NULL, source_id INTEGER NOT NULL, day INTEGER NOT NULL, event_key TEXT NOT NULL, block_id INTEGER NOT NULL, twice INTEGER NOT NULL,
     PRIMARY KEY (keep, source_id, day, event_key)
   ) WITHOUT ROWID;
   INSERT INTO destination_doubles
     SELECT keep, source_id, day, event_key, coalesce(max(CASE WHEN acked = 1 THEN block_id END), max(block_id)), max(acked) = 1 AND sum(reached) >= 2
     FROM destination_claims GROUP BY keep, source_id, day, event_key HAVING count(DISTINCT was) > 1;
   CREATE TEMP TABLE destination_siblings AS
     SELECT a.id AS id, b.id AS sibling FROM destination_involved a JOIN destination_involved b ON a.keep = b.keep AND a.id <> b.id;
   CREATE TEMP TABLE destination_range_doubles AS
     SELECT DISTINCT r.block_id FROM destination_siblings s
       JOIN delivered_ranges r ON r.destination_id = s.id
       JOIN delivery_blocks b ON b.id = r.block_id AND b.state = 'acked'
       JOIN delivered_ranges o ON o.destination_id = s.sibling AND o.source_id = r.source_id AND o.first_row < r.end_row AND r.first_row < o.end_row
       LEFT JOIN delivery_blocks ob ON ob.id = o.block_id
     WHERE ob.id IS NULL OR (ob.state = 'acked' AND ob.id < r.block_id) OR (ob.state = 'sending' AND ob.attempts > 0 AND ob.refused = 0);
   UPDATE OR IGNORE delivered_events SET destination_id = (SELECT keep FROM destination_merges WHERE id = destination_id)
     WHERE destination_id IN (SELECT id FROM destination_merges);
   DELETE FROM delivered_events WHERE destination_id IN (SELECT id FROM destination_merges);
   UPDATE delivered_events SET maybe_sent = 1, block_id = d.block_id FROM destination_doubles d
     WHERE d.keep = delivered_events.destination_id AND d.source_id = delivered_events.source_id AND d.day = delivered_events.day AND d.event_key = delivered_events.event_key;
   UPDATE delivery_blocks SET possibly_duplicated = 1, resent_rows = rows
     WHERE state = 'acked' AND (id IN (SELECT block_id FROM destination_doubles WHERE twice) OR id IN (SELECT block_id FROM destination_range_doubles));
   UPDATE delivery_blocks SET destination_id = (SELECT keep FROM destination_merges WHERE id = destination_id)
     WHERE destination_id IN (SELECT id FROM destination_merges);
   UPDATE delivered_ranges SET destination_id = (SELECT keep FROM destination_merges WHERE id = destination_id)
     WHERE destination_id IN (SELECT id FROM destination_merges);
   INSERT INTO delivery_marks (destination_id, source_id, high_ms)
     SELECT g.keep, m.source_id, m.high_ms FROM delivery_marks m JOIN destination_merges g ON g.id = m.destination_id WHERE true
     ON CONFLICT (destination_id, source_id) DO UPDATE SET high_ms = max(high_ms, excluded.high_ms);
   DELETE FROM delivery_marks WHERE destination_id IN (SELECT id FROM destination_merges);
   INSERT INTO delivery_horizons (destination_id, source_id, pruned_before_ms)
     SELECT g.keep, h.source_id, h.pruned_before_ms FROM delivery_horizons h JOIN destination_merges g ON g.id = h.destination_id WHERE true
     ON CONFLICT (destination_id, source_id) DO UPDATE SET pruned_before_ms = max(pruned_before_ms, excluded.pruned_before_ms);
   DELETE FROM delivery_horizons WHERE destination_id IN (SELECT id FROM destination_merges);
   DELETE FROM destinations WHERE id IN (SELECT id FROM destination_merges);
   UPDATE destinations SET key = (SELECT new_key FROM destination_moves WHERE id = destinations.id) WHERE id IN (SELECT id FROM destination_moves);
   UPDATE seen_events SET destination = ${newKey('destination')}
     WHERE destination LIKE '${pattern}';
   DROP TABLE destination_moves;
   DROP TABLE destination_merges;
   DROP TABLE destination_involved;
   DROP TABLE destination_siblings;
   DROP TABLE destination_claims;
   DROP TABLE destination_doubles;
   DROP TABLE destination_range_doubles;`;
}

/** v9: a destination key `origin|job` without its origin: the job id (a GUID) alone names the job (SQL over `column`). */
function jobOnly(column: string): string {
  return `substr(${column}, instr(${column}, '|') + 1)`;
}

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
  // v2 (wave 2): acknowledgements keyed by destination and event identity (or file + row range) instead of spool hash
  // + block index, so a push survives any block size, another job, and another machine; one lease per connector
  // across processes; instants stored as numbers (text with local offsets does not compare as time).
  // A push left unfinished by v1 cannot be mapped to events: finish it with the old version before upgrading (a run left
  // 'pushing' refuses the upgrade: sqlite.ts, refuseUnfinishedV1Push).
  `DROP TABLE blocks;
   CREATE TABLE destinations (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
   CREATE TABLE sources (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
   CREATE TABLE delivery_blocks (
     id INTEGER PRIMARY KEY,
     destination_id INTEGER NOT NULL,
     source_id INTEGER NOT NULL,
     run_id TEXT,
     state TEXT NOT NULL CHECK (state IN ('sending', 'acked')),
     rows INTEGER NOT NULL,
     resent_rows INTEGER NOT NULL DEFAULT 0,
     attempts INTEGER NOT NULL DEFAULT 0,
     possibly_duplicated INTEGER NOT NULL DEFAULT 0,
     created_ms INTEGER NOT NULL,
     updated_ms INTEGER NOT NULL
   );
   CREATE INDEX delivery_blocks_by_run ON delivery_blocks (run_id);
   CREATE INDEX delivery_blocks_by_age ON delivery_blocks (destination_id, source_id, created_ms);
   CREATE TABLE delivered_events (
     destination_id INTEGER NOT NULL,
     source_id INTEGER NOT NULL,
     day INTEGER NOT NULL,
     event_key TEXT NOT NULL,
     block_id INTEGER NOT NULL,
     PRIMARY KEY (destination_id, source_id, day, event_key)
   ) WITHOUT ROWID;
   CREATE TABLE delivered_ranges (
     destination_id INTEGER NOT NULL,
     source_id INTEGER NOT NULL,
     first_row INTEGER NOT NULL,
     end_row INTEGER NOT NULL,
     block_id INTEGER NOT NULL
   );
   CREATE INDEX delivered_ranges_by_source ON delivered_ranges (destination_id, source_id);
   CREATE TABLE delivery_marks (
     destination_id INTEGER NOT NULL,
     source_id INTEGER NOT NULL,
     high_ms INTEGER NOT NULL,
     PRIMARY KEY (destination_id, source_id)
   ) WITHOUT ROWID;
   CREATE TABLE leases (
     name TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     owner TEXT NOT NULL,
     expires_ms INTEGER NOT NULL
   );
   CREATE TABLE seen_events_v2 (
     connector TEXT NOT NULL,
     event_key TEXT NOT NULL,
     recorded_ms INTEGER NOT NULL,
     PRIMARY KEY (connector, event_key)
   ) WITHOUT ROWID;
   INSERT INTO seen_events_v2 SELECT connector, event_key, CAST(round(unixepoch(recorded, 'subsec') * 1000) AS INTEGER)
     FROM seen_events WHERE unixepoch(recorded, 'subsec') IS NOT NULL;
   DROP TABLE seen_events;
   ALTER TABLE seen_events_v2 RENAME TO seen_events;
   CREATE INDEX seen_by_time ON seen_events (connector, recorded_ms);
   CREATE TABLE pending_seen_v2 (
     run_id TEXT NOT NULL,
     event_key TEXT NOT NULL,
     recorded_ms INTEGER NOT NULL,
     PRIMARY KEY (run_id, event_key)
   ) WITHOUT ROWID;
   INSERT INTO pending_seen_v2 SELECT run_id, event_key, CAST(round(unixepoch(recorded, 'subsec') * 1000) AS INTEGER)
     FROM pending_seen WHERE unixepoch(recorded, 'subsec') IS NOT NULL;
   DROP TABLE pending_seen;
   ALTER TABLE pending_seen_v2 RENAME TO pending_seen;
   ALTER TABLE runs ADD COLUMN backfill INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE runs ADD COLUMN details TEXT;`,
  // v3: what a source needs to resume across runs and machines (a Bulk Data export's status URL, the files done).
  `CREATE TABLE source_state (
     connector TEXT NOT NULL,
     name TEXT NOT NULL,
     value TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (connector, name)
   ) WITHOUT ROWID;`,
  // v4: a claim remembers that some block carrying it may have reached Purview, so the flag survives the claim moving to
  // a block that then dies before its first attempt.
  `ALTER TABLE delivered_events ADD COLUMN maybe_sent INTEGER NOT NULL DEFAULT 0;`,
  // v5: how far back the ledger was actually pruned per destination and source (each prune used the retention of its
  // own run, so today's setting says nothing about what was forgotten), raised only; and the lease a block was opened
  // under, so a claim taken over from a block never attempted is flagged unless that block's writer provably lost the
  // lease the taker now holds. Databases coming from 0.1.0 start this ledger empty: nothing was pruned before.
  `CREATE TABLE delivery_horizons (
     destination_id INTEGER NOT NULL,
     source_id INTEGER NOT NULL,
     pruned_before_ms INTEGER NOT NULL,
     PRIMARY KEY (destination_id, source_id)
   ) WITHOUT ROWID;
   ALTER TABLE delivery_blocks ADD COLUMN lease_name TEXT;
   ALTER TABLE delivery_blocks ADD COLUMN lease_holder TEXT;`,
  // v6: the destination (destinationKey) an overlap's seen event was pushed to: a run into another Purview job (a
  // backfill after purview.jobId changed) must not skip events only the old job received. Rows from before carry none
  // and still count for any destination, as they did: coming from 0.1.0 the ledger starts empty (v2), so they are all
  // that keeps the first run after the upgrade from sending its overlap again. And whether Purview definitely refused
  // a block (an HTTP answer saying it was not processed, no attempt of unknown outcome): its rows are then as never
  // sent, and the next attempt is not flagged possibly duplicated.
  `ALTER TABLE seen_events ADD COLUMN destination TEXT;
   ALTER TABLE delivery_blocks ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;`,
  // v7: the HTTP status a refused block got (none when its connection failed before the body went out), and the
  // operator's decision to give up the events of a block Purview refused as invalid (`bridge state give-up`): when and
  // why. Their claims stay on that block, so any later run, on any machine, records them as rejected instead of sending.
  `ALTER TABLE delivery_blocks ADD COLUMN refused_status INTEGER;
   ALTER TABLE delivery_blocks ADD COLUMN given_up_ms INTEGER;
   ALTER TABLE delivery_blocks ADD COLUMN given_up_note TEXT;`,
  // v8: a destination is the ingestion host and the job (destinationKey), no longer the tenant too: one job under two
  // spellings of its tenant (the GUID, the domain) was two destinations, and a rerun after the spelling changed sent
  // every row again. Keys lose their middle part; two that become one merge into the older; marks and horizons keep the
  // higher. A claim both had is flagged may-be-sent and kept on an acknowledged block if either is (the latest such:
  // the second send); when both blocks may have reached the job and one was acknowledged, the job may hold the event
  // twice, so that block is flagged possibly duplicated, whole, as a block acknowledged after a lost answer is: the
  // reports read the flag there (flaggedEventKeys, possiblyDuplicatedOf, deliveredOf). Likewise a block whose file rows
  // overlap rows the other spelling's blocks may have delivered.
  mergeDestinations(withoutTenant, '%|%|%'),
  // v9: a destination is the job alone (destinationKey): one job reached under two spellings of its ingestion host (an
  // alias, a private endpoint, an explicit base against the cloud's preset) was two destinations, and the rows it held
  // went again, unflagged. Merged as v8 merges; `bridge push`'s memory of the content each path had moves with it (the
  // newest of two spellings kept), and so does a drop folder's count of files refused in a row.
  `${mergeDestinations(jobOnly, '%|%')}
   DELETE FROM source_state WHERE connector = 'file:push' AND name LIKE 'http%|%|%' AND EXISTS (
     SELECT 1 FROM source_state o WHERE o.connector = 'file:push' AND o.name LIKE 'http%|%|%' AND o.name <> source_state.name
       AND ${jobOnly('o.name')} = ${jobOnly('source_state.name')}
       AND (o.updated_at > source_state.updated_at OR (o.updated_at = source_state.updated_at AND o.name > source_state.name)));
   UPDATE OR IGNORE source_state SET name = ${jobOnly('name')} WHERE connector = 'file:push' AND name LIKE 'http%|%|%';
   DELETE FROM source_state WHERE connector = 'file:push' AND name LIKE 'http%|%|%';
   UPDATE source_state SET value = json_set(value, '$.destination', ${jobOnly("json_extract(value, '$.destination')")})
     WHERE name = 'flat-file-whole-refusals' AND json_valid(value) AND json_extract(value, '$.destination') LIKE '%|%';`,
];

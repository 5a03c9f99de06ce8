/**
 * The schema version of a state database (PRAGMA user_version) against this bridge's, for the opens (sqlite.ts) and for
 * every lease taken on an open store (sqlite-lease.ts): a newer bridge may upgrade the schema while this one is idle
 * between runs (a service holds no lease then), and this one must not start another run on a schema it does not know.
 */
import type Database from 'better-sqlite3';
import { BridgeError } from '../../errors.js';
import { MIGRATIONS } from './migrations.js';

/** The schema version this bridge reads and writes. */
export const STATE_SCHEMA_VERSION = MIGRATIONS.length;

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Throws BRG_ERR_STATE_SCHEMA when the database's schema is newer than this bridge's. `running`: this process opened
 * the store before (a service between runs, a run about to push), so a newer bridge upgraded it meanwhile. Inside a
 * write transaction, the version read is the one the write would land on.
 */
export function refuseNewerSchema(db: Database.Database, running: boolean): void {
  const version = schemaVersion(db);
  if (version <= STATE_SCHEMA_VERSION) return;
  throw new BridgeError(
    'BRG_ERR_STATE_SCHEMA',
    running
      ? `State database schema v${version} is newer than this bridge (v${STATE_SCHEMA_VERSION}): a newer bridge upgraded the state while this one ran. This one starts nothing more on it: stop it and run the newer version (upgrade this install).`
      : `State database schema v${version} is newer than this bridge (v${STATE_SCHEMA_VERSION}): a newer bridge upgraded it. Run that version (upgrade this install).`,
    { details: { version, bridgeVersion: STATE_SCHEMA_VERSION } },
  );
}

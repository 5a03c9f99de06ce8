/**
 * The export's non-AuditEvent files (Patient, Practitioner, PractitionerRole, Encounter, Location, Organization …) as
 * the lookup for the events' references. They are indexed into a SQLite file beside the export's downloads (keyed by
 * `Type/id`, plus `Type?identifier=system|value` for identifier-only references) instead of a Map: a large export's
 * patients would not fit the process's heap, and SQLite keeps only a small page cache in memory. The JSON text of
 * each line is stored as it came and parsed when the mapping asks for it. The file is PHI: 0600 under the state
 * directory, rebuilt by every run from the local downloads, removed when the pull ends (close) or by the next run.
 */
import { chmodSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { FhirResource } from 'fhir/r4.js';
import { identifierKeysOf, referenceKey } from '../../reference-keys.js';

/** The index's file name for an export, in the downloads directory beside the export's own folder. */
export function lookupIndexName(exportId: string): string {
  return `${exportId}.lookup.sqlite`;
}

/** SQLite's page cache for the index, in KiB (negative cache_size): the index's whole share of memory. */
const CACHE_KIB = 4 * 1024;

export interface IndexedLine {
  readonly resource: FhirResource;
  readonly json: string;
}

export class LookupIndex {
  private readonly db: Database.Database;
  private readonly insertResource: Database.Statement;
  private readonly insertIdentifier: Database.Statement;
  private readonly selectResource: Database.Statement;
  private readonly selectIdentifier: Database.Statement;
  private readonly addLines: (lines: readonly IndexedLine[]) => void;
  private added = 0;

  constructor(private readonly path: string) {
    rmSync(path, { force: true });
    this.db = new Database(path);
    chmodSync(path, 0o600);
    // A scratch index, rebuilt from the downloads by every run: no journal, no fsync.
    this.db.pragma('journal_mode = OFF');
    this.db.pragma('synchronous = OFF');
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    this.db.exec(`
      CREATE TABLE resource (key TEXT PRIMARY KEY, json TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE identifier (key TEXT PRIMARY KEY, ref TEXT NOT NULL) WITHOUT ROWID;
    `);
    this.insertResource = this.db.prepare('INSERT OR REPLACE INTO resource (key, json) VALUES (?, ?)');
    // Two resources with one identifier make it ambiguous (ref ''): attributing an access to the wrong person is worse
    // than not attributing it, as the FHIR resolver also decides.
    this.insertIdentifier = this.db.prepare(
      "INSERT INTO identifier (key, ref) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET ref = CASE WHEN identifier.ref = excluded.ref THEN identifier.ref ELSE '' END",
    );
    this.selectResource = this.db.prepare('SELECT json FROM resource WHERE key = ?').pluck();
    this.selectIdentifier = this.db.prepare('SELECT ref FROM identifier WHERE key = ?').pluck();
    this.addLines = this.db.transaction((lines: readonly IndexedLine[]) => {
      for (const { resource, json } of lines) this.addOne(resource, json);
    });
  }

  /** Adds one chunk of a file's resources, in one transaction. */
  add(lines: readonly IndexedLine[]): void {
    if (lines.length > 0) this.addLines(lines);
  }

  /** The stored JSON of `Type/id`, or undefined. */
  json(key: string): string | undefined {
    return this.selectResource.get(key) as string | undefined;
  }

  /** The `Type/id` an identifier key names; '' when several resources carry it; undefined when none does. */
  identifier(key: string): string | undefined {
    return this.selectIdentifier.get(key) as string | undefined;
  }

  /** Resources indexed so far. */
  get size(): number {
    return this.added;
  }

  close(): void {
    if (this.db.open) this.db.close();
    rmSync(this.path, { force: true });
  }

  private addOne(resource: FhirResource, json: string): void {
    if (!resource.id) return;
    const key = referenceKey(resource.resourceType, resource.id);
    this.insertResource.run(key, json);
    this.added += 1;
    for (const identifier of identifierKeysOf(resource)) this.insertIdentifier.run(identifier, key);
  }
}

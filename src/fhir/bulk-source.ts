/**
 * The Bulk Data `$export` source: one asynchronous export per run (resumed across runs), whose AuditEvent files
 * become the pages the pipeline maps, and whose other files (Patient, Practitioner, PractitionerRole, Encounter,
 * Location, Organization …) are the lookup for the events' references before any event is mapped; references the
 * export lacks are fetched over FHIR like in a search sync. `_since` is the previous export's transactionTime (the
 * watermark, which coveredUntil() moves to this export's transactionTime), so nothing between two exports is missed
 * and the delivery ledger drops what is exported twice; when that export was of another scope (FHIR server, level or
 * Group), the watermark says nothing of this scope's older events, and the export goes without `_since`.
 * Memory stays flat: files are read a chunk at a time, pages are `pageSize` events, the lookup lives in SQLite.
 * See: https://hl7.org/fhir/uv/bulkdata/export.html
 */
import { join } from 'node:path';
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { normaliseBase, type ReferenceFollow } from '../reference-keys.js';
import type { SyncWindow } from '../sync/window.js';
import { clearBrokenExports, recordBrokenExport, refuseWhileBackingOff } from './bulk/broken-backoff.js';
import {
  type CheckpointStore,
  type ExportRequest,
  type ExportScope,
  loadCheckpoint,
  loadCovered,
  type ManifestFile,
  recordCovered,
  sameRequest,
  sameScope,
  scopeAt,
} from './bulk/checkpoint.js';
import { type BulkExportEvent, BulkExportJob, type ReadyExport } from './bulk/export.js';
import { ExportExpiredError, ExportRefusedError, exportFileError, fileLabel, parseLine } from './bulk/files.js';
import type { BulkHttp } from './bulk/http.js';
import { exportError } from './bulk/job.js';
import { type IndexedLine, LookupIndex, lookupIndexName } from './bulk/lookup-index.js';
import { clearRefusedExports, MAX_REFUSED_IN_A_ROW, recordRefusedExport } from './bulk/refused-exports.js';
import { BulkResolver } from './bulk/resolver.js';
import { FhirError } from './fhir-error.js';
import { instantMs } from './instant.js';
import { identifierNormaliser, type ReferenceResolver } from './reference-resolver.js';

export interface BulkSourceSettings {
  readonly level: 'system' | 'patient' | 'group';
  readonly groupId?: string | undefined;
  readonly types: readonly string[];
  readonly pollMinSeconds: number;
  readonly pollMaxMinutes: number;
  /**
   * Refuse a file holding fewer resources than its manifest `count` (default true); false: log it and go on (a server
   * known to miscount).
   */
  readonly checkCounts?: boolean | undefined;
}

export interface BulkSourceOptions {
  readonly http: BulkHttp;
  /** The FHIR resolver for references the export lacks. */
  readonly fallback: ReferenceResolver;
  /** The connector's source state (StateStore.getSourceState/setSourceState). */
  readonly store: CheckpointStore;
  /** This connector's download folder, e.g. stateDir/bulk/<connector> (PHI: 0700, files 0600). */
  readonly dir: string;
  readonly settings: BulkSourceSettings;
  /** fhir.overlapMinutes in ms: tells an incremental window from an explicit backfill. */
  readonly overlapMs: number;
  /** Parsed lookup resources kept (fhir.referenceCacheSize). */
  readonly cacheSize: number;
  /** What the department reads inside exported encounters and roles (ReferenceResolverOptions.follow). Default none. */
  readonly follow?: ReadonlySet<ReferenceFollow>;
  /** The mapping's parseCxIdentifiers (ReferenceResolverOptions.parseCxIdentifiers). Default true. */
  readonly parseCxIdentifiers?: boolean;
  /**
   * AuditEvents per page handed to the pipeline (fhir.pageSize, as the search source's pages). Default 200: a page is
   * held while it fills, and a big one outlives young-generation GCs (measured: 1000-event pages doubled the GC time).
   */
  readonly pageSize?: number;
  readonly newId: () => string;
  /**
   * The FHIR base the connector's watermark was recorded reading (src/sync/watermark-source.ts), normalised; undefined
   * when none was recorded. Read when no export of this connector remembers the watermark (a search moved it).
   */
  readonly watermarkSource?: () => string | undefined;
  /** Every export step as data (tests, metrics); the operator's lines go to pages()' `note`. */
  readonly onEvent?: (event: BulkExportEvent) => void;
}

export interface BulkExportSource {
  check(signal?: AbortSignal): Promise<void>;
  pages(window: SyncWindow, signal?: AbortSignal, note?: (message: string) => void): AsyncIterable<readonly AuditEvent[]>;
  readonly resolver: BulkResolver;
  coveredUntil(): string | undefined;
  /** OperationOutcomes in the last pull's export error files. */
  unexported(): number;
  windowTimeOf(event: AuditEvent): number | undefined;
  close(): void;
}

/**
 * In-run restarts after the files expired (or were refused, within refused-exports.ts's own bound) before any event
 * was read (after that the run stops; see pages).
 */
const MAX_RESTARTS = 2;
const LOOKUP_CHUNK = 1000;

/**
 * `_since` of the export: the previous watermark exactly (the previous export's transactionTime), not minus the overlap;
 * none on the first run (a full export) unless it was given a start (`--since`, the trigger's since). An explicit backfill
 * reaching further back than the overlap exports from its start.
 */
export function exportSince(window: SyncWindow, overlapMs: number): string | undefined {
  if (window.dedupeBefore === undefined) return window.explicitSince ? justBefore(window.since) : undefined;
  return Date.parse(window.since) < Date.parse(window.dedupeBefore) - overlapMs ? justBefore(window.since) : window.dedupeBefore;
}

/**
 * `_since` keeps what changed after it (Bulk Data v2), where a search's `ge` keeps the instant itself: a start someone gave
 * is asked for a millisecond earlier, so an event at exactly that instant is exported as a search would have read it.
 */
function justBefore(instant: string): string {
  return new Date(Date.parse(instant) - 1).toISOString();
}

/**
 * What `bridge sync --since` takes to ask at once for the export this run asks for (`_since`, or none: everything): the
 * instant just after its `_since` (the run then asks from `_since` itself, justBefore), or the epoch for an export of
 * everything. Not the watermark or the window's start: a first run's export or one after a scope change asks for more
 * than that, and an export from there would skip, for good, what lies before it.
 */
export function retryCommandSince(exportSince: string | undefined): string {
  return exportSince === undefined ? new Date(0).toISOString() : new Date(Date.parse(exportSince) + 1).toISOString();
}

export function createBulkExportSource(options: BulkSourceOptions): BulkExportSource {
  const { http, settings } = options;
  if (!settings.types.includes('AuditEvent'))
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      `source.types must include AuditEvent, got ${settings.types.join(', ')}: an export without it reads no event yet moves the watermark. Add AuditEvent to source.types.`,
    );
  const logger = http.options.logger;
  const scope: ExportScope = {
    base: http.options.baseUrl.replace(/\/+$/, ''),
    level: settings.level,
    ...(settings.level === 'group' ? { groupId: settings.groupId } : {}),
  };
  const resolver = new BulkResolver(
    options.fallback,
    options.cacheSize,
    normaliseBase(options.http.options.baseUrl),
    options.follow,
    identifierNormaliser(options.parseCxIdentifiers ?? true),
  );
  // The current run's progress line; set by pages() (the source outlives one run in the service).
  let note: ((message: string) => void) | undefined;
  const job = new BulkExportJob({
    http,
    store: options.store,
    dir: options.dir,
    newId: options.newId,
    pollMinMs: settings.pollMinSeconds * 1000,
    pollMaxMs: settings.pollMaxMinutes * 60_000,
    onEvent: (event) => {
      options.onEvent?.(event);
      const message = describeExportEvent(event);
      if (message !== undefined) note?.(message);
    },
  });
  const pageSize = options.pageSize ?? 200;
  let index: LookupIndex | undefined;
  let covered: string | undefined;
  // OperationOutcomes of this pull's export error files: resources the server did not export.
  let unexported = 0;
  const closeIndex = (): void => {
    resolver.use(undefined);
    index?.close();
    index = undefined;
  };

  /**
   * `_since` of this run's export: when the watermark came from an export of another scope, whose transactionTime says
   * nothing of this scope's events before it, as far back as the delivery ledger remembers (everything, if it forgot
   * nothing; it skips what Purview already has).
   * A watermark of no remembered export (one from before scopes were kept, or a search source's) is taken as it is.
   */
  function scopedSince(window: SyncWindow): string | undefined {
    const since = exportSince(window, options.overlapMs);
    if (since === undefined || window.dedupeBefore === undefined) return since;
    const earlier = scopeAt(loadCovered(options.store), window.dedupeBefore);
    const reason = earlier === undefined ? searchedElsewhere(options.watermarkSource?.()) : sameScope(earlier, scope) ? undefined : scopeChange(earlier, scope);
    if (reason === undefined) return notAfterLastExport(since, window.dedupeBefore);
    // The watermark says nothing of this scope's events; a start someone asked for (--since) is theirs to choose.
    if (window.explicitSince) return justBefore(window.since);
    // As far back as the delivery ledger remembers: before that, what the old scope pushed would all be sent again
    // (flagged possibly duplicated, since the ledger forgot it, but for nothing).
    const floor = window.forgottenBefore;
    job.emit({ type: 'full-export', reason, ...(floor === undefined ? {} : { since: floor }) });
    return floor;
  }

  /**
   * The last export of this scope ended (its transactionTime, by the server's clock) before `since`: the server's clock
   * went back after the export that moved the watermark. The watermark never moves back, so asking from it would skip,
   * for good, what the server stamped since its clock went back, until it passes the watermark again. The export asks
   * from where the server's corrected clock puts the watermark's export (that export's kick-off by our clock, plus the
   * server's offset at the last kick-off), less the overlap; once an export asked from there, from where that one ended
   * (less the overlap), so each run moves on. The ledger skips what comes twice.
   */
  function notAfterLastExport(since: string, watermark: string): string {
    const covered = loadCovered(options.store).filter((entry) => sameScope(entry.scope, scope));
    const last = covered.at(-1);
    if (last === undefined || Date.parse(last.until) >= Date.parse(since)) return since;
    const moved = covered.findLast((entry) => Date.parse(entry.until) === Date.parse(watermark));
    if (moved?.at === undefined || last.at === undefined) {
      // Entries of an earlier version: no offset to go by. From the last export's end, less the overlap, and said so.
      const from = new Date(Date.parse(last.until) - options.overlapMs).toISOString();
      logger.warn(
        { watermark, since: from },
        "the FHIR server's clock went back after the export that moved the watermark, and how far is not known: exporting from the last export's end; what it stamped before may be missing (bridge sync --since an earlier instant exports it)",
      );
      return from;
    }
    const corrected = moved.at + (Date.parse(last.until) - last.at) - options.overlapMs;
    const caughtUp = last.from !== undefined && Date.parse(last.from) <= corrected ? Date.parse(last.until) - options.overlapMs : Number.NEGATIVE_INFINITY;
    const from = new Date(Math.min(Date.parse(since), Math.max(corrected, caughtUp))).toISOString();
    logger.warn(
      { watermark, since: from },
      "the FHIR server's clock went back after the export that moved the watermark; exporting from where its clock puts that export now",
    );
    return from;
  }

  /**
   * A watermark no export of this connector remembers came from a search (or from before scopes were kept): it is a
   * point in this server's events only if the search read this server (watermark-source.ts), else says nothing of them.
   */
  function searchedElsewhere(recorded: string | undefined): string | undefined {
    if (recorded === undefined || recorded === (normaliseBase(scope.base) ?? scope.base)) return undefined;
    return 'it was recorded reading another FHIR server (fhir.baseUrl changed since the search that moved it)';
  }

  /**
   * The manifest's `count` (optional) against the resources read. Fewer is a file that ended early at a line end (a
   * connection closed mid-transfer on a body framed by its close, a server that stopped writing): no framing or gzip
   * check catches it, and its missing events would be skipped for good once the watermark moved. It is refused as a
   * broken file (the export is given up; the next run asks for a new one, and the ledger skips what Purview has). More
   * loses nothing (servers are known to miscount): logged.
   */
  function checkCount(file: ManifestFile, label: string, resources: number): void {
    if (file.count === undefined || file.count === resources) return;
    if (resources < file.count && settings.checkCounts !== false) {
      throw exportFileError(
        `${label} held ${resources} resources where the manifest says ${file.count}: it ended early. If this server is known to miscount its files, set source.checkCounts to false`,
        200,
      );
    }
    logger.warn({ file: label, count: file.count, resources }, "an export file's resources differ from its manifest's count");
  }

  /** Indexes the lookup files, then yields the AuditEvent files' events a page at a time. */
  async function* read(checkpoint: ReadyExport, signal: AbortSignal | undefined, progress: { events: number }): AsyncGenerator<AuditEvent[]> {
    const { output } = checkpoint.manifest;
    const lookups = output.flatMap((file, i) => (file.type === 'AuditEvent' ? [] : [i]));
    const events = output.flatMap((file, i) => (file.type === 'AuditEvent' ? [i] : []));
    const downloads = job.downloads(checkpoint, [...lookups, ...events], signal);
    try {
      // This export's own: an export restarted within the run (its files expired) reports afresh.
      unexported = await job.reportErrors(checkpoint, signal);
      closeIndex();
      // Beside the export's folder, not in it: the folder is removed when the export is finished or abandoned, while
      // the pipeline may still map the last pages, and Windows refuses to remove an open SQLite file.
      index = new LookupIndex(join(options.dir, lookupIndexName(checkpoint.id)));
      resolver.use(index);
      for (const i of lookups) {
        const file = output[i] as (typeof output)[number];
        const label = fileLabel(file, i, output.length);
        let resources = 0;
        for await (const lines of downloads.lines(i)) {
          const batch: IndexedLine[] = [];
          for (let k = 0; k < lines.length; k++) {
            const json = lines.text(k);
            if (json.trim() === '') continue;
            batch.push({ resource: parseLine<FhirResource>(json, file.type, label, lines.first + k), json });
            resources += 1;
            if (batch.length >= LOOKUP_CHUNK) index.add(batch.splice(0));
          }
          index.add(batch);
        }
        checkCount(file, label, resources);
      }
      if (lookups.length > 0) logger.info({ resources: index.size, files: lookups.length }, "indexed the export's lookup files");
      let page: AuditEvent[] = [];
      for (const i of events) {
        const file = output[i] as (typeof output)[number];
        const label = fileLabel(file, i, output.length);
        let resources = 0;
        for await (const lines of downloads.lines(i)) {
          for (let k = 0; k < lines.length; k++) {
            const text = lines.text(k);
            if (text.length === 0 || text.trim() === '') continue;
            page.push(parseLine<AuditEvent>(text, 'AuditEvent', label, lines.first + k));
            resources += 1;
            if (page.length >= pageSize) {
              progress.events += page.length;
              yield page;
              page = [];
            }
          }
        }
        // A short file fails the run: its watermark does not move, whatever pages of it were read.
        checkCount(file, label, resources);
      }
      if (page.length > 0) {
        progress.events += page.length;
        yield page;
      }
    } finally {
      await downloads.stop();
    }
  }

  return {
    resolver,
    // The export is asynchronous and its endpoints are not reliably listed in /metadata: a token proves the client.
    check: async (signal) => {
      await http.options.tokenSource.getToken(signal);
    },
    async *pages(window, signal, onNote) {
      covered = undefined;
      unexported = 0;
      note = onNote;
      const since = scopedSince(window);
      const request: ExportRequest = { ...scope, types: [...settings.types], ...(since !== undefined ? { since } : {}) };
      // No new export while broken ones keep coming; an export in flight for this same request is still resumed.
      const inFlight = loadCheckpoint(options.store);
      if (inFlight === undefined || !sameRequest(inFlight.request, request)) {
        refuseWhileBackingOff(options.store, http.options.clock.now(), window.explicitSince === true, retryCommandSince(request.since));
      }
      const progress = { events: 0 };
      try {
        for (let restarts = 0; ; restarts++) {
          const checkpoint = await job.ready(request, signal);
          try {
            yield* read(checkpoint, signal, progress);
          } catch (error) {
            if (isBrokenFile(error) && !signal?.aborted) {
              // Its downloaded copy is kept as complete: resumed, every later run would read the same broken line and
              // stop the same way, never asking the server again. The export is given up instead; the next run asks
              // for a new one (the same `_since`: nothing is skipped, and what Purview has is not sent twice).
              closeIndex();
              await job.abandon(checkpoint, signal);
              const next = recordBrokenExport(options.store, http.options.clock.now());
              const then =
                next === undefined
                  ? 'the next run requests a new one.'
                  : `the next export is requested after ${new Date(next.atMs).toISOString()} (the last ${next.count} in a row were broken), or at once by \`bridge sync --since ${retryCommandSince(request.since)}\`.`;
              throw new FhirError('BRG_ERR_FHIR_EXPORT_FILE', `${error.message} The export was given up; ${then}`, {
                status: error.status,
                resourceType: 'export',
              });
            }
            if (!(error instanceof ExportExpiredError) && !(error instanceof ExportRefusedError)) throw error;
            // Resumed, the export would only ask for the same file again (a refused one: every run, for good).
            closeIndex();
            await job.abandon(checkpoint, signal);
            const refused = error instanceof ExportRefusedError;
            if (refused) {
              const inARow = recordRefusedExport(options.store);
              if (inARow >= MAX_REFUSED_IN_A_ROW) throw refusedFiles(error, inARow);
            }
            // As the message says it: the bearer sent and refused, or the file gone.
            const what = refused ? 'were refused' : 'expired';
            const answer = `${error.file} answered HTTP ${error.status}${refused ? ' to the access token, a new one too' : ''}`;
            if (progress.events > 0) {
              // Events already went to the spool; a new export would hand them over again within this run.
              throw exportError(
                `The export's files ${what} (${answer}) after ${progress.events} of its events were read; this run stopped without pushing them, and the next run starts a new export`,
                error.status,
              );
            }
            if (restarts >= MAX_RESTARTS)
              throw exportError(
                `The export's files kept ${refused ? 'expiring or being refused' : 'expiring'} before they could be downloaded (${answer}, ${restarts + 1} exports)`,
                error.status,
              );
            logger.warn({ status: error.status, file: error.file }, `the export's files ${what} before they were downloaded; starting a new export`);
            job.emit({ type: 'restart', reason: `files ${refused ? 'refused' : 'expired'} (HTTP ${error.status})` });
            continue;
          }
          await job.finish(checkpoint, signal);
          clearBrokenExports(options.store);
          clearRefusedExports(options.store);
          // Whether this transactionTime becomes the watermark is the pipeline's to decide (a dry run's does not).
          const { since: from } = checkpoint.request;
          recordCovered(
            options.store,
            { until: checkpoint.manifest.transactionTime, scope, at: Date.parse(checkpoint.kickedOffAt), ...(from === undefined ? {} : { from }) },
            window.dedupeBefore,
          );
          covered = checkpoint.manifest.transactionTime;
          return;
        }
      } catch (error) {
        closeIndex();
        throw error;
      }
    },
    coveredUntil: () => covered,
    unexported: () => unexported,
    // `_since` selects resources by their stored time (the pipeline falls back to `recorded` when there is none).
    windowTimeOf: (event) => instantMs(event.meta?.lastUpdated),
    // Called once the pull ended (the pipeline's last map has run, or it failed): the lookup index is no longer needed.
    close() {
      closeIndex();
      note = undefined;
    },
  };
}

/** The operator's line for an export step (counts and the server's X-Progress text, already cleaned; no PHI). */
export function describeExportEvent(event: BulkExportEvent): string | undefined {
  switch (event.type) {
    case 'kick-off':
      return `export requested${event.since ? ` (changes since ${event.since})` : ''}`;
    case 'resumed':
      return event.phase === 'polling'
        ? 'waiting for the export an earlier run requested'
        : `resuming the export's downloads (${event.filesComplete} of ${event.files} files complete)`;
    case 'progress':
      return `export in progress: ${event.progress}`;
    case 'manifest':
      return `export ready: ${event.files} file(s) as of ${event.transactionTime}`;
    case 'downloaded':
      return `downloaded ${event.file}`;
    case 'export-errors':
      return `the server reported ${event.outcomes} error(s) for this export`;
    case 'restart':
      return `starting a new export: ${event.reason}`;
    case 'full-export':
      return event.since === undefined
        ? `exporting everything, not only changes since the watermark: ${event.reason}`
        : `exporting changes since ${event.since}, not only since the watermark: ${event.reason}; what changed before is left out, as the delivery ledger no longer knows which of it Purview has`;
    case 'finished':
      return undefined;
  }
}

/** Why a watermark of scope `from` does not hold for `to`, for the operator (no URL: the server is named by its key). */
function scopeChange(from: ExportScope, to: ExportScope): string {
  if (from.base !== to.base) return 'it came from an export of another FHIR server (fhir.baseUrl changed)';
  return `it came from an export of another scope (${scopeName(from)}, now ${scopeName(to)})`;
}

function scopeName(scope: ExportScope): string {
  return scope.level === 'group' ? `Group ${scope.groupId ?? ''}` : `${scope.level} level`;
}

/**
 * The error that ends a streak of exports whose files answered 403 to the bearer: not the export's files gone, the
 * client refused. Names the file's type and what to check; the next run asks for one export (refused-exports.ts).
 */
function refusedFiles(error: ExportRefusedError, inARow: number): FhirError {
  // An error file (the export's report of what it could not export) is OperationOutcomes: no resource scope reads it.
  const check =
    error.type === 'OperationOutcome'
      ? "the FHIR server does not let this client read the export's error report. Check that the client has Bulk Data export enabled at the EHR and that the server serves an export's error files to the client that asked for it"
      : `the FHIR server does not let this client read exported ${error.type}. Check that the client has the scope system/${error.type}.read and Bulk Data export enabled at the EHR, and that its background user may read ${error.type}`;
  return exportError(
    `${error.file} answered HTTP 403 with ${error.text} to the access token, a new one too, in ${inARow} exports in a row.${error.unquoted} So ${check}; the export was given up, and the next run requests a new one`,
    error.status,
  );
}

/** A downloaded file that is not what the manifest says (files.ts exportFileError): bad JSON, another type, broken gzip. */
function isBrokenFile(error: unknown): error is FhirError {
  return error instanceof FhirError && error.code === 'BRG_ERR_FHIR_EXPORT_FILE';
}

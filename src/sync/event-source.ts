/**
 * Where a connector's AuditEvents come from. The pipeline pulls pages of events for a window from a source, resolves
 * what the mapping references through the source's resolver, and never knows how the events were fetched: FHIR
 * search today (src/fhir/search-source.ts), Bulk Data `$export` as another implementation.
 */
import type { AuditEvent } from 'fhir/r4.js';
import type { ReferenceResolver } from '../fhir/index.js';
import type { SyncWindow } from './window.js';

export interface EventSource {
  /** Checks, before anything is pulled, that the source can serve the run (e.g. /metadata lists AuditEvent search). */
  check(signal?: AbortSignal): Promise<void>;
  /**
   * Pages of AuditEvents recorded in the window, in about time order (the ledger and overlap keep each once).
   * `note` takes the source's own progress for the operator (e.g. an export's X-Progress), one line without PHI.
   */
  pages(window: SyncWindow, signal?: AbortSignal, note?: (message: string) => void): AsyncIterable<readonly AuditEvent[]>;
  /** Resolves the Patients, Practitioners (and other resources) the mapping reads, in batches. */
  readonly resolver: ReferenceResolver;
  /**
   * After the pages: the instant up to which the source's events are complete, when that is not the window's end (a
   * Bulk Data export covers up to its manifest's transactionTime). The run records it and the watermark moves to it.
   */
  coveredUntil?(): string | undefined;
  /**
   * After the pages: how many resources the source said it could not deliver (a Bulk export's error files). The
   * watermark moves past them, so the run records how many, for the operator.
   */
  unexported?(): number;
  /**
   * The instant the source selects an event by (the search's date parameter: `recorded` for `date`, `meta.lastUpdated`
   * for `_lastUpdated`); default `recorded`. The overlap between windows is de-duplicated by this time.
   */
  windowTimeOf?(event: AuditEvent): number | undefined;
  /**
   * The source's server's time now, by its last answer (the Date header), when the window's end is this host's clock's:
   * the pull refuses a window ending past it by more than the overlap absorbs. Undefined where the source ends its
   * windows itself (a Bulk export's transactionTime) or before any answer.
   */
  serverNow?(): number | undefined;
  /** Releases what the pull held open (files, indexes); called once the pull ended, whether it succeeded or not. */
  close?(): void;
}

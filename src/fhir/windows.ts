/**
 * Pulling one time window of AuditEvents: split into slices small enough for one search session, each slice walked
 * page by page in `_sort` order, and Epic's OperationOutcome 4113 ("Session ID for cached search results has
 * expired": re-issue the original search, docs/epic-smart.md §6.2) recovered by re-searching the slice from the last instant
 * already yielded, skipping the events yielded at that instant. A paging loop whose URLs change is caught by a
 * RepeatGuard over the whole pull (loop-guard.ts).
 *
 * A walk can also skip events without any error: an offset-paged server whose tie order among equal times changes
 * between pages, a page without its `next` link, a server that ignored `_sort` before a 4113 restart. So a slice whose
 * first page states its `total` (and is small enough: MAX_CHECKED_TOTAL) keeps the ids it yielded; a walk that ends
 * with fewer distinct events than that total is walked again from the slice's start, yielding only the missing ones,
 * and a second short walk stops the run (nothing of the window is pushed; the next run pulls it again). Memory per
 * slice is one page plus those ids; a larger slice (the benchmark reads millions of events through one) keeps only the
 * ids of one instant and is not checked.
 * See: https://hl7.org/fhir/R4/search.html#prefix (ge/lt), https://hl7.org/fhir/R4/search.html#_sort
 */
import type { AuditEvent } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import type { FhirClient } from './client.js';
import { FhirError } from './fhir-error.js';
import { searchedTimeOf } from './instant.js';
import { RepeatGuard } from './loop-guard.js';
import { refuseFarOutside, refuseIncompletePage } from './page-checks.js';
import { resourcesOf } from './pages.js';

/** ISO instants; `since` inclusive, `until` exclusive. */
export interface PullWindow {
  readonly since: string;
  readonly until: string;
}

export interface AuditEventPullOptions {
  /** `_count` per page. Default 200. */
  readonly pageSize?: number;
  /** The time parameter searched and sorted on: `date` (AuditEvent.recorded) or `_lastUpdated`. Default 'date'. */
  readonly dateParam?: 'date' | '_lastUpdated';
  /** A slice whose search `total` exceeds this is split in time before it is walked. Default 10000. */
  readonly maxResultsPerSlice?: number;
  /** Check each walked slice against its first page's `total` (see above). Default true. */
  readonly checkTotal?: boolean;
}

/** Milliseconds since the epoch; [since, until). */
interface Slice {
  readonly since: number;
  readonly until: number;
  /** The `total` of the slice this one was split from: a part whose total is no smaller is not split again. */
  readonly splitFrom?: number;
}

interface PullSettings {
  readonly pageSize: number;
  readonly dateParam: 'date' | '_lastUpdated';
  readonly maxResultsPerSlice: number;
  readonly checkTotal: boolean;
}

/** 4113 answers in a row that made no progress before the slice is given up. */
const MAX_FRUITLESS_RESTARTS = 3;
/** Slices are not split below this span: a `total` that stays large at a second's width is walked as it is. */
const MIN_SLICE_MS = 1_000;
/** The largest slice whose ids are kept to check its total (about 100 bytes an id). */
const MAX_CHECKED_TOTAL = 100_000;

/**
 * Yields pages of AuditEvents in ascending time order (the server's `_sort` order). Slices are decided from the
 * first page's `total`, so an unsplit window costs no extra request; a split discards that one page.
 */
export async function* pullAuditEvents(
  client: FhirClient,
  window: PullWindow,
  options: AuditEventPullOptions,
  signal?: AbortSignal,
): AsyncGenerator<AuditEvent[]> {
  const settings = pullSettings(options);
  // One for the whole pull: a loop can re-serve events of an earlier slice as well as of the same one.
  const guard = new RepeatGuard('AuditEvent');
  const pending: Slice[] = [parseWindow(window)];
  for (let slice = pending.shift(); slice; slice = pending.shift()) {
    if (slice.until <= slice.since) continue;
    const parts = yield* pullSlice(client, slice, settings, guard, signal);
    if (parts) pending.unshift(...parts);
  }
}

/** Walks one slice; returns sub-slices instead when its first page says it is too large. */
async function* pullSlice(
  client: FhirClient,
  slice: Slice,
  settings: PullSettings,
  guard: RepeatGuard,
  signal?: AbortSignal,
): AsyncGenerator<AuditEvent[], Slice[] | undefined> {
  const cursor = new SliceCursor(settings.dateParam, slice);
  let fromStart = false;
  let rewalked = false;
  for (let fruitless = 0; ; ) {
    const yieldedBefore = cursor.yielded;
    // A search that reads the slice again from its start reads events already yielded by design: its own guard, fed
    // the pages as served, still catches a loop within it.
    const searchGuard = fromStart ? new RepeatGuard('AuditEvent') : guard;
    searchGuard.newSearch();
    try {
      let page = 0;
      const from = fromStart ? slice.since : cursor.resumeFrom(slice.since);
      for await (const bundle of client.searchPages('AuditEvent', sliceQuery(settings, from, slice.until), signal)) {
        page += 1;
        if (page === 1 && !cursor.started) {
          const parts = splitSlice(slice, bundle.total, settings.maxResultsPerSlice);
          if (parts) return parts;
          cursor.start(settings.checkTotal ? bundle.total : undefined, settings.maxResultsPerSlice);
        }
        refuseIncompletePage(bundle);
        const events = resourcesOf<AuditEvent>(bundle, 'AuditEvent');
        // After the cursor: events a re-issued search legitimately reads again are gone by now.
        const { served, fresh } = cursor.accept(events);
        if (
          searchGuard.isRepeat(
            (fromStart ? events : served).map((event) => event.id),
            page,
          ) &&
          !fromStart
        )
          continue;
        if (fresh.length > 0) yield fresh;
      }
      const missing = cursor.missing();
      if (missing <= 0) return undefined;
      if (rewalked) throw incompleteSliceError(settings, slice, cursor);
      rewalked = true;
      fromStart = true;
    } catch (error) {
      if (!isSearchExpired(error)) throw error;
      fruitless = cursor.yielded > yieldedBefore ? 0 : fruitless + 1;
      if (fruitless > MAX_FRUITLESS_RESTARTS) throw error;
      // Out of order, the last instant yielded says nothing of what is left: read the slice again from its start, which
      // only a slice that keeps its ids can do without doubling events.
      if (!cursor.ordered && !cursor.checked) throw unorderedRestartError(settings, error);
      fromStart = fromStart || !cursor.ordered;
    }
  }
}

function sliceQuery(settings: PullSettings, from: number, until: number): Record<string, string | string[]> {
  const param = settings.dateParam;
  return { [param]: [`ge${new Date(from).toISOString()}`, `lt${new Date(until).toISOString()}`], _sort: param, _count: String(settings.pageSize) };
}

/**
 * Equal time parts, as many as the total needs; uneven density is handled by splitting a part again. A part whose
 * total is no smaller than the slice it came from, or one a second wide, is walked whole: a `total` that does not
 * count the slice (an estimate, the whole table) would otherwise split it down to milliseconds, a search each.
 */
function splitSlice(slice: Slice, total: number | undefined, max: number): Slice[] | undefined {
  const span = slice.until - slice.since;
  if (total === undefined || total <= max || span < 2 * MIN_SLICE_MS) return undefined;
  if (slice.splitFrom !== undefined && total >= slice.splitFrom) return undefined;
  const count = Math.min(Math.floor(span / MIN_SLICE_MS), Math.max(2, Math.ceil(total / max)));
  const edges = Array.from({ length: count + 1 }, (_, i) => slice.since + Math.floor((span * i) / count));
  return edges.slice(1).map((until, i) => ({ since: edges[i] ?? slice.since, until, splitFrom: total }));
}

/** Epic's "Session ID for cached search results has expired" (docs/epic-smart.md §6.2). */
export function isSearchExpired(error: unknown): boolean {
  if (!(error instanceof BridgeError) || error.code !== 'BRG_ERR_FHIR_HTTP') return false;
  // Epic may put 4113 behind another issue or coding: any of the outcome's codes counts.
  return error.details['outcomeCode'] === '4113' || (error instanceof FhirError && error.outcome?.codes.includes('4113') === true);
}

function unorderedRestartError(settings: PullSettings, cause: unknown): BridgeError {
  return new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `The FHIR server's AuditEvent search session expired (4113) and its results were not sorted by ${settings.dateParam}, so the search cannot resume without doubling events. ` +
      'Lower fhir.maxResultsPerSlice so each slice is read within one session.',
    { cause, details: { status: 400, resourceType: 'AuditEvent', outcomeCode: '4113' } },
  );
}

function incompleteSliceError(settings: PullSettings, slice: Slice, cursor: SliceCursor): BridgeError {
  const since = new Date(slice.since).toISOString();
  const until = new Date(slice.until).toISOString();
  return new BridgeError(
    'BRG_ERR_FHIR_PAGING',
    `The FHIR server's AuditEvent search said ${cursor.expected} events are recorded from ${since} until ${until}, but its pages held ${cursor.distinct}, twice: its paging skips events. ` +
      'The pull stopped there and nothing from this window was pushed; the next run reads it again. Report the paging to the EHR team (a sort without a unique tie-break, a missing next link). ' +
      "If that server's Bundle.total is only an estimate, set fhir.checkSearchTotal to false.",
    { details: { resourceType: 'AuditEvent', expected: cursor.expected ?? 0, received: cursor.distinct, since, until, dateParam: settings.dateParam } },
  );
}

/**
 * Where a slice stands: the last instant yielded, the ids yielded at exactly that instant, and whether order held;
 * for a checked slice, every id yielded and the total its first page stated.
 */
class SliceCursor {
  yielded = 0;
  ordered = true;
  started = false;
  /** The first page's total, for a checked slice. */
  expected: number | undefined;
  private lastMs = Number.NEGATIVE_INFINITY;
  private idsAtLast = new Set<string>();
  private ids: Set<string> | undefined;
  private withoutId = 0;

  constructor(
    private readonly dateParam: 'date' | '_lastUpdated',
    private readonly slice: Slice,
  ) {}

  /** The walk begins: `total` (from its first page, when checked and small enough) is what it must yield. */
  start(total: number | undefined, maxResultsPerSlice: number): void {
    this.started = true;
    if (total === undefined || total > Math.min(maxResultsPerSlice, MAX_CHECKED_TOTAL)) return;
    this.expected = total;
    this.ids = new Set();
  }

  /** The slice keeps its ids: it can be read again from its start without yielding an event twice. */
  get checked(): boolean {
    return this.ids !== undefined;
  }

  /** Distinct events yielded (events without an id count each). */
  get distinct(): number {
    return (this.ids?.size ?? 0) + this.withoutId;
  }

  /** How many events the first page's total says are still to come; 0 when unchecked. */
  missing(): number {
    return this.expected === undefined ? 0 : this.expected - this.distinct;
  }

  /** A re-issued search starts at the last instant yielded (inclusive: `ge`), or at the slice start. */
  resumeFrom(sliceSince: number): number {
    return Math.max(sliceSince, this.lastMs);
  }

  /**
   * Sorts one page's events: `served`, all but those a re-issued search reads again at its first instant (what the
   * repeat guard judges), and `fresh`, those not yielded yet (what is yielded). A checked slice knows every event it
   * yielded, by id and version: a new version (a `_lastUpdated` walk) is a new event.
   */
  accept(events: readonly AuditEvent[]): { served: AuditEvent[]; fresh: AuditEvent[] } {
    const served: AuditEvent[] = [];
    const fresh: AuditEvent[] = [];
    for (const event of events) {
      const at = searchedTimeOf(event, this.dateParam);
      if (at !== undefined) refuseFarOutside(event, at, this.slice, this.dateParam);
      const id = event.id;
      if (at !== undefined && at === this.lastMs && id !== undefined && this.idsAtLast.has(id)) continue;
      served.push(event);
      if (this.ids !== undefined) {
        const key = id === undefined ? undefined : `${id}|${event.meta?.versionId ?? ''}`;
        if (key !== undefined && this.ids.has(key)) continue;
        if (key === undefined) this.withoutId += 1;
        else this.ids.add(key);
      }
      if (at !== undefined && at > this.lastMs) {
        this.lastMs = at;
        this.idsAtLast = new Set(id === undefined ? [] : [id]);
      } else if (at !== undefined && at === this.lastMs) {
        if (id !== undefined) this.idsAtLast.add(id);
      } else if (at !== undefined) {
        this.ordered = false;
      }
      fresh.push(event);
    }
    this.yielded += fresh.length;
    return { served, fresh };
  }
}

function pullSettings(options: AuditEventPullOptions): PullSettings {
  const pageSize = options.pageSize ?? 200;
  const maxResultsPerSlice = options.maxResultsPerSlice ?? 10_000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new TypeError(`Expected \`pageSize\` to be a whole number >= 1, got \`${pageSize}\``);
  if (!Number.isInteger(maxResultsPerSlice) || maxResultsPerSlice < 1) {
    throw new TypeError(`Expected \`maxResultsPerSlice\` to be a whole number >= 1, got \`${maxResultsPerSlice}\``);
  }
  return { pageSize, maxResultsPerSlice, dateParam: options.dateParam ?? 'date', checkTotal: options.checkTotal ?? true };
}

function parseWindow(window: PullWindow): Slice {
  const since = Date.parse(window.since);
  const until = Date.parse(window.until);
  if (Number.isNaN(since) || Number.isNaN(until) || since > until) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Pull window since=${window.since} until=${window.until} must be two ISO instants with since <= until.`);
  }
  return { since, until };
}

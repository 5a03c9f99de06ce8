/**
 * Pulling one time window of AuditEvents: split into slices small enough for one search session, each slice walked
 * page by page in `_sort` order, and Epic's OperationOutcome 4113 ("Session ID for cached search results has
 * expired": re-issue the original search, docs/epic-smart.md §6.2) recovered by re-searching the slice from the last instant
 * already yielded, skipping the events yielded at that instant. Memory per slice is one page plus the ids of one
 * instant, whatever the slice size (the benchmark reads millions of events through one slice). A paging loop whose
 * URLs change is caught by a RepeatGuard over the whole pull (loop-guard.ts).
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
}

/** Milliseconds since the epoch; [since, until). */
interface Slice {
  readonly since: number;
  readonly until: number;
}

interface PullSettings {
  readonly pageSize: number;
  readonly dateParam: 'date' | '_lastUpdated';
  readonly maxResultsPerSlice: number;
}

/** 4113 answers in a row that made no progress before the slice is given up. */
const MAX_FRUITLESS_RESTARTS = 3;

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
  for (let fruitless = 0; ; ) {
    const yieldedBefore = cursor.yielded;
    guard.newSearch();
    try {
      let page = 0;
      for await (const bundle of client.searchPages('AuditEvent', sliceQuery(settings, cursor.resumeFrom(slice.since), slice.until), signal)) {
        page += 1;
        if (page === 1 && cursor.yielded === 0) {
          const parts = splitSlice(slice, bundle.total, settings.maxResultsPerSlice);
          if (parts) return parts;
        }
        refuseIncompletePage(bundle);
        // After the cursor: events a re-issued search legitimately reads again at its first instant are gone by now.
        const fresh = cursor.accept(resourcesOf<AuditEvent>(bundle, 'AuditEvent'));
        if (
          guard.isRepeat(
            fresh.map((event) => event.id),
            page,
          )
        )
          continue;
        if (fresh.length > 0) yield fresh;
      }
      return undefined;
    } catch (error) {
      if (!isSearchExpired(error)) throw error;
      fruitless = cursor.yielded > yieldedBefore ? 0 : fruitless + 1;
      if (fruitless > MAX_FRUITLESS_RESTARTS) throw error;
      if (!cursor.ordered) throw unorderedRestartError(settings, error);
    }
  }
}

function sliceQuery(settings: PullSettings, from: number, until: number): Record<string, string | string[]> {
  const param = settings.dateParam;
  return { [param]: [`ge${new Date(from).toISOString()}`, `lt${new Date(until).toISOString()}`], _sort: param, _count: String(settings.pageSize) };
}

/** Equal time parts, as many as the total needs; uneven density is handled by splitting a part again. */
function splitSlice(slice: Slice, total: number | undefined, max: number): Slice[] | undefined {
  const span = slice.until - slice.since;
  if (total === undefined || total <= max || span < 2) return undefined;
  const count = Math.min(span, Math.max(2, Math.ceil(total / max)));
  const edges = Array.from({ length: count + 1 }, (_, i) => slice.since + Math.floor((span * i) / count));
  return edges.slice(1).map((until, i) => ({ since: edges[i] ?? slice.since, until }));
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

/** Where a slice stands: the last instant yielded, the ids yielded at exactly that instant, and whether order held. */
class SliceCursor {
  yielded = 0;
  ordered = true;
  private lastMs = Number.NEGATIVE_INFINITY;
  private idsAtLast = new Set<string>();

  constructor(
    private readonly dateParam: 'date' | '_lastUpdated',
    private readonly slice: Slice,
  ) {}

  /** A re-issued search starts at the last instant yielded (inclusive: `ge`), or at the slice start. */
  resumeFrom(sliceSince: number): number {
    return Math.max(sliceSince, this.lastMs);
  }

  /** The events not yielded yet, in order; remembers them. */
  accept(events: readonly AuditEvent[]): AuditEvent[] {
    const fresh: AuditEvent[] = [];
    for (const event of events) {
      const at = searchedTimeOf(event, this.dateParam);
      if (at !== undefined) refuseFarOutside(event, at, this.slice, this.dateParam);
      if (at === undefined) {
        fresh.push(event);
      } else if (at > this.lastMs) {
        this.lastMs = at;
        this.idsAtLast = new Set(event.id === undefined ? [] : [event.id]);
        fresh.push(event);
      } else if (at === this.lastMs) {
        if (event.id !== undefined && this.idsAtLast.has(event.id)) continue;
        if (event.id !== undefined) this.idsAtLast.add(event.id);
        fresh.push(event);
      } else {
        this.ordered = false;
        fresh.push(event);
      }
    }
    this.yielded += fresh.length;
    return fresh;
  }
}

function pullSettings(options: AuditEventPullOptions): PullSettings {
  const pageSize = options.pageSize ?? 200;
  const maxResultsPerSlice = options.maxResultsPerSlice ?? 10_000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new TypeError(`Expected \`pageSize\` to be a whole number >= 1, got \`${pageSize}\``);
  if (!Number.isInteger(maxResultsPerSlice) || maxResultsPerSlice < 1) {
    throw new TypeError(`Expected \`maxResultsPerSlice\` to be a whole number >= 1, got \`${maxResultsPerSlice}\``);
  }
  return { pageSize, maxResultsPerSlice, dateParam: options.dateParam ?? 'date' };
}

function parseWindow(window: PullWindow): Slice {
  const since = Date.parse(window.since);
  const until = Date.parse(window.until);
  if (Number.isNaN(since) || Number.isNaN(until) || since > until) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Pull window since=${window.since} until=${window.until} must be two ISO instants with since <= until.`);
  }
  return { since, until };
}

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
 * ids of one instant and is not checked. Without a total, a page that is the one before it again (served in place of the
 * next) is the one loss the walk can still see: an ordered walk searches again from its last instant instead of
 * following that page's link.
 * See: https://hl7.org/fhir/R4/search.html#prefix (ge/lt), https://hl7.org/fhir/R4/search.html#_sort
 */
import type { AuditEvent } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import type { FhirClient } from './client.js';
import { FhirError } from './fhir-error.js';
import { pagingLoopError, RepeatGuard } from './loop-guard.js';
import { isCutShort, refuseIncompletePage } from './page-checks.js';
import { resourcesOf } from './pages.js';
import { type Slice, SliceCursor } from './slice-cursor.js';

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
  /**
   * Called once per pull when a slice's first page gives no `total`: the slice can then be neither split nor checked,
   * so a walk that skips events (a page lost between offsets) goes unseen. The caller says so.
   */
  readonly onNoTotal?: () => void;
}

interface PullSettings {
  readonly pageSize: number;
  readonly dateParam: 'date' | '_lastUpdated';
  readonly maxResultsPerSlice: number;
  readonly checkTotal: boolean;
  readonly onNoTotal: (() => void) | undefined;
}

/** Searches issued again in a row (after a 4113, or a page repeated in place of the next) that made no progress before the slice is given up. */
const MAX_FRUITLESS_RESTARTS = 3;
/** Walks of one slice from its start (the first, a re-walk, restarts of walks out of order) before it is given up. */
const MAX_WALKS = 6;
/** Why a walk stops whose pages keep repeating the one before them (windows.ts pullSlice, without a total). */
const REPEATED_IN_PLACE = 'a page repeated the one before it, also each time the search was issued again from the last instant read';
/** Slices are not split below this span: a `total` that stays large at a second's width is walked as it is. */
const MIN_SLICE_MS = 1_000;
/**
 * What the pull has learnt of the server's `total`: once a part reported as many events as the slice it came from
 * while another part did too, the total does not count the range searched (an estimate, the whole table), and no
 * slice is split on it any more.
 */
interface Totals {
  uncounted: boolean;
  /** onNoTotal was called (once per pull). */
  noTotalSaid: boolean;
}

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
  const totals: Totals = { uncounted: false, noTotalSaid: false };
  const pending: Slice[] = [parseWindow(window)];
  for (let slice = pending.shift(); slice; slice = pending.shift()) {
    if (slice.until <= slice.since) continue;
    const parts = yield* pullSlice(client, slice, settings, guard, totals, signal);
    if (parts) pending.unshift(...parts);
  }
}

/** Walks one slice; returns sub-slices instead when its first page says it is too large. */
async function* pullSlice(
  client: FhirClient,
  slice: Slice,
  settings: PullSettings,
  guard: RepeatGuard,
  totals: Totals,
  signal?: AbortSignal,
): AsyncGenerator<AuditEvent[], Slice[] | undefined> {
  const cursor = new SliceCursor(settings.dateParam, slice);
  let rewalked = false;
  // A walk that reads the slice again from its start reads events already yielded by design: it gets its own guard
  // (kept across its resumed searches), which still catches a loop within it.
  let walkGuard = guard;
  const newWalk = (): void => {
    cursor.newWalk();
    walkGuard = new RepeatGuard('AuditEvent');
  };
  for (let fruitless = 0; ; ) {
    const servedBefore = cursor.served;
    const yieldedBefore = cursor.yielded;
    walkGuard.newSearch();
    // A re-issued search reads its first instant's events again, and accept() leaves them out of `served`: pages of only
    // those are the resume catching up, not empty pages of a loop, as long as there are no more than that instant held.
    const rereadable = cursor.rereadable();
    let reread = 0;
    // The page of this search that repeated the one before it, when the search is to be issued again from the last instant.
    let repeatedAt: number | undefined;
    try {
      let page = 0;
      let previous: string | undefined;
      for await (const bundle of client.searchPages('AuditEvent', sliceQuery(settings, cursor.resumeFrom(), slice.until), signal)) {
        page += 1;
        if (page === 1 && cursor.fresh) {
          if (bundle.total === undefined && !totals.noTotalSaid) {
            totals.noTotalSaid = true;
            settings.onNoTotal?.();
          }
          if (isCutShort(bundle)) {
            // Epic capped this search (4127) before anything of it was yielded: each half asks for less, as often as
            // needed. Slices are walked first-half first, so a server that cuts every search short reaches a slice too
            // short to halve within about log2(span in seconds) searches, and the check below stops the run there.
            // The halves carry no total of their parent (a cut search states none that counts the range): each is split
            // and checked against its own total like a slice never split, not taken for a stalled split of one.
            const { splitFrom: _splitFrom, ...unsplit } = slice;
            const halves = splitSlice(unsplit, settings.maxResultsPerSlice + 1, settings.maxResultsPerSlice);
            if (halves) return halves.map(({ since, until }) => ({ since, until }));
          }
          const parts = totals.uncounted ? undefined : splitSlice(slice, bundle.total, settings.maxResultsPerSlice);
          if (parts && (await countsTheRange(client, settings, slice, bundle.total, totals, signal))) return parts;
          // A total that does not count the range cannot be checked against either.
          cursor.start(settings.checkTotal && !totals.uncounted ? bundle.total : undefined);
        } else if (page === 1 && cursor.totalDue) {
          // The slice as the server counts it now: events that left it since the first walk (an update moves an event
          // out of a _lastUpdated slice) are not missing.
          cursor.expectFromWalk(bundle.total);
        }
        refuseIncompletePage(bundle);
        const events = resourcesOf<AuditEvent>(bundle, 'AuditEvent');
        // A page that is the one before it again stands in place of the next: following its link would skip that page's
        // events, unseen when there is no total to check the walk against. A walk in order has read everything up to its
        // last instant, so searching again from there (as after a 4113) reads the rest, whatever the server's paging did.
        // Only where nothing else checks the walk: a page's keys cost a sort of its ids.
        const keys = !cursor.checked && cursor.ordered ? pageKeys(events) : undefined;
        if (keys !== undefined && keys === previous) {
          repeatedAt = page;
          break;
        }
        previous = keys;
        const { served, fresh } = cursor.accept(events);
        reread += events.length - served.length;
        if (served.length === 0 && events.length > 0 && reread <= rereadable) continue;
        // The first walk drops a page the pull has read before; a walk from the start keeps its new events.
        // By id and version: a page of new versions (events updated mid-walk, met again later in a `_lastUpdated` order)
        // holds events not read before.
        const repeat = walkGuard.isRepeat(
          served.map((event) => (event.id === undefined ? undefined : `${event.id}|${event.meta?.versionId ?? ''}`)),
          page,
        );
        if (repeat && walkGuard === guard) continue;
        if (fresh.length > 0) yield fresh;
      }
      if (repeatedAt !== undefined) {
        fruitless = cursor.yielded > yieldedBefore ? 0 : fruitless + 1;
        if (fruitless > MAX_FRUITLESS_RESTARTS) throw pagingLoopError('AuditEvent', repeatedAt, REPEATED_IN_PLACE);
        continue;
      }
      if (cursor.missing() <= 0) return undefined;
      if (rewalked) throw incompleteSliceError(settings, slice, cursor.shortfall());
      rewalked = true;
      newWalk();
    } catch (error) {
      if (!isSearchExpired(error)) throw error;
      // An ordered walk that was served more has moved on, whatever it yielded; a walk out of order starts again from the
      // slice's start, where only events not yielded before are progress.
      const progressed = cursor.yielded > yieldedBefore || (cursor.ordered && cursor.served > servedBefore);
      fruitless = progressed ? 0 : fruitless + 1;
      if (fruitless > MAX_FRUITLESS_RESTARTS || cursor.walks >= MAX_WALKS) throw error;
      // In order, the walk resumes at the last instant it was served. Out of order, that instant says nothing of what
      // is left: a new walk from the slice's start, which only a slice that keeps its ids can do without doubling events.
      if (cursor.ordered) continue;
      if (!cursor.checked) throw unorderedRestartError(settings, error);
      newWalk();
    }
  }
}

/** A page's events by id and version, in a fixed order; undefined for an empty page or one with an event without id. */
function pageKeys(events: readonly AuditEvent[]): string | undefined {
  if (events.length === 0 || events.some((event) => event.id === undefined)) return undefined;
  return events
    .map((event) => `${event.id}|${event.meta?.versionId ?? ''}`)
    .sort()
    .join('\n');
}

function sliceQuery(settings: PullSettings, from: number, until: number): Record<string, string | string[]> {
  const param = settings.dateParam;
  return { [param]: [`ge${new Date(from).toISOString()}`, `lt${new Date(until).toISOString()}`], _sort: param, _count: String(settings.pageSize) };
}

/**
 * Equal time parts, as many as the total needs; uneven density is handled by splitting a part again. A part whose
 * total did not shrink holds the whole burst of its parent, or the total does not count the range (countsTheRange
 * tells which): it is halved. Never below MIN_SLICE_MS. Each part names a neighbour to probe.
 */
function splitSlice(slice: Slice, total: number | undefined, max: number): Slice[] | undefined {
  const span = slice.until - slice.since;
  if (total === undefined || total <= max || span < 2 * MIN_SLICE_MS) return undefined;
  const stalled = slice.splitFrom !== undefined && total >= slice.splitFrom;
  const count = Math.min(Math.floor(span / MIN_SLICE_MS), stalled ? 2 : Math.max(2, Math.ceil(total / max)));
  // Inner edges on whole seconds: an event recorded to the second is the range of that second in FHIR search, so an
  // edge inside it (10:00:03.333) would put it in both parts. The edges are MIN_SLICE_MS apart or more, so flooring
  // keeps them in order and inside the slice (only the first part may end up shorter than a second).
  const edges = Array.from({ length: count + 1 }, (_, i) => {
    const edge = slice.since + Math.floor((span * i) / count);
    return i === 0 || i === count ? edge : Math.floor(edge / MIN_SLICE_MS) * MIN_SLICE_MS;
  });
  const parts = edges.slice(1).map((until, i) => ({ since: edges[i] ?? slice.since, until }));
  return parts.map((part, i) => ({ ...part, splitFrom: total, neighbour: parts[i === parts.length - 1 ? i - 1 : i + 1] ?? part }));
}

/**
 * A part that reports as many events as the slice it came from holds them all, and its neighbour then holds none; if
 * the neighbour reports as many too, the total counts something else than the range (an estimate, the whole table):
 * the pull stops splitting on it, or it would split a day into thousands of searches. One request of one result.
 */
async function countsTheRange(
  client: FhirClient,
  settings: PullSettings,
  slice: Slice,
  total: number | undefined,
  totals: Totals,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (slice.splitFrom === undefined || slice.neighbour === undefined || total === undefined || total < slice.splitFrom) return true;
  const query = { ...sliceQuery(settings, slice.neighbour.since, slice.neighbour.until), _count: '1' };
  for await (const bundle of client.searchPages('AuditEvent', query, signal)) {
    if (bundle.total !== undefined && bundle.total < slice.splitFrom) return true;
    break;
  }
  totals.uncounted = true;
  return false;
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

function incompleteSliceError(settings: PullSettings, slice: Slice, short: { expected: number; received: number }): BridgeError {
  const since = new Date(slice.since).toISOString();
  const until = new Date(slice.until).toISOString();
  return new BridgeError(
    'BRG_ERR_FHIR_PAGING',
    `The FHIR server's AuditEvent search said ${short.expected} events are recorded from ${since} until ${until}, but its pages held ${short.received}, twice: its paging skips events. ` +
      'The pull stopped there and nothing from this window was pushed; the next run reads it again. Report the paging to the EHR team (a sort without a unique tie-break, a missing next link). ' +
      "If that server's Bundle.total is only an estimate, set fhir.checkSearchTotal to false.",
    { details: { resourceType: 'AuditEvent', ...short, since, until, dateParam: settings.dateParam } },
  );
}

function pullSettings(options: AuditEventPullOptions): PullSettings {
  const pageSize = options.pageSize ?? 200;
  const maxResultsPerSlice = options.maxResultsPerSlice ?? 10_000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new TypeError(`Expected \`pageSize\` to be a whole number >= 1, got \`${pageSize}\``);
  if (!Number.isInteger(maxResultsPerSlice) || maxResultsPerSlice < 1) {
    throw new TypeError(`Expected \`maxResultsPerSlice\` to be a whole number >= 1, got \`${maxResultsPerSlice}\``);
  }
  return { pageSize, maxResultsPerSlice, dateParam: options.dateParam ?? 'date', checkTotal: options.checkTotal ?? true, onNoTotal: options.onNoTotal };
}

function parseWindow(window: PullWindow): Slice {
  const since = Date.parse(window.since);
  const until = Date.parse(window.until);
  if (Number.isNaN(since) || Number.isNaN(until) || since > until) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Pull window since=${window.since} until=${window.until} must be two ISO instants with since <= until.`);
  }
  return { since, until };
}

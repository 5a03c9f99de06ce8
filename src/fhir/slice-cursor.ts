/**
 * Where the walk of one time slice stands (windows.ts). A slice is read by one or more walks: the first, then, when the
 * first came up short of its `Bundle.total`, one re-walk from the slice's start; a walk read out of order that meets a
 * 4113 starts a new one from the start too. Each walk knows its position (the last instant it was served and the ids at
 * that instant, for resuming after a 4113) and, when the slice is checked, every event it was served, to compare with
 * the total its own first page stated. The slice knows every event it yielded, so no walk yields one twice.
 */
import type { AuditEvent } from 'fhir/r4.js';
import { searchedTimeOf } from './instant.js';
import { refuseFarOutside } from './page-checks.js';

/** Milliseconds since the epoch; [since, until). */
export interface Slice {
  readonly since: number;
  readonly until: number;
  /** The `total` of the slice this one was split from. */
  readonly splitFrom?: number;
  /** Another part of that slice, whose total tells a burst from a total that does not count the range (windows.ts). */
  readonly neighbour?: { readonly since: number; readonly until: number };
}

/** The largest slice whose ids are kept to check its total (about 100 bytes an id, twice during a re-walk). */
export const MAX_CHECKED_TOTAL = 100_000;

class Walk {
  lastMs = Number.NEGATIVE_INFINITY;
  idsAtLast = new Set<string>();
  ordered = true;
  /** Events served by this walk (restarts after a 4113 included): its progress. */
  served = 0;
  /** This walk's first page's total, when the slice is checked. */
  expected: number | undefined;
  /** A checked walk whose first page has not been read yet (its first request may have met a 4113). */
  totalDue = false;
  /**
   * Every resource this walk was served (its id), yielded now or earlier, when the slice is checked. A total counts
   * resources, each once in its current version: a walk served two versions of one event (updated mid-walk, so moved
   * along a `_lastUpdated` order) was served one, and a shifted page may have hidden another from it.
   */
  seen: Set<string> | undefined;
  withoutId = 0;

  constructor(readonly number: number) {}

  get distinct(): number {
    return (this.seen?.size ?? 0) + this.withoutId;
  }
}

export class SliceCursor {
  yielded = 0;
  private walk = new Walk(1);
  /** Every event the slice yielded (id|version), when it is checked. */
  private ids: Set<string> | undefined;

  constructor(
    private readonly dateParam: 'date' | '_lastUpdated',
    private readonly slice: Slice,
  ) {}

  /** No page of the current walk has been read yet. */
  get fresh(): boolean {
    return this.walk.served === 0 && this.walk.expected === undefined && this.walk.number === 1;
  }

  /** Whether the current walk has read its events in the time order searched. */
  get ordered(): boolean {
    return this.walk.ordered;
  }

  /** The slice keeps its ids: it can be read again from its start without yielding an event twice. */
  get checked(): boolean {
    return this.ids !== undefined;
  }

  get served(): number {
    return this.walk.served;
  }

  /** Walks begun so far. */
  get walks(): number {
    return this.walk.number;
  }

  /** The current walk still needs its first page's total. */
  get totalDue(): boolean {
    return this.walk.totalDue;
  }

  /** The first page of the slice: `total` (when it is to be checked and small enough) decides whether ids are kept. */
  start(total: number | undefined): void {
    if (total === undefined || total > MAX_CHECKED_TOTAL) return;
    this.ids = new Set();
    this.expectFromWalk(total);
  }

  /** A walk begins from the slice's start; its first page's `total` is what it must be served. */
  expectFromWalk(total: number | undefined): void {
    if (!this.checked) return;
    this.walk.expected = total;
    this.walk.seen = new Set();
    this.walk.totalDue = false;
  }

  /** Starts another walk from the slice's start (its resume point: it has been served nothing yet). */
  newWalk(): void {
    this.walk = new Walk(this.walk.number + 1);
    this.walk.totalDue = this.checked;
  }

  /** How many events the current walk's total says it was not served; 0 when unchecked. */
  missing(): number {
    return this.walk.expected === undefined ? 0 : this.walk.expected - this.walk.distinct;
  }

  /** What the current walk expected and was served, for the error of a slice read short twice. */
  shortfall(): { expected: number; received: number } {
    return { expected: this.walk.expected ?? 0, received: this.walk.distinct };
  }

  /** How many events a search re-issued now reads again at its first instant (accept() leaves them out of `served`). */
  rereadable(): number {
    return this.walk.idsAtLast.size;
  }

  /** Where the walk's next search starts: the last instant it was served (inclusive: `ge`), or the slice's start. */
  resumeFrom(): number {
    return Math.max(this.slice.since, this.walk.lastMs);
  }

  /**
   * Sorts one page's events: `served`, all but those a re-issued search reads again at its first instant (what the
   * repeat guard judges), and `fresh`, those the slice has not yielded yet (what is yielded). A checked slice knows every
   * event it yielded, by id and version: a new version (a `_lastUpdated` walk) is a new event. An event without an id
   * cannot be known again: only the first walk yields it.
   */
  accept(events: readonly AuditEvent[]): { served: AuditEvent[]; fresh: AuditEvent[] } {
    const served: AuditEvent[] = [];
    const fresh: AuditEvent[] = [];
    const walk = this.walk;
    for (const event of events) {
      const at = searchedTimeOf(event, this.dateParam);
      if (at !== undefined) refuseFarOutside(event, at, this.slice, this.dateParam);
      const id = event.id;
      if (at !== undefined && at === walk.lastMs && id !== undefined && walk.idsAtLast.has(id)) continue;
      served.push(event);
      walk.served += 1;
      if (at !== undefined && at > walk.lastMs) {
        walk.lastMs = at;
        walk.idsAtLast = new Set(id === undefined ? [] : [id]);
      } else if (at !== undefined && at === walk.lastMs) {
        if (id !== undefined) walk.idsAtLast.add(id);
      } else if (at !== undefined) {
        walk.ordered = false;
      }
      const key = id === undefined ? undefined : `${id}|${event.meta?.versionId ?? ''}`;
      if (walk.seen !== undefined) {
        if (id === undefined) walk.withoutId += 1;
        else walk.seen.add(id);
      }
      if (this.ids !== undefined) {
        if (key === undefined ? walk.number > 1 : this.ids.has(key)) continue;
        if (key !== undefined) this.ids.add(key);
      }
      fresh.push(event);
    }
    this.yielded += fresh.length;
    return { served, fresh };
  }
}

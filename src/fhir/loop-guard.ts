/**
 * Paging that never ends (issue #14.6: a `next` link pointing at its own page turned 6 events into 6,400 spooled rows
 * in 90 s). Two guards, both in bounded memory whatever the pull size:
 * - PageUrls: within one search, a `next` link naming a page already requested (or a page's own `self`) is a loop.
 *   URLs are kept as 16-character digests, at most MAX_REMEMBERED of them.
 * - RepeatGuard: within one pull, a loop whose URL changes shows as pages of events already yielded. It keeps the
 *   ids of the last RECENT_PAGES pages and a digest of every page's id set (capped). A page whose events were all
 *   yielded before is dropped; two such pages in a row (or many empty ones) stop the pull. One such page alone is
 *   not an error: an event inserted mid-walk shifts offset pages by one, which repeats isolated events.
 */
import { createHash } from 'node:crypto';
import { BridgeError } from '../errors.js';

const RECENT_PAGES = 16;
const MAX_REMEMBERED = 20_000;
/** Pages in a row made only of already-yielded events before the pull stops. */
const MAX_REPEATED_IN_A_ROW = 2;
/** Empty pages in a row (each with a `next` link) before the pull stops. */
const MAX_EMPTY_IN_A_ROW = 10;

export function pagingLoopError(resourceType: string, page: number, why: string): BridgeError {
  return new BridgeError(
    'BRG_ERR_FHIR_PAGING',
    `The FHIR server's ${resourceType} search loops: ${why} at page ${page}. The pull stopped there and nothing from this window was pushed. ` +
      'Report the broken paging to the EHR team; a smaller fhir.maxResultsPerSlice may avoid the page that loops.',
    { details: { resourceType, page } },
  );
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

/** Adds to a Map kept in insertion order, dropping the oldest entries beyond `max`. */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.set(key, value);
  for (const oldest of map.keys()) {
    if (map.size <= max) break;
    map.delete(oldest);
  }
}

/** The URLs one search has requested or been told are its pages' own, by page number. */
export class PageUrls {
  private readonly seen = new Map<string, number>();

  constructor(private readonly resourceType: string) {}

  /** Records the URLs of page `page`: the one requested and the bundle's `self`. */
  visit(page: number, ...urls: ReadonlyArray<string | undefined>): void {
    for (const url of urls) if (url !== undefined) remember(this.seen, digest(normalise(url)), page, MAX_REMEMBERED);
  }

  /** Throws BRG_ERR_FHIR_PAGING when `next`, found on page `page`, names a page already requested. */
  checkNext(page: number, next: string): void {
    const earlier = this.seen.get(digest(normalise(next)));
    if (earlier === undefined) return;
    const why = earlier === page ? 'the next link points back to the same page' : `the next link points back to page ${earlier}`;
    throw pagingLoopError(this.resourceType, page, why);
  }
}

function normalise(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/** Events already yielded, seen again page after page: a loop whose URLs change. */
export class RepeatGuard {
  private readonly recent: string[][] = [];
  /** id → how many of the recent pages hold it. */
  private readonly recentIds = new Map<string, number>();
  private readonly pageDigests = new Map<string, true>();
  private repeatedInARow = 0;
  private emptyInARow = 0;

  constructor(private readonly resourceType: string) {}

  /** A new search (slice or re-issued search) starts: pages in a row count from zero, the memory of events stays. */
  newSearch(): void {
    this.repeatedInARow = 0;
    this.emptyInARow = 0;
  }

  /**
   * False for a page with new events (remembered); true for a page whose events were all yielded before, which the
   * caller drops. Throws BRG_ERR_FHIR_PAGING once such pages (or empty ones) keep coming.
   */
  isRepeat(ids: ReadonlyArray<string | undefined>, page: number): boolean {
    if (ids.length === 0) {
      if (++this.emptyInARow >= MAX_EMPTY_IN_A_ROW)
        throw pagingLoopError(this.resourceType, page, `${this.emptyInARow} pages in a row held no events and each named a next page`);
      return false;
    }
    this.emptyInARow = 0;
    const known = ids.filter((id): id is string => id !== undefined);
    const pageDigest = digest([...known].sort().join('\n'));
    const repeated = known.length === ids.length && (this.pageDigests.has(pageDigest) || known.every((id) => this.recentIds.has(id)));
    if (repeated) {
      if (++this.repeatedInARow >= MAX_REPEATED_IN_A_ROW) {
        throw pagingLoopError(this.resourceType, page, `${this.repeatedInARow} pages in a row held only events already read on earlier pages`);
      }
      return true;
    }
    this.repeatedInARow = 0;
    remember(this.pageDigests, pageDigest, true, MAX_REMEMBERED);
    this.recent.push(known);
    for (const id of known) this.recentIds.set(id, (this.recentIds.get(id) ?? 0) + 1);
    for (const old of this.recent.length > RECENT_PAGES ? this.recent.splice(0, this.recent.length - RECENT_PAGES) : []) {
      for (const id of old) {
        const left = (this.recentIds.get(id) ?? 1) - 1;
        if (left === 0) this.recentIds.delete(id);
        else this.recentIds.set(id, left);
      }
    }
    return false;
  }
}

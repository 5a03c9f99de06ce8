/**
 * Issue #14.6: a `next` link that loops made the pull run forever (6 events became 6,400 spooled rows in 90 s). A
 * repeated page URL within a search, or pages of events already yielded within a pull, stop it with
 * BRG_ERR_FHIR_PAGING; isolated repeated events are not an error. Memory stays bounded (RepeatGuard keeps the ids
 * of recent pages only).
 */
import type { AuditEvent } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { pullAuditEvents } from '../../src/fhir/index.js';
import { RepeatGuard } from '../../src/fhir/loop-guard.js';
import { allResources, buildFixtures, type FixtureServer, isoAt, startFixtureServer } from './support.js';

const AUDIT_SEARCH = /\/AuditEvent\?/;
const WINDOW = { since: isoAt(0), until: isoAt(60) };
let fixture: FixtureServer | undefined;
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

/** Pulls until done or failed; a runaway pull (the old behaviour) fails the test instead of hanging it. */
async function pullAll(pages: AsyncGenerator<AuditEvent[]>): Promise<{ ids: string[]; error: unknown }> {
  const ids: string[] = [];
  try {
    for await (const page of pages) {
      ids.push(...page.map((event) => event.id ?? '?'));
      if (ids.length > 1_000) throw new Error('runaway pull: the paging loop was not detected');
    }
    return { ids, error: undefined };
  } catch (error) {
    return { ids, error };
  }
}

describe('paging loops', () => {
  it("a next link that is the page's own URL stops the pull at once with BRG_ERR_FHIR_PAGING", async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 30, patients: 3, practitioners: 2 })));
    fixture.server.faults.add({ action: { kind: 'self-next' }, match: AUDIT_SEARCH, times: 1_000 });

    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));

    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect([failure.code, failure.exitCode]).toEqual(['BRG_ERR_FHIR_PAGING', 4]);
    expect(failure.message).toBe(
      "The FHIR server's AuditEvent search loops: the next link points back to the same page at page 1. The pull stopped there and nothing from this window was pushed. " +
        'Report the broken paging to the EHR team; a smaller fhir.maxResultsPerSlice may avoid the page that loops.',
    );
    expect(failure.details).toEqual({ resourceType: 'AuditEvent', page: 1 });
    expect(ids).toHaveLength(10);
    expect(fixture.requestsFor('AuditEvent')).toHaveLength(1);
  });

  it('a next link that changes but serves the same events again stops after two repeated pages, yielding nothing twice', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 30, patients: 3, practitioners: 2 })));
    fixture.server.faults.add({ action: { kind: 'stuck-next' }, match: AUDIT_SEARCH, times: 1_000 });

    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));

    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_PAGING');
    expect((error as BridgeError).message).toContain('2 pages in a row held only events already read on earlier pages at page 3');
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(10);
    expect(fixture.requestsFor('AuditEvent').map((request) => new URLSearchParams(request.query).get('_sid'))).toEqual([null, '1', '2']);
  });

  /**
   * Serves page `from` (by `_offset`) with the rows of `to`, as if events had been inserted mid-walk (or as an
   * offset-paged server whose tie order changes between pages does): events are read twice and others never. `times`:
   * how many requests for that page are served so (default: all).
   */
  async function shiftedServer(from: string, to: string, times = Number.POSITIVE_INFINITY): Promise<FixtureServer> {
    const started = await startFixtureServer(allResources(buildFixtures({ events: 30, patients: 3, practitioners: 2 })));
    const search = started.backend.search.bind(started.backend);
    let left = times;
    started.backend.search = (type, query) => {
      const shifted = new URLSearchParams(query);
      if (shifted.get('_offset') === from && left > 0) {
        left -= 1;
        shifted.set('_offset', to);
      }
      return search(type, shifted);
    };
    return started;
  }

  it('offset pages shifted once (an insert mid-walk) skip two events: the slice is read again and yields each of them once', async () => {
    fixture = await shiftedServer('10', '8', 1);
    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));
    expect(error).toBeUndefined();
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
    // The first walk missed ae-018 and ae-019; the second, from the slice's start, yields only them.
    expect(ids.slice(-2)).toEqual(['ae-018', 'ae-019']);
    expect(fixture.requestsFor('AuditEvent')).toHaveLength(6);
  });

  it('one whole page served again in place of the next: the slice is read again and the ten skipped events come once', async () => {
    fixture = await shiftedServer('20', '10', 1);
    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));
    expect(error).toBeUndefined();
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
  });

  /** The shifted server, its Bundles without `total` (a server that does not count its matches). */
  async function uncountedShiftedServer(from: string, to: string, times: number): Promise<FixtureServer> {
    const started = await shiftedServer(from, to, times);
    const search = started.backend.search.bind(started.backend);
    started.backend.search = async (type, query) => ({ resources: (await search(type, query)).resources });
    return started;
  }

  it('without a total, a page that is the one before it again is not followed: the search goes on from the last instant read, losing nothing', async () => {
    fixture = await uncountedShiftedServer('20', '10', 1);
    let noTotal = 0;
    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10, onNoTotal: () => noTotal++ }));
    expect(error).toBeUndefined();
    expect(noTotal).toBe(1);
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
    // Pages 1-3 (the third repeating the second), then the search again from ae-019's instant: two pages.
    const queries = fixture.requestsFor('AuditEvent').map((request) => new URLSearchParams(request.query));
    expect(queries.map((query) => query.get('_offset'))).toEqual([null, '10', '20', null, '10']);
    expect(queries[3]?.getAll('date')[0]).toBe(`ge${isoAt(19)}`);
  });

  it('without a total, pages that keep repeating the one before them stop the pull once searching again gains nothing', async () => {
    // Thirty events at one instant, and every page past the first is the first again.
    const data = buildFixtures({ events: 30, patients: 3, practitioners: 2 });
    for (const event of data.events) event.recorded = isoAt(5);
    fixture = await startFixtureServer(allResources(data));
    const search = fixture.backend.search.bind(fixture.backend);
    fixture.backend.search = async (type, query) => {
      const page = new URLSearchParams(query);
      if (Number(page.get('_offset') ?? 0) > 0) page.set('_offset', '0');
      return { resources: (await search(type, page)).resources };
    };
    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_PAGING');
    expect((error as BridgeError).message).toContain(
      'a page repeated the one before it, also each time the search was issued again from the last instant read',
    );
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(10);
    // The first search, then four more from the same instant, each of two pages.
    expect(fixture.requestsFor('AuditEvent')).toHaveLength(10);
  });

  it('a page without its next link ends the walk early: the total says so, and the rest is read', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 30, patients: 3, practitioners: 2 })));
    fixture.server.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH });
    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));
    expect(error).toBeUndefined();
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
  });

  it('slices halved after Epic cut a search short (4127) are still checked against their totals: a lost next link is read again', async () => {
    // Epic serves 90 results a search; the pull splits at 30 a slice. The window's search is cut, then its halves'.
    const events = allResources(buildFixtures({ events: 240, patients: 3, practitioners: 2 }));
    const window = { since: isoAt(0), until: isoAt(240) };
    const first = /\/AuditEvent\?(?!.*_offset)/;
    fixture = await startFixtureServer(events, { searchResultCaps: { AuditEvent: 90 } });
    // Three walks lose their next link after the first page: each such slice is read again, and every event comes once.
    fixture.server.faults.add({ action: { kind: 'drop-next' }, match: first, times: 3 });
    const once = await pullAll(pullAuditEvents(fixture.client(), window, { pageSize: 10, maxResultsPerSlice: 30 }));
    expect(once.error).toBeUndefined();
    expect(once.ids).toHaveLength(240);
    expect(new Set(once.ids).size).toBe(240);
    await fixture.server.close();
    // Every walk loses it: the pull stops, rather than passing over what it never read.
    fixture = await startFixtureServer(events, { searchResultCaps: { AuditEvent: 90 } });
    fixture.server.faults.add({ action: { kind: 'drop-next' }, match: first, times: 10_000 });
    const never = await pullAll(pullAuditEvents(fixture.client(), window, { pageSize: 10, maxResultsPerSlice: 30 }));
    expect(never.error).toMatchObject({ code: 'BRG_ERR_FHIR_PAGING' });
  });

  it('paging that skips events on every walk stops the pull with BRG_ERR_FHIR_PAGING naming both counts, nothing yielded twice', async () => {
    fixture = await shiftedServer('10', '8');
    const { ids, error } = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));
    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect(failure.code).toBe('BRG_ERR_FHIR_PAGING');
    expect(failure.message).toContain('said 30 events are recorded from');
    expect(failure.message).toContain('but its pages held 28, twice');
    expect(failure.message).toContain('nothing from this window was pushed');
    expect(failure.details).toMatchObject({ resourceType: 'AuditEvent', expected: 30, received: 28 });
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(28);
  });

  it('with fhir.checkSearchTotal off, a server whose total is only an estimate is walked as its pages say', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 30, patients: 3, practitioners: 2 })));
    fixture.server.faults.add({ action: { kind: 'fixed-total', total: 45 }, match: AUDIT_SEARCH, times: 1_000 });
    const checked = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10 }));
    expect((checked.error as BridgeError).code).toBe('BRG_ERR_FHIR_PAGING');
    const unchecked = await pullAll(pullAuditEvents(fixture.client(), WINDOW, { pageSize: 10, checkTotal: false }));
    expect(unchecked.error).toBeUndefined();
    expect(new Set(unchecked.ids).size).toBe(30);
  });
});

describe('events updated while a _lastUpdated walk reads them', () => {
  it('the new versions, met again at the end of the order, are read; the events their move shifted past are read too', async () => {
    const data = buildFixtures({ events: 6, patients: 2, practitioners: 1 });
    for (const [i, event] of data.events.entries()) event.meta = { versionId: '1', lastUpdated: isoAt(i + 1) };
    fixture = await startFixtureServer(allResources(data), { maxPageSize: 2 });
    const server = fixture;
    const seen: string[] = [];
    let pages = 0;
    for await (const events of pullAuditEvents(server.client(), WINDOW, { dateParam: '_lastUpdated', pageSize: 2 })) {
      seen.push(...events.map((event) => `${event.id}@${event.meta?.versionId}`));
      pages += 1;
      // The first page's two events are updated at once: in _lastUpdated order they now come last, and every later
      // offset page is shifted by two.
      if (pages === 1) {
        const updated = data.events.slice(0, 2).map((event) => ({ ...event, meta: { versionId: '2', lastUpdated: isoAt(30) } }));
        await server.backend.load(updated as AuditEvent[]);
      }
    }
    const ids = data.events.map((event) => event.id);
    expect(seen.sort()).toEqual([...ids.map((id) => `${id}@1`), `${ids[0]}@2`, `${ids[1]}@2`].sort());
  });
});

describe('RepeatGuard', () => {
  const page = (from: number, size = 5): string[] => Array.from({ length: size }, (_, i) => `e${from + i}`);

  it('drops one page of already-yielded events, stops at the second in a row, and remembers whole pages beyond its recent window', () => {
    const guard = new RepeatGuard('AuditEvent');
    for (let p = 0; p < 40; p++) expect(guard.isRepeat(page(p * 5), p + 1)).toBe(false);
    // Page 1 again, long after its ids left the recent window: its digest is still known.
    expect(guard.isRepeat(page(0), 41)).toBe(true);
    // A page of new events resets the count; a mix of forgotten old ids and new ones is new.
    expect(guard.isRepeat(page(1_000), 42)).toBe(false);
    expect(guard.isRepeat([...page(0, 3), 'fresh'], 43)).toBe(false);
    expect(guard.isRepeat(page(1_000), 44)).toBe(true);
    expect(() => guard.isRepeat(page(195), 45)).toThrow(/2 pages in a row held only events already read on earlier pages at page 45/);
  });

  it('keeps the ids of recent pages only: a page mixing ids from 20 pages ago with recent ones is not a repeat', () => {
    const guard = new RepeatGuard('AuditEvent');
    for (let p = 0; p < 20; p++) guard.isRepeat(page(p * 5), p + 1);
    expect(guard.isRepeat(['e0', 'e95', 'e96'], 21)).toBe(false);
    expect(guard.isRepeat(['e90', 'e95', 'e96'], 22)).toBe(true);
  });
});

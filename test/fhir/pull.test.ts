import type { AuditEvent } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createReferenceResolver, pullAuditEvents } from '../../src/fhir/index.js';
import { keyOf } from '../../src/reference-keys.js';
import { allResources, buildFixtures, collect, type FixtureServer, isoAt, startFixtureServer } from './support.js';

const ids = (pages: AuditEvent[][]): string[][] => pages.map((page) => page.map((event) => event.id ?? '?'));
const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `ae-${String(from + i).padStart(3, '0')}`);
const offsetOf = (query: string): string => new URLSearchParams(query).get('_offset') ?? '0';
const window = { since: isoAt(0), until: isoAt(60) };

let fixture: FixtureServer | undefined;
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

describe('pullAuditEvents', () => {
  it('walks every page once, in time order, fetching page n+1 only when asked', async () => {
    const data = buildFixtures({ events: 60, patients: 12, practitioners: 7 });
    fixture = await startFixtureServer(allResources(data));
    const pages = pullAuditEvents(fixture.client(), window, { pageSize: 25 });

    const first = await pages.next();
    expect(fixture.requestsFor('AuditEvent')).toHaveLength(1);
    expect(first.value).toHaveLength(25);
    const rest = await collect({ [Symbol.asyncIterator]: () => pages });

    expect(ids([first.value as AuditEvent[], ...rest])).toEqual([range(0, 25), range(25, 50), range(50, 60)]);
    const queries = fixture.requestsFor('AuditEvent').map((request) => new URLSearchParams(request.query));
    expect(fixture.requestsFor('AuditEvent').map((request) => offsetOf(request.query))).toEqual(['0', '25', '50']);
    expect(queries[0]?.getAll('date')).toEqual([`ge${isoAt(0)}`, `lt${isoAt(60)}`]);
    expect(queries[0]?.get('_sort')).toBe('date');
  });

  it('keeps the window half-open: an event at `until` belongs to the next window', async () => {
    const data = buildFixtures({ events: 10, patients: 2, practitioners: 2 });
    fixture = await startFixtureServer(allResources(data));
    const pages = await collect(pullAuditEvents(fixture.client(), { since: isoAt(3), until: isoAt(7) }, {}));
    expect(ids(pages)).toEqual([range(3, 7)]);
  });

  it('stays within ⌈E/S⌉ + ⌈U/50⌉ + ⌈P/50⌉ + 5 requests with the resolver prefetching each page', async () => {
    const [E, U, P, S] = [60, 40, 12, 25];
    const data = buildFixtures({ events: E, patients: U, practitioners: P });
    fixture = await startFixtureServer(allResources(data));
    const client = fixture.client();
    const resolver = createReferenceResolver(client, { clock: fixture.clock });
    const seen: string[] = [];
    for await (const page of pullAuditEvents(client, window, { pageSize: S })) {
      const keys = page.flatMap((event) => [keyOf(event.agent[0]?.who?.reference), keyOf(event.entity?.[0]?.what?.reference)]);
      await resolver.prefetch({ keys: keys.filter((key): key is string => key !== undefined), identifiers: [] });
      seen.push(...page.map((event) => event.id ?? '?'));
    }
    expect(seen).toEqual(range(0, 60));
    expect(fixture.server.requests.length).toBeLessThanOrEqual(Math.ceil(E / S) + Math.ceil(U / 50) + Math.ceil(P / 50) + 5);
    expect(resolver.get('Patient/pt-39')?.id).toBe('pt-39');
    expect(resolver.get('Practitioner/pr-11')?.id).toBe('pr-11');
    expect(fixture.server.requests.every((request) => request.status === 200)).toBe(true);
  });

  it('re-issues the search after Epic 4113 and hands out every event exactly once, in order', async () => {
    const data = buildFixtures({ events: 60, patients: 12, practitioners: 7 });
    fixture = await startFixtureServer(allResources(data));
    fixture.server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=40/ });

    const pages = await collect(pullAuditEvents(fixture.client(), window, { pageSize: 20 }));

    expect(pages.flat().map((event) => event.id)).toEqual(range(0, 60));
    expect(ids(pages).slice(0, 2)).toEqual([range(0, 20), range(20, 40)]);
    const requests = fixture.requestsFor('AuditEvent');
    const expired = requests.findIndex((request) => request.status === 400);
    expect(offsetOf(requests[expired]?.query ?? '')).toBe('40');
    // The session is gone: the next request is a new search (no _offset), starting no later than the last event yielded.
    const reissued = new URLSearchParams(requests[expired + 1]?.query);
    expect(reissued.has('_offset')).toBe(false);
    expect(Date.parse(reissued.getAll('date')[0]?.slice(2) ?? '')).toBeLessThanOrEqual(Date.parse(isoAt(39)));
    expect(requests.length).toBeLessThanOrEqual(6);
  });

  it('survives a 4113 on every paging request as long as each search makes progress', async () => {
    const data = buildFixtures({ events: 60, patients: 12, practitioners: 7 });
    fixture = await startFixtureServer(allResources(data));
    fixture.server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=/, times: 20 });
    const pages = await collect(pullAuditEvents(fixture.client(), window, { pageSize: 20 }));
    expect(pages.flat().map((event) => event.id)).toEqual(range(0, 60));
    expect(fixture.requestsFor('AuditEvent').length).toBeLessThan(15);
  });

  it('passes 4113 on when re-searching makes no progress instead of looping', async () => {
    const data = buildFixtures({ events: 30, patients: 3, practitioners: 3 });
    fixture = await startFixtureServer(allResources(data));
    fixture.server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?/, times: 10 });
    await expect(collect(pullAuditEvents(fixture.client(), window, { pageSize: 20 }))).rejects.toMatchObject({
      code: 'BRG_ERR_FHIR_HTTP',
      details: { status: 400, outcomeCode: '4113' },
    });
    expect(fixture.server.faults.pending).toBeGreaterThan(0);
    expect(fixture.requestsFor('AuditEvent').every((request) => request.status === 400)).toBe(true);
  });

  it('splits a window whose search reports more than maxResultsPerSlice, keeping time order', async () => {
    const data = buildFixtures({ events: 60, patients: 6, practitioners: 3 });
    fixture = await startFixtureServer(allResources(data));

    const pages = await collect(pullAuditEvents(fixture.client(), window, { pageSize: 10, maxResultsPerSlice: 25 }));

    expect(pages.flat().map((event) => event.id)).toEqual(range(0, 60));
    const requests = fixture.requestsFor('AuditEvent').map((request) => new URLSearchParams(request.query));
    expect(requests[0]?.getAll('date')).toEqual([`ge${isoAt(0)}`, `lt${isoAt(60)}`]);
    // Every search that was paged through (a request with _offset > 0) covers at most 25 events.
    const walked = requests.filter((query) => Number(query.get('_offset') ?? 0) > 0);
    expect(walked.length).toBeGreaterThan(0);
    for (const query of walked) {
      const [ge, lt] = query.getAll('date').map((bound) => Date.parse(bound.slice(2)));
      const inside = data.events.filter((event) => Date.parse(event.recorded) >= (ge ?? 0) && Date.parse(event.recorded) < (lt ?? 0));
      expect(inside.length).toBeLessThanOrEqual(25);
    }
  });

  it('bounds the window by _lastUpdated when asked to', async () => {
    const data = buildFixtures({ events: 20, patients: 2, practitioners: 2 });
    fixture = await startFixtureServer(allResources(data));
    const pages = await collect(pullAuditEvents(fixture.client(), { since: isoAt(5), until: isoAt(8) }, { dateParam: '_lastUpdated' }));
    expect(ids(pages)).toEqual([range(5, 8)]);
    const query = new URLSearchParams(fixture.requestsFor('AuditEvent')[0]?.query);
    expect(query.getAll('_lastUpdated')).toEqual([`ge${isoAt(5)}`, `lt${isoAt(8)}`]);
    expect(query.get('_sort')).toBe('_lastUpdated');
  });
});

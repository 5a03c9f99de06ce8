/**
 * The walks of one slice (src/fhir/slice-cursor.ts): a re-walk is judged against the slice as the server counts it
 * when the re-walk starts (an event that left the slice is not missing), resumes at its own position after a 4113,
 * yields an event without an id only once, and a burst is still split down to parts within maxResultsPerSlice.
 */
import type { AuditEvent } from 'fhir/r4.js';
import { afterEach, expect, it } from 'vitest';
import { pullAuditEvents } from '../../src/fhir/index.js';
import { allResources, buildFixtures, collect, type FixtureServer, isoAt, START, startFixtureServer } from './support.js';

const AUDIT_SEARCH = /\/AuditEvent\?/;
let fixture: FixtureServer | undefined;
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

async function server(events = 30): Promise<FixtureServer> {
  fixture = await startFixtureServer(allResources(buildFixtures({ events, patients: 3, practitioners: 2 })));
  return fixture;
}

const ids = async (pages: AsyncGenerator<AuditEvent[]>): Promise<string[]> => (await collect(pages)).flat().map((event) => event.id ?? '(none)');

it('an event that left the slice during the walk (updated out of a _lastUpdated slice) is not missing: the re-walk counts the slice anew', async () => {
  const f = await server();
  const search = f.backend.search.bind(f.backend);
  let left = false;
  f.backend.search = async (type, query) => {
    if (query.get('_offset') === '20') left = true;
    const result = await search(type, query);
    if (!left || type !== 'AuditEvent') return result;
    // ae-025 got a new version dated after the window: it is gone from every search from now on.
    const everything = new URLSearchParams([...query].filter(([key]) => key !== '_offset' && key !== '_count'));
    everything.set('_count', '1000');
    const all = await search(type, everything);
    const kept = all.resources.filter((resource) => resource.id !== 'ae-025');
    const offset = Number(query.get('_offset') ?? 0);
    return { resources: kept.slice(offset, offset + Number(query.get('_count') ?? 10)), total: kept.length };
  };
  const pulled = await ids(pullAuditEvents(f.client(), { since: isoAt(0), until: isoAt(60) }, { pageSize: 10, dateParam: '_lastUpdated' }));
  expect(pulled).toHaveLength(29);
  expect(new Set(pulled).size).toBe(29);
  expect(pulled).not.toContain('ae-025');
});

it('a re-walk whose search session expires resumes where it was, not at the slice start again', async () => {
  const f = await server();
  // The first walk loses its next link at page 1; the re-walk's session expires at every third page of a search.
  f.server.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH });
  f.server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=20/, times: 10 });
  const pulled = await ids(pullAuditEvents(f.client(), { since: isoAt(0), until: isoAt(60) }, { pageSize: 10 }));
  expect(pulled).toHaveLength(30);
  expect(new Set(pulled).size).toBe(30);
});

it('an event without an id is yielded once, however many walks read it', async () => {
  const f = await server();
  const search = f.backend.search.bind(f.backend);
  f.backend.search = async (type, query) => {
    const result = await search(type, query);
    return { ...result, resources: result.resources.map((resource) => (resource.id === 'ae-003' ? { ...resource, id: undefined } : resource)) };
  };
  f.server.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH });
  const pulled = await ids(pullAuditEvents(f.client(), { since: isoAt(0), until: isoAt(60) }, { pageSize: 10 }));
  expect(pulled.filter((id) => id === '(none)')).toHaveLength(1);
  expect(pulled).toHaveLength(30);
});

it('a burst is split until each part is within maxResultsPerSlice, not walked whole because a part kept the total', async () => {
  const burst = buildFixtures({ events: 150, patients: 3, practitioners: 2 });
  // 150 events in the first two and a half minutes of an hour.
  for (const [i, event] of burst.events.entries()) {
    const at = new Date(START + i * 1000).toISOString();
    Object.assign(event, { recorded: at, meta: { ...event.meta, lastUpdated: at } });
  }
  fixture = await startFixtureServer(allResources(burst));
  const pulled = await ids(pullAuditEvents(fixture.client(), { since: isoAt(0), until: isoAt(60) }, { pageSize: 10, maxResultsPerSlice: 100 }));
  expect(new Set(pulled).size).toBe(150);
  expect(pulled).toHaveLength(150);
  // No search was walked past 100 results.
  const offsets = fixture.requestsFor('AuditEvent').map((request) => Number(new URLSearchParams(request.query).get('_offset') ?? 0));
  expect(Math.max(...offsets)).toBeLessThan(100);
});

it('a re-walk whose first request meets a 4113 still checks the slice: short twice stops the run, nothing lost silently', async () => {
  const f = await server();
  // The first walk loses its next link; the re-walk's first request expires; the resumed re-walk loses its link too.
  f.server.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH });
  f.server.faults.add({ action: { kind: 'search-expired' }, match: AUDIT_SEARCH });
  f.server.faults.add({ action: { kind: 'drop-next' }, match: AUDIT_SEARCH });
  const error = await ids(pullAuditEvents(f.client(), { since: isoAt(0), until: isoAt(60) }, { pageSize: 10 })).catch((e: unknown) => e);
  expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_PAGING', details: { expected: 30, received: 10 } });
});

it('a server that ignores _sort and expires every walk at its second page is given up, not walked from its start for ever', async () => {
  const f = await server();
  const search = f.backend.search.bind(f.backend);
  f.backend.search = (type, query) => {
    const reversed = new URLSearchParams(query);
    reversed.set('_sort', `-${query.get('_sort') ?? 'date'}`);
    return search(type, reversed);
  };
  f.server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=10/, times: 1_000 });
  const error = await ids(pullAuditEvents(f.client(), { since: isoAt(0), until: isoAt(60) }, { pageSize: 10 })).catch((e: unknown) => e);
  expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', details: { outcomeCode: '4113' } });
  expect(f.requestsFor('AuditEvent').length).toBeLessThan(20);
});

it('a total that does not count the range is not checked either: the slice walked whole yields every event, no error', async () => {
  const f = await server();
  f.server.faults.add({ action: { kind: 'fixed-total', total: 50 }, match: AUDIT_SEARCH, times: 1_000 });
  const pulled = await ids(pullAuditEvents(f.client(), { since: isoAt(0), until: isoAt(60) }, { pageSize: 10, maxResultsPerSlice: 20 }));
  expect(new Set(pulled).size).toBe(30);
  expect(pulled).toHaveLength(30);
});

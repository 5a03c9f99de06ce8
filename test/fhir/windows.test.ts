import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { FhirError } from '../../src/fhir/fhir-error.js';
import { type AuditEventPullOptions, createFhirClient, pullAuditEvents } from '../../src/fhir/index.js';
import { isSearchExpired } from '../../src/fhir/windows.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryBackend, type FhirBackend } from '../../src/sandbox/fhir-backend.js';
import { type SandboxFhirServer, startFhirServer } from '../../src/sandbox/fhir-server.js';
import { InstantClock } from '../support/manual-clock.js';
import { collect, isoAt, RevocableTokens } from './support.js';

/** Nine events, three per instant (minutes 0, 1, 2): a page boundary can cut an instant in two. */
const EVENTS: AuditEvent[] = Array.from(
  { length: 9 },
  (_, i): AuditEvent => ({
    resourceType: 'AuditEvent',
    id: `same-${i}`,
    meta: { lastUpdated: isoAt(Math.floor(i / 3)) },
    type: { code: '110110' },
    recorded: isoAt(Math.floor(i / 3)),
    agent: [{ requestor: true, who: { reference: 'Practitioner/pr-0' } }],
    source: { observer: { display: 'Epic' } },
  }),
);
const WINDOW = { since: isoAt(0), until: isoAt(10) };

let server: SandboxFhirServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(
  wrap: (backend: FhirBackend) => FhirBackend = (backend) => backend,
  others: readonly AuditEvent[] = [],
  events: readonly AuditEvent[] = EVENTS,
  window: { since: string; until: string } = WINDOW,
): Promise<{ server: SandboxFhirServer; pull: (pageSize: number, options?: AuditEventPullOptions) => AsyncGenerator<AuditEvent[]> }> {
  const backend = await createMemoryBackend();
  await backend.load([...events, ...others]);
  const tokens = new RevocableTokens();
  server = await startFhirServer({ backend: wrap(backend), verifyAccessToken: tokens.verify, tokenUrl: 'http://127.0.0.1:9/token' });
  const client = createFhirClient({
    baseUrl: server.baseUrl,
    tokenSource: tokens,
    clock: new InstantClock(),
    logger: silentLogger(),
    requestsPerSecond: 1_000,
  });
  return { server, pull: (pageSize, options = {}) => pullAuditEvents(client, window, { ...options, pageSize }) };
}

describe('4113 recovery at a shared instant', () => {
  it('resumes at the instant cut by the page boundary and skips only the events already yielded there', async () => {
    const { server, pull } = await start();
    server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=4/ });

    const pages = await collect(pull(4));

    expect(pages.map((page) => page.map((event) => event.id))).toEqual([
      ['same-0', 'same-1', 'same-2', 'same-3'],
      ['same-4', 'same-5', 'same-6'],
      ['same-7', 'same-8'],
    ]);
    const searches = server.requests.filter((request) => request.path.endsWith('/AuditEvent')).map((request) => new URLSearchParams(request.query));
    // The re-issued search starts at minute 1, the instant of the last event yielded (same-3), not at the window start.
    expect(searches[2]?.getAll('date')).toEqual([`ge${isoAt(1)}`, `lt${isoAt(10)}`]);
    expect(searches[2]?.has('_offset')).toBe(false);
  });

  it('resumes after a 4113 deep into one busy instant: the pages that only read that instant again are no paging loop', async () => {
    const busy = Array.from(
      { length: 40 },
      (_, i): AuditEvent => ({ ...(EVENTS[0] as AuditEvent), id: `busy-${i}`, recorded: isoAt(3), meta: { lastUpdated: isoAt(3) } }),
    );
    const { server, pull } = await start(undefined, [
      ...busy,
      { ...(EVENTS[0] as AuditEvent), id: 'after', recorded: isoAt(4), meta: { lastUpdated: isoAt(4) } },
    ]);
    // Pages of 2; the 4113 comes at the 21st page (offset 40): 31 events of minute 3 were yielded, and the re-issued
    // search reads them again, 15 pages of nothing new.
    server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=40(&|$)/ });
    const ids = (await collect(pull(2))).flat().map((event) => event.id);
    expect(ids).toHaveLength(50);
    expect(new Set(ids).size).toBe(50);
    expect(ids.at(-1)).toBe('after');
  });

  it("resumes at the right instant when the server writes times without an offset, whatever this machine's zone", async () => {
    // FHIR instants carry an offset; a server that leaves it out means UTC (src/fhir/instant.ts). Read in the machine's
    // own zone, the resume point would move by the zone's offset and skip (or repeat) that many hours of the slice.
    const zone = process.env['TZ'];
    process.env['TZ'] = 'America/Chicago';
    try {
      const { server, pull } = await start((backend) => ({
        read: (type, id) => backend.read(type, id),
        search: async (type, query) => {
          const result = await backend.search(type, query);
          const local = (resource: FhirResource): FhirResource =>
            resource.resourceType === 'AuditEvent' ? { ...resource, recorded: resource.recorded.replace(/\.000Z$/, '') } : resource;
          return { ...result, resources: result.resources.map(local) };
        },
      }));
      expect(new Date(Date.parse('2026-11-01T10:00:00')).getTimezoneOffset()).not.toBe(0);
      server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=4/ });

      const pages = await collect(pull(4));

      expect(pages.flat().map((event) => event.id)).toEqual(EVENTS.map((event) => event.id));
      const searches = server.requests.filter((request) => request.path.endsWith('/AuditEvent')).map((request) => new URLSearchParams(request.query));
      expect(searches[2]?.getAll('date')).toEqual([`ge${isoAt(1)}`, `lt${isoAt(10)}`]);
    } finally {
      if (zone === undefined) delete process.env['TZ'];
      else process.env['TZ'] = zone;
    }
  });

  /** A server that ignores _sort=date and answers newest first. */
  const newestFirst = (backend: FhirBackend): FhirBackend => ({
    read: (type, id) => backend.read(type, id),
    search: (type, query) => {
      const reversed = new URLSearchParams(query);
      reversed.set('_sort', '-date');
      return backend.search(type, reversed);
    },
  });

  it('reads a search the server did not sort again from the slice start after 4113, yielding each event once', async () => {
    const { server, pull } = await start(newestFirst);
    server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=4/ });

    const ids = (await collect(pull(4))).flat().map((event) => event.id);

    // The slice's first page stated its total, so the slice knows what it yielded and may start again.
    expect(ids).toHaveLength(EVENTS.length);
    expect(new Set(ids)).toEqual(new Set(EVENTS.map((event) => event.id)));
    const searches = server.requests.filter((request) => request.path.endsWith('/AuditEvent')).map((request) => new URLSearchParams(request.query));
    expect(searches[2]?.getAll('date')).toEqual([`ge${isoAt(0)}`, `lt${isoAt(10)}`]);
  });

  it('refuses to resume an unsorted search whose size it cannot check, rather than double events', async () => {
    const { server, pull } = await start(newestFirst);
    server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=4/ });

    const yielded: string[] = [];
    const error = await (async () => {
      for await (const page of pull(4, { checkTotal: false })) yielded.push(...page.map((event) => event.id ?? '?'));
    })().catch((e: unknown) => e);

    // Newest first: the first page already shows the order is broken (minute 2, then minute 1).
    expect(yielded).toEqual(['same-6', 'same-7', 'same-8', 'same-3']);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_HTTP');
    expect((error as BridgeError).message).toContain('were not sorted by date');
  });

  it('a server that ignored _sort and wrote one event late: after a 4113 resumed at the last instant, the total finds it', async () => {
    // Storage order: the nine events, then one recorded at minute 0 but written last. _sort is ignored.
    const late: AuditEvent = { ...(EVENTS[0] as AuditEvent), id: 'written-late', recorded: isoAt(0), meta: { lastUpdated: isoAt(0) } };
    const storageOrder = (backend: FhirBackend): FhirBackend => ({
      read: (type, id) => backend.read(type, id),
      search: async (type, query) => {
        const unsorted = new URLSearchParams(query);
        unsorted.delete('_sort');
        const all = await backend.search(type, new URLSearchParams([...unsorted].filter(([key]) => key !== '_offset' && key !== '_count')));
        const ordered = [...all.resources.filter((r) => r.id !== 'written-late'), ...all.resources.filter((r) => r.id === 'written-late')];
        const offset = Number(query.get('_offset') ?? 0);
        const count = Number(query.get('_count') ?? 100);
        return { resources: ordered.slice(offset, offset + count), ...(all.total === undefined ? {} : { total: all.total }) };
      },
    });
    const { server, pull } = await start(storageOrder, [late]);
    // The session expires after minute 1's events were yielded: the search resumes at minute 1, past the late event.
    server.faults.add({ action: { kind: 'search-expired' }, match: /\/AuditEvent\?.*_offset=4/ });

    const ids = (await collect(pull(4))).flat().map((event) => event.id);

    expect(ids).toContain('written-late');
    expect(ids).toHaveLength(EVENTS.length + 1);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('a server that gives no Bundle.total', () => {
  it('is said once per pull (nothing can be split or checked); a server that gives one is not', async () => {
    const withoutTotal = (backend: FhirBackend): FhirBackend => ({
      read: (type, id) => backend.read(type, id),
      search: async (type, query) => {
        const { total: _total, ...page } = await backend.search(type, query);
        return page;
      },
    });
    const { pull } = await start(withoutTotal);
    let said = 0;
    const ids = (await collect(pull(2, { onNoTotal: () => (said += 1) }))).flat().map((event) => event.id);
    expect(ids).toHaveLength(EVENTS.length);
    expect(said).toBe(1);
    await server?.close();
    const counted = await start();
    let saidAgain = 0;
    await collect(counted.pull(2, { onNoTotal: () => (saidAgain += 1) }));
    expect(saidAgain).toBe(0);
  });
});

describe('a Bundle.total that does not count the slice', () => {
  it('is split once, then walked: a constant total of five million does not split a ten-minute window into milliseconds', async () => {
    const { server, pull } = await start();
    server.faults.add({ action: { kind: 'fixed-total', total: 5_000_000 }, match: /\/AuditEvent\?/, times: 100_000 });

    const ids = (await collect(pull(4, { maxResultsPerSlice: 100, checkTotal: false }))).flat().map((event) => event.id);

    expect(new Set(ids)).toEqual(new Set(EVENTS.map((event) => event.id)));
    // One search for the window, then one per one-second part (600), each holding its events or none.
    const searches = server.requests.filter((request) => request.path.endsWith('/AuditEvent'));
    expect(searches.length).toBeLessThan(700);
    // Split it was: the parts' own starts, not only the window's.
    const starts = new Set(searches.map((request) => new URLSearchParams(request.query).getAll('date')[0]));
    expect(starts.size).toBeGreaterThan(100);
  });
});

describe('split points', () => {
  it('fall on whole seconds: an event recorded to the second (a range, in FHIR search) is in one part, yielded once', async () => {
    // Ten seconds, three events each, written to the second: the window split in three at 10:00:03.333 would put the
    // events of second 3 in both parts of a server that matches by range.
    const seconds = Array.from({ length: 30 }, (_, i): AuditEvent => {
      const at = `2026-01-01T10:00:0${Math.floor(i / 3)}Z`;
      return { ...(EVENTS[0] as AuditEvent), id: `s-${i}`, recorded: at, meta: { lastUpdated: at } };
    });
    const window = { since: '2026-01-01T10:00:00.000Z', until: '2026-01-01T10:00:10.000Z' };
    const { server, pull } = await start(undefined, [], seconds, window);
    const ids = (await collect(pull(50, { maxResultsPerSlice: 12 }))).flat().map((event) => event.id);
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
    const edges = server.requests
      .filter((request) => request.path.endsWith('/AuditEvent'))
      .flatMap((request) => new URLSearchParams(request.query).getAll('date'))
      .map((value) => value.slice(2));
    // Split it was (more bounds than the window's two ends), and every inner edge is a whole second.
    expect(new Set(edges).size).toBeGreaterThan(2);
    for (const edge of edges) expect(edge).toMatch(/:\d\d\.000Z$/);
  });
});

describe('Epic 4113 among other outcome codes', () => {
  it('is a search-session expiry whichever of the outcome codes it is', () => {
    const expired = (codes: string[]) =>
      new FhirError('BRG_ERR_FHIR_HTTP', 'HTTP 400', {
        status: 400,
        resourceType: 'AuditEvent',
        outcome: { summary: 'an OperationOutcome (error processing)', codes },
      });
    expect(isSearchExpired(expired(['4113']))).toBe(true);
    expect(isSearchExpired(expired(['4101', '4113']))).toBe(true);
    expect(isSearchExpired(expired(['4101']))).toBe(false);
  });
});

describe('a page that says the search is incomplete, or answers outside it', () => {
  it('stops at an error outcome or Epic 4127 in a searchset, naming the code; a 4101 warning passes', async () => {
    const { server, pull } = await start();
    server.faults.add({ action: { kind: 'outcome-entry', code: '4101', severity: 'warning' }, match: /\/AuditEvent\?/ });
    expect((await collect(pull(4))).flat().map((event) => event.id)).toEqual(EVENTS.map((event) => event.id));

    server.faults.add({ action: { kind: 'outcome-entry', code: '4127', severity: 'warning' }, match: /\/AuditEvent\?.*_offset=4/ });
    const cut = await collect(pull(4)).catch((e: unknown) => e);
    expect(cut).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', message: expect.stringContaining('4127: additional data may exist') });

    server.faults.add({ action: { kind: 'outcome-entry', code: '59008', severity: 'error' }, match: /\/AuditEvent\?/ });
    const failed = await collect(pull(4)).catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', message: expect.stringContaining('error outcome (code 59008)') });
  });

  it('halves a slice whose first page Epic cut short (4127), and stops within about log2(span) searches when every one is', async () => {
    const { server, pull } = await start();
    // The whole window's first search is capped; its halves are not.
    server.faults.add({ action: { kind: 'outcome-entry', code: '4127', severity: 'warning' }, match: /\/AuditEvent\?(?!.*_offset)/, times: 1 });
    expect((await collect(pull(4))).flat().map((event) => event.id)).toEqual(EVENTS.map((event) => event.id));
    const firsts = server.requests.filter((request) => request.path.endsWith('/AuditEvent') && !request.query.includes('_offset'));
    expect(firsts.map((request) => new URLSearchParams(request.query).getAll('date'))).toEqual([
      [`ge${isoAt(0)}`, `lt${isoAt(10)}`],
      [`ge${isoAt(0)}`, `lt${isoAt(5)}`],
      [`ge${isoAt(5)}`, `lt${isoAt(10)}`],
    ]);
    // A server that cuts every search short: the first halves reach a slice too short to halve (1 s) within about
    // log2(600) searches, and the run stops there, naming the code.
    const before = server.requests.length;
    server.faults.add({ action: { kind: 'outcome-entry', code: '4127', severity: 'warning' }, match: /\/AuditEvent\?(?!.*_offset)/, times: 100_000 });
    const cut = await collect(pull(4)).catch((e: unknown) => e);
    expect(cut).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', message: expect.stringContaining('4127: additional data may exist') });
    expect(server.requests.length - before).toBe(10);
  });

  it('stops when the server ignores the date parameter and hands over events days outside the window', async () => {
    const old: AuditEvent = { ...(EVENTS[0] as AuditEvent), id: 'three-days-before', recorded: new Date(Date.parse(isoAt(0)) - 3 * 86_400_000).toISOString() };
    const { server, pull } = await start(undefined, [old]);
    // Honoured, the date parameter leaves it out.
    expect((await collect(pull(4))).flat().map((event) => event.id)).toEqual(EVENTS.map((event) => event.id));
    server.faults.add({ action: { kind: 'ignore-param', name: 'date' }, match: /\/AuditEvent\?/, times: 10 });
    const error = await collect(pull(4)).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', message: expect.stringContaining('AuditEvent/three-days-before') });
    expect((error as BridgeError).message).toContain('does not seem to honour the date parameter');
  });
});

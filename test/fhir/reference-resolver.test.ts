import type { FhirResource, PractitionerRole } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createReferenceResolver } from '../../src/fhir/index.js';
import { identifierKey } from '../../src/reference-keys.js';
import { rejectionOf } from '../support/error-of.js';
import { linesLogger } from '../support/log-lines.js';
import { ManualClock } from '../support/manual-clock.js';
import { allResources, buildFixtures, EMP_SYSTEM, type FixtureServer, START, startFixtureServer } from './support.js';

let fixture: FixtureServer | undefined;
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

const idsIn = (query: string): string[] => (new URLSearchParams(query).get('_id') ?? '').split(',').filter(Boolean);

describe('reference resolver', () => {
  it('remembers a deleted patient as missing, once asked for alone, and does not ask for it again', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 4, practitioners: 2 })));
    await fixture.backend.remove('Patient', 'pt-2');
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const keys = ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2', 'Practitioner/pr-1'];

    await resolver.prefetch({ keys, identifiers: [] });
    const afterFirst = fixture.server.requests.length;
    await resolver.prefetch({ keys, identifiers: [] });

    expect(keys.map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', undefined, 'pr-1']);
    expect(fixture.server.requests.length).toBe(afterFirst);
    // /metadata (how each type is looked up), one Patient and one Practitioner search, and pt-2 (absent) asked alone.
    expect(afterFirst).toBe(4);
    expect(resolver.stats.missing).toBe(1);
    expect(fixture.requestsFor('Patient').map((request) => idsIn(request.query).sort())).toEqual([['pt-0', 'pt-1', 'pt-2'], ['pt-2']]);
  });

  it('holds a partial batch back until it fills or a plain prefetch asks for everything', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 120, practitioners: 3 })));
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, batchSize: 50 });
    const patients = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `Patient/pt-${from + i}`);
    const hold = { holdPartialBatches: true };

    await resolver.prefetch({ keys: [...patients(0, 70), 'Practitioner/pr-1'], identifiers: [] }, undefined, hold);
    expect(fixture.requestsFor('Patient').map((request) => idsIn(request.query))).toEqual([patients(0, 50).map((k) => k.slice(8))]);
    expect(fixture.requestsFor('Practitioner')).toHaveLength(0);
    expect(patients(50, 70).every((key) => resolver.isHeld(key)) && resolver.isHeld('Practitioner/pr-1')).toBe(true);
    expect(resolver.get('Patient/pt-49')?.id).toBe('pt-49');

    // The held 20 come first in the next batch (oldest first), filled up by new keys; held keys asked again are not doubled.
    await resolver.prefetch({ keys: [...patients(60, 70), ...patients(70, 110)], identifiers: [] }, undefined, hold);
    expect(idsIn(fixture.requestsFor('Patient')[1]?.query ?? '')).toEqual(patients(50, 100).map((k) => k.slice(8)));
    expect(fixture.requestsFor('Patient')).toHaveLength(2);
    expect(resolver.isHeld('Patient/pt-60')).toBe(false);
    expect(patients(100, 110).every((key) => resolver.isHeld(key))).toBe(true);

    await resolver.prefetch({ keys: [], identifiers: [] });
    expect(fixture.requestsFor('Patient')).toHaveLength(3);
    expect(fixture.requestsFor('Practitioner')).toHaveLength(1);
    expect(resolver.isHeld('Patient/pt-100') || resolver.isHeld('Practitioner/pr-1')).toBe(false);
    expect(resolver.get('Patient/pt-109')?.id).toBe('pt-109');
    expect(resolver.stats.misses).toBe(111);
  });

  it('batches literal references per type, at most batchSize ids per request', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 120, practitioners: 3 })));
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const keys = Array.from({ length: 120 }, (_, i) => `Patient/pt-${i}`);

    await resolver.prefetch({ keys: [...keys, ...keys.slice(0, 10)], identifiers: [] });

    const batches = fixture.requestsFor('Patient').map((request) => idsIn(request.query));
    expect(batches.map((batch) => batch.length)).toEqual([50, 50, 20]);
    expect(batches.flat().sort()).toEqual(keys.map((key) => key.slice('Patient/'.length)).sort());
    expect(keys.every((key) => resolver.get(key)?.id === key.slice('Patient/'.length))).toBe(true);
  });

  it("keeps a cached role's practitioner as recently used as the role, so it is not evicted while the role is in use", async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 4, practitioners: 2 })));
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, cacheSize: 3 });
    const prefetch = (key: string): Promise<void> => resolver.prefetch({ keys: [key], identifiers: [] });
    await prefetch('PractitionerRole/role-0'); // caches the role, then its practitioner pr-0
    await prefetch('Patient/pt-0');
    await prefetch('PractitionerRole/role-0'); // served from cache: its practitioner must count as used too
    await prefetch('Patient/pt-1'); // the cache is full: the least recently used entry goes

    expect(resolver.get('PractitionerRole/role-0')?.id).toBe('role-0');
    expect(resolver.get('Practitioner/pr-0')?.id).toBe('pr-0');
    expect(resolver.get('Patient/pt-0')).toBeUndefined();
    expect(fixture.requestsFor('Practitioner')).toHaveLength(1);
  });

  it("a cached role's practitioner named by identifier alone is pinned (or fetched again) for the events of the prefetch naming the role", async () => {
    const role: PractitionerRole = { resourceType: 'PractitionerRole', id: 'role-x', practitioner: { identifier: { system: EMP_SYSTEM, value: 'EMP1' } } };
    fixture = await startFixtureServer([...allResources(buildFixtures({ events: 1, patients: 3, practitioners: 2 })), role]);
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, cacheSize: 4 });
    const user = identifierKey('Practitioner', EMP_SYSTEM, 'EMP1');

    await resolver.prefetch({ keys: ['PractitionerRole/role-x'], identifiers: [] }); // the role, then EMP1 by identifier
    expect(resolver.get(user)?.id).toBe('pr-1');
    await resolver.prefetch({ keys: ['Patient/pt-0'], identifiers: [] });
    // The role is served from the cache; the two patients fetched with it push EMP1 out of a cache of 4.
    await resolver.prefetch({ keys: ['PractitionerRole/role-x', 'Patient/pt-1', 'Patient/pt-2'], identifiers: [] });

    expect(resolver.get('PractitionerRole/role-x')?.id).toBe('role-x');
    expect(resolver.get(user)?.id).toBe('pr-1');
  });

  it('looks identifier-only references up by system|value and follows PractitionerRole.practitioner', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 4 })));
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });

    await resolver.prefetch({
      keys: ['PractitionerRole/role-1'],
      identifiers: [
        { type: 'Practitioner', system: EMP_SYSTEM, value: 'EMP3' },
        { type: 'Practitioner', system: EMP_SYSTEM, value: 'EMP99' },
      ],
    });

    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP3'))?.id).toBe('pr-3');
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP99'))).toBeUndefined();
    expect(resolver.get('PractitionerRole/role-1')?.id).toBe('role-1');
    expect(resolver.get('Practitioner/pr-1')?.id).toBe('pr-1');
    const identifierQueries = fixture
      .requestsFor('Practitioner')
      .map((request) => new URLSearchParams(request.query).get('identifier'))
      .filter(Boolean);
    // One search for both (a comma is FHIR search's OR), each identifier matched back to the resource carrying it;
    // EMP99, which the answer lacks, asked once alone.
    expect(identifierQueries).toEqual([`${EMP_SYSTEM}|EMP3,${EMP_SYSTEM}|EMP99`, `${EMP_SYSTEM}|EMP99`]);
  });

  it('remembers a user identifier nobody carries for unknownUserTtlMs, a patient identifier only for the cache TTL', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 2 })));
    const clock = new ManualClock(START);
    const resolver = createReferenceResolver(fixture.client(), { clock, cacheTtlMs: 3_600_000, unknownUserTtlMs: 86_400_000 });
    const staff = { type: 'Practitioner' as const, system: EMP_SYSTEM, value: 'CLERK7' };
    const provider = { type: 'Practitioner' as const, system: EMP_SYSTEM, value: 'EMP1' };
    const unknownMrn = { type: 'Patient' as const, system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN404' };
    const asked = (value: string): number =>
      [...(fixture?.server.requests ?? [])].filter((request) => (new URLSearchParams(request.query).get('identifier') ?? '').includes(`|${value}`)).length;
    const prefetch = () => resolver.prefetch({ keys: [], identifiers: [staff, provider, unknownMrn] });

    await prefetch();
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP1'))?.id).toBe('pr-1');
    expect([asked('CLERK7'), asked('EMP1'), asked('MRN404')]).toEqual([2, 1, 1]);
    // Two hours on: the provider and the unknown MRN are asked again (the cache TTL), the staff identifier is not.
    await clock.advance(2 * 3_600_000);
    await prefetch();
    expect([asked('CLERK7'), asked('EMP1'), asked('MRN404')]).toEqual([2, 2, 2]);
    // A day on, it is asked again: someone may have given the user a provider record meanwhile.
    await clock.advance(86_400_000);
    await prefetch();
    expect(asked('CLERK7')).toBe(4);
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'CLERK7'))).toBeUndefined();
  });

  it('keeps the user identifiers nobody carries across runs in its store: the next run does not ask again, until they expire', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 2 })));
    const clock = new ManualClock(START);
    let kept = new Map<string, number>();
    const saves: number[] = [];
    const unknownUsers = {
      load: () => new Map(kept),
      save: (found: ReadonlyMap<string, number>) => {
        kept = new Map(found);
        saves.push(kept.size);
      },
    };
    const run = (ttlMs = 86_400_000) =>
      createReferenceResolver(fixture?.client() as ReturnType<FixtureServer['client']>, { clock, unknownUserTtlMs: ttlMs, unknownUsers });
    const staff = { type: 'Practitioner' as const, system: EMP_SYSTEM, value: 'CLERK7' };
    const asked = (): number =>
      [...(fixture?.server.requests ?? [])].filter((request) => (new URLSearchParams(request.query).get('identifier') ?? '').includes('|CLERK7')).length;

    await run().prefetch({ keys: [], identifiers: [staff] });
    expect(asked()).toBe(1);
    expect(kept.get(identifierKey('Practitioner', EMP_SYSTEM, 'CLERK7'))).toBe(START);
    // The next run, an hour on: not asked, and nothing new to save.
    await clock.advance(3_600_000);
    const second = run();
    await second.prefetch({ keys: [], identifiers: [staff] });
    expect(asked()).toBe(1);
    expect(second.get(identifierKey('Practitioner', EMP_SYSTEM, 'CLERK7'))).toBeUndefined();
    expect(saves).toEqual([1]);
    // A run whose setting is now half an hour holds to it at once: found an hour ago, it is asked again.
    await run(1_800_000).prefetch({ keys: [], identifiers: [staff] });
    expect(asked()).toBe(2);
    expect(kept.get(identifierKey('Practitioner', EMP_SYSTEM, 'CLERK7'))).toBe(START + 3_600_000);
    // A day after it was last found, under the default, it is asked again too.
    await clock.advance(86_400_000);
    await run().prefetch({ keys: [], identifiers: [staff] });
    expect(asked()).toBe(3);
  });

  it('holds the kept unknown users apart from the LRU cache, writes them at most once a minute, and a failed write fails no run', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 2 })));
    const clock = new ManualClock(START);
    const clerk = (n: number) => ({ type: 'Practitioner' as const, system: EMP_SYSTEM, value: `CLERK${n}` });
    const key = (n: number) => identifierKey('Practitioner', EMP_SYSTEM, `CLERK${n}`);
    // 150 kept from an earlier run, more than this run's cache holds (100).
    let kept = new Map(Array.from({ length: 150 }, (_, n) => [key(n), START - 60_000] as const));
    let saves = 0;
    let failing = false;
    const unknownUsers = {
      load: () => new Map(kept),
      save: (found: ReadonlyMap<string, number>) => {
        if (failing) throw new Error('SQLITE_FULL');
        saves += 1;
        kept = new Map(found);
      },
    };
    const lines: string[] = [];
    const logger = linesLogger(lines);
    const resolver = createReferenceResolver(fixture.client(), { clock, cacheSize: 100, unknownUsers, logger });
    const asked = () => fixture?.requestsFor('Practitioner').length ?? 0;
    await resolver.prefetch({ keys: [], identifiers: Array.from({ length: 150 }, (_, n) => clerk(n)) });
    await resolver.prefetch({ keys: Array.from({ length: 150 }, (_, n) => `Patient/pt-${n % 2}`), identifiers: [clerk(0), clerk(149)] });
    expect(asked()).toBe(0);
    expect(saves).toBe(0);
    // New ones, during a pull (partial batches held): written at once, then not again within the minute; a minute on,
    // the next change is written, and the pull's last prefetch (nothing held) writes what is left.
    const hold = { holdPartialBatches: true };
    await resolver.prefetch({ keys: [], identifiers: [clerk(200)] }, undefined, hold);
    await resolver.prefetch({ keys: [], identifiers: [clerk(201)] }, undefined, hold);
    expect(saves).toBe(1);
    await clock.advance(60_000);
    await resolver.prefetch({ keys: [], identifiers: [clerk(202)] }, undefined, hold);
    expect(saves).toBe(2);
    await resolver.prefetch({ keys: [], identifiers: [clerk(204)] }, undefined, hold);
    expect(saves).toBe(2);
    await resolver.prefetch({ keys: [], identifiers: [] });
    expect(saves).toBe(3);
    expect(kept.has(key(204))).toBe(true);
    expect([...kept.keys()].filter((k) => k.endsWith('CLERK201') || k.endsWith('CLERK202'))).toHaveLength(2);
    // A write that fails is logged (no login in it) and the prefetch succeeds.
    failing = true;
    await clock.advance(60_000);
    await expect(resolver.prefetch({ keys: [], identifiers: [clerk(203)] })).resolves.toBeUndefined();
    expect(lines.some((line) => line.includes('could not be kept in the state database') && !line.includes('CLERK'))).toBe(true);
  });

  it('batches identifier searches per batchSize, and an identifier two resources carry stays unresolved', async () => {
    const data = buildFixtures({ events: 1, patients: 2, practitioners: 7 });
    // pr-6 takes pr-5's employee number too: that identifier names two people and must resolve to neither.
    const twin = data.practitioners[6];
    if (twin) twin.identifier = [{ system: EMP_SYSTEM, value: 'EMP5' }];
    fixture = await startFixtureServer(allResources(data));
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, batchSize: 3 });
    const values = ['EMP0', 'EMP1', 'EMP2', 'EMP3', 'EMP5', 'EMP42'];

    await resolver.prefetch({ keys: [], identifiers: values.map((value) => ({ type: 'Practitioner' as const, system: EMP_SYSTEM, value })) });

    for (const [value, id] of [
      ['EMP0', 'pr-0'],
      ['EMP1', 'pr-1'],
      ['EMP2', 'pr-2'],
      ['EMP3', 'pr-3'],
    ] as const) {
      expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, value))?.id, value).toBe(id);
      expect(resolver.get(`Practitioner/${id}`)?.id).toBe(id);
    }
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP5'))).toBeUndefined();
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP42'))).toBeUndefined();
    const queries = fixture.requestsFor('Practitioner').map((request) => new URLSearchParams(request.query).get('identifier'));
    // Two lists of three; EMP42, which no answer carried, asked once more on its own (a server may OR only part of a list).
    expect(queries.map((query) => query?.split(',').length)).toEqual([3, 3, 1]);
    expect(queries[2]).toBe(`${EMP_SYSTEM}|EMP42`);
    // Cached: asking again sends nothing.
    await resolver.prefetch({ keys: [], identifiers: values.map((value) => ({ type: 'Practitioner' as const, system: EMP_SYSTEM, value })) });
    expect(fixture.requestsFor('Practitioner')).toHaveLength(3);
  });

  it('searches each identifier alone when the server refuses a comma list (400) or its answer lacks them', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 4 })));
    fixture.server.faults.add({ action: { kind: 'status', status: 400 }, match: /identifier=[^&]*%2C/ });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const ask = (values: string[]) =>
      resolver.prefetch({ keys: [], identifiers: values.map((value) => ({ type: 'Practitioner' as const, system: EMP_SYSTEM, value })) });

    await ask(['EMP1', 'EMP2']);
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP1'))?.id).toBe('pr-1');
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP2'))?.id).toBe('pr-2');
    expect(fixture.server.faults.fired).toHaveLength(1);

    await ask(['EMP77', 'EMP78']);
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP77'))).toBeUndefined();
    const queries = fixture.requestsFor('Practitioner').map((request) => new URLSearchParams(request.query).get('identifier'));
    expect(queries.filter((query) => !query?.includes(','))).toHaveLength(4);
    // The refusal is remembered: the second batch went straight to single searches, with no second list.
    expect(queries).toHaveLength(5);
    expect(fixture.server.faults.fired).toHaveLength(1);
  });

  it('uses a list answer only as far as it must be right: a 400 on a later page, a server that ORs part of the list', async () => {
    const data = buildFixtures({ events: 1, patients: 2, practitioners: 7 });
    const twin = data.practitioners[6];
    if (twin) twin.identifier = [{ system: EMP_SYSTEM, value: 'EMP1' }];
    fixture = await startFixtureServer(allResources(data), { maxPageSize: 2 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const practitioner = (value: string) => ({ type: 'Practitioner' as const, system: EMP_SYSTEM, value });
    // Page 1 of the list holds pr-1 and pr-2; page 2 (pr-3 and pr-6, EMP1's second carrier) is refused.
    fixture.server.faults.add({ action: { kind: 'status', status: 400 }, match: /identifier=[^&]*%2C.*_offset=2/ });

    await resolver.prefetch({ keys: [], identifiers: ['EMP1', 'EMP2', 'EMP3'].map((value) => practitioner(value)) });

    expect(fixture.server.faults.fired).toHaveLength(1);
    // Not pr-1 from the half answer: asked alone, EMP1 has two carriers and resolves to nothing.
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP1'))).toBeUndefined();
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP2'))?.id).toBe('pr-2');
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP3'))?.id).toBe('pr-3');
    // A failure after the first page is not a refusal of lists: the next batch is a list again.
    const before = fixture.requestsFor('Practitioner').length;
    await resolver.prefetch({ keys: [], identifiers: ['EMP0', 'EMP4'].map((value) => practitioner(value)) });
    const after = fixture.requestsFor('Practitioner').slice(before);
    expect(after.map((request) => new URLSearchParams(request.query).get('identifier'))).toEqual([`${EMP_SYSTEM}|EMP0,${EMP_SYSTEM}|EMP4`]);

    // pr-0 carries EMP_SYSTEM|EMP0 and so also the bare EMP0 asked in the same list; a server that applied only the
    // first token would answer pr-0 alone, so the bare one (which pr-0 and any other system's EMP0 carry) is asked alone.
    const more = fixture.requestsFor('Practitioner').length;
    await resolver.prefetch({ keys: [], identifiers: [practitioner('EMP5'), { type: 'Practitioner', value: 'EMP5' }] });
    const asked = fixture
      .requestsFor('Practitioner')
      .slice(more)
      .map((request) => new URLSearchParams(request.query).get('identifier'));
    expect(asked).toEqual([`${EMP_SYSTEM}|EMP5,EMP5`, `${EMP_SYSTEM}|EMP5`, 'EMP5']);
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP5'))?.id).toBe('pr-5');
    expect(resolver.get(identifierKey('Practitioner', undefined, 'EMP5'))?.id).toBe('pr-5');
  });

  it('stops reading a list answer larger than the list allows (the server ignored it) and asks each identifier alone', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 12 })), { maxPageSize: 3 });
    // A lenient server that drops a comma list it cannot use and answers every Practitioner, page after page.
    fixture.server.faults.add({ action: { kind: 'ignore-param', name: 'identifier' }, match: /identifier=[^&]*%2C/ });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });

    await resolver.prefetch({ keys: [], identifiers: ['EMP1', 'EMP2'].map((value) => ({ type: 'Practitioner' as const, system: EMP_SYSTEM, value })) });

    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP1'))?.id).toBe('pr-1');
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP2'))?.id).toBe('pr-2');
    const asked = fixture.requestsFor('Practitioner').map((request) => new URLSearchParams(request.query).get('identifier'));
    // Two pages of the population (6 resources > 2 × 2) and no more, then one search per identifier.
    expect(asked).toEqual([`${EMP_SYSTEM}|EMP1,${EMP_SYSTEM}|EMP2`, null, `${EMP_SYSTEM}|EMP1`, `${EMP_SYSTEM}|EMP2`]);
  });

  it('a lookup whose next link loops (changing each time, the same page again) stops paging: nothing asked for is new', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 6, practitioners: 2 })), { maxPageSize: 2 });
    fixture.server.faults.add({ action: { kind: 'stuck-next' }, match: /\/(Patient|Practitioner)\?/, times: 1000 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, batchSize: 4 });
    const keys = ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2', 'Patient/pt-3'];

    await resolver.prefetch({
      keys,
      identifiers: [
        { type: 'Practitioner', system: EMP_SYSTEM, value: 'EMP0' },
        { type: 'Practitioner', system: EMP_SYSTEM, value: 'EMP1' },
      ],
    });

    expect(keys.map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', 'pt-2', 'pt-3']);
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP1'))?.id).toBe('pr-1');
    // Each search reads its first page and one repeat, then stops; before, it paged for as long as the server looped.
    expect(fixture.requestsFor('Patient').length + fixture.requestsFor('Practitioner').length).toBeLessThan(12);
  });

  it('an `_id` search answered with resources not asked for (the server ignores `_id`) stops the prefetch instead of reading the whole list', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 40, practitioners: 1 })), { maxPageSize: 2 });
    fixture.server.faults.add({ action: { kind: 'ignore-param', name: '_id' }, match: /\/Patient\?_id=/, times: 1000 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });

    const error = await rejectionOf(resolver.prefetch({ keys: ['Patient/pt-30', 'Patient/pt-31'], identifiers: [] }));

    expect(error.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(error.message).toMatch(
      /^The FHIR server answered a Patient search by _id with \d+ resources not asked for: it does not seem to honour the _id parameter/,
    );
    expect(fixture.requestsFor('Patient').length).toBeLessThanOrEqual(2);
    expect(resolver.stats.missing).toBe(0);

    // A department type so answered stops nothing: its cell stays empty, with one warning.
    fixture.server.faults.add({ action: { kind: 'ignore-param', name: '_id' }, match: /\/Encounter\?_id=/, times: 1000 });
    await fixture.backend.load(
      [1, 2, 3, 4, 5, 6, 7, 8].map((i) => ({ resourceType: 'Encounter', id: `enc-${i}`, status: 'finished', class: { code: 'AMB' } }) as FhirResource),
    );
    const lines: string[] = [];
    const lenient = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger(lines) });
    await lenient.prefetch({ keys: ['Encounter/enc-7', 'Encounter/enc-8'], identifiers: [] });
    expect(lenient.get('Encounter/enc-8')).toBeUndefined();
    expect(lines.filter((line) => line.includes('answered with resources not asked for'))).toHaveLength(1);
  });

  it('an identifier search answered with one resource that does not carry it (the server misread it) resolves to nobody', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 1, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'ignore-param', name: 'identifier' }, match: /\/Practitioner\?identifier=/ });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const other = { type: 'Practitioner' as const, system: EMP_SYSTEM, value: 'EMP9' };

    await resolver.prefetch({ keys: [], identifiers: [other] });

    expect(fixture.requestsFor('Practitioner')).toHaveLength(1);
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP9'))).toBeUndefined();
    // Padding and case are Epic's, not a misreading: the one carrier a lenient server finds so is the user.
    fixture.server.faults.add({ action: { kind: 'ignore-param', name: 'identifier' }, match: /\/Practitioner\?identifier=/ });
    await resolver.prefetch({ keys: [], identifiers: [{ type: 'Practitioner', system: EMP_SYSTEM, value: '  emp0 ' }] });
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, '  emp0 '))?.id).toBe('pr-0');
  });

  it('an `_id` list the server honours only in part: each id it left out is asked for alone before it counts as missing', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 12, practitioners: 1 })));
    await fixture.backend.remove('Patient', 'pt-9');
    // A server that answers only the first four ids of a list, and says nothing of the rest.
    fixture.server.faults.add({ action: { kind: 'partial-id-list', max: 4 }, match: /\/Patient\?_id=/ });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const keys = Array.from({ length: 10 }, (_, i) => `Patient/pt-${i}`);

    await resolver.prefetch({ keys, identifiers: [] });

    expect(keys.map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', 'pt-2', 'pt-3', 'pt-4', 'pt-5', 'pt-6', 'pt-7', 'pt-8', undefined]);
    expect(resolver.stats.missing).toBe(1);
    const asked = fixture.requestsFor('Patient').map((request) => idsIn(request.query));
    expect(asked[0]).toHaveLength(10);
    expect(asked.slice(1).sort()).toEqual(['pt-4', 'pt-5', 'pt-6', 'pt-7', 'pt-8', 'pt-9'].map((id) => [id]));
  });

  it('a lookup answer cut short (Epic 4127) or carrying an error outcome stops the prefetch and remembers nothing as missing', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 3, practitioners: 2 })));
    fixture.server.faults.add({ action: { kind: 'outcome-entry', code: '4127', severity: 'warning' }, match: /\/Patient\?_id=/ });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const keys = ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2'];

    const cut = await rejectionOf(resolver.prefetch({ keys, identifiers: [] }));
    expect(cut).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', details: { resourceType: 'Patient', status: 200, outcomeCode: '4127' } });
    expect((cut as Error).message).toContain('fhir.referenceBatchSize');
    expect(resolver.stats.missing).toBe(0);

    // An identifier search answered with an error outcome: the second carrier of an identifier may be the one left out.
    fixture.server.faults.add({ action: { kind: 'outcome-entry', code: '59008', severity: 'error' }, match: /\/Practitioner\?identifier=/ });
    const refused = await rejectionOf(resolver.prefetch({ keys: [], identifiers: [{ type: 'Practitioner', system: EMP_SYSTEM, value: 'EMP1' }] }));
    expect(refused).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', details: { resourceType: 'Practitioner', outcomeCode: '59008' } });
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP1'))).toBeUndefined();

    // Nothing was taken for missing: the next prefetch asks again and finds them all.
    await resolver.prefetch({ keys, identifiers: [{ type: 'Practitioner', system: EMP_SYSTEM, value: 'EMP1' }] });
    expect(keys.map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', 'pt-2']);
    expect(resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP1'))?.id).toBe('pr-1');
  });

  it('an error outcome in an _id list answer (one id the server cannot return) stops nothing: the ids it lacks are asked for alone', async () => {
    const data = buildFixtures({ events: 1, patients: 3, practitioners: 2 });
    fixture = await startFixtureServer(allResources(data));
    await fixture.backend.remove('Patient', 'pt-2');
    fixture.server.faults.add({ action: { kind: 'outcome-entry', code: '59008', severity: 'error' }, match: /\/Patient\?_id=/, times: 10 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const keys = ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2'];
    await resolver.prefetch({ keys, identifiers: [] });
    expect(keys.map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', undefined]);
    expect(resolver.stats.missing).toBe(1);
  });

  it('fetches an absolute reference only with its own base (however spelt), never another server’s, nor a role’s practitioner there', async () => {
    const data = buildFixtures({ events: 1, patients: 3, practitioners: 3 });
    const elsewhere: PractitionerRole = {
      resourceType: 'PractitionerRole',
      id: 'role-x',
      practitioner: { reference: 'https://other.example/fhir/R4/Practitioner/pr-2' },
    };
    fixture = await startFixtureServer([...allResources(data), elsewhere]);
    const own = new URL(fixture.server.baseUrl);
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, baseUrl: `${fixture.server.baseUrl}/` });

    await resolver.prefetch({
      keys: [
        `HTTP://${own.host.toUpperCase()}${own.pathname}/Patient/pt-0`,
        `https://other.example${own.pathname}/Patient/pt-1`,
        `${own.origin}/another/base/Patient/pt-2`,
        'PractitionerRole/role-x',
      ],
      identifiers: [],
    });

    expect(resolver.get('Patient/pt-0')?.id).toBe('pt-0');
    expect(fixture.requestsFor('Patient').flatMap((request) => idsIn(request.query))).toEqual(['pt-0']);
    expect(resolver.get('PractitionerRole/role-x')?.id).toBe('role-x');
    expect(fixture.requestsFor('Practitioner')).toHaveLength(0);
    expect(resolver.get('Practitioner/pr-2')).toBeUndefined();
  });

  it('fetches again once the TTL has passed, and evicts the least recently used beyond cacheSize', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 3, practitioners: 1 })));
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, cacheTtlMs: 60_000, cacheSize: 2, batchSize: 1 });
    const patientRequests = (): string[] => fixture?.requestsFor('Patient').map((request) => idsIn(request.query).join()) ?? [];

    await resolver.prefetch({ keys: ['Patient/pt-0'], identifiers: [] });
    await resolver.prefetch({ keys: ['Patient/pt-0'], identifiers: [] });
    expect(patientRequests()).toEqual(['pt-0']);

    await fixture.clock.sleep(60_001);
    await resolver.prefetch({ keys: ['Patient/pt-0'], identifiers: [] });
    expect(patientRequests()).toEqual(['pt-0', 'pt-0']);

    await resolver.prefetch({ keys: ['Patient/pt-1', 'Patient/pt-2'], identifiers: [] });
    expect(resolver.get('Patient/pt-0')).toBeUndefined();
    expect(resolver.get('Patient/pt-2')?.id).toBe('pt-2');
  });
});

describe('reference resolver: the department lookups a server refuses or does not offer', () => {
  const DEFAULT_SCOPE = 'AuditEvent.read Patient.read Practitioner.read';
  const encounter = (id: string, patient: string): FhirResource =>
    ({
      resourceType: 'Encounter',
      id,
      status: 'finished',
      class: { code: 'AMB' },
      subject: { reference: `Patient/${patient}` },
      serviceProvider: { display: 'Cardiology' },
    }) as FhirResource;

  it('an Encounter refused 403 (scope) counts as missing, warns once naming the scope to add, and is not asked again until the cache TTL', async () => {
    fixture = await startFixtureServer([
      ...allResources(buildFixtures({ events: 1, patients: 3, practitioners: 1 })),
      encounter('enc-1', 'pt-0'),
      encounter('enc-2', 'pt-1'),
    ]);
    fixture.tokens.scope = DEFAULT_SCOPE;
    const lines: string[] = [];
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, cacheTtlMs: 60_000, logger: linesLogger(lines) });

    await resolver.prefetch({ keys: ['Patient/pt-0', 'Encounter/enc-1', 'Practitioner/pr-0'], identifiers: [] });
    expect(resolver.get('Patient/pt-0')?.id).toBe('pt-0');
    expect(resolver.get('Practitioner/pr-0')?.id).toBe('pr-0');
    expect(resolver.get('Encounter/enc-1')).toBeUndefined();
    expect(fixture.requestsFor('Encounter').map((request) => request.status)).toEqual([403]);
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string; resourceType?: string; reason?: string });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, resourceType: 'Encounter', reason: 'forbidden' });
    expect(warnings[0]?.msg).toContain('add system/Encounter.read to smart.scope');

    // Another encounter in the next page: not asked, no second warning.
    await resolver.prefetch({ keys: ['Encounter/enc-2', 'Patient/pt-1'], identifiers: [] });
    expect(fixture.requestsFor('Encounter')).toHaveLength(1);
    expect(resolver.get('Patient/pt-1')?.id).toBe('pt-1');
    expect(lines).toHaveLength(1);

    // The scope is granted now; after one TTL the type is asked again and found.
    fixture.tokens.scope = `${DEFAULT_SCOPE} Encounter.read`;
    await fixture.clock.sleep(60_001);
    await resolver.prefetch({ keys: ['Encounter/enc-2'], identifiers: [] });
    expect(fixture.requestsFor('Encounter').map((request) => request.status)).toEqual([403, 200]);
    expect(resolver.get('Encounter/enc-2')?.id).toBe('enc-2');
  });

  it('a Location the server does not offer (404) counts as missing with a warning; the run is not stopped', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 1, practitioners: 1 })));
    const lines: string[] = [];
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger(lines) });
    await resolver.prefetch({ keys: ['Location/ward-7', 'Patient/pt-0'], identifiers: [] });
    expect(resolver.get('Location/ward-7')).toBeUndefined();
    expect(resolver.get('Patient/pt-0')?.id).toBe('pt-0');
    expect(fixture.requestsFor('Location').map((request) => request.status)).toEqual([404]);
    expect(lines.map((line) => JSON.parse(line) as { resourceType?: string; reason?: string })).toMatchObject([
      { resourceType: 'Location', reason: 'not-offered' },
    ]);
  });

  it('a chart refused under Break-the-Glass (403, Epic 4130) counts as not found, alone; the rest of its batch goes on', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 4, practitioners: 1 })));
    // pt-2 is restricted: every lookup that names it is refused, whole lists included (as a server may refuse a list for one chart).
    fixture.server.faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient(\/pt-2$|\?.*_id=([^&]*%2C)?pt-2(%2C|&|$))/, times: 100 });
    const lines: string[] = [];
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger(lines) });
    const keys = ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2', 'Patient/pt-3', 'Practitioner/pr-0'];
    await resolver.prefetch({ keys, identifiers: [] });
    expect(keys.map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', undefined, 'pt-3', 'pr-0']);
    // The list, then each id alone (concurrently): only pt-2's answer is a refusal.
    const asked = fixture.requestsFor('Patient').map((request) => [idsIn(request.query).sort().join(','), request.status]);
    expect([asked[0], ...asked.slice(1).sort()]).toEqual([
      ['pt-0,pt-1,pt-2,pt-3', 403],
      ['pt-0', 200],
      ['pt-1', 200],
      ['pt-2', 403],
      ['pt-3', 200],
    ]);
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string; resourceType?: string; outcome?: string });
    expect(warnings).toEqual([expect.objectContaining({ level: 40, resourceType: 'Patient', outcome: 'break-the-glass' })]);
    expect(lines.join('\n')).not.toContain('pt-2'); // which chart is kept out of the log
    // Remembered as not found: not asked again within the cache TTL.
    await resolver.prefetch({ keys: ['Patient/pt-2'], identifiers: [] });
    expect(fixture.requestsFor('Patient')).toHaveLength(5);
  });

  it('a chart refused under Break-the-Glass in an identifier search: the list, then each alone; only it counts as not found', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 3, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient\?identifier=[^&]*MRN1(%2C|&|$)/, times: 100 });
    const lines: string[] = [];
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger(lines) });
    const mrns = ['MRN0', 'MRN1', 'MRN2'].map((value) => ({ type: 'Patient' as const, system: 'urn:example:mrn', value }));
    await resolver.prefetch({ keys: [], identifiers: mrns });
    expect(mrns.map((ref) => resolver.get(identifierKey(ref.type, ref.system, ref.value))?.id)).toEqual(['pt-0', undefined, 'pt-2']);
    expect(
      fixture
        .requestsFor('Patient')
        .map((request) => request.status)
        .sort(),
    ).toEqual([200, 200, 403, 403]);
    expect(lines.map((line) => (JSON.parse(line) as { outcome?: string }).outcome)).toEqual(['break-the-glass']);
    expect(lines.join('\n')).not.toContain('MRN1');
  });

  it('a server that refuses an _id list (400): each id asked alone, and that type is asked one by one from then on', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 5, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'status', status: 400 }, match: /\/Patient\?.*_id=[^&]*%2C/, times: 100 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger([]) });
    await resolver.prefetch({ keys: ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2', 'Practitioner/pr-0'], identifiers: [] });
    expect(['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2', 'Practitioner/pr-0'].map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', 'pt-2', 'pr-0']);
    await resolver.prefetch({ keys: ['Patient/pt-3', 'Patient/pt-4'], identifiers: [] });
    expect(resolver.get('Patient/pt-4')?.id).toBe('pt-4');
    const asked = fixture.requestsFor('Patient').map((request) => [idsIn(request.query).sort().join(','), request.status]);
    expect([asked[0], ...asked.slice(1, 4).sort(), ...asked.slice(4).sort()]).toEqual([
      ['pt-0,pt-1,pt-2', 400],
      ['pt-0', 200],
      ['pt-1', 200],
      ['pt-2', 200],
      ['pt-3', 200],
      ['pt-4', 200],
    ]);
    expect(fixture.server.faults.fired).toHaveLength(1);
  });

  it('a chart refused under Break-the-Glass to a read (where /metadata offers only read): not found, the others read', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 3, practitioners: 1 })), { readOnlyTypes: ['Patient'] });
    fixture.server.faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient\/pt-1$/, times: 10 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger([]) });
    await resolver.prefetch({ keys: ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2'], identifiers: [] });
    expect(['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2'].map((key) => resolver.get(key)?.id)).toEqual(['pt-0', undefined, 'pt-2']);
    expect(
      fixture
        .requestsFor('Patient')
        .map((request) => request.status)
        .sort(),
    ).toEqual([200, 200, 403]);
  });

  it('every chart refused under Break-the-Glass, none found: the background user, not a chart; the prefetch stops', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 12, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient\?/, times: 100 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger([]) });
    const keys = Array.from({ length: 12 }, (_, i) => `Patient/pt-${i}`);
    const error = await rejectionOf(resolver.prefetch({ keys, identifiers: [] }));
    expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', details: { status: 403, resourceType: 'Patient' } });
    expect(error.message).toContain('Break-the-Glass exemption');
  });

  it('restricted charts asked first do not stop a prefetch whose later charts read: judged once every lookup has answered', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 18, practitioners: 1 })));
    // pt-0 … pt-11 are restricted, and the queue asks for them first (one request at a time: their refusals all come back
    // before any chart reads). Before, the tenth refusal stopped the run, and every run over that window stopped so.
    fixture.server.faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient\?.*_id=([^&]*%2C)?pt-([0-9]|1[01])(%2C|&|$)/, times: 1000 });
    const lines: string[] = [];
    const resolver = createReferenceResolver(fixture.client({ concurrency: 1 }), { clock: fixture.clock, logger: linesLogger(lines) });
    const keys = Array.from({ length: 18 }, (_, i) => `Patient/pt-${i}`);

    await resolver.prefetch({ keys, identifiers: [] });

    expect(keys.map((key) => resolver.get(key)?.id)).toEqual([...Array.from({ length: 12 }, () => undefined), ...keys.slice(12).map((key) => key.slice(8))]);
    const statuses = fixture.requestsFor('Patient').map((request) => request.status);
    expect(statuses.slice(1, 13)).toEqual(Array.from({ length: 12 }, () => 403)); // after the list: the restricted ones came back first
    expect(lines.map((line) => (JSON.parse(line) as { outcome?: string }).outcome)).toEqual(Array.from({ length: 12 }, () => 'break-the-glass'));
    // Once a chart has been read, refusals are restricted charts: a later prefetch of ten more never stops the run.
    fixture.server.faults.add({ action: { kind: 'break-the-glass' }, match: /\/Patient\?/, times: 1000 });
    await resolver.prefetch({ keys: Array.from({ length: 10 }, (_, i) => `Patient/pt-x${i}`), identifiers: [] });
    expect(resolver.get('Patient/pt-x0')).toBeUndefined();
  });

  it('a Practitioner refused under Break-the-Glass still stops the prefetch: the login and excludeUsers read it', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 1, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'break-the-glass' }, match: /\/Practitioner\?/, times: 10 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger([]) });
    const error = await rejectionOf(resolver.prefetch({ keys: ['Practitioner/pr-0', 'Patient/pt-0'], identifiers: [] }));
    expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', details: { status: 403, resourceType: 'Practitioner', outcomeCode: '4130' } });
  });

  it('a 403 without a Break-the-Glass code on a Patient lookup still stops the prefetch (a scope, not a chart)', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 1 })));
    fixture.server.faults.add({ action: { kind: 'status', status: 403 }, match: /\/Patient\?/, times: 10 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger([]) });
    const error = await rejectionOf(resolver.prefetch({ keys: ['Patient/pt-0', 'Patient/pt-1'], identifiers: [] }));
    expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', details: { status: 403, resourceType: 'Patient' } });
  });

  it('a Practitioner refused 403 still stops the prefetch: the user is no optional cell', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 1, practitioners: 1 })));
    fixture.tokens.scope = 'AuditEvent.read Patient.read';
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock, logger: linesLogger([]) });
    const error = await rejectionOf(resolver.prefetch({ keys: ['Practitioner/pr-0', 'Patient/pt-0'], identifiers: [] }));
    expect(error).toMatchObject({ code: 'BRG_ERR_FHIR_HTTP', details: { status: 403, resourceType: 'Practitioner' } });
  });
});

describe('reference resolver: a server that pages smaller than asked', () => {
  it('leaves an identifier two Practitioners carry unresolved, though its first page shows one of them (its next link tells)', async () => {
    const resources: FhirResource[] = [
      { resourceType: 'Practitioner', id: 'pr-a', identifier: [{ system: 'urn:emp', value: 'EMP5' }], name: [{ family: 'Alpha' }] },
      { resourceType: 'Practitioner', id: 'pr-b', identifier: [{ system: 'urn:emp', value: 'EMP5' }], name: [{ family: 'Beta' }] },
      { resourceType: 'Practitioner', id: 'pr-c', identifier: [{ system: 'urn:emp', value: 'EMP6' }], name: [{ family: 'Gamma' }] },
    ];
    const server = await startFixtureServer(resources, { maxPageSize: 1 });
    try {
      const resolver = createReferenceResolver(server.client(), { clock: server.clock });
      const shared = { type: 'Practitioner' as const, system: 'urn:emp', value: 'EMP5' };
      const own = { type: 'Practitioner' as const, system: 'urn:emp', value: 'EMP6' };
      // One identifier at a time: the single lookup (`_count=2`), not the list search.
      await resolver.prefetch({ keys: [], identifiers: [shared] });
      await resolver.prefetch({ keys: [], identifiers: [own] });
      expect(resolver.get(identifierKey('Practitioner', 'urn:emp', 'EMP5'))).toBeUndefined();
      expect(resolver.get(identifierKey('Practitioner', 'urn:emp', 'EMP6'))?.id).toBe('pr-c');
    } finally {
      await server.server.close();
    }
  });
});

/**
 * Issue #15.3: a server answering 404 to `Patient?_id=` and `Practitioner?_id=` (its /metadata lists `read` only)
 * made the resolver record real resources as missing, so their rows would have gone to rejects in a "successful"
 * run. Now /metadata decides between `_id` search and read-by-id, a 404 on one read means that one resource is
 * missing, and a 404/405 on a search the bridge relies on stops the run with nothing recorded as missing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createReferenceResolver, lookupMode } from '../../src/fhir/index.js';
import { rejectionOf } from '../support/error-of.js';
import { allResources, buildFixtures, type FixtureServer, startFixtureServer } from './support.js';

let fixture: FixtureServer | undefined;
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

const KEYS = ['Patient/pt-0', 'Patient/pt-1', 'Patient/pt-2', 'Practitioner/pr-1'];

describe('looking resources up by id the way /metadata says', () => {
  it('reads by id where /metadata offers only read: real resources are found, a 404/410 read is one missing resource', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 4, practitioners: 2 })), {
      readOnlyTypes: ['Patient', 'Practitioner'],
    });
    await fixture.backend.remove('Patient', 'pt-2');
    const client = fixture.client();
    const resolver = createReferenceResolver(client, { clock: fixture.clock });

    const keys = [...KEYS, 'Patient/pt-99'];
    await resolver.prefetch({ keys, identifiers: [] });

    expect(keys.map((key) => resolver.get(key)?.id)).toEqual(['pt-0', 'pt-1', undefined, 'pr-1', undefined]);
    expect(resolver.stats.missing).toBe(2);
    const asked = [...fixture.requestsFor('Patient'), ...fixture.requestsFor('Practitioner')].map(
      (request) => `${request.path.replace(/^.*\/R4\//, '')} ${request.status}`,
    );
    // A 404 is read once more before it counts (it may be a load balancer's); a 410 is the server's word.
    expect(asked.sort()).toEqual([
      'Patient/pt-0 200',
      'Patient/pt-1 200',
      'Patient/pt-2 410',
      'Patient/pt-99 404',
      'Patient/pt-99 404',
      'Practitioner/pr-1 200',
    ]);
    await expect(client.lookupMode('Patient')).resolves.toBe('read');
    await expect(client.lookupMode('PractitionerRole')).resolves.toBe('search');
  });

  it('a read answering 404 for a moment (a load balancer, not the FHIR server) is read again at once, and the patient found', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 1 })), { readOnlyTypes: ['Patient'] });
    fixture.server.faults.add({ action: { kind: 'gateway', status: 404 }, match: /\/Patient\/pt-1$/, times: 1 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });

    await resolver.prefetch({ keys: ['Patient/pt-0', 'Patient/pt-1'], identifiers: [] });

    expect(resolver.get('Patient/pt-1')?.id).toBe('pt-1');
    expect(resolver.stats.missing).toBe(0);
    const pt1 = fixture.requestsFor('Patient').filter((request) => request.path.endsWith('/pt-1'));
    expect(pt1.map((request) => request.status)).toEqual([404, 200]);
  });

  it('a read answering 404 twice is missing for the events of that prefetch only: the next prefetch naming it reads it again', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 3, practitioners: 1 })), { readOnlyTypes: ['Patient'] });
    fixture.server.faults.add({ action: { kind: 'gateway', status: 404 }, match: /\/Patient\/pt-1$/, times: 2 });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });

    await resolver.prefetch({ keys: ['Patient/pt-0', 'Patient/pt-1'], identifiers: [] });
    expect(resolver.get('Patient/pt-1')).toBeUndefined();
    // Before, it was remembered as missing for fhir.referenceCacheTtlMs (1 h): every later event of it in the run lost it.
    await resolver.prefetch({ keys: ['Patient/pt-2', 'Patient/pt-1'], identifiers: [] });
    expect(resolver.get('Patient/pt-1')?.id).toBe('pt-1');
    const pt1 = fixture.requestsFor('Patient').filter((request) => request.path.endsWith('/pt-1'));
    expect(pt1.map((request) => request.status)).toEqual([404, 404, 200]);
  });

  it('a 404 on an `_id` search /metadata promised stops with BRG_ERR_FHIR_NOT_SUPPORTED (exit 4) and records nothing as missing', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 4, practitioners: 2 })));
    fixture.server.faults.add({ action: { kind: 'status', status: 404 }, match: /\/Patient\?/ });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });

    const error = await rejectionOf(resolver.prefetch({ keys: KEYS, identifiers: [] }));

    expect(error.code).toBe('BRG_ERR_FHIR_NOT_SUPPORTED');
    expect(error.exitCode).toBe(4);
    expect(error.message).toMatch(
      /^FHIR Patient search at http:\/\/127\.0\.0\.1:\d+ answered HTTP 404 with an OperationOutcome \(error transient\): the server does not offer a request the bridge relies on, so the run stopped without rejecting anything\. /,
    );
    expect(error.message).not.toContain('pt-');
    expect(resolver.stats.missing).toBe(0);
    expect(resolver.get('Patient/pt-0')).toBeUndefined();
  });

  it('a 405 on an identifier search stops the same way', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 2 })));
    fixture.server.faults.add({ action: { kind: 'status', status: 405 }, match: /\/Practitioner\?identifier=/ });
    const resolver = createReferenceResolver(fixture.client(), { clock: fixture.clock });
    const error = await rejectionOf(resolver.prefetch({ keys: [], identifiers: [{ type: 'Practitioner', system: 'urn:x', value: 'EMP1' }] }));
    expect([error.code, error.details['status']]).toEqual(['BRG_ERR_FHIR_NOT_SUPPORTED', 405]);
    expect(error.message).not.toContain('EMP1');
    expect(resolver.stats.missing).toBe(0);
  });

  it('a type /metadata lists with neither read nor search stops before any request for it', async () => {
    fixture = await startFixtureServer(allResources(buildFixtures({ events: 1, patients: 2, practitioners: 2 })));
    const client = fixture.client();
    const summary = await client.probe();
    expect(summary.resources['Patient']?.interactions).toEqual(['read', 'search-type']);
    const bare = { ...summary, resources: { ...summary.resources, Patient: { interactions: ['create'], searchParams: [] } } };
    expect(() => lookupMode(bare, 'Patient', fixture?.server.baseUrl ?? '')).toThrow(/lists Patient in its \/metadata without read or search/);
  });
});

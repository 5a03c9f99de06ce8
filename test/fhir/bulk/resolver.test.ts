/**
 * The export's own Patients, Practitioners and PractitionerRoles are the lookup (no FHIR request for them); a
 * reference the export lacks is fetched over FHIR in `_id` batches, as in a search sync. An absolute reference is the
 * export's own when it carries the connector's FHIR base.
 */
import type { AuditEvent, Patient, Practitioner } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { builtinMappingPath, collectReferences, loadMapping, mapEvent } from '../../../src/mapping/index.js';
import { identifierKey } from '../../../src/reference-keys.js';
import { EMP_SYSTEM } from '../support.js';
import { type BulkFixture, startBulkFixture } from './support.js';

let f: BulkFixture;
beforeAll(async () => {
  f = await startBulkFixture({ events: 20, patients: 5, practitioners: 4 }, {}, { departmentTypes: true });
});
afterAll(async () => f?.close());

const window = { since: '2026-11-01T00:00:00Z', until: '2026-11-02T00:00:00Z' };
const fhirLookups = () => f.fx.server.requests.filter((r) => /\/(Patient|Practitioner|PractitionerRole)$/.test(r.path)).length;

it('serves every reference the export holds from its files, without a FHIR request', async () => {
  const harness = f.source({ settings: { types: ['AuditEvent', 'Patient', 'Practitioner', 'PractitionerRole'] } });
  await harness.read(window);
  const before = fhirLookups();
  const { resolver } = harness.source;
  await resolver.prefetch({
    keys: ['Patient/pt-0', 'Patient/pt-4', 'Practitioner/pr-3', 'PractitionerRole/role-1'],
    identifiers: [{ type: 'Practitioner', system: EMP_SYSTEM, value: 'EMP2' }],
  });
  expect(fhirLookups()).toBe(before);
  expect((resolver.get('Patient/pt-4') as Patient).identifier?.[0]?.value).toBe('MRN4');
  expect(resolver.get('PractitionerRole/role-1')?.resourceType).toBe('PractitionerRole');
  expect((resolver.get('Practitioner/pr-1') as Practitioner).id).toBe('pr-1');
  expect((resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP2')) as Practitioner).id).toBe('pr-2');
  expect((resolver.get(identifierKey('Practitioner', undefined, 'EMP2')) as Practitioner).id).toBe('pr-2');
  expect(resolver.stats.exported).toBe(5);
  harness.source.close();
});

it('fetches references missing from the export over FHIR, in one _id batch per type', async () => {
  // Practitioners are not exported: every agent reference goes to the FHIR resolver.
  const harness = f.source({ settings: { types: ['AuditEvent', 'Patient'] } });
  await harness.read(window);
  const before = f.fx.server.requests.length;
  const { resolver } = harness.source;
  await resolver.prefetch({ keys: ['Patient/pt-1', 'Practitioner/pr-0', 'Practitioner/pr-2'], identifiers: [] });
  const asked = f.fx.server.requests.slice(before);
  expect(asked.map((r) => r.path.split('/').at(-1))).toEqual(['metadata', 'Practitioner']);
  expect(decodeURIComponent(asked[1]?.query ?? '')).toContain('_id=pr-0,pr-2');
  expect((resolver.get('Practitioner/pr-2') as Practitioner).id).toBe('pr-2');
  expect((resolver.get('Patient/pt-1') as Patient).id).toBe('pt-1');
  expect(resolver.get('Patient/pt-99')).toBeUndefined();
  harness.source.close();
  // Once the pull is over the index is closed; lookups go to the FHIR resolver's cache only.
  expect(resolver.get('Patient/pt-1')).toBeUndefined();
});

it('an absolute reference with the export’s own FHIR base is served from its files; another server’s is neither looked up nor mapped', async () => {
  const harness = f.source({ settings: { types: ['AuditEvent', 'Patient', 'Practitioner'] } });
  await harness.read(window);
  const mapping = loadMapping(builtinMappingPath('epic'), { fhirBase: f.fx.server.baseUrl });
  const naming = (reference: string): AuditEvent => ({ ...(f.data.events[0] as AuditEvent), entity: [{ what: { reference } }] });
  const own = naming(`${f.fx.server.baseUrl}/Patient/pt-1`);
  const other = naming('https://other.example/fhir/R4/Patient/pt-1');
  const { resolver } = harness.source;
  const before = fhirLookups();

  expect(collectReferences(own, mapping).keys).toEqual(['Patient/pt-1', 'Practitioner/pr-0']);
  expect(collectReferences(other, mapping).keys).toEqual(['Practitioner/pr-0']);
  await resolver.prefetch(collectReferences(own, mapping));
  await resolver.prefetch(collectReferences(other, mapping));

  expect(fhirLookups()).toBe(before);
  expect(mapEvent(own, mapping, resolver).warnings).not.toContain('unresolved-patient');
  expect(mapEvent(other, mapping, resolver).warnings).toContain('unresolved-patient');
  harness.source.close();
});

it('an exported role naming another server’s practitioner does not send that id to our FHIR server', async () => {
  await f.fx.backend.load([
    { resourceType: 'PractitionerRole', id: 'role-foreign', practitioner: { reference: 'https://other.example/fhir/R4/Practitioner/pr-9' } },
    { resourceType: 'PractitionerRole', id: 'role-own', practitioner: { reference: `${f.fx.server.baseUrl}/Practitioner/pr-2` } },
  ]);
  // Practitioners are not exported: a role's own practitioner is fetched over FHIR, another server's is not ours to ask.
  const harness = f.source({ settings: { types: ['AuditEvent', 'PractitionerRole'] } });
  await harness.read(window);
  const before = f.fx.server.requests.length;
  await harness.source.resolver.prefetch({ keys: ['PractitionerRole/role-foreign', 'PractitionerRole/role-own'], identifiers: [] });
  const asked = f.fx.server.requests.slice(before).filter((r) => r.path.endsWith('/Practitioner'));
  expect(asked.map((r) => new URLSearchParams(r.query).get('_id'))).toEqual(['pr-2']);
  harness.source.close();
});

it('an exported role naming its practitioner by identifier alone, which the export lacks: searched for over FHIR by it', async () => {
  await f.fx.backend.load([{ resourceType: 'PractitionerRole', id: 'role-emp', practitioner: { identifier: { system: EMP_SYSTEM, value: 'EMP3' } } }]);
  // Practitioners are not exported: the role's practitioner is searched for by its identifier, as in a search sync.
  const harness = f.source({ settings: { types: ['AuditEvent', 'PractitionerRole'] } });
  await harness.read(window);
  const before = f.fx.server.requests.length;
  await harness.source.resolver.prefetch({ keys: ['PractitionerRole/role-emp'], identifiers: [] });
  const asked = f.fx.server.requests.slice(before).filter((r) => r.path.endsWith('/Practitioner'));
  expect(asked.map((r) => new URLSearchParams(r.query).get('identifier'))).toEqual([`${EMP_SYSTEM}|EMP3`]);
  expect((harness.source.resolver.get(identifierKey('Practitioner', EMP_SYSTEM, 'EMP3')) as Practitioner).id).toBe('pr-3');
  harness.source.close();
});

it("an exported encounter's or role's department reference the export lacks is fetched over FHIR, with the department follows only", async () => {
  await f.fx.backend.load([
    { resourceType: 'Encounter', id: 'enc-b', status: 'finished', class: { code: 'AMB' }, serviceProvider: { reference: 'Organization/org-b' } },
    { resourceType: 'PractitionerRole', id: 'role-b', practitioner: { reference: 'Practitioner/pr-1' }, organization: { reference: 'Organization/org-c' } },
    { resourceType: 'Organization', id: 'org-b', name: 'Pediatric Cardiology' },
    { resourceType: 'Organization', id: 'org-c', name: 'Oncology' },
  ]);
  const follow = new Set(['Encounter.serviceProvider', 'PractitionerRole.organization'] as const);
  const harness = f.source({ settings: { types: ['AuditEvent', 'Encounter', 'PractitionerRole', 'Practitioner'] }, follow });
  await harness.read(window);
  await harness.source.resolver.prefetch({ keys: ['Encounter/enc-b', 'PractitionerRole/role-b'], identifiers: [] });
  expect(harness.source.resolver.get('Organization/org-b')).toMatchObject({ name: 'Pediatric Cardiology' });
  expect(harness.source.resolver.get('Organization/org-c')).toMatchObject({ name: 'Oncology' });
  harness.source.close();
  // Without them (no column reads the department), nothing beyond the role's practitioner is asked for.
  const before = f.fx.server.requests.filter((r) => r.path.endsWith('/Organization')).length;
  const plain = f.source({ settings: { types: ['AuditEvent', 'Encounter', 'PractitionerRole', 'Practitioner'] } });
  await plain.read(window);
  await plain.source.resolver.prefetch({ keys: ['Encounter/enc-b', 'PractitionerRole/role-b'], identifiers: [] });
  expect(f.fx.server.requests.filter((r) => r.path.endsWith('/Organization')).length).toBe(before);
  plain.source.close();
});

/**
 * The pull's prefetch and the mapping together, against the sandbox FHIR server: what collectReferences asks for is
 * what the mapping then reads, for the reference shapes that differ from a plain `Type/id` (a contained
 * PractitionerRole, absolute references with our own base and with another server's).
 */
import type { AuditEvent, FhirResource, Patient, Practitioner, PractitionerRole } from 'fhir/r4.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createPrefetchGroups, createReferenceResolver } from '../../src/fhir/index.js';
import {
  builtinMappingPath,
  type CompiledMapping,
  collectReferences,
  departmentFollows,
  loadMapping,
  mapEvent,
  splitsCxIdentifiers,
} from '../../src/mapping/index.js';
import type { ReferenceRequest } from '../../src/reference-keys.js';
import { EMP_SYSTEM, type FixtureServer, isoAt, startFixtureServer } from './support.js';

const MRN_SYSTEM = 'urn:example:mrn';
const PATIENT_ROLE = { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' };

let fixture: FixtureServer | undefined;
afterEach(async () => {
  await fixture?.server.close();
  fixture = undefined;
});

function patient(i: number): Patient {
  return {
    resourceType: 'Patient',
    id: `pt-${i}`,
    identifier: [{ system: MRN_SYSTEM, value: `MRN${i}` }],
    name: [{ family: `Family${i}`, given: [`Given${i}`] }],
    address: [{ line: [`${i} Main St`], city: 'Madison', postalCode: '53703' }],
  };
}

function practitioner(i: number): Practitioner {
  return {
    resourceType: 'Practitioner',
    id: `pr-${i}`,
    identifier: [{ system: EMP_SYSTEM, value: `user${i}@ehr.example.org` }],
    name: [{ family: `Staff${i}` }],
  };
}

function event(
  id: string,
  minute: number,
  who: AuditEvent['agent'][number]['who'],
  what: NonNullable<AuditEvent['entity']>[number]['what'],
  extra: Partial<AuditEvent> = {},
): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id,
    recorded: isoAt(minute),
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110', display: 'Patient Record' },
    action: 'R',
    agent: [{ requestor: true, ...(who ? { who } : {}) }],
    source: { observer: { display: 'Epic' } },
    entity: [{ what, role: PATIENT_ROLE }],
    ...extra,
  };
}

/** The pull's order of work: collect each event's references, prefetch them in groups, map each group as it is ready. */
async function pullAndMap(events: readonly AuditEvent[], mapping: CompiledMapping, server: FixtureServer, sizes: { group?: number; cache?: number } = {}) {
  const resolver = createReferenceResolver(server.client(), {
    clock: server.clock,
    baseUrl: server.server.baseUrl,
    ...(sizes.cache === undefined ? {} : { cacheSize: sizes.cache }),
    // As the composition builds it: what the mapping's department reads inside encounters and roles, and how it reads CX.
    follow: departmentFollows(mapping),
    parseCxIdentifiers: splitsCxIdentifiers(mapping),
  });
  const groups = createPrefetchGroups<{ event: AuditEvent; references: ReferenceRequest }>(resolver, sizes.group ?? 2);
  const cell = (row: readonly string[] | undefined, name: string): string | undefined => row?.[mapping.columns.findIndex((column) => column.name === name)];
  const mapped = new Map<string | undefined, { login?: string; mrn?: string; department?: string; rejects: string[] }>();
  const map = (ready: ReadonlyArray<{ event: AuditEvent }>): void => {
    for (const { event: e } of ready) {
      const result = mapEvent(e, mapping, resolver);
      const login = cell(result.rows[0], 'EMP.SYSTEM_LOGIN');
      const mrn = cell(result.rows[0], 'PATIENT.PAT_MRN_ID');
      const department = cell(result.rows[0], 'CLARITY_DEP.DEPARTMENT_NAME');
      mapped.set(e.id, {
        ...(login === undefined ? {} : { login }),
        ...(mrn === undefined ? {} : { mrn }),
        ...(department ? { department } : {}),
        rejects: result.rejects.map((r) => r.reason),
      });
    }
  };
  for await (const group of groups.add(events.map((e) => ({ event: e, references: collectReferences(e, mapping) })))) map(group);
  map(await groups.finish());
  return mapped;
}

describe('prefetch and mapping against the sandbox FHIR server', () => {
  it('a contained PractitionerRole’s practitioner is fetched, whatever the neighbouring events name', async () => {
    fixture = await startFixtureServer([patient(0), patient(1), practitioner(0), practitioner(1)] as FhirResource[]);
    const mapping = loadMapping(builtinMappingPath('epic'), {
      options: { loginSystems: [EMP_SYSTEM], mrnSystems: [MRN_SYSTEM] },
      fhirBase: fixture.server.baseUrl,
    });
    const role: PractitionerRole = { resourceType: 'PractitionerRole', id: 'role', practitioner: { reference: 'Practitioner/pr-1' } };
    const contained = event('ae-role', 0, { reference: '#role' }, { reference: 'Patient/pt-0' }, { contained: [role] });
    // Its only neighbour names another user: nothing else brings pr-1 into the cache.
    const neighbour = event('ae-plain', 1, { reference: 'Practitioner/pr-0' }, { reference: 'Patient/pt-1' });

    const mapped = await pullAndMap([contained, neighbour], mapping, fixture);

    expect(mapped.get('ae-role')).toEqual({ login: 'user1@ehr.example.org', mrn: 'MRN0', rejects: [] });
    expect(mapped.get('ae-plain')).toEqual({ login: 'user0@ehr.example.org', mrn: 'MRN1', rejects: [] });
  });

  it('a PractitionerRole whose practitioner is an identifier alone: that Practitioner is fetched with the role', async () => {
    const role: PractitionerRole = {
      resourceType: 'PractitionerRole',
      id: 'role-1',
      practitioner: { identifier: { system: EMP_SYSTEM, value: 'user1@ehr.example.org' } },
    };
    fixture = await startFixtureServer([patient(0), patient(1), practitioner(0), practitioner(1), role] as FhirResource[]);
    const mapping = loadMapping(builtinMappingPath('epic'), {
      options: { loginSystems: [EMP_SYSTEM], mrnSystems: [MRN_SYSTEM] },
      fhirBase: fixture.server.baseUrl,
    });
    // No other event names user1: only the role leads to it. Before, nothing fetched it and the row lost its user.
    const events = [
      event('ae-role', 0, { reference: 'PractitionerRole/role-1' }, { reference: 'Patient/pt-0' }),
      event('ae-plain', 1, { reference: 'Practitioner/pr-0' }, { reference: 'Patient/pt-1' }),
    ];

    const mapped = await pullAndMap(events, mapping, fixture);

    expect(mapped.get('ae-role')).toEqual({ login: 'user1@ehr.example.org', mrn: 'MRN0', rejects: [] });
    expect(mapped.get('ae-plain')).toEqual({ login: 'user0@ehr.example.org', mrn: 'MRN1', rejects: [] });
  });

  it('a PractitionerRole whose practitioner is an HL7v2 CX identifier alone: searched split, as the mapping looks it up', async () => {
    const oid = '1.2.840.114350.1.13.0.1.7.2.697780';
    const staff: Practitioner = { ...practitioner(1), identifier: [...(practitioner(1).identifier ?? []), { system: `urn:oid:${oid}`, value: 'E123' }] };
    const role: PractitionerRole = { resourceType: 'PractitionerRole', id: 'role-1', practitioner: { identifier: { value: `E123^^^&${oid}&ISO` } } };
    fixture = await startFixtureServer([patient(0), practitioner(0), staff, role] as FhirResource[]);
    const mapping = loadMapping(builtinMappingPath('epic'), {
      options: { loginSystems: [EMP_SYSTEM], mrnSystems: [MRN_SYSTEM] },
      fhirBase: fixture.server.baseUrl,
    });
    // Searched whole (`identifier=E123^^^&…&ISO`), the server found nobody and the row lost its user.
    const mapped = await pullAndMap([event('ae-role', 0, { reference: 'PractitionerRole/role-1' }, { reference: 'Patient/pt-0' })], mapping, fixture);

    expect(mapped.get('ae-role')).toEqual({ login: 'user1@ehr.example.org', mrn: 'MRN0', rejects: [] });
    expect(fixture.requestsFor('Practitioner').map((request) => decodeURIComponent(request.query))).toEqual([
      expect.stringContaining(`identifier=urn:oid:${oid}|E123`),
    ]);
  });

  it('…and stays pinned while the events naming the role are mapped, with a cache smaller than a group needs', async () => {
    const role: PractitionerRole = {
      resourceType: 'PractitionerRole',
      id: 'role-1',
      practitioner: { identifier: { system: EMP_SYSTEM, value: 'user1@ehr.example.org' } },
    };
    fixture = await startFixtureServer([patient(0), patient(1), patient(2), patient(3), practitioner(0), practitioner(1), role] as FhirResource[]);
    const mapping = loadMapping(builtinMappingPath('epic'), {
      options: { loginSystems: [EMP_SYSTEM], mrnSystems: [MRN_SYSTEM] },
      fhirBase: fixture.server.baseUrl,
    });
    // ae-user asks for user1 by identifier itself, so user1 is in the cache; the patients and pr-0 fetched after it push
    // it out of a cache of 3 before ae-role-2 is mapped. Before, nothing the role named was pinned: ae-role-2 lost its user.
    const events = [
      event('ae-user', 0, { type: 'Practitioner', identifier: { system: EMP_SYSTEM, value: 'user1@ehr.example.org' } }, { reference: 'Patient/pt-0' }),
      event('ae-role-1', 1, { reference: 'PractitionerRole/role-1' }, { reference: 'Patient/pt-1' }),
      event('ae-role-2', 2, { reference: 'PractitionerRole/role-1' }, { reference: 'Patient/pt-2' }),
      event('ae-plain', 3, { reference: 'Practitioner/pr-0' }, { reference: 'Patient/pt-3' }),
    ];

    const mapped = await pullAndMap(events, mapping, fixture, { group: 2, cache: 3 });

    for (const [id, mrn] of [
      ['ae-user', 'MRN0'],
      ['ae-role-1', 'MRN1'],
      ['ae-role-2', 'MRN2'],
    ])
      expect(mapped.get(id)).toEqual({ login: 'user1@ehr.example.org', mrn, rejects: [] });
    expect(mapped.get('ae-plain')).toEqual({ login: 'user0@ehr.example.org', mrn: 'MRN3', rejects: [] });
  });

  it('a group naming more resources than the cache holds maps every one of them (none evicted before its rows are made)', async () => {
    const patients = Array.from({ length: 20 }, (_, i) => patient(i));
    fixture = await startFixtureServer([...patients, practitioner(0)] as FhirResource[]);
    const mapping = loadMapping(builtinMappingPath('epic'), {
      options: { loginSystems: [EMP_SYSTEM], mrnSystems: [MRN_SYSTEM] },
      fhirBase: fixture.server.baseUrl,
    });
    // A printed census list: each event names five patients. Two events per group and a cache of 8 (4 × the group, the
    // ratio the config asks for) is 11 resources per prefetch.
    const events = Array.from({ length: 4 }, (_, e) => ({
      ...event(`ae-${e}`, e, { reference: 'Practitioner/pr-0' }, { reference: `Patient/pt-${e * 5}` }),
      entity: Array.from({ length: 5 }, (_, k) => ({ what: { reference: `Patient/pt-${e * 5 + k}` }, role: PATIENT_ROLE })),
    }));

    const mapped = await pullAndMap(events, mapping, fixture, { group: 2, cache: 8 });

    for (let e = 0; e < 4; e += 1) expect(mapped.get(`ae-${e}`)).toEqual({ login: 'user0@ehr.example.org', mrn: `MRN${e * 5}`, rejects: [] });
  });

  it("the department an encounter's service provider or location, or a role's organization, names by reference alone is fetched with it", async () => {
    const encounter = (id: string, extra: Record<string, unknown>) => ({ resourceType: 'Encounter', id, status: 'finished', class: { code: 'AMB' }, ...extra });
    fixture = await startFixtureServer(
      [
        patient(0),
        patient(1),
        patient(2),
        practitioner(0),
        encounter('enc-org', { serviceProvider: { reference: 'Organization/org-1' } }),
        encounter('enc-loc', { location: [{ location: { reference: 'Location/loc-1' } }] }),
        { resourceType: 'Organization', id: 'org-1', name: 'Pediatric Cardiology' },
        { resourceType: 'Location', id: 'loc-1', name: '4 West' },
        { resourceType: 'Organization', id: 'org-2', name: 'Oncology' },
        { resourceType: 'PractitionerRole', id: 'role-1', practitioner: { reference: 'Practitioner/pr-0' }, organization: { reference: 'Organization/org-2' } },
      ] as FhirResource[],
      { departmentTypes: true },
    );
    const mapping = loadMapping(builtinMappingPath('epic'), {
      options: { loginSystems: [EMP_SYSTEM], mrnSystems: [MRN_SYSTEM] },
      fhirBase: fixture.server.baseUrl,
    });
    const withEncounter = (id: string, minute: number, enc: string, pt: number): AuditEvent => {
      const e = event(id, minute, { reference: 'Practitioner/pr-0' }, { reference: `Patient/pt-${pt}` });
      return { ...e, entity: [...(e.entity ?? []), { what: { reference: `Encounter/${enc}` } }] };
    };
    const events = [
      withEncounter('ae-org', 0, 'enc-org', 0),
      withEncounter('ae-loc', 1, 'enc-loc', 1),
      event('ae-role', 2, { reference: 'PractitionerRole/role-1' }, { reference: 'Patient/pt-2' }),
    ];

    const mapped = await pullAndMap(events, mapping, fixture);

    expect([...mapped.values()].map((m) => m.department)).toEqual(['Pediatric Cardiology', '4 West', 'Oncology']);
    expect(fixture.requestsFor('Organization').length + fixture.requestsFor('Location').length).toBeGreaterThan(0);
  });

  it('an absolute reference to another server is never fetched or mapped as our resource of that id; our own base is', async () => {
    fixture = await startFixtureServer([patient(0), patient(1), patient(2), practitioner(0), practitioner(1)] as FhirResource[]);
    const mapping = loadMapping(builtinMappingPath('epic'), {
      options: { loginSystems: [EMP_SYSTEM], mrnSystems: [MRN_SYSTEM] },
      fhirBase: fixture.server.baseUrl,
    });
    const own = fixture.server.baseUrl;
    const other = `https://other-hospital.example${new URL(own).pathname}`;
    const events = [
      event('ae-own', 0, { reference: `${own}/Practitioner/pr-0` }, { reference: `${own}/Patient/pt-0` }),
      event('ae-other-patient', 1, { reference: 'Practitioner/pr-0' }, { reference: `${other}/Patient/pt-1`, display: 'Visitor, Vera' }),
      event('ae-other-user', 2, { reference: `${other}/Practitioner/pr-1` }, { reference: 'Patient/pt-2' }),
      // Another server's patient that carries an identifier our server knows: found by it, as any unresolved reference is.
      event('ae-other-mrn', 3, { reference: 'Practitioner/pr-0' }, { reference: `${other}/Patient/pt-1`, identifier: { system: MRN_SYSTEM, value: 'MRN2' } }),
    ];

    const mapped = await pullAndMap(events, mapping, fixture);

    expect(mapped.get('ae-own')).toEqual({ login: 'user0@ehr.example.org', mrn: 'MRN0', rejects: [] });
    expect(mapped.get('ae-other-patient')).toMatchObject({ login: 'user0@ehr.example.org', mrn: '' });
    expect(mapped.get('ae-other-user')).toEqual({ login: undefined, mrn: undefined, rejects: ['missing-employee-login'] });
    expect(mapped.get('ae-other-mrn')).toEqual({ login: 'user0@ehr.example.org', mrn: 'MRN2', rejects: [] });
    const asked = [...fixture.requestsFor('Patient'), ...fixture.requestsFor('Practitioner')].map((request) => new URLSearchParams(request.query));
    const ids = asked.flatMap((query) => (query.get('_id') ?? '').split(',').filter(Boolean));
    expect(ids).toContain('pt-0');
    expect(ids.filter((id) => id === 'pt-1' || id === 'pr-1')).toEqual([]);
  });
});

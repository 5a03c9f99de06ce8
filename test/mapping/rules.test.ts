/**
 * The column rules one at a time: login sources and their order (docs/mapping.md §7.1), break-the-glass
 * (docs/mapping.md §6), what the pull is asked to prefetch (collectReferences), and which absolute references are ours.
 */
import type { AuditEvent, AuditEventAgent, Encounter, Identifier, Organization, Patient, Practitioner, PractitionerRole } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { type CompiledMapping, collectReferences, type MappingOverrides, mapEvent } from '../../src/mapping/index.js';
import { type ResourceLookup, referenceKey } from '../../src/reference-keys.js';
import { generateDataset } from '../../src/sandbox/generator.js';
import { auditEvent, builtinMapping, builtinSpec, compileSpec, hl7Resources, identifierKey, lookupOf, readFixture } from './support.js';

const AR = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const BALP_OTHER_ID = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/ihe-otherId';
const f001 = readFixture<Practitioner>('hl7-r4', 'Practitioner-f001.json');
const lookup = lookupOf(hl7Resources());

/** A Patient/example read by one agent; `agent` replaces the requestor's fields. */
function read(agent: Partial<AuditEventAgent>, extra: Partial<AuditEvent> = {}): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: 'ae-1',
    recorded: '2020-05-01T10:00:00Z',
    action: 'R',
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110', display: 'Patient Record' },
    source: { observer: { display: 'EHR' } },
    agent: [{ requestor: true, ...agent }],
    entity: [{ what: { reference: 'Patient/example' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }],
    ...extra,
  };
}

function cell(event: AuditEvent, column: string, overrides: MappingOverrides = {}): string | undefined {
  const mapping: CompiledMapping = builtinMapping('epic', overrides);
  const result = mapEvent(event, mapping, lookup);
  const index = mapping.columns.findIndex((entry) => entry.name === column);
  return result.rows[0]?.[index] ?? result.rejects[0]?.reason;
}

describe('an event without an id (docs/mapping.md §9.1)', () => {
  it('is rejected as missing-id, each one: it has no identity to de-duplicate or acknowledge', () => {
    const mapping = builtinMapping('epic');
    const login = { who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
    expect(mapEvent(read(login), mapping, lookup).rows).toHaveLength(1);
    const { id: _, ...withoutId } = read(login);
    const first = mapEvent(withoutId, mapping, lookup);
    const second = mapEvent({ ...withoutId, recorded: '2020-05-01T10:05:00Z' }, mapping, lookup);
    for (const result of [first, second]) {
      expect(result.rows).toEqual([]);
      expect(result.rejects).toEqual([{ eventId: '', reason: 'missing-id' }]);
    }
  });
});

describe('patient subjects no lookup can name (docs/mapping.md §3.4)', () => {
  const login = { who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
  const mapping = builtinMapping('epic');
  const withEntity = (entity: NonNullable<AuditEvent['entity']>[number]) => mapEvent(read(login, { entity: [entity] }), mapping, lookup);

  it('a patient entity named by a urn:uuid, an id longer than FHIR allows, or nothing gives an unresolved row (a reject), not a no-patient skip', () => {
    const role = { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' };
    for (const [what, entity] of [
      ['a urn:uuid typed Patient', { what: { reference: 'urn:uuid:5f1c2a9e-3b7d-4c1e-9a2f-0d4b6e8f1a3c', type: 'Patient' } }],
      ['a urn:uuid with the patient role', { what: { reference: 'urn:uuid:5f1c2a9e-3b7d-4c1e-9a2f-0d4b6e8f1a3c' }, role }],
      ['an 88-character id with the patient role', { what: { reference: `Patient/${'a'.repeat(88)}` }, role }],
      ['an empty reference with the patient role', { what: {}, role }],
      ['no what at all with the patient role', { role }],
    ] as const) {
      const result = withEntity(entity);
      expect(result.skipped, what).toBeUndefined();
      expect(result.rejects, what).toEqual([
        { eventId: 'ae-1', patientRef: 'entity[0].what', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' },
      ]);
      expect(result.warnings, what).toContain('unresolved-patient');
    }
  });

  it('a patient entity with only its name (no what) gives a row under that name, as a display-only reference does', () => {
    const role = { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' };
    const result = withEntity({ role, name: 'DOE, JANE' });
    expect(result.skipped).toBeUndefined();
    expect(result.rows).toHaveLength(1);
    expect(result.rows[0]).toContain('DOE, JANE');
    expect(result.warnings).toContain('unresolved-patient');
    // Not beside an entity that names the patient, nor a query's entity (a search typed Patient).
    expect(withEntity({ role, name: 'Patient search', query: 'bmFtZT1kb2U=' }).skipped).toBe('no-patient');
    const twins = read(login, {
      entity: [
        { what: { reference: 'Patient/example' }, role },
        { role, name: 'DOE, JANE' },
      ],
    });
    expect(mapEvent(twins, mapping, lookup).rows).toHaveLength(1);
  });

  it('takes the patient role as STU3 named its code system, or with no system, and reads the patient by identifier', () => {
    const byMrn = { what: { identifier: { system: 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0', value: '203713' } } };
    for (const system of ['http://hl7.org/fhir/object-role', undefined]) {
      const result = withEntity({ ...byMrn, role: { ...(system === undefined ? {} : { system }), code: '1' } });
      expect(result.skipped, String(system)).toBeUndefined();
      expect(result.rows.length + result.rejects.length, String(system)).toBe(1);
    }
    // Another code system's code 1 is not the patient role.
    expect(withEntity({ ...byMrn, role: { system: 'http://example.org/roles', code: '1' } }).skipped).toBe('no-patient');
  });

  it('takes an entity typed as the Patient resource (R4 entity.type takes resource-types codes) named by identifier alone', () => {
    const mrn = { system: 'urn:oid:1.2.36.146.595.217.0.1', value: '12345' };
    const entity = { what: { identifier: mrn }, type: { system: 'http://hl7.org/fhir/resource-types', code: 'Patient' } };
    const example = lookup.get(referenceKey('Patient', 'example')) as Patient;
    const byIdentifier = lookupOf(hl7Resources(), { [identifierKey('Patient', mrn.system, mrn.value)]: example });
    const result = mapEvent(read(login, { entity: [entity] }), mapping, byIdentifier);
    expect(result.skipped).toBeUndefined();
    expect(result.rejects).toEqual([]);
    expect(result.rows).toHaveLength(1);
    // The pull is asked for it, as for a patient with the patient role.
    expect(collectReferences(read(login, { entity: [entity] }), mapping).identifiers).toContainEqual({ type: 'Patient', ...mrn });
    // Another resource type, or a reference naming another type, is no patient.
    expect(withEntity({ ...entity, type: { ...entity.type, code: 'Group' } }).skipped).toBe('no-patient');
    expect(withEntity({ what: { reference: 'Group/ward-3' }, type: entity.type }).skipped).toBe('no-patient');
  });
});

describe('an event or resource with a value of another JSON type (docs/mapping.md §9.1)', () => {
  const login = { who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
  const example = lookup.get(referenceKey('Patient', 'example')) as Patient;

  it('is rejected as malformed-event with its id, instead of failing the run (every run over its window would fail the same)', () => {
    const mapping = builtinMapping('epic');
    const broken: Array<[string, AuditEvent, ResourceLookup]> = [
      ['a number in recorded', read(login, { recorded: 1762000000000 as unknown as string }), lookup],
      ['an object for a reference', read(login, { entity: [{ what: { reference: { a: 1 } as unknown as string } }] }), lookup],
      ['a null agent', read(login, { agent: [null as unknown as AuditEventAgent, { requestor: true, ...login }] }), lookup],
      [
        "a number as the patient's MRN",
        read(login),
        {
          get: (key) =>
            key === referenceKey('Patient', 'example')
              ? { ...example, identifier: [{ type: { text: 'MRN' }, value: 204518 as unknown as string }] }
              : lookup.get(key),
        },
      ],
    ];
    for (const [what, event, resources] of broken) {
      const result = mapEvent(event, mapping, resources);
      expect(result.rows, what).toEqual([]);
      expect(result.rejects, what).toEqual([{ eventId: 'ae-1', reason: 'malformed-event', detail: expect.stringMatching(/^TypeError at [\w.-]+\.ts:\d+$/) }]);
    }
    // The events after it are mapped as usual.
    expect(mapEvent(read(login), mapping, lookup).rows).toHaveLength(1);
  });
});

describe("the bridge's own user (mapping.options.excludeUsers, docs/mapping.md §3.1)", () => {
  const login = { who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
  const mapped = (agent: Partial<AuditEventAgent>, excludeUsers: string[], options: Record<string, unknown> = {}) =>
    mapEvent(read(agent), builtinMapping('epic', { options: { excludeUsers, ...options } }), lookup);

  it('skips the requestor named by its reference, its login, or an identifier with its system', () => {
    const names = [
      'Practitioner/f001',
      'practitioner/f001',
      'USER@hospital.example.org ',
      'urn:oid:2.16.840.1.113883.2.4.6.3|129idh4op733',
      'urn:oid:2.16.528.1.1007.3.1|  938273695',
    ];
    for (const name of names) expect(mapped(login, [name]), name).toMatchObject({ rows: [], rejects: [], skipped: 'excluded-user' });
    // An unresolved requestor known only by an identifier without a system (padded, as Epic pads EMP ids).
    expect(mapped({ who: { identifier: { value: '  BGUSER' }, display: 'Background, User' } }, ['bguser']).skipped).toBe('excluded-user');
  });

  it("takes a bare value for an identifier only where the mapping would take that identifier as the user's id or login", () => {
    // f001's identifiers are a national id and a provider number: a bare value matches neither (another user's EMP id
    // may be this one's provider number).
    expect(mapped(login, ['129IDH4OP733', '938273695', 'f001']).rows).toHaveLength(1);
    // Pinned as the user id system, the same bare value is this user's id.
    expect(mapped(login, ['129IDH4OP733'], { userIdSystems: ['urn:oid:2.16.840.1.113883.2.4.6.3'] }).skipped).toBe('excluded-user');
  });

  it('keeps everyone else, and a contained practitioner is not taken for the server one of the same local id', () => {
    expect(mapped(login, ['someone-else', 'EMP999', 'Practitioner/f002']).rows).toHaveLength(1);
    expect(mapped(login, []).rows).toHaveLength(1);
    const contained = read(
      { who: { reference: '#f001' }, altId: 'user@hospital.example.org' },
      { contained: [{ resourceType: 'Practitioner', id: 'f001', name: [{ family: 'Local' }] } as Practitioner] },
    );
    expect(mapEvent(contained, builtinMapping('epic', { options: { excludeUsers: ['Practitioner/f001'] } }), lookup).skipped).toBeUndefined();
  });

  it('is refused when it is not a list of names', () => {
    expect(() => builtinMapping('epic', { options: { excludeUsers: 'Practitioner/f001' } })).toThrow(/option "excludeUsers"/);
  });

  it("names our server's Practitioner by Type/id, never another server's of the same id", () => {
    const own = 'https://ehr.example.org/api/FHIR/R4';
    const excluding = builtinMapping('epic', { fhirBase: own, options: { excludeUsers: ['Practitioner/f001'] } });
    const by = (reference: string) => mapEvent(read({ who: { reference }, altId: 'user@hospital.example.org' }), excluding, lookup).skipped;
    expect(by(`${own}/Practitioner/f001`)).toBe('excluded-user');
    expect(by('https://other.example.org/fhir/Practitioner/f001')).toBeUndefined();
  });
});

describe("another server's patient named twice", () => {
  it('two spellings of one foreign reference (with and without its version) are one subject: one row', () => {
    const mapping = builtinMapping('epic', { fhirBase: 'https://ehr.example.org/fhir' });
    const role = { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' };
    const event = read(
      { who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' },
      {
        entity: [
          { what: { reference: 'https://other.example/fhir/Patient/9', display: 'Jane Doe' }, role },
          { what: { reference: 'https://OTHER.example/fhir/Patient/9/_history/2', display: 'Jane Doe' }, role },
        ],
      },
    );
    expect(mapEvent(event, mapping, lookup).rows).toHaveLength(1);
  });
});

describe('employee names from a display, when the user does not resolve (docs/mapping.md §7.4)', () => {
  const names = (display: string) => {
    const mapping = builtinMapping('epic');
    const event = read({ who: { display }, altId: 'jane.smith@hospital.example.org' });
    const row = mapEvent(event, mapping, lookup).rows[0] ?? [];
    const at = (name: string) => row[mapping.columns.findIndex((column) => column.name === name)];
    return [at('employee_last_name'), at('employee_first_name')];
  };

  it('drops titles and credentials before splitting: they are no first or last name', () => {
    expect(names('Jane Smith, MD')).toEqual(['Smith', 'Jane']);
    expect(names('Dr. Jane Smith')).toEqual(['Smith', 'Jane']);
    expect(names('Smith, Jane, RN')).toEqual(['Smith', 'Jane']);
    expect(names('Smith, Jane A.')).toEqual(['Smith', 'Jane']);
    expect(names('Jane Smith')).toEqual(['Smith', 'Jane']);
    expect(names('Jane Smith DO')).toEqual(['Smith', 'Jane']);
  });

  it('keeps names that look like a credential or title where they stand: "Do" and "Pa" are names', () => {
    expect(names('Anh Do')).toEqual(['Do', 'Anh']);
    expect(names('Pa Vang')).toEqual(['Vang', 'Pa']);
    expect(names('Dr. Smith')).toEqual(['Smith', '']);
    expect(names('Smith, Dr. Jane')).toEqual(['Smith', 'Jane']);
    expect(names('Smith,')).toEqual(['Smith', '']);
  });

  it('drops a suffix inside the family part and every leading title: Epic\'s "SMITH JR.,JOHN A" is Smith, John', () => {
    expect(names('Smith Jr, Jane')).toEqual(['Smith', 'Jane']);
    expect(names('SMITH JR.,JOHN A')).toEqual(['SMITH', 'JOHN']);
    expect(names('Prof. Dr. Jane Smith')).toEqual(['Smith', 'Jane']);
    expect(names('Van Do, Anh')).toEqual(['Van Do', 'Anh']);
    expect(names('De La Cruz III, Maria')).toEqual(['De La Cruz', 'Maria']);
  });

  it('drops every trailing credential, a comma part of credentials only, and titles before a family name', () => {
    expect(names('John Smith MD PhD')).toEqual(['Smith', 'John']);
    expect(names('John Smith Jr. MD')).toEqual(['Smith', 'John']);
    expect(names('Jane Doe, MD PhD')).toEqual(['Doe', 'Jane']);
    expect(names('Dr. Smith, Jane')).toEqual(['Smith', 'Jane']);
    expect(names('Prof. Dr. Smith, Jane')).toEqual(['Smith', 'Jane']);
    expect(names('Anh Do MD')).toEqual(['Do', 'Anh']);
  });

  it('drops a credential that is no family name from a two-word display: "Santos MD" is Santos', () => {
    expect(names('Santos MD')).toEqual(['Santos', '']);
    expect(names('Santos RN')).toEqual(['Santos', '']);
  });

  it('never guesses from the display when the user resolved: a column its name leaves empty stays empty', () => {
    const mapping = builtinMapping('epic');
    const at = (row: readonly string[] | undefined, name: string) => row?.[mapping.columns.findIndex((column) => column.name === name)];
    const textOnly: Practitioner = { resourceType: 'Practitioner', id: 'text-only', name: [{ text: 'Rick Roe' }] };
    const resources = lookupOf([...hl7Resources(), textOnly]);
    const event = read({ who: { reference: 'Practitioner/text-only', display: 'Dr. John Smith' }, altId: 'rroe@hospital.example.org' });
    const result = mapEvent(event, mapping, resources);
    expect([at(result.rows[0], 'employee_last_name'), at(result.rows[0], 'employee_first_name')]).toEqual(['Rick Roe', '']);
    expect(result.warnings).not.toContain('name-heuristic:employee_first_name');
    // A Practitioner without any name (an identifier only): the display is all there is, and is split.
    const nameless: Practitioner = { resourceType: 'Practitioner', id: 'nameless', identifier: [{ system: 'urn:example:emp', value: 'E1' }] };
    const withNameless = lookupOf([...hl7Resources(), nameless]);
    const guessed = mapEvent(
      read({ who: { reference: 'Practitioner/nameless', display: 'Dr. Jane Smith' }, altId: 'jsmith@hospital.example.org' }),
      mapping,
      withNameless,
    );
    expect([at(guessed.rows[0], 'employee_last_name'), at(guessed.rows[0], 'employee_first_name')]).toEqual(['Smith', 'Jane']);
  });
});

describe('workstation (docs/mapping.md §4.3)', () => {
  it("skips the requestor's network address of type 5 (a URI: BALP's server URL) for the workstation agent's", () => {
    const event = read(
      { who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org', network: { address: 'https://ehr.example.org/fhir', type: '5' } },
      {
        agent: [
          {
            requestor: true,
            who: { reference: 'Practitioner/f001' },
            altId: 'user@hospital.example.org',
            network: { address: 'https://ehr.example.org/fhir', type: '5' },
          },
          {
            requestor: false,
            type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110153' }] },
            network: { address: 'WS-3F-0412', type: '1' },
          },
        ],
      },
    );
    expect(cell(event, 'ACCESS_LOG.WORKSTATION_ID')).toBe('WS-3F-0412');
    // Nor a phone number or an e-mail (types 3 and 4).
    for (const [address, type] of [
      ['+1 608 555 0100', '3'],
      ['desk@hospital.example.org', '4'],
    ] as const) {
      const agents = (event.agent ?? []).map((agent, i) => (i === 0 ? { ...agent, network: { address, type } } : agent));
      expect(cell({ ...event, agent: agents }, 'ACCESS_LOG.WORKSTATION_ID'), type).toBe('WS-3F-0412');
    }
    expect(
      cell(
        read({ who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org', network: { address: 'WS-1', type: '1' } }),
        'ACCESS_LOG.WORKSTATION_ID',
      ),
    ).toBe('WS-1');
  });

  it("takes the client's machine, not the server's: the Destination (110152) of a read, the Source (110153) of anything else", () => {
    const role = (code: string, address: string, type: '1' | '2'): AuditEventAgent => ({
      requestor: false,
      type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code }] },
      network: { address, type },
    });
    const user: AuditEventAgent = { requestor: true, who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
    // IHE BALP Query and Create, IHE ATNA queries: the client is the Source, the server the Destination (here by its IP).
    for (const action of ['E', 'C', 'U', 'D'] as const) {
      const event = read({}, { action, agent: [user, role('110152', '10.20.0.5', '2'), role('110153', 'WS-3F-0412', '1')] });
      expect(cell(event, 'ACCESS_LOG.WORKSTATION_ID'), action).toBe('WS-3F-0412');
    }
    // IHE BALP Read: the client receives the data, so it is the Destination; the server is the Source.
    const readEvent = read({}, { action: 'R', agent: [user, role('110153', '10.20.0.5', '2'), role('110152', 'WS-3F-0412', '1')] });
    expect(cell(readEvent, 'ACCESS_LOG.WORKSTATION_ID')).toBe('WS-3F-0412');
  });
});

describe('the requestor (docs/mapping.md §3.2)', () => {
  const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
  const EMP = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780';
  /** IHE ATNA flags the requesting process (DICOM 110153 Source, named by an application id) as well as the person. */
  const process: AuditEventAgent = {
    requestor: true,
    type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
    who: { identifier: { value: 'svc-interface@hospital.example.org' } },
    altId: '6580',
    network: { address: 'WS-3F-0412', type: '1' },
  };
  const humanuser = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser' }] };

  it('with several flagged, takes the person over a flagged process of unknown kind, and still warns', () => {
    const person: AuditEventAgent = { requestor: true, type: humanuser, who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
    const result = mapEvent(read({}, { agent: [process, person] }), builtinMapping('epic'), lookup);
    expect(result.rows).toHaveLength(1);
    const mapping = builtinMapping('epic');
    const at = (column: string): string | undefined => result.rows[0]?.[mapping.columns.findIndex((entry) => entry.name === column)];
    // Not the interface's service account: the user's login and name.
    expect(at('EMP.SYSTEM_LOGIN')).toBe('user@hospital.example.org');
    expect(at('employee_last_name')).not.toBe('');
    // The process's machine is the workstation.
    expect(at('ACCESS_LOG.WORKSTATION_ID')).toBe('WS-3F-0412');
    expect(result.warnings).toContain('multiple-requestors');
  });

  it("takes the flagged process's machine for the workstation, not the server's Destination, whatever the action", () => {
    const person: AuditEventAgent = { requestor: true, type: humanuser, who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
    const server: AuditEventAgent = { requestor: false, type: { coding: [{ system: DCM, code: '110152' }] }, network: { address: '10.20.0.5', type: '2' } };
    for (const action of ['R', 'E', 'C', 'U', 'D'] as const)
      expect(cell(read({}, { action, agent: [process, person, server] }), 'ACCESS_LOG.WORKSTATION_ID'), action).toBe('WS-3F-0412');
  });

  it('reads and asks the pull for the person named by an EMP identifier, not the process (a reject before)', () => {
    const person: AuditEventAgent = { requestor: true, type: humanuser, who: { identifier: { system: EMP, value: 'JSMITH' }, display: 'SMITH, JOHN' } };
    const event = read({}, { agent: [process, person] });
    const mapping = builtinMapping('epic');
    const result = mapEvent(event, mapping, lookup);
    expect(result.rejects).toEqual([]);
    expect(result.rows[0]?.[mapping.columns.findIndex((entry) => entry.name === 'EMP.SYSTEM_LOGIN')]).toBe('JSMITH');
    expect(collectReferences(event, mapping).identifiers).toEqual([{ type: 'Practitioner', system: EMP, value: 'JSMITH' }]);
  });

  it('keeps the first flagged agent when it is clearly human, or when no later flagged one is', () => {
    const first: AuditEventAgent = { requestor: true, type: humanuser, who: { reference: 'Practitioner/f001' }, altId: 'first@hospital.example.org' };
    const second: AuditEventAgent = { requestor: true, type: humanuser, who: { reference: 'Practitioner/example' }, altId: 'second@hospital.example.org' };
    expect(cell(read({}, { agent: [first, second] }), 'EMP.SYSTEM_LOGIN')).toBe('first@hospital.example.org');
    const unknown: AuditEventAgent = { requestor: true, who: { identifier: { value: 'only@hospital.example.org' } } };
    const device: AuditEventAgent = { requestor: true, who: { reference: 'Device/interface-engine' } };
    expect(cell(read({}, { agent: [unknown, device] }), 'EMP.SYSTEM_LOGIN')).toBe('only@hospital.example.org');
  });
});

describe('actionNames (docs/mapping.md §4.5)', () => {
  it('overrides one action per site and keeps the defaults of the others', () => {
    const login = { who: { reference: 'Practitioner/f001' }, altId: 'user@hospital.example.org' };
    const overrides: MappingOverrides = { options: { actionNames: { R: 'View' } } };
    expect(cell(read(login), 'ZC_ACCESS_ACTION.NAME', overrides)).toBe('View');
    expect(cell(read(login, { action: 'C' }), 'ZC_ACCESS_ACTION.NAME', overrides)).toBe(cell(read(login, { action: 'C' }), 'ZC_ACCESS_ACTION.NAME'));
    expect(cell(read(login, { action: 'C' }), 'ZC_ACCESS_ACTION.NAME')).not.toBe('');
    // Over a mapping file's own names: the site's R, the file's others.
    const spec = builtinSpec('epic');
    spec.options = { ...spec.options, actionNames: { C: 'Chart Create', R: 'Chart Read', U: 'Chart Update', D: 'Chart Delete', E: 'Chart Execute' } };
    const mapping = compileSpec(spec, overrides);
    const column = mapping.columns.findIndex((entry) => entry.name === 'ZC_ACCESS_ACTION.NAME');
    // An action that is a key of every object's prototype is no listed action: empty, not a crash or a function's text.
    for (const action of ['constructor', 'toString', '__proto__', 'hasOwnProperty'])
      expect(cell(read(login, { action: action as 'R' }), 'ZC_ACCESS_ACTION.NAME'), action).toBe('');
    expect(['R', 'C', 'U'].map((action) => mapEvent(read(login, { action: action as 'R' }), mapping, lookup).rows[0]?.[column])).toEqual([
      'View',
      'Chart Create',
      'Chart Update',
    ]);
  });
});

describe('employee login from an Epic EMP record id (docs/mapping.md §7.1 step 6)', () => {
  const empUser: Practitioner = {
    resourceType: 'Practitioner',
    id: 'emp-user',
    identifier: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780', type: { text: 'EXTERNAL' }, value: 'RSANTOS' }],
    name: [{ family: 'Santos', given: ['Rafael'] }],
  };
  const users = lookupOf([...hl7Resources(), empUser]);
  const row = (overrides: MappingOverrides) => {
    const mapping = builtinMapping('epic', overrides);
    const result = mapEvent(read({ who: { reference: 'Practitioner/emp-user' } }), mapping, users);
    const login = mapping.columns.findIndex((column) => column.name === 'EMP.SYSTEM_LOGIN');
    return { login: result.rows[0]?.[login], warnings: result.warnings };
  };

  it('is used, with a warning that it is not known to be the directory login', () => {
    expect(row({})).toEqual({ login: 'RSANTOS', warnings: ['login-from-emp-id:EMP.SYSTEM_LOGIN'] });
  });

  it('a site that pinned the EMP system as where the login is gets no warning', () => {
    expect(row({ options: { loginSystems: ['urn:oid:1.2.840.114350.1.13.0.1.7.2.697780'] } })).toEqual({ login: 'RSANTOS', warnings: [] });
  });
});

describe('a resolved Practitioner whose identifiers hold no login (docs/mapping.md §7.1 step 6)', () => {
  const EMP = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780';
  const provider: Practitioner = {
    resourceType: 'Practitioner',
    id: 'npi-only',
    identifier: [
      { system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' },
      { system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.836982', value: 'SER1001' },
    ],
    name: [{ family: 'Doe', given: ['John'] }],
  };
  const role: PractitionerRole = {
    resourceType: 'PractitionerRole',
    id: 'attending',
    practitioner: { reference: 'Practitioner/missing', display: 'Doe, John' },
  };
  const users = lookupOf([...hl7Resources(), provider, role]);
  const mapped = (agent: Partial<AuditEventAgent>) => {
    const mapping = builtinMapping('epic');
    const result = mapEvent(read(agent), mapping, users);
    const cells = Object.fromEntries(mapping.columns.map((column, index) => [column.name, result.rows[0]?.[index]]));
    return { cells, warnings: result.warnings, rejects: result.rejects.map((reject) => reject.reason) };
  };

  it("takes the agent's own EMP identifier, as for staff without one, instead of rejecting the row", () => {
    const result = mapped({ who: { reference: 'Practitioner/npi-only', identifier: { system: EMP, value: 'JDOE' } }, altId: 'JDOE' });
    expect(result.rejects).toEqual([]);
    expect(result.cells).toMatchObject({ 'EMP.SYSTEM_LOGIN': 'JDOE', 'CLARITY_EMP.USER_ID': 'JDOE', employee_last_name: 'Doe' });
    expect(result.warnings).toContain('login-from-emp-id:EMP.SYSTEM_LOGIN');
    // Without one, the row is still refused: an NPI or SER number is no login.
    expect(mapped({ who: { reference: 'Practitioner/npi-only' }, altId: 'JDOE' }).rejects).toEqual(['missing-employee-login']);
  });

  it("an agent's EMP EXTERNAL id (the login) wins over the Practitioner's EMP INTERNAL record number", () => {
    const internalOnly: Practitioner = {
      resourceType: 'Practitioner',
      id: 'internal-only',
      identifier: [{ system: EMP, type: { text: 'INTERNAL' }, value: '   55501' }],
      name: [{ family: 'Doe', given: ['John'] }],
    };
    const mapping = builtinMapping('epic');
    const login = mapping.columns.findIndex((column) => column.name === 'EMP.SYSTEM_LOGIN');
    const rowOf = (agent: Partial<AuditEventAgent>) => mapEvent(read(agent), mapping, lookupOf([...hl7Resources(), internalOnly])).rows[0]?.[login];
    expect(rowOf({ who: { reference: 'Practitioner/internal-only', identifier: { system: EMP, type: { text: 'EXTERNAL' }, value: 'JDOE' } } })).toBe('JDOE');
    // Without an identifier of its own, the Practitioner's says it, as before (its EMP id, with the warning).
    expect(rowOf({ who: { reference: 'Practitioner/internal-only' } })).toBe('55501');
  });

  it("never makes a PractitionerRole's display (a job title) a family and a given name: its practitioner's display stands in", () => {
    const agent = { who: { reference: 'PractitionerRole/attending', display: 'Attending Physician, Cardiology' }, altId: 'jdoe@hospital.example.org' };
    expect(mapped(agent).cells).toMatchObject({ employee_last_name: 'Doe', employee_first_name: 'John' });
    const unresolved = { who: { reference: 'PractitionerRole/gone', display: 'Attending Physician, Cardiology' }, altId: 'jdoe@hospital.example.org' };
    expect(mapped(unresolved).cells).toMatchObject({ employee_last_name: '', employee_first_name: '' });
  });
});

describe('staff without a Practitioner, known by their EMP identifier (docs/mapping.md §3.3, §7.1 step 6)', () => {
  const EMP = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780';
  /** As Epic (and the sandbox generator) names a clerk, who has no provider record: no Practitioner resolves. */
  const clerk = (identifier: Identifier, altId = 'JCLERK'): Partial<AuditEventAgent> => ({
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser' }] },
    who: { identifier, display: 'CLERK, JANE' },
    ...(altId ? { altId } : {}),
  });
  const mapped = (schema: 'epic' | 'healthcare', agent: Partial<AuditEventAgent>, options: Record<string, unknown> = {}) => {
    const mapping = builtinMapping(schema, { options });
    const result = mapEvent(read(agent), mapping, lookup);
    const cells = Object.fromEntries(mapping.columns.map((column, index) => [column.name, result.rows[0]?.[index]]));
    return { cells, warnings: result.warnings, rejects: result.rejects.map((reject) => reject.reason) };
  };

  it('the login and the user id come from that identifier, as from a Practitioner’s EMP id, warning included', () => {
    const epic = mapped('epic', clerk({ system: EMP, value: 'JCLERK' }));
    expect(epic.rejects).toEqual([]);
    expect(epic.cells).toMatchObject({ 'EMP.SYSTEM_LOGIN': 'JCLERK', 'CLARITY_EMP.USER_ID': 'JCLERK', employee_last_name: 'CLERK' });
    expect(epic.warnings).toContain('login-from-emp-id:EMP.SYSTEM_LOGIN');
    const healthcare = mapped('healthcare', clerk({ system: EMP, value: 'JCLERK' }));
    expect(healthcare.rejects).toEqual([]);
    expect(healthcare.cells).toMatchObject({
      'Email Address (UPN) or SamAccountName': 'JCLERK',
      'Employee User Name': 'JCLERK',
      'Employee Id': 'JCLERK',
    });
    expect(healthcare.warnings).toContain('login-from-emp-id:Email Address (UPN) or SamAccountName');
    // Epic pads EMP ids; the cell is trimmed.
    expect(mapped('epic', clerk({ system: EMP, value: '   JCLERK' }, '')).cells['EMP.SYSTEM_LOGIN']).toBe('JCLERK');
  });

  it('a site that pinned the EMP system, or the type text, gets it without the warning', () => {
    for (const options of [{ loginSystems: [EMP] }, { loginTypeTexts: ['EXTERNAL'] }]) {
      const result = mapped('epic', clerk({ system: EMP, type: { text: 'EXTERNAL' }, value: 'JCLERK' }), options);
      expect(result.cells['EMP.SYSTEM_LOGIN'], JSON.stringify(options)).toBe('JCLERK');
      expect(
        result.warnings.filter((code) => code.startsWith('login-from-emp-id')),
        JSON.stringify(options),
      ).toEqual([]);
    }
  });

  it('only an identifier in the EMP system, current and not old, is taken: another system’s number is no login', () => {
    expect(mapped('epic', clerk({ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' })).rejects).toEqual(['missing-employee-login']);
    expect(mapped('epic', clerk({ system: EMP, value: 'JCLERK', use: 'old' })).rejects).toEqual(['missing-employee-login']);
    expect(mapped('epic', clerk({ system: EMP, value: 'JCLERK', period: { end: '2019' } })).rejects).toEqual(['missing-employee-login']);
  });

  it('the sandbox generator’s staff map with the default options: no row of theirs is rejected for its login', () => {
    const dataset = generateDataset({
      seed: 11,
      practitioners: 60,
      patients: 200,
      events: 600,
      start: '2026-11-01T00:00:00Z',
      end: '2026-11-02T00:00:00Z',
      nonProviderRate: 0.5,
      noLoginRate: 0,
    });
    const resources = new Map<string, Patient | Practitioner>();
    for (const patient of dataset.patients()) resources.set(referenceKey('Patient', patient.id ?? ''), patient);
    for (const practitioner of dataset.practitioners()) resources.set(referenceKey('Practitioner', practitioner.id ?? ''), practitioner);
    const generated: ResourceLookup = { get: (key) => resources.get(key) };
    for (const schema of ['epic', 'healthcare'] as const) {
      const mapping = builtinMapping(schema);
      let staffRows = 0;
      const rejects: string[] = [];
      for (let index = 0; index < dataset.options.events; index += 1) {
        const result = mapEvent(dataset.eventAt(index), mapping, generated);
        if (dataset.describeEvent(index).practitionerId === undefined) staffRows += result.rows.length;
        rejects.push(...result.rejects.map((reject) => reject.reason));
      }
      expect(staffRows, schema).toBeGreaterThan(100);
      expect(rejects, schema).toEqual([]);
    }
  });
});

describe('an HL7v2 CX identifier on the requestor (docs/mapping.md §3.3): read as value and system, as a reference’s is', () => {
  const EMP = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780';
  const cx = (altId?: string): Partial<AuditEventAgent> => ({
    who: { identifier: { value: 'JCLERK^^^&1.2.840.114350.1.13.0.1.7.2.697780&ISO' }, display: 'CLERK, JANE' },
    ...(altId ? { altId } : {}),
  });

  it('the user id and user name are the value; a login pin on its system matches it, and unpinned it is an EMP id', () => {
    expect(cell(read(cx('jclerk@hospital.example.org')), 'CLARITY_EMP.USER_ID')).toBe('JCLERK');
    expect(cell(read(cx()), 'EMP.SYSTEM_LOGIN', { options: { loginSystems: [EMP] } })).toBe('JCLERK');
    const unpinned = mapEvent(read(cx()), builtinMapping('epic'), lookup);
    expect(unpinned.rows[0]?.[builtinMapping('epic').columns.findIndex((c) => c.name === 'EMP.SYSTEM_LOGIN')]).toBe('JCLERK');
    expect(unpinned.warnings).toContain('login-from-emp-id:EMP.SYSTEM_LOGIN');
    const healthcare = builtinMapping('healthcare', { options: { userIdSystems: [EMP] } });
    const row = mapEvent(read(cx()), healthcare, lookup).rows[0] ?? [];
    expect(['Employee User Name', 'Employee Id'].map((name) => row[healthcare.columns.findIndex((c) => c.name === name)])).toEqual(['JCLERK', 'JCLERK']);
  });

  it('excludeUsers knows the user by that value; with parseCxIdentifiers off the value stays whole', () => {
    expect(mapEvent(read(cx()), builtinMapping('epic', { options: { excludeUsers: ['jclerk'] } }), lookup).skipped).toBe('excluded-user');
    expect(cell(read(cx('jclerk@hospital.example.org')), 'CLARITY_EMP.USER_ID', { options: { parseCxIdentifiers: false } })).toBe(
      'JCLERK^^^&1.2.840.114350.1.13.0.1.7.2.697780&ISO',
    );
  });
});

describe('employee login (docs/mapping.md §7.1): first source that has one; never a display name', () => {
  const login = (agent: Partial<AuditEventAgent>, overrides: MappingOverrides = {}): string | undefined => cell(read(agent), 'EMP.SYSTEM_LOGIN', overrides);

  it('a UPN-shaped altId comes first', () => {
    expect(login({ altId: 'adam.careful@acme.org', who: { reference: 'Practitioner/f001' } })).toBe('adam.careful@acme.org');
  });

  it('then who.identifier in a login system', () => {
    const options = { loginSystems: ['urn:ad:sam'] };
    expect(login({ altId: '6580', who: { identifier: { system: 'urn:ad:sam', value: 'ACME\\acareful' } } }, { options })).toBe('ACME\\acareful');
  });

  it('then the BALP otherId extension in a login system', () => {
    const options = { loginSystems: ['urn:ad:upn'] };
    const agent = { extension: [{ url: BALP_OTHER_ID, valueIdentifier: { system: 'urn:ad:upn', value: 'acareful@acme.org' } }] };
    expect(login(agent, { options })).toBe('acareful@acme.org');
  });

  it("then the user's identifier in a login system, else the user's work e-mail", () => {
    expect(login({ altId: '6580', who: { reference: 'Practitioner/f001' } })).toBe('E.M.vandenbroek@bmc.nl');
    const options = { loginSystems: ['http://www.acme.org/practitioners'] };
    expect(login({ who: { reference: 'Practitioner/example' } }, { options })).toBe('23');
  });

  it('an e-mail that ended before the event is not used', () => {
    const moved: Practitioner = { ...f001, id: 'moved', telecom: [{ system: 'email', use: 'work', value: 'old@bmc.nl', period: { end: '2019' } }] };
    const event = read({ who: { reference: 'Practitioner/moved' } });
    expect(mapEvent(event, builtinMapping('epic'), lookupOf([...hl7Resources(), moved])).rejects[0]?.reason).toBe('missing-employee-login');
  });

  it('rejects the row rather than use a name or display, however login-like', () => {
    expect(login({ name: 'adam@acme.org', who: { display: 'adam@acme.org' } })).toBe('missing-employee-login');
  });
});

describe('break-the-glass (docs/mapping.md §6)', () => {
  const btg = (coding: Record<string, string>, text?: string) => ({ coding: [{ system: AR, ...coding }], ...(text ? { text } : {}) });
  const both = (event: AuditEvent, overrides: MappingOverrides = {}): Array<string | undefined> => [
    cell(event, 'ZC_BTG_REASON.NAME', { ...overrides, options: { loginRegex: '.', ...overrides.options } }),
    cell(event, 'PAT_BTG_AUDIT.BTG_EXPLANATION', { ...overrides, options: { loginRegex: '.', ...overrides.options } }),
  ];

  it('no BTG: both cells empty (empty is the normal value, no placeholder)', () => {
    expect(both(read({ altId: 'a' }, { purposeOfEvent: [btg({ code: 'TREAT', display: 'treatment' })] }))).toEqual(['', '']);
    expect(both(read({ altId: 'a' }, { purposeOfEvent: [btg({ code: 'ERTREAT' })] }))).toEqual(['', '']);
  });

  it('the agent-level purpose of use comes first; the sibling purpose is the reason, the BTG text the comment', () => {
    const event = read(
      { altId: 'a', purposeOfUse: [btg({ code: 'BTG', display: 'break the glass' }, 'Unconscious in ED')] },
      { purposeOfEvent: [btg({ code: 'TREAT', display: 'treatment' })] },
    );
    expect(both(event)).toEqual(['treatment', 'Unconscious in ED']);
  });

  it('a bare BTG code: its display, else the one permitted stand-in', () => {
    expect(both(read({ altId: 'a' }, { purposeOfEvent: [btg({ code: 'BTG', display: 'break the glass' })] }))).toEqual(['break the glass', '']);
    expect(both(read({ altId: 'a' }, { purposeOfEvent: [btg({ code: 'BTG' })] }))).toEqual(['Emergency Override', '']);
  });

  it('configured codes and a justification carried in entity.detail (base64)', () => {
    const event = read({ altId: 'a' }, { purposeOfEvent: [btg({ code: 'ETREAT', display: 'emergency treatment' })] });
    event.entity = [
      { ...event.entity?.[0], detail: [{ type: 'justification', valueBase64Binary: Buffer.from('Patient crashed; no time to ask').toString('base64') }] },
    ];
    expect(both(event)).toEqual(['', '']);
    expect(both(event, { options: { btgCodes: ['BTG', 'ETREAT'], btgDetailTypes: ['justification'] } })).toEqual([
      'emergency treatment',
      'Patient crashed; no time to ask',
    ]);
  });
});

describe('collectReferences: what the pull must prefetch', () => {
  const mapping = builtinMapping('epic');

  it('example-disclosure: the patient once, the agents, the requestor by identifier, the requestor location', () => {
    expect(collectReferences(auditEvent('hl7-r4', 'AuditEvent-example-disclosure.json'), mapping)).toEqual({
      keys: ['Patient/example', 'Practitioner/example', 'Location/1'],
      identifiers: [{ type: 'Practitioner', value: 'SomeIdiot@nowhere' }],
    });
  });

  it('fetches for the department only what its sources read: no Location without requestor-location, nothing with none', () => {
    const base = auditEvent('hl7-r4', 'AuditEvent-example-disclosure.json');
    const event: AuditEvent = { ...base, entity: [...(base.entity ?? []), { what: { reference: 'Encounter/enc-7' } }] };
    expect(collectReferences(event, mapping).keys).toEqual(['Patient/example', 'Practitioner/example', 'Location/1', 'Encounter/enc-7']);
    const encountersOnly = builtinMapping('epic', { options: { departmentSources: ['encounter-service-provider'] } });
    expect(collectReferences(event, encountersOnly).keys).toEqual(['Patient/example', 'Practitioner/example', 'Encounter/enc-7']);
    const locationOnly = builtinMapping('epic', { options: { departmentSources: ['requestor-location'] } });
    expect(collectReferences(event, locationOnly).keys).toEqual(['Patient/example', 'Practitioner/example', 'Location/1']);
    const none = builtinMapping('epic', { options: { departmentSources: [] } });
    expect(collectReferences(event, none).keys).toEqual(['Patient/example', 'Practitioner/example']);
  });

  it('example-pixQuery: the patient by its CX identifier, the human requestor by identifier', () => {
    expect(collectReferences(auditEvent('hl7-r4', 'AuditEvent-example-pixQuery.json'), mapping)).toEqual({
      keys: [],
      identifiers: [
        { type: 'Patient', system: 'urn:oid:2.16.840.1.113883.4.2', value: 'e3cdfc81a0d24bd' },
        { type: 'Practitioner', value: '95' },
      ],
    });
  });

  it('absolute and versioned references are normalised; encounters only when a column needs the department', () => {
    const event = read({ who: { reference: 'https://ehr.example.org/fhir/PractitionerRole/r1/_history/2' } });
    event.entity = [...(event.entity ?? []), { what: { reference: 'Encounter/e9' } }];
    expect(collectReferences(event, mapping).keys).toEqual(['Patient/example', 'PractitionerRole/r1', 'Encounter/e9']);
    const spec = builtinSpec('epic');
    const fixedDepartment = compileSpec({
      ...spec,
      columns: spec.columns.map((column) => (column.name === 'CLARITY_DEP.DEPARTMENT_NAME' ? { ...column, expressions: ["'Main campus'"] } : column)),
    });
    expect(collectReferences(event, fixedDepartment).keys).toEqual(['Patient/example', 'PractitionerRole/r1']);
  });
});

describe('identifiers, departments and break-the-glass as other servers send them', () => {
  const person = (id: string, identifier: Patient['identifier'] = []): Patient => ({
    resourceType: 'Patient',
    id,
    identifier,
    name: [{ family: `Family-${id}`, given: [`Given-${id}`] }],
    address: [{ line: ['1 Main St'], city: 'Madison', postalCode: '53703' }],
  });
  const encounter = (id: string, patient: string, org: string): Encounter => ({
    resourceType: 'Encounter',
    id,
    status: 'finished',
    class: { code: 'AMB' },
    subject: { reference: `Patient/${patient}` },
    serviceProvider: { reference: `Organization/${org}` },
  });
  const org = (id: string, name: string): Organization => ({ resourceType: 'Organization', id, name });
  const column = (mapping: CompiledMapping, name: string) => mapping.columns.findIndex((entry) => entry.name === name);

  it('department: each row takes the encounter of its own patient, not the first of the event', () => {
    const extra = {
      'Patient/pa': person('pa'),
      'Patient/pb': person('pb'),
      'Encounter/ea': encounter('ea', 'pa', 'cardio'),
      // A versioned subject reference names the same patient.
      'Encounter/eb': { ...encounter('eb', 'pb', 'onco'), subject: { reference: 'Patient/pb/_history/2' } },
      'Organization/cardio': org('cardio', 'CARDIOLOGY'),
      'Organization/onco': org('onco', 'ONCOLOGY'),
    };
    const event = read(
      { altId: 'a@b.org', who: { reference: 'Practitioner/f001' } },
      {
        entity: [
          { what: { reference: 'Patient/pa' } },
          { what: { reference: 'Patient/pb' } },
          { what: { reference: 'Encounter/ea' } },
          { what: { reference: 'Encounter/eb' } },
        ],
      },
    );
    const mapping = builtinMapping('epic');
    const rows = mapEvent(event, mapping, lookupOf(hl7Resources(), extra)).rows;
    expect(rows.map((row) => row[column(mapping, 'CLARITY_DEP.DEPARTMENT_NAME')])).toEqual(['CARDIOLOGY', 'ONCOLOGY']);
  });

  it('department of an event about many patients (a report): the same per row, the encounters looked up once for the event, not once per row', () => {
    const patients = 60;
    const extra: Record<string, Patient | Encounter | Organization> = { 'Encounter/shared': { ...encounter('shared', 'p0', 'none'), subject: undefined } };
    const entity: NonNullable<AuditEvent['entity']> = [];
    for (let i = 0; i < patients; i += 1) {
      extra[`Patient/p${i}`] = person(`p${i}`);
      extra[`Encounter/e${i}`] = encounter(`e${i}`, `p${i}`, `o${i}`);
      extra[`Organization/o${i}`] = org(`o${i}`, `DEPT ${i}`);
      entity.push({ what: { reference: `Patient/p${i}` } }, { what: { reference: `Encounter/e${i}` } });
    }
    const resources = lookupOf(hl7Resources(), extra);
    let encounterLookups = 0;
    const counting: ResourceLookup = {
      get: (key) => {
        if (key.startsWith('Encounter/')) encounterLookups += 1;
        return resources.get(key);
      },
    };
    const mapping = builtinMapping('epic');
    const event = read({ altId: 'a@b.org', who: { reference: 'Practitioner/f001' } }, { entity });
    const rows = mapEvent(event, mapping, counting).rows;
    expect(rows.map((row) => row[column(mapping, 'CLARITY_DEP.DEPARTMENT_NAME')])).toEqual(Array.from({ length: patients }, (_, i) => `DEPT ${i}`));
    expect(encounterLookups).toBe(patients);
    // An encounter naming no patient counts for every row, after the patient's own (entity order), as for a small event.
    encounterLookups = 0;
    const withShared = read(
      { altId: 'a@b.org', who: { reference: 'Practitioner/f001' } },
      { entity: [{ what: { reference: 'Encounter/shared' } }, ...entity] },
    );
    const shared = mapEvent(
      withShared,
      builtinMapping('epic', { options: { departmentSources: ['encounter-location', 'encounter-service-provider'] } }),
      counting,
    );
    expect(shared.rows).toHaveLength(patients);
    expect(encounterLookups).toBe(patients + 1);
  });

  it("MRN: never a national identifier carried untyped on the subject reference; a site's pinned system wins over MR codes", () => {
    const mapping = builtinMapping('epic');
    const mrnOf = (event: AuditEvent, extra: Record<string, Patient>, m = mapping) =>
      mapEvent(event, m, lookupOf(hl7Resources(), extra)).rows[0]?.[column(m, 'PATIENT.PAT_MRN_ID')];
    const ssn = read(
      { altId: 'a@b.org', who: { reference: 'Practitioner/f001' } },
      { entity: [{ what: { reference: 'Patient/noid', identifier: { system: 'http://hl7.org/fhir/sid/us-ssn', value: '123-45-6789' } } }] },
    );
    expect(mrnOf(ssn, { 'Patient/noid': person('noid') })).toBe('');
    const plain = read(
      { altId: 'a@b.org', who: { reference: 'Practitioner/f001' } },
      { entity: [{ what: { reference: 'Patient/noid', identifier: { value: 'M-778' } } }] },
    );
    expect(mrnOf(plain, { 'Patient/noid': person('noid') })).toBe('M-778');
    const MR = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] };
    const twoMrns = person('two', [
      { type: MR, system: 'urn:oid:9.9.9', value: 'OUTSIDE' },
      { type: MR, system: 'urn:oid:1.1.1', value: 'OURS' },
    ]);
    const event = read({ altId: 'a@b.org', who: { reference: 'Practitioner/f001' } }, { entity: [{ what: { reference: 'Patient/two' } }] });
    expect(mrnOf(event, { 'Patient/two': twoMrns }, builtinMapping('epic', { options: { mrnSystems: ['urn:oid:1.1.1'] } }))).toBe('OURS');
  });

  it('a current name with a family part comes first; a text-only official one still beats an old, maiden or given-only name', () => {
    const mapping = builtinMapping('epic');
    const names = (name: Patient['name']) => {
      const event = read({ altId: 'a@b.org', who: { reference: 'Practitioner/f001' } }, { entity: [{ what: { reference: 'Patient/named' } }] });
      const row = mapEvent(event, mapping, lookupOf(hl7Resources(), { 'Patient/named': { ...person('named'), name } })).rows[0];
      return [row?.[column(mapping, 'PATIENT.PAT_FIRST_NAME')], row?.[column(mapping, 'PATIENT.PAT_LAST_NAME')]];
    };
    expect(
      names([
        { use: 'official', text: 'Ola Nordmann' },
        { use: 'old', family: 'Hansen', given: ['Ola'] },
      ]),
    ).toEqual(['', 'Ola Nordmann']);
    expect(
      names([
        { use: 'official', text: 'Robert Smith' },
        { use: 'usual', given: ['Bob'] },
      ]),
    ).toEqual(['', 'Robert Smith']);
  });

  it('a structured name comes before a text-only one, whatever their use (the text cannot fill first and last name)', () => {
    const mapping = builtinMapping('epic');
    const patient: Patient = {
      ...person('named'),
      name: [
        { use: 'official', text: 'Rosa Delgado' },
        { use: 'usual', family: 'Delgado', given: ['Rosa'] },
      ],
    };
    const event = read({ altId: 'a@b.org', who: { reference: 'Practitioner/f001' } }, { entity: [{ what: { reference: 'Patient/named' } }] });
    const row = mapEvent(event, mapping, lookupOf(hl7Resources(), { 'Patient/named': patient })).rows[0];
    expect([row?.[column(mapping, 'PATIENT.PAT_FIRST_NAME')], row?.[column(mapping, 'PATIENT.PAT_LAST_NAME')]]).toEqual(['Rosa', 'Delgado']);
  });

  it('break-the-glass under the OID and the DSTU2 URL of v3-ActReason too', () => {
    for (const system of ['urn:oid:2.16.840.1.113883.5.8', 'http://hl7.org/fhir/v3/ActReason']) {
      const event = read({ altId: 'a' }, { purposeOfEvent: [{ coding: [{ system, code: 'BTG' }] }] });
      expect(cell(event, 'ZC_BTG_REASON.NAME', { options: { loginRegex: '.' } })).toBe('Emergency Override');
    }
  });
});

describe('absolute references: only those with the connector’s own FHIR base name our resources', () => {
  const OWN = 'https://ehr.example.org/fhir/R4/';
  const mapping = builtinMapping('epic', { fhirBase: OWN });
  const patientRole = { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' };
  const login = { altId: 'adam.careful@acme.org' };
  const lastName = (event: AuditEvent, lookupUsed = lookup): string | undefined => {
    const result = mapEvent(event, mapping, lookupUsed);
    return result.rows[0]?.[mapping.columns.findIndex((entry) => entry.name === 'PATIENT.PAT_LAST_NAME')] ?? result.rejects[0]?.reason;
  };
  const naming = (reference: string, extra: Partial<NonNullable<AuditEvent['entity']>[number]['what']> = {}): AuditEvent =>
    read({ ...login, who: { reference: 'Practitioner/f001' } }, { entity: [{ what: { reference, ...extra }, role: patientRole }] });

  it('collectReferences: our base however spelt is a key; another server’s reference is none, its identifier is asked for', () => {
    const event = read(
      { who: { reference: 'https://other.example/fhir/R4/Practitioner/f001', identifier: { system: 'urn:ad:upn', value: 'someone@other.example' } } },
      {
        entity: [
          { what: { reference: 'https://other.example/fhir/R4/Patient/example', identifier: { system: 'urn:oid:1.2.3', value: 'X9' } }, role: patientRole },
          { what: { reference: 'HTTPS://EHR.Example.ORG:443/fhir/R4/Patient/f001/_history/3' }, role: patientRole },
          { what: { reference: 'http://ehr.example.org/fhir/R4/Patient/ch-example' }, role: patientRole },
        ],
      },
    );
    expect(collectReferences(event, mapping)).toEqual({
      keys: ['Patient/f001'],
      identifiers: [
        { type: 'Patient', system: 'urn:oid:1.2.3', value: 'X9' },
        { type: 'Practitioner', system: 'urn:ad:upn', value: 'someone@other.example' },
      ],
    });
    // A mapping that knows no server (the offline `bridge map`) takes every base as its own, as before.
    expect(collectReferences(event, builtinMapping('epic')).keys).toEqual(['Patient/example', 'Patient/f001', 'Patient/ch-example', 'Practitioner/f001']);
  });

  it('another server’s Patient/example is not ours: unresolved, its display kept, never our Patient/example’s name', () => {
    expect(lastName(naming('Patient/example'))).toBe('Chalmers');
    expect(lastName(naming('https://ehr.example.org:443/fhir/R4/Patient/example'))).toBe('Chalmers');
    expect(lastName(naming('https://other.example/fhir/R4/Patient/example', { display: 'Someone Else' }))).toBe('Someone Else');
    expect(mapEvent(naming('https://other.example/fhir/R4/Patient/example', { display: 'Someone Else' }), mapping, lookup).warnings).toContain(
      'unresolved-patient',
    );
    // Without an identifier or display it is still the event's patient, unresolved like one our server lacks.
    const bare = mapEvent(naming('https://other.example/fhir/R4/Patient/example'), mapping, lookup);
    expect(bare.skipped).toBeUndefined();
    expect(bare.rejects).toEqual([{ eventId: 'ae-1', patientRef: 'entity[0].what', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' }]);
  });

  it('another server’s reference falls back to its identifier, looked up on our server', () => {
    const f001 = hl7Resources().find((resource) => resource.resourceType === 'Patient' && resource.id === 'f001');
    const byIdentifier = lookupOf(hl7Resources(), { [identifierKey('Patient', 'urn:oid:1.2.3', 'X9')]: f001 as Patient });
    const event = naming('https://other.example/fhir/R4/Patient/example', { identifier: { system: 'urn:oid:1.2.3', value: 'X9' } });
    expect(lastName(event, byIdentifier)).toBe('van de Heuvel');
  });

  it('another server’s Practitioner/f001 is not our user: no login from our Practitioner/f001', () => {
    const user = (reference: string) => cell(read({ who: { reference } }), 'EMP.SYSTEM_LOGIN', { fhirBase: OWN });
    expect(user('Practitioner/f001')).toBe('E.M.vandenbroek@bmc.nl');
    expect(user('https://ehr.example.org/fhir/R4/Practitioner/f001')).toBe('E.M.vandenbroek@bmc.nl');
    expect(user('https://other.example/fhir/R4/Practitioner/f001')).toBe('missing-employee-login');
  });
});

describe('a contained PractitionerRole (HL7 Norway): what it names on the server is prefetched', () => {
  const mapping = builtinMapping('epic');
  const withRole = (role: Record<string, unknown>): AuditEvent =>
    read({ who: { reference: '#role' } }, { contained: [{ resourceType: 'PractitionerRole', id: 'role', ...role } as PractitionerRole] });

  it('its practitioner, and its organization when the department reads it', () => {
    const event = withRole({ practitioner: { reference: 'Practitioner/f001' }, organization: { reference: 'Organization/org-1' } });
    expect(collectReferences(event, mapping)).toEqual({ keys: ['Patient/example', 'Practitioner/f001', 'Organization/org-1'], identifiers: [] });
    const encountersOnly = builtinMapping('epic', { options: { departmentSources: ['encounter-service-provider'] } });
    expect(collectReferences(event, encountersOnly).keys).toEqual(['Patient/example', 'Practitioner/f001']);
    const byIdentifier = withRole({ practitioner: { identifier: { system: 'urn:ad:upn', value: 'u@example.org' } } });
    expect(collectReferences(byIdentifier, mapping)).toEqual({
      keys: ['Patient/example'],
      identifiers: [{ type: 'Practitioner', system: 'urn:ad:upn', value: 'u@example.org' }],
    });
    // A practitioner contained beside the role is in the event already.
    expect(collectReferences(withRole({ practitioner: { reference: '#pr' } }), mapping)).toEqual({ keys: ['Patient/example'], identifiers: [] });
  });

  it('so the row has the login whatever the neighbouring events fetched', () => {
    const event = withRole({ practitioner: { reference: 'Practitioner/f001' } });
    const collected = new Set(collectReferences(event, mapping).keys);
    const prefetched = mapEvent(event, mapping, { get: (key) => (collected.has(key) ? lookup.get(key) : undefined) });
    expect(prefetched.rejects).toEqual([]);
    expect(prefetched.rows[0]?.[mapping.columns.findIndex((entry) => entry.name === 'EMP.SYSTEM_LOGIN')]).toBe('E.M.vandenbroek@bmc.nl');
  });
});

describe('blank list items of a name or an address (docs/mapping.md §5.4, §5.5)', () => {
  const blank: Patient = {
    resourceType: 'Patient',
    id: 'blank-items',
    name: [{ use: 'official', family: 'Smith', given: ['', 'Ann', ' ', 'Marie'] }],
    address: [{ use: 'home', line: ['  ', 'Apt 2', '', '1 Main St'], city: 'Springfield', postalCode: '12345', text: 'Apt 2, 1 Main St, Springfield' }],
  };
  const clerk: Practitioner = { resourceType: 'Practitioner', id: 'clerk', name: [{ family: 'Jones', given: ['', 'Bea'] }] };
  const event = read(
    { who: { reference: 'Practitioner/clerk' }, altId: 'bea.jones@hospital.example.org' },
    { entity: [{ what: { reference: 'Patient/blank-items' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }] },
  );

  it('are no names or lines: the first given and the first line are the first with text, and nothing shifts into the next column', () => {
    for (const schema of ['epic', 'healthcare'] as const) {
      const mapping = builtinMapping(schema);
      const result = mapEvent(event, mapping, lookupOf([blank, clerk]));
      const row = result.rows[0] ?? [];
      const at = (column: number) => row[column - 1];
      // Columns 7–11 are first, middle and last name, address lines 1 and 2 in both schemas (§1.2, §1.3).
      expect([at(7), at(8), at(9), at(10), at(11)], schema).toEqual(['Ann', 'Marie', 'Smith', 'Apt 2', '1 Main St']);
      expect(row.at(-1), schema).toBe('Bea');
      expect(
        result.warnings.filter((warning) => /^(address-text-only|empty-mandatory):/.test(warning)),
        schema,
      ).toEqual([]);
    }
  });

  it('leave a name of blank given names only to its text, as one without given names', () => {
    const textOnly: Patient = { resourceType: 'Patient', id: 'blank-items', name: [{ given: ['', ' '], text: 'Ann Smith' }] };
    const mapping = builtinMapping('epic');
    const result = mapEvent(event, mapping, lookupOf([textOnly, clerk]));
    const cellOf = (name: string) => result.rows[0]?.[mapping.columns.findIndex((column) => column.name === name)];
    expect([cellOf('PATIENT.PAT_FIRST_NAME'), cellOf('PATIENT.PAT_MIDDLE_NAME'), cellOf('PATIENT.PAT_LAST_NAME')]).toEqual(['', '', 'Ann Smith']);
  });
});

/**
 * Whole-cell memo: columns that read only the patient (or only the user) are computed once per view, and their
 * warnings replayed on every row that uses the view; the line mapEvent makes with the row matches its cells.
 */
import type { AuditEvent, Patient } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { programOf } from '../../src/mapping/compile.js';
import { createSerializer, mapEvent } from '../../src/mapping/index.js';
import { builtinMapping, builtinSpec, compileSpec, lookupOf } from './support.js';

describe('scoped columns', () => {
  it('the Epic mapping: name and address columns (first name … country) are memoised per patient view', () => {
    const program = programOf(builtinMapping('epic'));
    const patientColumns = program.scopedColumns.patient.map((index) => program.columns[index]?.name);
    expect(patientColumns).toEqual([
      'PATIENT.PAT_FIRST_NAME',
      'PATIENT.PAT_MIDDLE_NAME',
      'PATIENT.PAT_LAST_NAME',
      'PATIENT.ADD_LINE_1',
      'PATIENT.ADD_LINE_2',
      'PATIENT.CITY',
      'PATIENT.ZIP',
      'ZC_STATE.NAME',
      'ZC_COUNTRY.NAME',
    ]);
    expect(program.scopedPosition.slice(5, 16)).toEqual([-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, -1]);
    // MRN falls back to the subject reference's identifier (event scope), so it is not memoised as a whole.
    expect(program.columns[5]?.scope).toBe('event');
    // But its first expression (mrn) reads only the patient: it leads the patient run up to the country, and the user's
    // id and names lead theirs (docs/mapping.md §12.4).
    expect(program.leadingColumns).toEqual({ patient: [5], user: [19, 20, 21] });
    expect(program.scopedRuns).toEqual({ patient: [{ first: 5, last: 14 }], user: [{ first: 19, last: 21 }] });
  });
});

describe('the scope of a site expression', () => {
  it('an expression that starts with a function or $this reads the event, so it is never memoised per patient: each event gets its own value', () => {
    const spec = builtinSpec('epic');
    const department = "iif(extension('https://site.example/dept').exists(), extension('https://site.example/dept').value, %name.family)";
    spec.columns = spec.columns.map((column) => (column.name === 'CLARITY_DEP.DEPARTMENT_NAME' ? { ...column, expressions: [department] } : column));
    const mapping = compileSpec(spec);
    const program = programOf(mapping);
    const index = program.columns.findIndex((column) => column.name === 'CLARITY_DEP.DEPARTMENT_NAME');
    expect(program.columns[index]?.scope).toBe('event');
    const lookup = lookupOf([{ resourceType: 'Patient', id: 'p1', name: [{ family: 'Home', given: ['Ann'] }] } as Patient]);
    const event = (id: string, dept?: string): AuditEvent => ({
      resourceType: 'AuditEvent',
      id,
      recorded: '2026-11-01T10:00:00Z',
      type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
      action: 'R',
      agent: [{ requestor: true, who: { display: 'Jo Smith' }, altId: 'jsmith@hospital.example.org' }],
      source: { observer: { display: 'EHR' } },
      entity: [{ what: { reference: 'Patient/p1' } }],
      ...(dept ? { extension: [{ url: 'https://site.example/dept', valueString: dept }] } : {}),
    });
    const cells = ['Cardiology', 'Oncology', undefined].map((dept, i) => mapEvent(event(`e${i}`, dept), mapping, lookup).rows[0]?.[index]);
    expect(cells).toEqual(['Cardiology', 'Oncology', 'Home']);
    for (const text of ['$this.action', "where(action = 'R').action", 'now().toString()']) {
      const scoped = builtinSpec('epic');
      scoped.columns = scoped.columns.map((column) => (column.name === 'CLARITY_DEP.DEPARTMENT_NAME' ? { ...column, expressions: [text] } : column));
      expect(programOf(compileSpec(scoped)).columns[index]?.scope, text).toBe('event');
    }
  });
});

describe('whole-cell memo', () => {
  const patient: Patient = { resourceType: 'Patient', id: 'p1', name: [{ text: 'Kari Nordmann' }], address: [{ text: 'Storgata 1, Oslo' }] };
  const event = (id: string, second: number): AuditEvent => ({
    resourceType: 'AuditEvent',
    id,
    recorded: `2024-03-01T10:00:0${second}Z`,
    type: { code: 'rest' },
    action: 'R',
    source: { observer: { display: 'x' } },
    agent: [{ requestor: true, altId: 'ann@example.org', who: { display: 'Doe, Ann' } }],
    entity: [{ what: { reference: 'Patient/p1' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }],
  });

  it('replays the warnings of memoised cells on every row, in column order, and the line matches the cells', () => {
    const mapping = builtinMapping('epic');
    const serializer = createSerializer(mapping);
    const lookup = lookupOf([patient]);
    const first = mapEvent(event('e1', 1), mapping, lookup);
    const second = mapEvent(event('e2', 2), mapping, lookup);
    const expected = [
      'name-text-only:PATIENT.PAT_LAST_NAME',
      'address-text-only:PATIENT.ADD_LINE_1',
      'empty-mandatory:PATIENT.PAT_FIRST_NAME',
      'empty-mandatory:PATIENT.CITY',
      'empty-mandatory:PATIENT.ZIP',
    ];
    for (const result of [first, second]) {
      expect(result.warnings.filter((code) => code.includes('PATIENT.'))).toEqual(expected);
      expect(result.rows[0]?.slice(6, 10)).toEqual(['', '', 'Kari Nordmann', 'Storgata 1, Oslo']);
      expect(serializer.lines(result)).toEqual(result.rows.map((row) => serializer.line(row)));
    }
  });

  it('a row built elsewhere, or a result for another delimiter, is sanitised in full by the serializer', () => {
    const tab = builtinMapping('epic');
    const pipe = createSerializer(builtinMapping('epic', { delimiter: 'pipe' }));
    const result = mapEvent(event('e3', 3), tab, lookupOf([{ ...patient, name: [{ text: 'Kari | Nordmann' }] }]));
    expect(pipe.lines(result)[0]?.split('|')[8]).toBe('Kari Nordmann');
    const copy = { ...result, rows: result.rows.map((row) => [...row]) };
    expect(pipe.lines(copy)).toEqual(pipe.lines(result));
  });
});

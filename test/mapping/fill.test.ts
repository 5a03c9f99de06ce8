/**
 * Column fill report (src/mapping/fill.ts): per-column empty counts over mapped rows, and the warnings a run or
 * `bridge doctor` prints when a mandatory or key column is empty on more than 5% of rows.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import {
  createFillCounter,
  type FillReport,
  fillWarnings,
  formatShare,
  mapEvent,
  mergeFillReports,
  type Row,
  SCHEMA_COLUMNS,
} from '../../src/mapping/index.js';
import { builtinMapping, fixturesDir, lookupOf } from './support.js';

const dir = resolve(fixturesDir, 'epic');
const resources = readdirSync(dir)
  .filter((name) => name.endsWith('.json'))
  .map((name) => JSON.parse(readFileSync(resolve(dir, name), 'utf8')) as FhirResource);
const events = resources.filter((resource): resource is AuditEvent => resource.resourceType === 'AuditEvent');
const lookup = lookupOf(resources.filter((resource) => resource.resourceType !== 'AuditEvent'));

function column(report: FillReport, name: string) {
  return report.columns.find((entry) => entry.column === name);
}

/** A row of the epic schema with every cell filled except `empty`. */
function epicRow(...empty: string[]): Row {
  return SCHEMA_COLUMNS.epic.map((entry) => (empty.includes(entry.name) ? '' : 'x'));
}

describe('createFillCounter', () => {
  it('counts, per mandatory or key column, the rows the Epic-shaped fixtures leave empty (the site-text MRN)', () => {
    const mapping = builtinMapping('epic');
    const counter = createFillCounter(mapping);
    for (const event of events) counter.addResult(mapEvent(event, mapping, lookup));
    const report = counter.report();
    expect(report.rows).toBe(5);
    expect(report.columns.map((entry) => entry.column)).toEqual([
      'ACCESS_LOG.ACCESS_TIME',
      'ACCESS_LOG_METRIC.METRIC_NAME',
      'PATIENT.PAT_MRN_ID',
      'PATIENT.PAT_FIRST_NAME',
      'PATIENT.PAT_LAST_NAME',
      'PATIENT.ADD_LINE_1',
      'PATIENT.CITY',
      'PATIENT.ZIP',
      'EMP.SYSTEM_LOGIN',
      'CLARITY_EMP.USER_ID',
      'employee_last_name',
    ]);
    expect(report.columns.every((entry) => entry.watched)).toBe(true);
    expect(column(report, 'PATIENT.PAT_MRN_ID')?.empty).toBe(1);
    expect(report.columns.filter((entry) => entry.column !== 'PATIENT.PAT_MRN_ID').every((entry) => entry.empty === 0)).toBe(true);
    // The break-the-glass reason is mandatory but empty by design (allowEmpty): not watched.
    expect(column(report, 'ZC_BTG_REASON.NAME')).toBeUndefined();

    const pinned = builtinMapping('epic', { options: { mrnTypeTexts: ['HSMRN'] } });
    const fixed = createFillCounter(pinned);
    for (const event of events) fixed.addResult(mapEvent(event, pinned, lookup));
    expect(fillWarnings(fixed.report())).toEqual([]);
  });

  it("'all' counts every column in order and still marks which are watched", () => {
    const mapping = builtinMapping('healthcare');
    const counter = createFillCounter(mapping, 'all');
    for (const event of events) counter.addResult(mapEvent(event, mapping, lookup));
    const report = counter.report();
    expect(report.columns.map((entry) => entry.column)).toEqual(SCHEMA_COLUMNS.healthcare.map((entry) => entry.name));
    expect(column(report, 'Patient Middle Name')).toEqual({ column: 'Patient Middle Name', empty: 3, mandatory: false, watched: false });
    expect(column(report, 'Restricted Access Reason')).toEqual({ column: 'Restricted Access Reason', empty: 5, mandatory: true, watched: false });
    expect(column(report, 'Patient Reg Id')).toEqual({ column: 'Patient Reg Id', empty: 1, mandatory: false, watched: true });
    expect(column(report, 'Patient City')).toEqual({ column: 'Patient City', empty: 0, mandatory: true, watched: true });
    expect(fillWarnings(report).map((warning) => warning.column)).toEqual(['Patient Reg Id']);
  });

  it('is a snapshot: counting goes on after report()', () => {
    const counter = createFillCounter(builtinMapping('epic'));
    counter.add(epicRow('PATIENT.PAT_MRN_ID'));
    const first = counter.report();
    counter.add(epicRow());
    expect(first).toMatchObject({ rows: 1 });
    expect(counter.report()).toMatchObject({ rows: 2 });
    expect(counter.rows).toBe(2);
  });
});

describe('fillWarnings', () => {
  const counted = (rows: number, emptyMrn: number): FillReport => {
    const counter = createFillCounter(builtinMapping('epic'));
    for (let i = 0; i < rows; i += 1) counter.add(i < emptyMrn ? epicRow('PATIENT.PAT_MRN_ID', 'PATIENT.PAT_MIDDLE_NAME') : epicRow());
    return counter.report();
  };

  it('warns above 5% empty, naming the column, the share, the counts and the site option', () => {
    expect(fillWarnings(counted(20, 1))).toEqual([]); // exactly 5%
    const [warning, ...rest] = fillWarnings(counted(100, 6));
    expect(rest).toEqual([]);
    expect(warning).toMatchObject({ code: 'column-fill-low:PATIENT.PAT_MRN_ID', column: 'PATIENT.PAT_MRN_ID', empty: 6, rows: 100, emptyShare: 0.06 });
    expect(warning?.fix).toContain('mapping.options.mrnTypeTexts');
    expect(warning?.message).toBe(`PATIENT.PAT_MRN_ID is empty in 6% of rows (6 of 100); ${warning?.fix ?? ''}`);
    expect(fillWarnings(counted(40, 40))[0]?.message).toMatch(/^PATIENT\.PAT_MRN_ID is empty in 100% of rows \(40 of 40\); set mapping\.options\.mrnSystems/);
    expect(fillWarnings(counted(100, 6), 0.1)).toEqual([]);
    expect(fillWarnings({ rows: 0, columns: [] })).toEqual([]);
  });

  it('names the login and user-id options for the healthcare schema, and has no fix to offer for other columns', () => {
    const report: FillReport = {
      rows: 10,
      columns: [
        { column: 'Email Address (UPN) or SamAccountName', empty: 10, mandatory: true, watched: true },
        { column: 'Employee Id', empty: 2, mandatory: false, watched: true },
        { column: 'Event Name', empty: 1, mandatory: true, watched: true },
        { column: 'Patient State', empty: 10, mandatory: false, watched: false },
      ],
    };
    const warnings = fillWarnings(report);
    expect(warnings.map((warning) => warning.column)).toEqual(['Email Address (UPN) or SamAccountName', 'Employee Id', 'Event Name']);
    expect(warnings[0]?.fix).toContain('loginTypeTexts');
    expect(warnings[1]?.fix).toContain('userIdSystems');
    expect(warnings[2]?.fix).toBeUndefined();
    expect(warnings[2]?.message).toBe('Event Name is empty in 10% of rows (1 of 10)');
  });
});

describe('mergeFillReports and formatShare', () => {
  it('adds reports column by column', () => {
    const col = (column: string, empty: number, watched: boolean) => ({ column, empty, mandatory: watched, watched });
    const a: FillReport = { rows: 3, columns: [col('A', 1, true), col('B', 0, false)] };
    const b: FillReport = { rows: 2, columns: [col('B', 2, true), col('C', 1, false)] };
    expect(mergeFillReports(a, b)).toEqual({ rows: 5, columns: [col('A', 1, true), col('B', 2, true), col('C', 1, false)] });
  });

  it('never shows a partial share as 0% or 100%', () => {
    expect([0, 0.0004, 0.048, 0.05, 0.0612, 0.5, 0.9996, 1].map(formatShare)).toEqual(['0%', '<0.1%', '4.8%', '5%', '6.1%', '50%', '>99%', '100%']);
  });
});

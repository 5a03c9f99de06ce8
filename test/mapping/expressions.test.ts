/**
 * Site expressions that fall outside the direct-accessor subset run through fhirpath.js; a runtime error in one is
 * a warning and an empty cell, never a failed run. The JSON error locator reports positions without content.
 */
import { describe, expect, it } from 'vitest';
import { mapEvent } from '../../src/mapping/index.js';
import { locateJsonError } from '../../src/mapping/json-position.js';
import { auditEvent, builtinSpec, compileSpec, hl7Resources, lookupOf } from './support.js';

function withColumn(name: string, expressions: unknown[]): ReturnType<typeof compileSpec> {
  const spec = builtinSpec('epic');
  return compileSpec({
    ...spec,
    options: { ...spec.options, loginRegex: '^[0-9]+$' },
    columns: spec.columns.map((column) => (column.name === name ? { ...column, expressions } : column)),
  });
}

describe('site expressions through fhirpath.js', () => {
  const event = auditEvent('hl7-r4', 'AuditEvent-example-rest.json');
  event.entity = [{ what: { reference: 'Patient/f001' } }];
  const lookup = lookupOf(hl7Resources());

  it('a FHIRPath function the subset does not cover', () => {
    const mapping = withColumn('CLARITY_DEP.DEPARTMENT_NAME', ['%patient.managingOrganization.display.upper()']);
    expect(mapEvent(event, mapping, lookup).rows[0]?.[15]).toBe('BURGERS UNIVERSITY MEDICAL CENTRE');
  });

  it('first non-empty wins, with the warning of the entry that supplied it', () => {
    const mapping = withColumn('CLARITY_DEP.DEPARTMENT_NAME', [
      '%patient.generalPractitioner.display',
      { expression: "'Main campus'", warn: 'department-default' },
    ]);
    const result = mapEvent(event, mapping, lookup);
    expect(result.rows[0]?.[15]).toBe('Main campus');
    expect(result.warnings).toContain('department-default:CLARITY_DEP.DEPARTMENT_NAME');
  });

  it('a runtime error is an empty cell and a warning', () => {
    const mapping = withColumn('ZC_STATE.NAME', ['%patient.telecom.value.single()', '%address.country']);
    const result = mapEvent(event, mapping, lookup);
    expect(result.rows[0]?.[13]).toBe('NLD');
    expect(result.warnings).toContain('expression-error:ZC_STATE.NAME');
  });
});

describe('locateJsonError', () => {
  it.each([
    ['{"a": 1,}', 1, 9, 'expected a property name in double quotes'],
    ['[1, 2\n, 3', 2, 4, 'unexpected end of input'],
    ['{"a": "x\ty"}', 1, 9, 'control character in string'],
    ['{"a": 01}', 1, 8, "expected ',' or '}'"],
    ['{"a": tru}', 1, 7, 'unexpected character'],
    ['{"a": "\\q"}', 1, 8, 'invalid escape in string'],
    ['{} {}', 1, 4, 'unexpected data after the JSON value'],
  ])('%j → line %i, column %i', (text, line, column, reason) => {
    expect(locateJsonError(text)).toEqual({ line, column, reason });
  });

  it('valid JSON has no error', () => {
    expect(locateJsonError('{"a": [1, -2.5e3, true, null, "\\u00e9"]}')).toBeUndefined();
  });
});

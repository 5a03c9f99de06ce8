/**
 * The direct accessors (simple-path.ts) must mean exactly what fhirpath.js means: every simple expression of the
 * built-in mappings, and more, is evaluated by both engines over contexts built from every fixture.
 */
import type { AuditEvent, FhirResource, Patient, Practitioner } from 'fhir/r4.js';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4';
import { describe, expect, it } from 'vitest';
import { CHOICE_ELEMENTS } from '../../src/mapping/choice-elements.js';
import { analyse, analyseSimple, compileExpression } from '../../src/mapping/expression.js';
import { resolveOptions } from '../../src/mapping/options.js';
import { createResolver } from '../../src/mapping/resolve.js';
import { fhirpathVariables, type RowContext } from '../../src/mapping/row-context.js';
import { compileSimplePath, parseSimplePath } from '../../src/mapping/simple-path.js';
import { mappingFileSpec } from '../../src/mapping/spec.js';
import { builtinSpec, fixtureFiles, lookupOf, readFixture } from './support.js';

const options = resolveOptions(
  mappingFileSpec.parse(builtinSpec('epic')),
  {
    mrnSystems: ['urn:oid:1.2.36.146.595.217.0.1'],
    loginSystems: ['urn:oid:2.16.578.1.12.4.1.4.4', 'http://www.acme.org/practitioners'],
    userIdSystems: ['urn:oid:2.16.840.1.113883.4.2'],
  },
  'test',
);

const builtinExpressions = [...builtinSpec('epic').columns, ...builtinSpec('healthcare').columns]
  .flatMap((column) => column['expressions'] as unknown[])
  .flatMap((entry) =>
    typeof entry === 'string' ? [entry] : typeof entry === 'object' && entry !== null && 'expression' in entry ? [String(entry.expression)] : [],
  );

const EXTRA = [
  '%name.given',
  '%name.given.last()',
  '%name.given.skip(1).first()',
  '%address.line',
  '%requestor.network.address',
  'agent.who.identifier.value',
  'agent.altId.where(matches(%loginRegex))',
  'entity.what.reference',
  'entity.detail.value',
  '%event.entity.detail.value',
  'extension.where(url in %patientExtensionUrls).value.reference',
  'agent.where(requestor.exists() and altId.exists()).altId',
  '%patient.identifier.where(system in %mrnSystems).value',
  "%patient.telecom.where(system = 'phone' and use = 'work').value",
  "%patient.name.where(use = 'maiden').family",
  '%patient.name.where(period.exists()).given',
  '%patient.name.where(family.exists() and given.empty())',
  "%user.telecom.where(system = 'email').value",
  '%user.identifier.where(system in %userIdSystems).value',
  '%subject.reference',
  'purposeOfEvent.coding.code',
  'purposeOfEvent.coding.where(system in %btgCodes).code',
  '%userName.text',
  'type.coding.code',
];

const expressions = [...new Set([...builtinExpressions, ...EXTRA])];

function contexts(): RowContext[] {
  const resources = fixtureFiles('hl7-r4').map((name) => readFixture('hl7-r4', name));
  const patients = resources.filter((resource): resource is Patient => resource.resourceType === 'Patient');
  const practitioners = resources.filter((resource): resource is Practitioner => resource.resourceType === 'Practitioner');
  const events = [
    ...resources.filter((resource): resource is AuditEvent => resource.resourceType === 'AuditEvent'),
    ...fixtureFiles('hl7norway').map((name) => readFixture<AuditEvent>('hl7norway', name)),
  ];
  const out: RowContext[] = [];
  events.forEach((event, index) => {
    const patient = patients[index % patients.length] as Patient;
    const user = practitioners[index % practitioners.length] as Practitioner;
    for (const requestor of event.agent) {
      out.push({
        event,
        instant: undefined,
        tMs: Number.NaN,
        requestor,
        user,
        role: undefined,
        userName: user.name?.[0],
        patient,
        subject: { ref: event.entity?.[0]?.what ?? { display: 'x' }, key: 'k', label: 'k' },
        name: patient.name?.[0],
        address: patient.address?.[0],
        resolver: createResolver(event, lookupOf(resources as FhirResource[]), options),
        options,
        timeFormat: { kind: 'iso-utc' },
        userIdIsGlobal: true,
      });
    }
  });
  return out;
}

describe('direct accessors agree with fhirpath.js', () => {
  const rows = contexts();

  it('every simple expression of the built-in mappings compiles to a direct accessor', () => {
    const notSimple = builtinExpressions.filter((text) => !compileSimplePath(text, options.variables));
    expect(notSimple).toEqual([]);
  });

  for (const text of expressions) {
    it(text, () => {
      const direct = compileSimplePath(text, options.variables);
      expect(direct, 'in the subset').toBeDefined();
      const reference = fhirpath.compile(text, r4);
      for (const ctx of rows) {
        const expected: unknown = reference(ctx.event, fhirpathVariables(ctx));
        expect(direct?.(ctx), `${text} on ${ctx.event.id}`).toEqual(expected);
      }
    });
  }

  it('resolves a choice element on a variable, which fhirpath.js only does on typed (root) paths', () => {
    const balp = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/ihe-otherId';
    const agent = { requestor: true, extension: [{ url: balp, valueIdentifier: { system: 'http://www.acme.org/practitioners', value: 'jdoe' } }] };
    const ctx = { ...(rows[0] as RowContext), requestor: agent };
    const direct = compileSimplePath(`%requestor.extension.where(url = '${balp}').value.where(system in %loginSystems).value`, options.variables);
    const typed = fhirpath.compile(`agent.extension.where(url = '${balp}').value.where(system in %loginSystems).value`, r4);
    expect(direct?.(ctx)).toEqual(['jdoe']);
    expect(typed({ resourceType: 'AuditEvent', agent: [agent] }, fhirpathVariables(ctx))).toEqual(['jdoe']);
  });

  it('leaves what it cannot do to fhirpath.js', () => {
    for (const text of ["%name.given.join(' ')", '%patient.name.count()', "type.code | 'x'", 'AuditEvent.type.code', "%address.where(city.startsWith('P'))"]) {
      expect(compileSimplePath(text, options.variables), text).toBeUndefined();
    }
  });

  it('finds the same scope and %variables without fhirpath.js as with it (which is then never loaded for them)', () => {
    const site = { source: 'test', column: 'C', join: undefined, options: options.variables };
    for (const text of [...expressions, "%patient.telecom.where(system = '%loginRegex').value", "agent.where(altId = 'a%b').altId"]) {
      const path = parseSimplePath(text, options.variables);
      expect(path, text).toBeDefined();
      expect(analyseSimple(text, path as NonNullable<typeof path>, site), text).toEqual(analyse(text, site));
    }
  });

  it('leaves an unknown option to the full analysis, which names it', () => {
    const site = { source: 'test', column: 'C', join: undefined, options: options.variables };
    const text = '%requestor.who.identifier.where(system in %noSuchOption).value';
    const path = parseSimplePath(text, options.variables);
    expect(path).toBeDefined();
    expect(analyseSimple(text, path as NonNullable<typeof path>, site)).toBeUndefined();
    expect(() => analyse(text, site)).toThrow(/unknown variable %noSuchOption/);
  });

  it('knows every choice element of the R4 model (the list is written out so the model is not loaded)', () => {
    const fromModel = new Set(Object.keys(r4.choiceTypePaths).map((path) => path.slice(path.lastIndexOf('.') + 1)));
    expect([...CHOICE_ELEMENTS].sort()).toEqual([...fromModel].sort());
  });

  it('refuses FHIRPath keywords as member names and prototype names as variables, as fhirpath.js does', () => {
    const site = { source: 'test', column: 'C', join: undefined, options: options.variables };
    for (const text of ['type.and', 'type.or', 'agent.mod', 'type.div', 'type.xor', 'type.implies', 'type.true', 'and.code']) {
      expect(compileSimplePath(text, options.variables), text).toBeUndefined();
      expect(() => compileExpression(text, site), text).toThrow(/Mapping file test, column "C"/);
    }
    for (const text of ['%constructor.event.id', '%toString', 'agent.where(system in %hasOwnProperty).altId']) {
      expect(compileSimplePath(text, options.variables), text).toBeUndefined();
      expect(() => compileExpression(text, site), text).toThrow(/unknown variable|does not parse/);
    }
  });
});

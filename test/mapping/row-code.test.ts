/**
 * The generated row function (src/mapping/row-code.ts) against the interpreter it is compiled from (interpret.ts):
 * for both schemas, every delimiter, strict and not, UTC and local time, over the HL7 and HL7 Norway fixtures, the
 * sandbox's Epic-shaped events (decoys, multi-patient, failures, no-login users) and the bench's events, both paths
 * give the same rows, lines, rejects, warnings, skip reasons and fill counts. Each path has its own compiled mapping,
 * so neither reads a memo the other filled; every event is mapped twice, so cold and warm memos are both compared.
 */
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { buildTransformInput } from '../../bench/transform.js';
import { SCHEMA_DELIMITERS } from '../../src/connector-file/index.js';
import {
  type CompiledMapping,
  type ConnectorSchema,
  createFillCounter,
  createSerializer,
  type EventMapResult,
  type MappingOverrides,
} from '../../src/mapping/index.js';
import { mapEvent, mapEventInterpreted } from '../../src/mapping/rows.js';
import type { ResourceLookup } from '../../src/reference-keys.js';
import { generateDataset } from '../../src/sandbox/generator.js';
import { builtinMapping, fixtureFiles, hl7Resources, lookupOf, readFixture } from './support.js';

interface Corpus {
  readonly name: string;
  readonly events: readonly AuditEvent[];
  readonly lookup: ResourceLookup;
}

function fixtureCorpus(folder: 'hl7-r4' | 'hl7norway'): Corpus {
  const resources = fixtureFiles(folder).map((name) => readFixture(folder, name));
  const events = resources.filter((resource): resource is AuditEvent => resource.resourceType === 'AuditEvent');
  const others: FhirResource[] = [...hl7Resources(), ...resources.filter((resource) => resource.resourceType !== 'AuditEvent')];
  return { name: folder, events, lookup: lookupOf(others) };
}

function sandboxCorpus(): Corpus {
  const data = generateDataset({
    seed: 20261206,
    practitioners: 60,
    patients: 200,
    events: 1500,
    start: '2026-03-01T00:00:00Z',
    end: '2026-11-15T00:00:00Z',
    noLoginRate: 0.1,
    multiPatientRate: 0.1,
  });
  const resources: FhirResource[] = [...data.practitioners(), ...data.patients()];
  return { name: 'sandbox', events: [...data.events()], lookup: lookupOf(resources) };
}

function benchCorpus(): Corpus {
  const { lines, lookup } = buildTransformInput({ events: 1500, seed: 3 });
  return { name: 'bench', events: lines.map((line) => JSON.parse(line) as AuditEvent), lookup };
}

/**
 * The bench's events over resources with holes: every third patient without identifiers (no MRN: the patient run has no
 * segment), every fourth without a name, every fifth practitioner without a name and every seventh without identifiers
 * (the user run has no segment), so the generated code's fallbacks are compared too.
 */
function sparseCorpus(): Corpus {
  const { lines, lookup } = buildTransformInput({ events: 1500, seed: 5 });
  const holed = new Map<string, FhirResource | undefined>();
  const sparse: ResourceLookup = {
    get(key) {
      if (!holed.has(key)) {
        const resource = structuredClone(lookup.get(key));
        const number = Number(resource?.id?.slice(1) ?? 0);
        if (resource?.resourceType === 'Patient') {
          if (number % 3 === 0) delete resource.identifier;
          if (number % 4 === 0) delete resource.name;
        }
        if (resource?.resourceType === 'Practitioner') {
          if (number % 5 === 0) delete resource.name;
          if (number % 7 === 0) delete resource.identifier;
        }
        holed.set(key, resource);
      }
      return holed.get(key);
    },
  };
  return { name: 'sparse', events: lines.map((line) => JSON.parse(line) as AuditEvent), lookup: sparse };
}

const corpora = [fixtureCorpus('hl7-r4'), fixtureCorpus('hl7norway'), sandboxCorpus(), benchCorpus(), sparseCorpus()];

/** What a consumer can observe of one result, lines included (as the serializer hands them out). */
function observed(result: EventMapResult, mapping: CompiledMapping): unknown {
  return {
    rows: result.rows,
    lines: createSerializer(mapping).lines(result),
    rejects: result.rejects,
    warnings: result.warnings,
    skipped: result.skipped,
  };
}

const settings: Array<{ schema: ConnectorSchema; overrides: MappingOverrides }> = [];
for (const schema of ['epic', 'healthcare'] as const) {
  for (const delimiter of SCHEMA_DELIMITERS[schema]) {
    for (const strict of [false, true]) settings.push({ schema, overrides: { delimiter, strict } });
  }
  settings.push({ schema, overrides: { timeFormat: 'local:America/Denver' } });
}

describe('generated row function = interpreter', () => {
  it.each(settings)('$schema $overrides', ({ schema, overrides }) => {
    for (const corpus of corpora) {
      const generated = builtinMapping(schema, overrides);
      const interpreted = builtinMapping(schema, overrides);
      const generatedFill = createFillCounter(generated, 'all');
      const interpretedFill = createFillCounter(interpreted, 'all');
      let rows = 0;
      let rejects = 0;
      for (const round of [1, 2]) {
        for (const event of corpus.events) {
          const fast = mapEvent(event, generated, corpus.lookup);
          const slow = mapEventInterpreted(event, interpreted, corpus.lookup);
          generatedFill.addResult(fast);
          interpretedFill.addResult(slow);
          rows += slow.rows.length;
          rejects += slow.rejects.length;
          expect(observed(fast, generated), `${corpus.name} ${event.id} round ${round}`).toEqual(observed(slow, interpreted));
        }
      }
      expect(generatedFill.report(), corpus.name).toEqual(interpretedFill.report());
      // The comparison is only worth something if the corpus yields rows or rejects (the HL7 examples are all rejected
      // or skipped by the default mappings); the generated corpora yield both.
      expect(rows + rejects, corpus.name).toBeGreaterThan(0);
      if (corpus.name === 'sandbox' || corpus.name === 'sparse') expect(Math.min(rows, rejects), corpus.name).toBeGreaterThan(0);
      if (corpus.name === 'bench') expect(rows, corpus.name).toBeGreaterThan(0);
    }
  });
});

/** Shared helpers for the mapping tests: fixtures read from test/fixtures (origins and licences in its README.md). */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { builtinMappingPath, type CompiledMapping, type ConnectorSchema, compileMapping, loadMapping, type MappingOverrides } from '../../src/mapping/index.js';
import { identifierKey, type ResourceLookup, referenceKey } from '../../src/reference-keys.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const fixturesDir = resolve(import.meta.dirname, '../fixtures');

export type FixtureFolder = 'hl7-r4' | 'hl7norway';

export function fixtureFiles(folder: FixtureFolder): string[] {
  return readdirSync(resolve(fixturesDir, folder))
    .filter((name) => name.endsWith('.json'))
    .sort();
}

export function readFixture<T extends FhirResource = FhirResource>(folder: FixtureFolder, name: string): T {
  return JSON.parse(readFileSync(resolve(fixturesDir, folder, name), 'utf8')) as T;
}

export function auditEvent(folder: FixtureFolder, name: string): AuditEvent {
  const resource = readFixture(folder, name);
  if (resource.resourceType !== 'AuditEvent') throw new Error(`${name} is not an AuditEvent`);
  return resource;
}

/** A real lookup over resources: by `Type/id`, plus any extra keys (e.g. identifier keys) given explicitly. */
export function lookupOf(resources: readonly FhirResource[], extra: Readonly<Record<string, FhirResource>> = {}): ResourceLookup & { asked: string[] } {
  const map = new Map<string, FhirResource>();
  for (const resource of resources) if (resource.id) map.set(referenceKey(resource.resourceType, resource.id), resource);
  for (const [key, resource] of Object.entries(extra)) map.set(key, resource);
  const asked: string[] = [];
  return {
    asked,
    get(key) {
      asked.push(key);
      return map.get(key);
    },
  };
}

/** Every Patient and Practitioner fixture of the HL7 R4 folder. */
export function hl7Resources(): FhirResource[] {
  return fixtureFiles('hl7-r4')
    .map((name) => readFixture('hl7-r4', name))
    .filter((resource) => resource.resourceType !== 'AuditEvent');
}

export function builtinMapping(schema: ConnectorSchema, overrides: MappingOverrides = {}): CompiledMapping {
  return loadMapping(builtinMappingPath(schema), overrides);
}

/** The built-in mapping file as data, for tests that change a few fields and compile it themselves. */
export function builtinSpec(
  schema: ConnectorSchema,
): { columns: Array<Record<string, unknown> & { name: string }>; options: Record<string, unknown> } & Record<string, unknown> {
  return JSON.parse(readFileSync(builtinMappingPath(schema), 'utf8')) as ReturnType<typeof builtinSpec>;
}

export function compileSpec(spec: unknown, overrides: MappingOverrides = {}): CompiledMapping {
  return compileMapping(spec, 'test-mapping.json', overrides);
}

export { identifierKey };

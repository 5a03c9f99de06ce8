/**
 * What the pull must fetch before mapping a page: the patients, the agents' Practitioner/PractitionerRole, and, when
 * a column uses the department, encounters and the requestor's location. Contained (`#id`) references are already
 * in the event and are left out; following PractitionerRole → practitioner is the resolver's job.
 */
import type { AuditEvent, Reference } from 'fhir/r4.js';
import { type IdentifierReference, identifierKey, type ReferenceRequest, type ResourceLookup } from '../reference-keys.js';
import { programOf } from './compile.js';
import { patientSubjects, selectRequestor } from './context.js';
import { createResolver, literalKey, normaliseIdentifier, referenceType } from './resolve.js';
import type { CompiledMapping } from './types.js';

const NOTHING: ResourceLookup = { get: () => undefined };
const USER_TYPES = new Set(['Practitioner', 'PractitionerRole']);

/**
 * The resource types the department column makes the pull fetch: Encounters when a department source reads them, the
 * requestor's Location when that source is on; none when no column reads the department.
 */
export function departmentLookups(mapping: CompiledMapping): ReadonlySet<'Encounter' | 'Location'> {
  const { needsDepartment, options } = programOf(mapping);
  const types = new Set<'Encounter' | 'Location'>();
  if (!needsDepartment) return types;
  const sources = new Set(options.departmentSources);
  if (sources.has('encounter-service-provider') || sources.has('encounter-location')) types.add('Encounter');
  if (sources.has('requestor-location')) types.add('Location');
  return types;
}

export function collectReferences(event: AuditEvent, mapping: CompiledMapping): ReferenceRequest {
  const { options } = programOf(mapping);
  const lookups = departmentLookups(mapping);
  const keys = new Set<string>();
  const identifiers = new Map<string, IdentifierReference>();
  const addIdentifier = (ref: Reference | undefined, type: IdentifierReference['type']): void => {
    const normal = ref?.identifier ? normaliseIdentifier(ref.identifier, options.parseCxIdentifiers) : undefined;
    if (normal) identifiers.set(identifierKey(type, normal.system, normal.value), { type, ...normal });
  };
  const add = (ref: Reference | undefined, type: IdentifierReference['type'] | undefined): void => {
    if (!ref || ref.reference?.startsWith('#')) return;
    const key = literalKey(ref.reference);
    if (key) keys.add(key);
    else if (type) addIdentifier(ref, type);
  };
  // Only contained resources resolve here: enough to find subjects and the requestor by their reference types.
  const resolver = createResolver(event, NOTHING, options.parseCxIdentifiers);
  for (const subject of patientSubjects(event, resolver, options)) add(subject.ref, 'Patient');
  for (const agent of event.agent ?? []) {
    const type = referenceType(agent.who?.reference);
    if (type && USER_TYPES.has(type)) add(agent.who, undefined);
  }
  const choice = selectRequestor(event, resolver);
  if (choice.kind === 'human' && !choice.agent.who?.reference) {
    const whoType = choice.agent.who?.type;
    addIdentifier(choice.agent.who, whoType === 'PractitionerRole' ? 'PractitionerRole' : 'Practitioner');
  }
  if (lookups.has('Location') && choice.kind === 'human') add(choice.agent.location, undefined);
  if (lookups.has('Encounter')) {
    for (const entity of event.entity ?? []) {
      if (referenceType(entity.what?.reference) === 'Encounter') add(entity.what, undefined);
    }
    for (const extension of event.extension ?? []) {
      if (options.encounterExtensionUrls.has(extension.url)) add(extension.valueReference, undefined);
    }
  }
  return { keys: [...keys], identifiers: [...identifiers.values()] };
}

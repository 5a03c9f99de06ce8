/**
 * What the pull must fetch before mapping a page: the patients, the agents' Practitioner/PractitionerRole, and, when
 * a column uses the department, encounters and the requestor's location. Contained (`#id`) references are already
 * in the event and are left out, but what a contained PractitionerRole names on the server (its practitioner, and its
 * organization for the department) is not: only a fetched role is followed by the resolver. A literal reference to
 * another server (literalKey) is asked for by its identifier, as the mapping then looks it up.
 */
import type { AuditEvent, Reference } from 'fhir/r4.js';
import { type IdentifierReference, identifierKey, type ReferenceFollow, type ReferenceRequest, type ResourceLookup } from '../reference-keys.js';
import { programOf } from './compile.js';
import { patientSubjects, selectRequestor } from './context.js';
import type { ResolvedOptions } from './options.js';
import { createResolver, literalKey, normaliseIdentifier, type Resolver, referenceType } from './resolve.js';
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

/**
 * What the department column reads inside fetched Encounters and PractitionerRoles (docs/mapping.md §5.6): the resolver
 * fetches it with them, so a sync finds the organization's or location's name as `bridge map` does from its files.
 */
/** The mapping's parseCxIdentifiers: how the lookups it makes read an HL7v2 CX identifier. */
export function splitsCxIdentifiers(mapping: CompiledMapping): boolean {
  return programOf(mapping).options.parseCxIdentifiers;
}

export function departmentFollows(mapping: CompiledMapping): ReadonlySet<ReferenceFollow> {
  const { needsDepartment, options } = programOf(mapping);
  const follows = new Set<ReferenceFollow>();
  if (!needsDepartment) return follows;
  const sources = new Set(options.departmentSources);
  if (sources.has('encounter-service-provider')) follows.add('Encounter.serviceProvider');
  if (sources.has('encounter-location')) follows.add('Encounter.location');
  if (sources.has('practitioner-role-organization')) follows.add('PractitionerRole.organization');
  return follows;
}

/**
 * What the event's rows will look up. An event of another JSON shape than FHIR gives it (a number for a reference, a
 * null agent) asks for nothing: mapEvent rejects it as malformed-event (rows.ts), and the run goes on.
 */
export function collectReferences(event: AuditEvent, mapping: CompiledMapping): ReferenceRequest {
  try {
    return collectFrom(event, mapping);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    return new RequestBuilder(programOf(mapping).options).build();
  }
}

function collectFrom(event: AuditEvent, mapping: CompiledMapping): ReferenceRequest {
  const { options, needsDepartment } = programOf(mapping);
  const lookups = departmentLookups(mapping);
  const request = new RequestBuilder(options);
  // Only contained resources resolve here: enough to find subjects and the requestor by their reference types.
  const resolver = createResolver(event, NOTHING, options);
  for (const subject of patientSubjects(event, resolver, options)) request.add(subject.ref, 'Patient');
  for (const agent of event.agent ?? []) {
    const type = referenceType(agent.who?.reference);
    if (type && USER_TYPES.has(type)) request.add(agent.who, agent.who?.type === 'PractitionerRole' ? 'PractitionerRole' : 'Practitioner');
  }
  addContainedRoles(event, resolver, request, needsDepartment && options.departmentSources.includes('practitioner-role-organization'));
  const choice = selectRequestor(event, resolver);
  if (choice.kind === 'human' && !choice.agent.who?.reference) {
    const whoType = choice.agent.who?.type;
    request.addIdentifier(choice.agent.who, whoType === 'PractitionerRole' ? 'PractitionerRole' : 'Practitioner');
  }
  if (lookups.has('Location') && choice.kind === 'human') request.add(choice.agent.location, undefined);
  if (lookups.has('Encounter')) {
    for (const entity of event.entity ?? []) {
      if (referenceType(entity.what?.reference) === 'Encounter') request.add(entity.what, undefined);
    }
    for (const extension of event.extension ?? []) {
      if (options.encounterExtensionUrls.has(extension.url)) request.add(extension.valueReference, undefined);
    }
  }
  return request.build();
}

/**
 * An agent's contained PractitionerRole (`who = #role`, HL7 Norway) leads to its practitioner on the server, and to its
 * organization when the department reads it; a role's own `#id` references are its siblings, already in the event.
 */
function addContainedRoles(event: AuditEvent, resolver: Resolver, request: RequestBuilder, organization: boolean): void {
  for (const agent of event.agent ?? []) {
    if (!agent.who?.reference?.startsWith('#')) continue;
    const role = resolver.resolve(agent.who);
    if (role?.resourceType !== 'PractitionerRole') continue;
    request.add(role.practitioner, 'Practitioner');
    if (organization) request.add(role.organization, undefined);
  }
}

/** The keys and identifier references of one event, each once. */
class RequestBuilder {
  private readonly keys = new Set<string>();
  private readonly identifiers = new Map<string, IdentifierReference>();

  constructor(private readonly options: ResolvedOptions) {}

  /**
   * A literal reference by its key; one without a key (another server's, or not a literal) by its identifier when
   * `type` says how the mapping looks that up (resolve.ts: the reference's type, else the expected one).
   */
  add(ref: Reference | undefined, type: IdentifierReference['type'] | undefined): void {
    if (!ref || ref.reference?.startsWith('#')) return;
    const key = literalKey(ref.reference, this.options.fhirBase);
    if (key) this.keys.add(key);
    else if (type) this.addIdentifier(ref, type);
  }

  addIdentifier(ref: Reference | undefined, type: IdentifierReference['type']): void {
    const normal = ref?.identifier ? normaliseIdentifier(ref.identifier, this.options.parseCxIdentifiers) : undefined;
    if (normal) this.identifiers.set(identifierKey(type, normal.system, normal.value), { type, ...normal });
  }

  build(): ReferenceRequest {
    return { keys: [...this.keys], identifiers: [...this.identifiers.values()] };
  }
}

/**
 * Who and what a row is about (docs/mapping.md §3.2, §3.4): the one requesting human, the Practitioner behind them
 * (through a PractitionerRole when needed), and the distinct patient subjects of the event.
 */
import type { AuditEvent, AuditEventAgent, Coding, FhirResource, Practitioner, PractitionerRole, Reference } from 'fhir/r4.js';
import { normaliseBase, ownKeyOf, parseReference, referenceKey, userKey } from '../reference-keys.js';
import { qualifies } from './identifiers.js';
import { type ResolvedOptions, referenceName } from './options.js';
import { identifierKeys, literalKey, normaliseIdentifier, type Resolver, referenceType } from './resolve.js';

export const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
/** The same code system as STU3 and DSTU2 named it; servers upgraded from those still write it. */
const OBJECT_ROLE_STU3 = 'http://hl7.org/fhir/object-role';
export const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const RESOURCE_TYPES = 'http://hl7.org/fhir/resource-types';

const PATIENT_TYPES = new Set(['Patient', 'RelatedPerson']);
const HUMAN_TYPES = new Set(['Practitioner', 'PractitionerRole']);
const SYSTEM_TYPES = new Set(['Device', 'Organization', 'HealthcareService']);
/** extra-security-role-type humanuser, v3-ParticipationType IRCP (information recipient). */
const HUMAN_CODES = new Set(['humanuser', 'IRCP']);
/** DCM 110150 Application, 110151 Application Launcher; extra-security-role-type dataprocessor/datacollector. */
const SYSTEM_CODES = new Set(['110150', '110151', 'dataprocessor', 'datacollector']);

export type AgentKind = 'human' | 'patient' | 'system' | 'unknown';

export function agentKind(agent: AuditEventAgent, resolver: Resolver): AgentKind {
  const who = agent.who;
  const type = (who?.reference?.startsWith('#') ? resolver.resolve(who)?.resourceType : undefined) ?? referenceType(who?.reference) ?? who?.type;
  if (type !== undefined) {
    if (PATIENT_TYPES.has(type)) return 'patient';
    if (HUMAN_TYPES.has(type)) return 'human';
    if (SYSTEM_TYPES.has(type)) return 'system';
  }
  const codings: readonly Coding[] = agent.type?.coding ?? [];
  if (codings.some((coding) => coding.code !== undefined && HUMAN_CODES.has(coding.code))) return 'human';
  if (codings.some((coding) => coding.code !== undefined && SYSTEM_CODES.has(coding.code))) return 'system';
  return 'unknown';
}

export type RequestorChoice =
  | { readonly kind: 'human'; readonly agent: AuditEventAgent; readonly ambiguous: boolean }
  | { readonly kind: 'patient'; readonly agent: AuditEventAgent }
  | { readonly kind: 'none' };

/**
 * The flagged requestor (R4: "there can only be one initiator"; with several, the first, and `ambiguous`).
 * A flagged agent of unknown kind counts as human (R4 examples flag agents that carry only an identifier), unless a
 * later flagged agent is clearly human: IHE ATNA audits flag the requesting process (DICOM 110153 "Source", named by
 * a host or application id) as well as the person, process first, and the row is the person's.
 * When nothing is flagged, or the flagged agent is a device or organization, the first clearly human agent.
 */
export function selectRequestor(event: AuditEvent, resolver: Resolver): RequestorChoice {
  const agents = event.agent ?? [];
  let first: AuditEventAgent | undefined;
  let flagged = 0;
  for (const agent of agents) {
    if (agent.requestor !== true) continue;
    flagged += 1;
    first ??= agent;
  }
  if (first) {
    const kind = agentKind(first, resolver);
    if (kind === 'patient') return { kind: 'patient', agent: first };
    if (kind === 'unknown' && flagged > 1) {
      const person = agents.find((agent) => agent !== first && agent.requestor === true && agentKind(agent, resolver) === 'human');
      if (person) return { kind: 'human', agent: person, ambiguous: true };
    }
    if (kind !== 'system') return { kind: 'human', agent: first, ambiguous: flagged > 1 };
  }
  for (const agent of agents) {
    if (agent !== first && agentKind(agent, resolver) === 'human') return { kind: 'human', agent, ambiguous: false };
  }
  return { kind: 'none' };
}

/**
 * docs/mapping.md §3.3: the requestor as the row reads it (%requestor), its own identifier (`who.identifier`) read as a
 * reference's is (resolve.ts normaliseIdentifier): an HL7v2 CX value `JCLERK^^^&1.2.840.…&ISO` is value `JCLERK` in
 * system `urn:oid:1.2.840.…`, so the login and user id columns, the site's pins, Epic's EMP test and excludeUsers see
 * the identifier the user is looked up by. The agent itself when there is nothing to split; a copy only then.
 */
export function requestorAsRead(agent: AuditEventAgent | undefined, parseCx: boolean): AuditEventAgent | undefined {
  const who = agent?.who;
  const identifier = who?.identifier;
  if (!parseCx || agent === undefined || who === undefined || identifier?.value === undefined || !identifier.value.includes('^')) return agent;
  const normal = normaliseIdentifier(identifier, parseCx);
  if (normal === undefined || normal.value === identifier.value) return agent;
  const system = normal.system === undefined ? {} : { system: normal.system };
  return { ...agent, who: { ...who, identifier: { ...identifier, ...system, value: normal.value } } };
}

export interface ResolvedUser {
  readonly user?: Practitioner;
  readonly role?: PractitionerRole;
  /** The Practitioner was reached through a non-contained reference, so its id is the EHR's id. */
  readonly global: boolean;
}

/** %user = R(%req.who); a PractitionerRole leads to its practitioner (HL7 Norway pattern). */
export function resolveUser(agent: AuditEventAgent | undefined, resolver: Resolver): ResolvedUser {
  const who = resolver.resolve(agent?.who, 'Practitioner');
  if (who?.resourceType === 'Practitioner') return { user: who, global: !agent?.who?.reference?.startsWith('#') };
  if (who?.resourceType !== 'PractitionerRole') return { global: false };
  const practitioner = resolver.resolve(who.practitioner, 'Practitioner', who);
  if (practitioner?.resourceType !== 'Practitioner') return { role: who, global: false };
  return { user: practitioner, role: who, global: !who.practitioner?.reference?.startsWith('#') };
}

/**
 * docs/mapping.md §3.1: the requestor is one of options.excludeUsers (options.ts ExcludedUsers): by its reference or
 * the resolved Practitioner's (or PractitionerRole's) own, not a contained one's local id; by an identifier in a given
 * system; or by a bare name that is its altId, or an identifier the mapping would take as its user id or login.
 */
export function isExcludedUser(agent: AuditEventAgent | undefined, resolved: ResolvedUser, options: ResolvedOptions): boolean {
  const excluded = options.excludeUsers;
  if (excluded.size === 0 || agent === undefined) return false;
  const { user, role } = resolved;
  const parsed = parseReference(agent.who?.reference);
  // Another server's Practitioner/x is someone else than ours (§3.3), whatever its id.
  const ours = parsed?.contained === false && parsed.type !== undefined && ownKeyOf(agent.who?.reference, options.fhirBase) !== undefined;
  const names = [
    ours && parsed?.type ? referenceName(parsed.type, parsed.id) : undefined,
    resolved.global && user?.id ? referenceName('Practitioner', user.id) : undefined,
    role?.id && !agent.who?.reference?.startsWith('#') ? referenceName('PractitionerRole', role.id) : undefined,
  ];
  if (names.some((name) => name !== undefined && excluded.references.has(name))) return true;
  if (agent.altId !== undefined && excluded.names.has(userKey(agent.altId))) return true;
  const { userTests } = excluded;
  const own = agent.who?.identifier;
  const candidates = [...(own ? [{ identifier: own, theirs: own.system === undefined || qualifies(own, userTests) }] : [])];
  for (const identifier of user?.identifier ?? []) candidates.push({ identifier, theirs: qualifies(identifier, userTests) });
  return candidates.some(({ identifier, theirs }) => {
    if (!identifier.value) return false;
    const value = userKey(identifier.value);
    return (identifier.system !== undefined && excluded.identifiers.has(`${identifier.system}|${value}`)) || (theirs && excluded.names.has(value));
  });
}

export interface PatientSubject {
  readonly ref: Reference;
  /** De-duplication key: `Patient/id`, `#id`, or the identifier lookup key. */
  readonly key: string;
  /** Opaque pointer for reject records: the reference, or where the identifier sits (never the MRN itself). */
  readonly label: string;
}

/**
 * docs/mapping.md §3.4: entities with object-role 1 (Patient) or typed as the Patient resource, entities whose `what`
 * is a Patient (the vread data object), and the configured patient extensions; de-duplicated on the normalised reference ("Patient/example" =
 * ".../_history/1"). The agent half of the R4 `patient` search parameter is deliberately left out: a patient agent is a
 * portal user.
 */
export function patientSubjects(event: AuditEvent, resolver: Resolver, options: ResolvedOptions): PatientSubject[] {
  const candidates: PatientSubject[] = [];
  const entities = event.entity ?? [];
  let nameless: number[] | undefined;
  for (let index = 0; index < entities.length; index += 1) {
    const entity = entities[index];
    const what = entity?.what;
    if (!entity || !what) {
      // Kept aside: taken only when no entity names the patient (below).
      if (entity && isPatientRole(entity.role) && entity.query === undefined) {
        nameless ??= [];
        nameless.push(index);
      }
      continue;
    }
    // The patient's role, or the Patient resource type, unless the reference names another type.
    const patientEntity = (isPatientRole(entity.role) || isPatientEntityType(entity.type)) && !namesOtherType(what, resolver);
    // A patient's entity whose `what` names no one we can look up (a urn:uuid, an id longer than FHIR allows, nothing
    // but an empty reference) is still an access to a patient: keyed by where it sits, it gives an unresolved row (and
    // a reject, visible), not a silent no-patient skip.
    const subject =
      patientEntity || isPatientReference(what, resolver) ? (toSubject(what, 'entity', index, options) ?? unnamed('entity', index, what)) : undefined;
    if (subject) candidates.push(subject);
  }
  const extensions = event.extension ?? [];
  for (let index = 0; index < extensions.length; index += 1) {
    const extension = extensions[index];
    if (!extension || !options.patientExtensionUrls.has(extension.url) || !extension.valueReference) continue;
    const subject = toSubject(extension.valueReference, 'extension', index, options);
    if (subject) candidates.push(subject);
  }
  // A patient-role entity without `what` (only its `name`, the patient's, or nothing; not a query's) is an access to a
  // patient all the same when no entity or extension names one: read as a display-only reference (§3.3 step 4), or an empty one.
  if (nameless !== undefined && candidates.length === 0) {
    for (const index of nameless) {
      const name = entities[index]?.name;
      const what = name ? { display: name } : {};
      candidates.push(toSubject(what, 'entity', index, options) ?? unnamed('entity', index, what));
    }
  }
  if (candidates.length < 2) return candidates;
  const unique = new Map<string, PatientSubject>();
  for (const subject of candidates) if (!unique.has(subject.key)) unique.set(subject.key, subject);
  return [...unique.values()];
}

/**
 * An entity typed as a Patient resource: R4 binds `entity.type` to audit-entity-type, which takes the resource-types
 * codes beside 1–4, so `type` may say "Patient" where `what` names the patient by identifier alone (no type of its own).
 */
function isPatientEntityType(type: Coding | undefined): boolean {
  return type?.code === 'Patient' && type.system === RESOURCE_TYPES;
}

/** Object-role 1 (Patient), in R4's code system, as STU3 named it, or with no system (the role's binding is that system). */
function isPatientRole(role: Coding | undefined): boolean {
  return role?.code === '1' && (role.system === OBJECT_ROLE || role.system === OBJECT_ROLE_STU3 || role.system === undefined);
}

function unnamed(list: 'entity' | 'extension', index: number, ref: Reference): PatientSubject {
  const where = list === 'entity' ? `entity[${index}].what` : `extension[${index}].valueReference`;
  return { ref, key: where, label: where };
}

/**
 * The object role says "patient", but the reference names another type (a Group, a census list): it is no patient, and
 * its display would otherwise become a patient's name.
 */
function namesOtherType(ref: Reference, resolver: Resolver): boolean {
  const type = ref.reference?.startsWith('#') ? resolver.resolve(ref)?.resourceType : (referenceType(ref.reference) ?? ref.type);
  return type !== undefined && type !== 'Patient';
}

function isPatientReference(ref: Reference, resolver: Resolver): boolean {
  if (ref.reference?.startsWith('#')) return resolver.resolve(ref)?.resourceType === 'Patient';
  return referenceType(ref.reference) === 'Patient' || ref.type === 'Patient';
}

function toSubject(ref: Reference, list: 'entity' | 'extension', index: number, options: ResolvedOptions): PatientSubject | undefined {
  if (ref.reference?.startsWith('#')) return { ref, key: ref.reference, label: ref.reference };
  const key = literalKey(ref.reference, options.fhirBase);
  if (key) return { ref, key, label: key };
  const where = list === 'entity' ? `entity[${index}].what` : `extension[${index}].valueReference`;
  const byIdentifier = ref.identifier ? identifierKeys(ref.type ?? 'Patient', ref.identifier, options.parseCxIdentifiers)[0] : undefined;
  if (byIdentifier) return { ref, key: byIdentifier, label: `${where}.identifier` };
  // A literal reference without a key is another server's (literalKey): still this event's patient, unresolved here as
  // one our server lacks would be. Its label says where it sits, not which id another server gave the patient.
  const foreign = foreignKey(ref.reference);
  if (foreign !== undefined) return { ref, key: foreign, label: where };
  return ref.display ? { ref, key: where, label: where } : undefined;
}

/**
 * Another server's reference as one key for every spelling of it (base normalised, version dropped): two forms of one
 * foreign patient in an event are one subject, one row.
 */
function foreignKey(reference: string | undefined): string | undefined {
  const parsed = parseReference(reference);
  if (!parsed?.type) return undefined;
  const base = parsed.base === undefined ? '' : (normaliseBase(parsed.base) ?? parsed.base);
  return `${base}/${referenceKey(parsed.type, parsed.id)}`;
}

/** Narrows a resolved resource to a Patient (FHIRPath `ofType(Patient)`). */
export function asPatient(resource: FhirResource | undefined): Extract<FhirResource, { resourceType: 'Patient' }> | undefined {
  return resource?.resourceType === 'Patient' ? resource : undefined;
}

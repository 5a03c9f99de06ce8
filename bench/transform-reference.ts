/**
 * A hand-written transform of exactly the events bench/transform.ts generates, to the Epic connector's lines: no
 * mapping file, no FHIRPath, no warnings, no validity periods, only the paths these events use, and one memo per
 * patient and per practitioner. It is not a product path. It shows how fast any transform can go on this
 * machine: the JSON.parse of each event plus the least work per row, with the same flat lines as the engine.
 * test/bench/transform-reference.test.ts checks that its lines equal the engine's for the bench events.
 */
import type { AuditEvent, Patient, Practitioner } from 'fhir/r4.js';
import type { ResourceLookup } from '../src/reference-keys.js';

const LOGIN = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export interface ReferenceTransform {
  /** The event's line, or undefined when it yields no row. */
  line(event: AuditEvent): string | undefined;
}

export function createReferenceTransform(lookup: ResourceLookup): ReferenceTransform {
  const patients = new WeakMap<object, string>();
  const users = new WeakMap<object, string>();
  const patientSegment = (patient: Patient): string => {
    let segment = patients.get(patient);
    if (segment === undefined) {
      const name = patient.name?.find((entry) => entry.use === 'official') ?? patient.name?.[0];
      const address = patient.address?.[0];
      segment = [
        patient.identifier?.[0]?.value ?? '',
        name?.given?.[0] ?? '',
        name?.given?.slice(1).join(' ') ?? '',
        name?.family ?? '',
        address?.line?.[0] ?? '',
        address?.line?.slice(1).join(', ') ?? '',
        address?.city ?? '',
        address?.postalCode ?? '',
        address?.state ?? '',
        address?.country ?? '',
      ].join('\t');
      patients.set(patient, segment);
    }
    return segment;
  };
  const userSegment = (user: Practitioner): string => {
    let segment = users.get(user);
    if (segment === undefined) {
      // The bench's users carry one identifier, in Epic's EMP system: the user id (CLARITY_EMP.USER_ID).
      segment = [user.identifier?.[0]?.value ?? user.id ?? '', user.name?.[0]?.family ?? '', user.name?.[0]?.given?.[0] ?? ''].join('\t');
      users.set(user, segment);
    }
    return segment;
  };
  return {
    line(event) {
      if (event.outcome !== undefined && event.outcome !== '0') return undefined;
      const requestor = event.agent?.find((agent) => agent.requestor === true);
      const patientRef = event.entity?.find((entity) => entity.what?.reference?.startsWith('Patient/'))?.what?.reference;
      const patient = patientRef ? lookup.get(patientRef) : undefined;
      const userRef = requestor?.who?.reference;
      const user = userRef ? lookup.get(userRef) : undefined;
      if (patient?.resourceType !== 'Patient' || user?.resourceType !== 'Practitioner' || !requestor) return undefined;
      const btg = event.purposeOfEvent?.find((concept) => concept.coding?.some((coding) => coding.code === 'BTG'));
      const login = requestor.altId && LOGIN.test(requestor.altId) ? requestor.altId : '';
      return [
        event.recorded,
        event.subtype?.[0]?.display ?? '',
        requestor.network?.address ?? '',
        event.type?.display ?? '',
        event.action === 'R' ? 'Read/View/Print' : '',
        patientSegment(patient),
        '',
        btg ? 'Emergency Override' : '',
        btg?.text ?? '',
        login,
        userSegment(user),
      ].join('\t');
    },
  };
}

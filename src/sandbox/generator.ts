/**
 * Deterministic, seeded, Epic-shaped sandbox data: practitioners, patients and audit events with O(1) random access,
 * so a FHIR backend can serve any page of a million events without materialising them. Same seed, same bytes.
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, CodeableConcept, Patient, Practitioner } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { CODE_SYSTEMS, SANDBOX_IDS } from './epic-ids.js';
import { PATIENT_KIND, PRACTITIONER_KIND, loginOf, patientAt, practitionerAt, type PeopleOptions } from './generator-people.js';
import { entityId, rngFor, type Rng } from './generator-random.js';
import { BTG_EXPLANATIONS, METRICS } from './generator-words.js';

export const EVENT_KIND = 'A';

export interface GeneratorOptions {
  readonly seed: number;
  readonly practitioners: number;
  readonly patients: number;
  readonly events: number;
  /** Events spread over [start, end) in ascending time (ISO instants). */
  readonly start: string;
  readonly end: string;
  /** Share of events that break the glass (purposeOfUse BTG). Default 0.02. */
  readonly btgRate?: number;
  /** Share of patient searches (no patient: the mapping skips them). Default 0.05. */
  readonly searchRate?: number;
  /** Share of failed accesses (outcome 8: skipped by default). Default 0.01. */
  readonly failureRate?: number;
  /** Share of events touching two patients (one row each). Default 0.01. */
  readonly multiPatientRate?: number;
  /** Share of practitioners without email or EMP login (their rows are rejected). Default 0.005. */
  readonly noLoginRate?: number;
  /** Put a unique 'CANARY…' marker in every PHI value, for log-leak tests. */
  readonly canary?: boolean;
}

export interface EventDescription {
  readonly patientIds: string[];
  readonly practitionerId: string;
  readonly btg: boolean;
  readonly failure: boolean;
  readonly search: boolean;
}

export interface GeneratedDataset {
  readonly options: GeneratorOptions;
  practitionerAt(i: number): Practitioner;
  patientAt(i: number): Patient;
  eventAt(i: number): AuditEvent;
  practitioners(): Generator<Practitioner>;
  patients(): Generator<Patient>;
  events(): Generator<AuditEvent>;
  /** Index of the first event recorded at or after the instant (binary search over the timeline). */
  firstEventAtOrAfter(isoInstant: string): number;
  describeEvent(i: number): EventDescription;
  recordedAt(i: number): number;
}

export function generateDataset(options: GeneratorOptions): GeneratedDataset {
  validate(options);
  const startMs = Date.parse(options.start);
  const stepMs = (Date.parse(options.end) - startMs) / Math.max(1, options.events);
  const people: PeopleOptions = { seed: options.seed, noLoginRate: options.noLoginRate ?? 0.005, canary: options.canary ?? false };
  // Whole milliseconds, strictly increasing: event i sits in [start + i·step, start + (i+0.9)·step).
  const recordedAt = (i: number): number => Math.floor(startMs + (i + rngFor(options.seed, 'time', i).next() * 0.9) * stepMs);
  const describe = (i: number): EventDescription => describeEvent(options, i);
  const dataset: GeneratedDataset = {
    options,
    practitionerAt: (i) => practitionerAt(people, checkIndex(i, options.practitioners, 'practitioner')),
    patientAt: (i) => patientAt(people, checkIndex(i, options.patients, 'patient')),
    eventAt: (i) => buildEvent(options, people, checkIndex(i, options.events, 'event'), recordedAt(i), describe(i)),
    *practitioners() {
      for (let i = 0; i < options.practitioners; i++) yield practitionerAt(people, i);
    },
    *patients() {
      for (let i = 0; i < options.patients; i++) yield patientAt(people, i);
    },
    *events() {
      for (let i = 0; i < options.events; i++) yield buildEvent(options, people, i, recordedAt(i), describe(i));
    },
    firstEventAtOrAfter(isoInstant) {
      const t = Date.parse(isoInstant);
      let lo = 0;
      let hi = options.events;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (recordedAt(mid) < t) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    },
    describeEvent: (i) => describe(checkIndex(i, options.events, 'event')),
    recordedAt,
  };
  return dataset;
}

function describeEvent(options: GeneratorOptions, i: number): EventDescription {
  const rng = rngFor(options.seed, 'shape', i);
  const failure = rng.chance(options.failureRate ?? 0.01);
  const search = rng.chance(options.searchRate ?? 0.05);
  const btg = !search && rng.chance(options.btgRate ?? 0.02);
  const first = rng.int(options.patients);
  const second = !search && rng.chance(options.multiPatientRate ?? 0.01) ? (first + 1 + rng.int(options.patients - 1)) % options.patients : undefined;
  const patients = search ? [] : second === undefined || second === first ? [first] : [first, second];
  return {
    patientIds: patients.map((p) => entityId(options.seed, PATIENT_KIND, p)),
    practitionerId: entityId(options.seed, PRACTITIONER_KIND, rng.int(options.practitioners)),
    btg, failure, search,
  };
}

function buildEvent(options: GeneratorOptions, people: PeopleOptions, i: number, recordedMs: number, shape: EventDescription): AuditEvent {
  const rng = rngFor(options.seed, EVENT_KIND, i);
  const metric = rng.pick(METRICS);
  const recorded = new Date(recordedMs).toISOString();
  const practitionerIndex = Number.parseInt(shape.practitionerId.slice(2, 9), 36);
  const login = loginOf(people, practitionerIndex);
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    id: entityId(options.seed, EVENT_KIND, i),
    meta: { versionId: '1', lastUpdated: recorded },
    type: shape.search
      ? { system: CODE_SYSTEMS.dicom, code: '110112', display: 'Query' }
      : { system: CODE_SYSTEMS.dicom, code: '110110', display: 'Patient Record' },
    subtype: [shape.search ? { system: 'urn:epic:metric', code: 'PATIENT_SEARCH', display: 'Patient Search' } : { system: 'urn:epic:metric', code: metric.code, display: metric.display }],
    action: shape.search ? 'E' : metric.action,
    period: { start: periodStart(recordedMs, rng), end: recorded },
    recorded,
    outcome: shape.failure ? '8' : '0',
    agent: [requestor(shape, login, rng), { type: { coding: [{ system: CODE_SYSTEMS.dicom, code: '110150', display: 'Application' }] }, who: { display: 'Epic Hyperspace' }, requestor: false }],
    source: { site: 'Sandbox Medical Center', observer: { display: 'Epic' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    entity: shape.search ? [searchEntity()] : shape.patientIds.map(patientEntity),
  };
  return event;
}

/** period.start a little before recorded, sometimes with 7 fractional digits (FHIR allows any): the mapper must keep them. */
function periodStart(recordedMs: number, rng: Rng): string {
  const iso = new Date(recordedMs - rng.int(2000)).toISOString();
  return rng.chance(0.2) ? iso.replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}${String(rng.int(10_000)).padStart(4, '0')}Z`) : iso;
}

function requestor(shape: EventDescription, login: string | undefined, rng: Rng): AuditEventAgent {
  const agent: AuditEventAgent = {
    type: { coding: [{ system: CODE_SYSTEMS.securityRole, code: 'humanuser', display: 'human user' }] },
    who: { reference: `Practitioner/${shape.practitionerId}` },
    requestor: true,
    network: { address: `${SANDBOX_IDS.workstationPrefix}-${1 + rng.int(6)}F-${String(rng.int(400)).padStart(4, '0')}`, type: '1' },
  };
  if (login) agent.altId = login;
  if (shape.btg) agent.purposeOfUse = btgPurpose(rng);
  return agent;
}

function btgPurpose(rng: Rng): CodeableConcept[] {
  return [
    { coding: [{ system: CODE_SYSTEMS.actReason, code: 'BTG', display: 'break the glass' }], text: rng.pick(BTG_EXPLANATIONS) },
    { coding: [{ system: CODE_SYSTEMS.localReason, code: rng.pick(['1', '2', '3']), display: rng.pick(['Emergency Care', 'Direct Patient Care', 'Covering Provider']) }] },
  ];
}

function patientEntity(patientId: string): AuditEventEntity {
  return {
    what: { reference: `Patient/${patientId}` },
    type: { system: CODE_SYSTEMS.entityType, code: '1', display: 'Person' },
    role: { system: CODE_SYSTEMS.objectRole, code: '1', display: 'Patient' },
  };
}

function searchEntity(): AuditEventEntity {
  return {
    type: { system: CODE_SYSTEMS.entityType, code: '2', display: 'System Object' },
    role: { system: CODE_SYSTEMS.objectRole, code: '24', display: 'Query' },
    query: Buffer.from('Patient?name=[redacted]').toString('base64'),
  };
}

function checkIndex(i: number, count: number, what: string): number {
  if (!Number.isInteger(i) || i < 0 || i >= count) throw new RangeError(`${what} index ${i} is outside 0…${count - 1}`);
  return i;
}

function validate(options: GeneratorOptions): void {
  const problems: string[] = [];
  for (const key of ['practitioners', 'patients'] as const) if (!(Number.isInteger(options[key]) && options[key] >= 1)) problems.push(`${key} must be a whole number ≥ 1, got ${options[key]}`);
  if (!(Number.isInteger(options.events) && options.events >= 0)) problems.push(`events must be a whole number ≥ 0, got ${options.events}`);
  if (!(Date.parse(options.start) < Date.parse(options.end))) problems.push(`start (${options.start}) must be an instant before end (${options.end})`);
  if (problems.length) throw new BridgeError('BRG_ERR_INPUT_INVALID', `Invalid sandbox data options: ${problems.join('; ')}.`);
}

/**
 * Epic-shaped FHIR R4 AuditEvents: one access-log entry each (type DCM 110110 "Patient Record", subtype = the Epic
 * metric, action, period.start = ACCESS_TIME, recorded = ACCESS_INSTANT, both mostly in the organisation's local
 * offset with DST and sometimes UTC; meta.lastUpdated the same instant in UTC), the user as the requesting agent with their
 * EMP login as altId and their workstation, break-the-glass as purposeOfUse BTG, the patient(s) as entities; searches
 * (110112 "Query") carry a query entity and no patient. Field choices follow docs/mapping.md §3–§7.
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, CodeableConcept, Coding, Reference } from 'fhir/r4.js';
import { CODE_SYSTEMS, SANDBOX_IDS } from './epic-ids.js';
import { hasPractitioner, type PeopleContext, practitionerLogin, userDisplay } from './generator-practitioners.js';
import { entityId, ID_KIND, type Rng, rngFor, STREAM, streamSeed } from './generator-random.js';
import { formatPeriodStart, formatRecorded } from './generator-time.js';
import { BTG_EXPLANATIONS, BTG_REASONS, DEPARTMENTS, METRICS, type Metric, SEARCH_METRIC } from './generator-words.js';

/** Dataset sizes and rates, defaults resolved. */
export interface EventContext {
  readonly people: PeopleContext;
  readonly practitioners: number;
  readonly patients: number;
  readonly btgRate: number;
  readonly searchRate: number;
  readonly failureRate: number;
  readonly multiPatientRate: number;
  /** Device ids of the EHR application (agent[1]) and the audit-log observer (source.observer). */
  readonly devices: { readonly application: string; readonly observer: string };
}

/** Every choice an event makes, drawn in a fixed order from the event's own stream. */
export interface EventShape {
  readonly practitioner: number;
  readonly patients: readonly number[];
  readonly search: boolean;
  readonly btg: boolean;
  readonly failure: boolean;
  /** For a break-the-glass event, which signals it carries (btgSignalOf); undefined otherwise. */
  readonly btgSignal: BtgSignal | undefined;
  readonly metric: Metric;
  readonly workstation: { readonly address: string; readonly department: string } | undefined;
  /** The stream, positioned after the shape draws, for the remaining details. */
  readonly rng: Rng;
}

const PANEL_SIZE = 40;

export function eventShape(ctx: EventContext, index: number): EventShape {
  const rng = rngFor(ctx.people.seed, STREAM.event, index);
  // Flags first, always drawn, so changing one rate never reshuffles the rest of the data.
  const search = rng.chance(ctx.searchRate);
  const btgDraw = rng.chance(ctx.btgRate);
  const failure = rng.chance(ctx.failureRate);
  const multiDraw = rng.chance(ctx.multiPatientRate);
  // A few users do most of the work: skew towards low indexes.
  const practitioner = Math.min(ctx.practitioners - 1, Math.floor(ctx.practitioners * rng.next() ** 1.6));
  const first = pickPatient(ctx, rng, practitioner);
  const second = (first + 1 + rng.int(Math.max(1, ctx.patients - 1))) % ctx.patients;
  const multi = !search && multiDraw && ctx.patients > 1;
  const metric = rng.weighted(METRICS, (m) => m.weight);
  const workstation = pickWorkstation(ctx, rng, practitioner);
  const btg = !search && btgDraw;
  return {
    practitioner,
    patients: search ? [] : multi ? [first, second] : [first],
    search,
    btg,
    failure,
    btgSignal: btg ? btgSignalOf(ctx, index) : undefined,
    metric,
    workstation,
    rng,
  };
}

/**
 * Break-the-glass reaches FHIR through two signals (docs/mapping.md §6.1): the agent's v3-ActReason BTG purpose of use
 * and the DICOM 110127 "Emergency Override Started" subtype. Which an interface sends varies with its build and
 * version, so not every event carries both: 70% both, 20% the purpose of use only (the subtype is then the access
 * metric), 10% the subtype only. From a stream of its own, so adding it reshuffled nothing else.
 */
export type BtgSignal = 'both' | 'purpose' | 'subtype';

function btgSignalOf(ctx: EventContext, index: number): BtgSignal {
  const draw = rngFor(ctx.people.seed, STREAM.btgSignal, index).next();
  return draw < 0.7 ? 'both' : draw < 0.9 ? 'purpose' : 'subtype';
}

/** Users mostly open charts from their own panel of patients (repeat accesses, as in a real access log). */
function pickPatient(ctx: EventContext, rng: Rng, practitioner: number): number {
  const fromPanel = rng.chance(0.7);
  const offset = rng.int(Math.min(PANEL_SIZE, ctx.patients));
  const anyone = rng.int(ctx.patients);
  if (!fromPanel) return anyone;
  return (streamSeed(ctx.people.seed, STREAM.patientPanel, practitioner) + offset) % ctx.patients;
}

/** Usually the user's own workstation; 2% of events come from no workstation (remote access). */
function pickWorkstation(ctx: EventContext, rng: Rng, practitioner: number): EventShape['workstation'] {
  const none = rng.chance(0.02);
  const home = rng.chance(0.7);
  const h = home ? streamSeed(ctx.people.seed, STREAM.workstationHome, practitioner) : Math.floor(rng.next() * 0x1_0000_0000);
  if (none) return undefined;
  const floor = 1 + (h % DEPARTMENTS.length);
  const number = String((h >>> 8) % 1000).padStart(4, '0');
  return { address: `${SANDBOX_IDS.workstationPrefix}-${floor}F-${number}`, department: DEPARTMENTS[floor - 1] ?? 'EMERGENCY DEPT' };
}

export function buildEvent(ctx: EventContext, index: number, recordedMs: number, shape: EventShape): AuditEvent {
  const { rng } = shape;
  const seed = ctx.people.seed;
  const recorded = formatRecorded(recordedMs, rngFor(seed, STREAM.recordedFormat, index));
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    id: entityId(seed, ID_KIND.event, index),
    // A server stamps lastUpdated itself, in UTC: the same instant as recorded, so `_lastUpdated` windows match `date`.
    meta: { versionId: '1', lastUpdated: new Date(recordedMs).toISOString() },
    type: shape.search ? dicom('110112', 'Query') : dicom('110110', 'Patient Record'),
    subtype: [subtypeOf(shape)],
    action: shape.search || shape.btg ? 'E' : shape.metric.action,
    period: { start: formatPeriodStart(recordedMs, rng) },
    recorded,
    outcome: shape.failure ? '8' : '0',
    ...(shape.failure ? { outcomeDesc: 'Security point check failed' } : {}),
    agent: [requestor(ctx, shape), application(ctx.devices.application)],
    source: {
      site: 'SANDBOX MEDICAL CENTER',
      observer: { reference: `Device/${ctx.devices.observer}`, display: 'Epic Access Log' },
      type: [{ system: CODE_SYSTEMS.sourceType, code: '4', display: 'Application Server' }],
    },
    entity: shape.search ? [searchEntity(shape.rng)] : shape.patients.map((p) => patientEntity(entityId(seed, ID_KIND.patient, p))),
  };
  return event;
}

function dicom(code: string, display: string): Coding {
  return { system: CODE_SYSTEMS.dicom, code, display };
}

function subtypeOf(shape: EventShape): Coding {
  if (shape.search) return { system: CODE_SYSTEMS.accessMetric, ...SEARCH_METRIC };
  // DICOM 110127 is the break-glass event (docs/mapping.md §6.1).
  if (shape.btg && shape.btgSignal !== 'purpose') return dicom('110127', 'Emergency Override Started');
  return { system: CODE_SYSTEMS.accessMetric, code: shape.metric.code, display: shape.metric.display };
}

/**
 * The requesting user. A user with a provider record is a literal Practitioner reference; one without (clerks, billing
 * and HIM staff: no Practitioner exists) is named by their EMP identifier and display only, and one of those without
 * a login by the display alone.
 */
function requestor(ctx: EventContext, shape: EventShape): AuditEventAgent {
  const login = practitionerLogin(ctx.people, shape.practitioner);
  const who: Reference = hasPractitioner(ctx.people, shape.practitioner)
    ? { reference: `Practitioner/${entityId(ctx.people.seed, ID_KIND.practitioner, shape.practitioner)}` }
    : {
        ...(login ? { identifier: { system: SANDBOX_IDS.empSystem, value: login } } : {}),
        display: userDisplay(ctx.people, shape.practitioner),
      };
  const agent: AuditEventAgent = {
    type: { coding: [{ system: CODE_SYSTEMS.securityRole, code: 'humanuser', display: 'human user' }] },
    who,
    ...(login ? { altId: login } : {}),
    requestor: true,
  };
  if (shape.workstation) {
    // Epic's department is the workstation's (CLARITY_LWS → CLARITY_DEP): the user's location, not the patient's.
    agent.location = { display: shape.workstation.department };
    agent.network = { address: shape.workstation.address, type: '1' };
  }
  if (shape.btg && shape.btgSignal !== 'subtype') agent.purposeOfUse = btgPurpose(shape.rng);
  return agent;
}

/**
 * v3-ActReason BTG with the user's free-text explanation as its text, plus the chosen reason as a second concept
 * (Epic ZC_BTG_REASON). Epic allows both to be empty, so 10% lack the reason and 10% the explanation.
 */
function btgPurpose(rng: Rng): CodeableConcept[] {
  const explanation = rng.chance(0.9) ? rng.pick(BTG_EXPLANATIONS) : undefined;
  const reason = rng.chance(0.9) ? rng.pick(BTG_REASONS) : undefined;
  const btg: CodeableConcept = { coding: [{ system: CODE_SYSTEMS.actReason, code: 'BTG', display: 'break the glass' }] };
  if (explanation) btg.text = explanation;
  if (!reason) return [btg];
  return [btg, { coding: [{ system: CODE_SYSTEMS.btgReason, code: reason.code, display: reason.display }], text: reason.display }];
}

function application(deviceId: string): AuditEventAgent {
  return {
    type: { coding: [dicom('110150', 'Application')] },
    who: { reference: `Device/${deviceId}`, display: 'Epic Hyperspace' },
    requestor: false,
  };
}

function patientEntity(patientId: string): AuditEventEntity {
  return {
    what: { reference: `Patient/${patientId}` },
    type: { system: CODE_SYSTEMS.entityType, code: '1', display: 'Person' },
    role: { system: CODE_SYSTEMS.objectRole, code: '1', display: 'Patient' },
  };
}

const SEARCHES = ['Patient?family=*&given=*', 'Patient?birthdate=*', 'Patient?identifier=*', 'Patient?phone=*'] as const;

/** The query is base64 (R4 entity.query); values are masked so no search term is PHI. */
function searchEntity(rng: Rng): AuditEventEntity {
  return {
    type: { system: CODE_SYSTEMS.entityType, code: '2', display: 'System Object' },
    role: { system: CODE_SYSTEMS.objectRole, code: '24', display: 'Query' },
    query: Buffer.from(rng.pick(SEARCHES)).toString('base64'),
  };
}

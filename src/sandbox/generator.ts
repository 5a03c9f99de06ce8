/**
 * Deterministic, seeded, Epic-shaped sandbox data: practitioners, patients and audit events with O(1) random access,
 * so a FHIR backend can serve any page of a million events without materialising them. Same seed, same bytes.
 * See: docs/epic-smart.md §7 (identifiers), docs/mapping.md §3–§7 (what the mapper reads).
 */
import type { AuditEvent, Patient, Practitioner } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { type BtgSignal, buildEvent, type EventContext, eventShape } from './generator-events.js';
import { patientAt } from './generator-patients.js';
import { hasPractitioner, practitionerAt } from './generator-practitioners.js';
import { entityId, ID_KIND, rngFor, STREAM, streamSeed } from './generator-random.js';
import { parseFhirDateTime } from './generator-time.js';

export interface GeneratorOptions {
  /** Any safe integer; the same seed gives byte-identical data. */
  readonly seed: number;
  /** Number of practitioners (Epic users), 1 … 10,000,000. */
  readonly practitioners: number;
  /** Number of patients, 1 … 10,000,000. */
  readonly patients: number;
  /** Number of audit events, 0 … 2,147,483,647 (generated lazily). */
  readonly events: number;
  /** ISO instant: events are spread over [start, end) in ascending `recorded` time. Example '2026-11-01T00:00:00Z'. */
  readonly start: string;
  readonly end: string;
  /** Share of non-search events that break the glass (purposeOfUse BTG, subtype DCM 110127). Default 0.02. */
  readonly btgRate?: number;
  /** Share of patient searches (no patient entity: the mapping skips them). Default 0.05. */
  readonly searchRate?: number;
  /** Share of failed accesses (outcome 8: skipped by default). Default 0.01. */
  readonly failureRate?: number;
  /** Share of non-search events touching two patients (one row each). Default 0.01. */
  readonly multiPatientRate?: number;
  /** Share of practitioners without email or EMP login (their rows are rejected). Default 0.005. */
  readonly noLoginRate?: number;
  /**
   * Share of users without a provider record, so without a Practitioner (clerks, billing, HIM staff): their events
   * name them by EMP identifier and display only. Default 0.1.
   */
  readonly nonProviderRate?: number;
  /** Default false. Every name, address line, city, MRN, login and email carries a unique 'CANARY'+hex token. */
  readonly canary?: boolean;
}

export interface EventDescription {
  readonly patientIds: string[];
  /** The user's Practitioner id; undefined for a user without one (named by identifier and display). */
  readonly practitionerId: string | undefined;
  readonly btg: boolean;
  /** Which break-the-glass signals the event carries, when it is one. */
  readonly btgSignal: BtgSignal | undefined;
  readonly failure: boolean;
  readonly search: boolean;
}

export interface GeneratedDataset {
  readonly options: GeneratorOptions;
  /** i in [0, practitioners): deterministic random access; undefined for a user without a provider record. */
  practitionerAt(i: number): Practitioner | undefined;
  patientAt(i: number): Patient;
  /** eventAt(i).recorded is non-decreasing in i. */
  eventAt(i: number): AuditEvent;
  /** Streaming: one resource at a time, never all in memory. Only the users that have a Practitioner. */
  practitioners(): Generator<Practitioner>;
  patients(): Generator<Patient>;
  events(): Generator<AuditEvent>;
  /** Index of the first event recorded at or after the instant (binary search over the timeline); `events` if none. */
  firstEventAtOrAfter(isoInstant: string): number;
  /** For tests: what event i references, so expected rows can be computed independently of the mapper. */
  describeEvent(i: number): EventDescription;
}

const MAX_PEOPLE = 10_000_000;
const MAX_EVENTS = 0x7fff_ffff;
const RATE_DEFAULTS = { btgRate: 0.02, searchRate: 0.05, failureRate: 0.01, multiPatientRate: 0.01, noLoginRate: 0.005, nonProviderRate: 0.1 } as const;

export function generateDataset(options: GeneratorOptions): GeneratedDataset {
  const { startMs, endMs } = validate(options);
  const frozen = Object.freeze({ ...options });
  const people = {
    seed: options.seed,
    canary: options.canary ?? false,
    noLoginRate: options.noLoginRate ?? RATE_DEFAULTS.noLoginRate,
    nonProviderRate: options.nonProviderRate ?? RATE_DEFAULTS.nonProviderRate,
    startMs,
  };
  const ctx: EventContext = {
    people,
    practitioners: options.practitioners,
    patients: options.patients,
    btgRate: options.btgRate ?? RATE_DEFAULTS.btgRate,
    searchRate: options.searchRate ?? RATE_DEFAULTS.searchRate,
    failureRate: options.failureRate ?? RATE_DEFAULTS.failureRate,
    multiPatientRate: options.multiPatientRate ?? RATE_DEFAULTS.multiPatientRate,
    devices: { application: entityId(options.seed, ID_KIND.device, 0), observer: entityId(options.seed, ID_KIND.device, 1) },
  };
  const recordedMs = timeline(options, startMs, endMs);
  const event = (i: number): AuditEvent => buildEvent(ctx, i, recordedMs(i), eventShape(ctx, i));
  const at =
    <T>(count: number, what: string, make: (i: number) => T) =>
    (i: number): T =>
      make(checkIndex(i, count, what));
  return {
    options: frozen,
    practitionerAt: at(options.practitioners, 'practitioner', (i) => practitionerAt(people, i)),
    patientAt: at(options.patients, 'patient', (i) => patientAt(people, i)),
    eventAt: at(options.events, 'event', event),
    practitioners: () => present(stream(options.practitioners, (i) => practitionerAt(people, i))),
    patients: () => stream(options.patients, (i) => patientAt(people, i)),
    events: () => stream(options.events, event),
    firstEventAtOrAfter: (isoInstant) => firstAtOrAfter(options.events, recordedMs, instantMs(isoInstant)),
    describeEvent: at(options.events, 'event', (i) => describe(ctx, i)),
  };
}

/** Share of the timeline's seconds whose events are recorded as whole seconds (no fraction in the text). */
const WHOLE_SECOND_SHARE = 0.4;

/**
 * Event i is recorded at start + (i + 0.9·u)·step, u ∈ [0, 1) seeded per index, floored to whole milliseconds:
 * a small forward jitter that keeps the order (i + 0.9 < i + 1) and stays inside [start, end). In some seconds
 * (chosen per second, so every event of that second alike) the time is floored to the whole second: flooring all of
 * a second's events keeps the order, since they still fall after every earlier second and before every later one.
 */
function timeline(options: GeneratorOptions, startMs: number, endMs: number): (i: number) => number {
  const stepMs = (endMs - startMs) / Math.max(1, options.events);
  return (i) => {
    const jitter = rngFor(options.seed, STREAM.eventTime, i).next() * 0.9;
    const ms = Math.min(endMs - 1, Math.floor(startMs + (i + jitter) * stepMs));
    const second = Math.floor(ms / 1000);
    const whole = streamSeed(options.seed, STREAM.recordedPrecision, second) / 0x1_0000_0000 < WHOLE_SECOND_SHARE;
    return whole ? Math.max(startMs, second * 1000) : ms;
  };
}

function firstAtOrAfter(count: number, recordedMs: (i: number) => number, t: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (recordedMs(mid) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function describe(ctx: EventContext, i: number): EventDescription {
  const shape = eventShape(ctx, i);
  const seed = ctx.people.seed;
  return {
    patientIds: shape.patients.map((p) => entityId(seed, ID_KIND.patient, p)),
    practitionerId: hasPractitioner(ctx.people, shape.practitioner) ? entityId(seed, ID_KIND.practitioner, shape.practitioner) : undefined,
    btg: shape.btg,
    btgSignal: shape.btgSignal,
    failure: shape.failure,
    search: shape.search,
  };
}

function* stream<T>(count: number, make: (i: number) => T): Generator<T> {
  for (let i = 0; i < count; i++) yield make(i);
}

function* present<T>(items: Iterable<T | undefined>): Generator<T> {
  for (const item of items) if (item !== undefined) yield item;
}

/** Epoch ms of an instant, rounded up to a whole millisecond (recorded times are whole ms). */
function instantMs(isoInstant: string): number {
  const range = /T\d{2}:\d{2}/.test(isoInstant) ? parseFhirDateTime(isoInstant) : undefined;
  if (!range) throw new BridgeError('BRG_ERR_INPUT_INVALID', `firstEventAtOrAfter expects an ISO instant such as 2026-11-01T00:00:00Z, got "${isoInstant}".`);
  return range.startMs;
}

function checkIndex(i: number, count: number, what: string): number {
  if (!Number.isInteger(i) || i < 0 || i >= count) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `The ${what} index must be a whole number in 0…${count - 1}, got ${i}.`);
  }
  return i;
}

function validate(options: GeneratorOptions): { startMs: number; endMs: number } {
  const problems: string[] = [];
  const whole = (key: 'practitioners' | 'patients' | 'events', min: number, max: number): void => {
    const value = options[key];
    if (!Number.isInteger(value) || value < min || value > max) problems.push(`${key} must be a whole number in ${min}…${max}, got ${String(value)}`);
  };
  if (!Number.isSafeInteger(options.seed)) problems.push(`seed must be a safe integer, got ${String(options.seed)}`);
  whole('practitioners', 1, MAX_PEOPLE);
  whole('patients', 1, MAX_PEOPLE);
  whole('events', 0, MAX_EVENTS);
  for (const key of Object.keys(RATE_DEFAULTS) as Array<keyof typeof RATE_DEFAULTS>) {
    const rate = options[key];
    if (rate !== undefined && !(rate >= 0 && rate <= 1)) problems.push(`${key} must be a number in 0…1, got ${String(rate)}`);
  }
  const start = parseFhirDateTime(options.start);
  const end = parseFhirDateTime(options.end);
  if (!start) problems.push(`start must be an ISO instant such as 2026-11-01T00:00:00Z, got "${options.start}"`);
  if (!end) problems.push(`end must be an ISO instant such as 2026-11-02T00:00:00Z, got "${options.end}"`);
  const startMs = start?.startMs ?? 0;
  const endMs = end?.startMs ?? 0;
  if (start && end && !(startMs < endMs)) problems.push(`start (${options.start}) must be an instant before end (${options.end})`);
  if (problems.length > 0) throw new BridgeError('BRG_ERR_INPUT_INVALID', `Invalid sandbox data options: ${problems.join('; ')}.`);
  return { startMs, endMs };
}

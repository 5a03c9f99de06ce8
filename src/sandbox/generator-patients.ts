/**
 * Patients shaped like Epic's: an MRN (IIT 'EPI' with a v2-0203 MR coding), the space-padded internal EPT id, an
 * official name, sometimes a nickname and an ended maiden name, a home address and sometimes an ended earlier home
 * address listed first — so the mapper must choose what was valid at the event time (auditevent-mapping.md §5).
 */
import type { Address, HumanName, Patient } from 'fhir/r4.js';
import { CODE_SYSTEMS, SANDBOX_IDS } from './epic-ids.js';
import type { PeopleContext } from './generator-practitioners.js';
import { ID_KIND, STREAM, canaryToken, entityId, rngFor, type Rng } from './generator-random.js';
import { dayAfter, yearsBefore } from './generator-time.js';
import { CJK_NAMES, FAMILY, GIVEN_FEMALE, GIVEN_MALE, NICKNAMES, PATIENT_SUFFIXES, PLACES, SECOND_LINES, STREETS } from './generator-words.js';

/** Canary field codes for patients (practitioners use 0x21–0x3f). */
const FIELD = {
  given: 0x01, middle: 0x02, family: 0x03, nickname: 0x04, maiden: 0x05,
  line1: 0x06, line2: 0x07, city: 0x08, oldLine1: 0x09, oldLine2: 0x0a, oldCity: 0x0b, mrn: 0x0c,
} as const;
/** MRNs are 9 digits with leading zeros ('000203713'): a string, never a number. */
const MRN_BASE = 203_713;
const MRN_DIGITS = 9;
const INTERNAL_BASE = 6_129;

type Marker = (value: string, field: number) => string;

export function patientAt(ctx: PeopleContext, index: number): Patient {
  const rng = rngFor(ctx.seed, STREAM.patient, index);
  const mark: Marker = (value, field) => (ctx.canary ? `${value} ${canaryToken(ctx.seed, field, index)}` : value);
  const female = rng.chance(0.52);
  const names = patientNames(ctx, rng, female, mark);
  const mrnToken = ctx.canary ? canaryToken(ctx.seed, FIELD.mrn, index) : '';
  const patient: Patient = {
    resourceType: 'Patient',
    id: entityId(ctx.seed, ID_KIND.patient, index),
    identifier: [
      {
        use: 'usual',
        type: { coding: [{ system: CODE_SYSTEMS.v20203, code: 'MR', display: 'Medical record number' }], text: 'EPI' },
        system: SANDBOX_IDS.mrnSystem,
        value: `${String(MRN_BASE + index).padStart(MRN_DIGITS, '0')}${mrnToken}`,
      },
      // Epic pads the internal id to 10 characters (Epic sandbox: '     Z6129').
      { use: 'usual', type: { text: 'INTERNAL' }, system: SANDBOX_IDS.patientInternalSystem, value: `Z${INTERNAL_BASE + index}`.padStart(10, ' ') },
    ],
    active: true,
    name: names,
    gender: female ? 'female' : rng.chance(0.98) ? 'male' : 'other',
    birthDate: yearsBefore(ctx.startMs, 1 + rng.int(95) + rng.next()),
  };
  const addresses = patientAddresses(ctx, rng, mark);
  if (addresses.length > 0) patient.address = addresses;
  return patient;
}

function patientNames(ctx: PeopleContext, rng: Rng, female: boolean, mark: Marker): HumanName[] {
  const cjk = rng.chance(0.03) ? rng.pick(CJK_NAMES) : undefined;
  const givenList = female ? GIVEN_FEMALE : GIVEN_MALE;
  const family = mark(cjk?.family ?? rng.pick(FAMILY), FIELD.family);
  const first = cjk?.given ?? rng.pick(givenList);
  const given = [mark(first, FIELD.given)];
  const middle = rng.pick(givenList);
  if (!cjk && middle !== first && rng.chance(0.35)) given.push(mark(middle, FIELD.middle));
  const suffix = !cjk && !female && rng.chance(0.04) ? rng.pick(PATIENT_SUFFIXES) : undefined;
  const text = cjk ? `${family}${given.join('')}` : [...given, family, ...(suffix ? [suffix] : [])].join(' ');
  const official: HumanName = { use: 'official', text, family, given, ...(suffix ? { suffix: [suffix] } : {}) };
  const others: HumanName[] = [];
  if (rng.chance(0.12)) others.push({ use: 'usual', given: [mark(rng.pick(NICKNAMES), FIELD.nickname)] });
  if (female && rng.chance(0.15)) {
    const end = yearsBefore(ctx.startMs, 2 + rng.int(25));
    others.push({ use: 'maiden', family: mark(rng.pick(FAMILY), FIELD.maiden), given, period: { end } });
  }
  // Usually official first; sometimes last, so only a use-ranked choice finds it.
  return rng.chance(0.2) ? [...others, official] : [official, ...others];
}

/** 1% have no address (its cells stay empty with a warning); 20% list an ended earlier home address first. */
function patientAddresses(ctx: PeopleContext, rng: Rng, mark: Marker): Address[] {
  if (rng.chance(0.01)) return [];
  const current = homeAddress(rng, mark, { line1: FIELD.line1, line2: FIELD.line2, city: FIELD.city });
  if (!rng.chance(0.2)) return [current];
  const moved = yearsBefore(ctx.startMs, rng.int(6) + rng.next());
  const previous = homeAddress(rng, mark, { line1: FIELD.oldLine1, line2: FIELD.oldLine2, city: FIELD.oldCity });
  previous.period = { start: yearsBefore(ctx.startMs, 8 + rng.int(20)), end: moved };
  current.period = { start: dayAfter(moved) };
  return [previous, current];
}

function homeAddress(rng: Rng, mark: Marker, fields: { line1: number; line2: number; city: number }): Address {
  const place = rng.pick(PLACES);
  const line = [mark(`${100 + rng.int(9800)} ${rng.pick(STREETS)}`, fields.line1)];
  if (rng.chance(0.25)) line.push(mark(rng.pick(SECOND_LINES), fields.line2));
  const postalCode = rng.chance(0.3) ? `${place.zip}-${rng.digits(4)}` : place.zip;
  return { use: 'home', type: 'both', line, city: mark(place.city, fields.city), state: place.state, postalCode, country: 'US' };
}

/**
 * The patient index an identifier value would belong to, decoded in O(1) (the caller checks the resource really
 * carries it). `system` undefined = try every system this generator uses.
 */
export function patientIndexFromIdentifier(system: string | undefined, value: string): number[] {
  const candidates: number[] = [];
  if (system === undefined || system === SANDBOX_IDS.mrnSystem) {
    const mrn = /^(\d{9,10})(?:CANARY[0-9a-f]{10})?$/.exec(value);
    if (mrn?.[1] !== undefined) candidates.push(Number(mrn[1]) - MRN_BASE);
  }
  if (system === undefined || system === SANDBOX_IDS.patientInternalSystem) {
    const internal = /^ *Z(\d{1,10})$/.exec(value);
    if (internal?.[1] !== undefined) candidates.push(Number(internal[1]) - INTERNAL_BASE);
  }
  return candidates.filter((i) => Number.isSafeInteger(i) && i >= 0);
}

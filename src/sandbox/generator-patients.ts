/**
 * Patients shaped like Epic's sandbox test patients: identifiers typed by `type.text` only with Epic OIDs (Epic's
 * enterprise id 'EPIC', the EPT record id 'EXTERNAL' and space-padded 'INTERNAL', the MRN 'EPI'; sometimes a portal
 * login 'MYCHARTLOGIN', an untyped payer member id, and a merged chart's former MRN with use 'old' listed before the
 * current one), an official name, sometimes a nickname and an ended maiden name, a home address and sometimes an ended
 * earlier home address listed first: the mapper must pick by type, use and validity (docs/mapping.md §5.1–§5.3).
 */
import type { Address, HumanName, Identifier, Patient } from 'fhir/r4.js';
import { SANDBOX_IDS } from './epic-ids.js';
import type { PeopleContext } from './generator-practitioners.js';
import { canaryToken, entityId, ID_KIND, type Rng, rngFor, STREAM } from './generator-random.js';
import { dayAfter, yearsBefore } from './generator-time.js';
import { CJK_NAMES, FAMILY, GIVEN_FEMALE, GIVEN_MALE, NICKNAMES, PATIENT_SUFFIXES, PLACES, SECOND_LINES, STREETS } from './generator-words.js';

/** Canary field codes for patients (practitioners use 0x21–0x3f). */
const FIELD = {
  given: 0x01,
  middle: 0x02,
  family: 0x03,
  nickname: 0x04,
  maiden: 0x05,
  line1: 0x06,
  line2: 0x07,
  city: 0x08,
  oldLine1: 0x09,
  oldLine2: 0x0a,
  oldCity: 0x0b,
  mrn: 0x0c,
  oldMrn: 0x0d,
  myChart: 0x0e,
  payer: 0x0f,
} as const;
/** MRNs are 9 digits with leading zeros ('000203713'): a string, never a number. */
const MRN_BASE = 203_713;
const MRN_DIGITS = 9;
/** A merged chart's former MRN: 9 digits from 700000000, never equal to a current MRN. */
const OLD_MRN_BASE = 700_000_000;
const INTERNAL_BASE = 6_129;
const ENTERPRISE_BASE = 4_007;
const PAYER_BASE = 30_000_000;
/** Shares of patients with each optional identifier (drawn from their own stream, so names and addresses stay put). */
const RATES = { oldMrn: 0.04, myChart: 0.25, payer: 0.1 } as const;

type Marker = (value: string, field: number) => string;

const CANARY_SUFFIX = / ?CANARY[0-9a-f]{10}$/;
const CANARY = '(?:CANARY[0-9a-f]{10})?';
const DECODERS: ReadonlyArray<{ system: string; pattern: RegExp; index: (digits: number) => number }> = [
  { system: SANDBOX_IDS.mrnSystem, pattern: new RegExp(`^(\\d{9,10})${CANARY}$`), index: (n) => (n >= OLD_MRN_BASE ? n - OLD_MRN_BASE : n - MRN_BASE) },
  { system: SANDBOX_IDS.patientInternalSystem, pattern: /^ *Z(\d{1,10})$/, index: (n) => n - INTERNAL_BASE },
  { system: SANDBOX_IDS.enterpriseIdSystem, pattern: /^E(\d{1,10})$/, index: (n) => n - ENTERPRISE_BASE },
  { system: SANDBOX_IDS.myChartLoginSystem, pattern: new RegExp(`^MC[A-Z]+(\\d{1,10})${CANARY}$`), index: (n) => n },
  { system: SANDBOX_IDS.payerMemberSystem, pattern: new RegExp(`^W(\\d{8,10})${CANARY}$`), index: (n) => n - PAYER_BASE },
];

export function patientAt(ctx: PeopleContext, index: number): Patient {
  const rng = rngFor(ctx.seed, STREAM.patient, index);
  const mark: Marker = (value, field) => (ctx.canary ? `${value} ${canaryToken(ctx.seed, field, index)}` : value);
  const female = rng.chance(0.52);
  const names = patientNames(ctx, rng, female, mark);
  const patient: Patient = {
    resourceType: 'Patient',
    id: entityId(ctx.seed, ID_KIND.patient, index),
    // Stamped by the data set, not by whichever store loads it: an export's _since and _lastUpdated read the same time
    // from every backend and every run.
    meta: { versionId: '1', lastUpdated: new Date(ctx.startMs).toISOString() },
    identifier: patientIdentifiers(ctx, index, names),
    active: true,
    name: names,
    gender: female ? 'female' : rng.chance(0.98) ? 'male' : 'other',
    birthDate: yearsBefore(ctx.startMs, 1 + rng.int(95) + rng.next()),
  };
  const addresses = patientAddresses(ctx, rng, mark);
  if (addresses.length > 0) patient.address = addresses;
  return patient;
}

/** Epic's order: EPIC, EXTERNAL, INTERNAL, (old EPI), EPI, (MYCHARTLOGIN), (payer). Every value decodes to the index. */
function patientIdentifiers(ctx: PeopleContext, index: number, names: readonly HumanName[]): Identifier[] {
  const rng = rngFor(ctx.seed, STREAM.patientIdentifiers, index);
  const token = (field: number): string => (ctx.canary ? canaryToken(ctx.seed, field, index) : '');
  const typed = (text: string, system: string, value: string, use: Identifier['use'] = 'usual'): Identifier => ({ use, type: { text }, system, value });
  const record = `Z${INTERNAL_BASE + index}`;
  const identifiers = [
    typed('EPIC', SANDBOX_IDS.enterpriseIdSystem, `E${ENTERPRISE_BASE + index}`),
    typed('EXTERNAL', SANDBOX_IDS.patientInternalSystem, record),
    // Epic pads the internal id to 10 characters (Epic sandbox: '     Z6129').
    typed('INTERNAL', SANDBOX_IDS.patientInternalSystem, record.padStart(10, ' ')),
  ];
  if (rng.chance(RATES.oldMrn)) identifiers.push(typed('EPI', SANDBOX_IDS.mrnSystem, `${OLD_MRN_BASE + index}${token(FIELD.oldMrn)}`, 'old'));
  identifiers.push(typed('EPI', SANDBOX_IDS.mrnSystem, `${String(MRN_BASE + index).padStart(MRN_DIGITS, '0')}${token(FIELD.mrn)}`));
  if (rng.chance(RATES.myChart)) {
    // Letters of the family name without its canary token, so stripping tokens still gives the plain dataset.
    const family = (names.find((name) => name.use === 'official')?.family ?? '').replace(CANARY_SUFFIX, '');
    const letters =
      family
        .normalize('NFD')
        .replace(/[^A-Za-z]/g, '')
        .toUpperCase()
        .slice(0, 8) || 'PATIENT';
    identifiers.push(typed('MYCHARTLOGIN', SANDBOX_IDS.myChartLoginSystem, `MC${letters}${index}${token(FIELD.myChart)}`));
  }
  if (rng.chance(RATES.payer)) identifiers.push({ use: 'usual', system: SANDBOX_IDS.payerMemberSystem, value: `W${PAYER_BASE + index}${token(FIELD.payer)}` });
  return identifiers;
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
  for (const decoder of DECODERS) {
    if (system !== undefined && system !== decoder.system) continue;
    const digits = decoder.pattern.exec(value)?.[1];
    if (digits !== undefined) candidates.push(decoder.index(Number(digits)));
  }
  return candidates.filter((i) => Number.isSafeInteger(i) && i >= 0);
}

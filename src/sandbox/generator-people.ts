/** Practitioners (Epic users with EMP logins and work emails) and patients (MRNs, names, addresses) for the sandbox. */
import type { Patient, Practitioner } from 'fhir/r4.js';
import { CODE_SYSTEMS, SANDBOX_IDS } from './epic-ids.js';
import { entityId, rngFor, type Rng } from './generator-random.js';
import { CITIES, CJK_NAMES, FAMILY, GIVEN, STREETS } from './generator-words.js';

export const PRACTITIONER_KIND = 'S';
export const PATIENT_KIND = 'P';

export interface PeopleOptions {
  readonly seed: number;
  readonly noLoginRate: number;
  readonly canary: boolean;
}

/** In canary mode every PHI value carries a unique marker so leak tests can grep for it. */
function mark(value: string, rng: Rng, canary: boolean): string {
  return canary ? `${value} CANARY${rng.hex(8)}` : value;
}

interface PersonName {
  readonly given: string;
  readonly middle?: string;
  readonly family: string;
}

/** A practitioner's name, from its own stream so the login can be derived from it without drawing anything else. */
function practitionerName(options: PeopleOptions, index: number): PersonName {
  const rng = rngFor(options.seed, 'practitioner-name', index);
  const given = rng.pick(GIVEN);
  const family = rng.pick(FAMILY);
  return rng.chance(0.3) ? { given, middle: rng.pick(GIVEN), family } : { given, family };
}

/** Epic-style login from the name (first initial + family, ASCII, 8 chars) + index for uniqueness; undefined for the no-login share. */
export function loginOf(options: PeopleOptions, index: number): string | undefined {
  const rng = rngFor(options.seed, 'login', index);
  if (rng.chance(options.noLoginRate)) return undefined;
  const name = practitionerName(options, index);
  const ascii = (v: string): string => v.normalize('NFD').replace(/[^A-Za-z]/g, '');
  const login = `${ascii(name.given).slice(0, 1)}${ascii(name.family)}`.toUpperCase().slice(0, 8) + String(index);
  return options.canary ? `${login}CANARY${rng.hex(6).toUpperCase()}` : login;
}

export function practitionerAt(options: PeopleOptions, index: number): Practitioner {
  const rng = rngFor(options.seed, PRACTITIONER_KIND, index);
  const login = loginOf(options, index);
  const name = practitionerName(options, index);
  const given = [mark(name.given, rng, options.canary), ...(name.middle ? [name.middle] : [])];
  const practitioner: Practitioner = {
    resourceType: 'Practitioner',
    id: entityId(options.seed, PRACTITIONER_KIND, index),
    identifier: [
      ...(login ? [{ use: 'usual' as const, type: { text: 'EXTERNAL' }, system: SANDBOX_IDS.empSystem, value: login }] : []),
      { use: 'usual', type: { text: 'INTERNAL' }, system: SANDBOX_IDS.serSystem, value: `E${1000 + index}` },
      { system: SANDBOX_IDS.npiSystem, value: String(1_000_000_000 + ((index * 7919) % 899_999_999)) },
    ],
    active: true,
    name: [{ use: 'official', family: mark(name.family, rng, options.canary), given }],
  };
  if (login) {
    const email = `${login.toLowerCase()}@${SANDBOX_IDS.emailDomain}`;
    practitioner.telecom = [
      ...(rng.chance(0.2) ? [{ system: 'email' as const, value: `old.${email}`, use: 'work' as const, period: { end: '2020-01-31' } }] : []),
      { system: 'email', value: email, use: 'work' },
    ];
  }
  return practitioner;
}

export function patientAt(options: PeopleOptions, index: number): Patient {
  const rng = rngFor(options.seed, PATIENT_KIND, index);
  const place = rng.pick(CITIES);
  const cjk = rng.chance(0.03) ? rng.pick(CJK_NAMES) : undefined;
  const family = mark(cjk?.family ?? rng.pick(FAMILY), rng, options.canary);
  const given = [mark(cjk?.given ?? rng.pick(GIVEN), rng, options.canary), ...(rng.chance(0.4) ? [rng.pick(GIVEN)] : [])];
  const mrn = options.canary ? `CANARY${rng.hex(10)}` : String(2_000_000 + index);
  const lines = [mark(`${100 + rng.int(9800)} ${rng.pick(STREETS)}`, rng, options.canary), ...(rng.chance(0.25) ? [`Apt ${1 + rng.int(40)}${rng.pick(['A', 'B', 'C'])}`] : [])];
  const zip = rng.chance(0.3) ? `${place.zip}-${String(rng.int(10_000)).padStart(4, '0')}` : place.zip;
  const patient: Patient = {
    resourceType: 'Patient',
    id: entityId(options.seed, PATIENT_KIND, index),
    identifier: [
      { use: 'usual', type: { coding: [{ system: CODE_SYSTEMS.v20203, code: 'MR', display: 'Medical record number' }], text: 'EPI' }, system: SANDBOX_IDS.mrnSystem, value: mrn },
      { use: 'usual', type: { text: 'INTERNAL' }, system: SANDBOX_IDS.patientInternalSystem, value: ` Z${5000 + index}` },
    ],
    active: true,
    name: [{ use: 'official', family, given }],
    gender: rng.pick(['female', 'male', 'other', 'unknown'] as const),
    birthDate: `${1930 + rng.int(90)}-${String(1 + rng.int(12)).padStart(2, '0')}-${String(1 + rng.int(28)).padStart(2, '0')}`,
    address: [{ use: 'home', type: 'physical', line: lines, city: mark(place.city, rng, options.canary), state: place.state, postalCode: zip, country: 'US' }],
  };
  if (rng.chance(0.15)) patient.name?.push({ use: 'usual', given: [rng.pick(GIVEN)] });
  if (rng.chance(0.1)) patient.name?.push({ use: 'maiden', family: mark(rng.pick(FAMILY), rng, options.canary), given, period: { end: '2005-06-01' } });
  if (rng.chance(0.2)) {
    const old = rng.pick(CITIES);
    patient.address?.push({ use: 'old', line: [`${100 + rng.int(9800)} ${rng.pick(STREETS)}`], city: old.city, state: old.state, postalCode: old.zip, period: { end: '2019-12-31' } });
  }
  return patient;
}

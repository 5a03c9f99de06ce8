/**
 * Practitioners: Epic users shaped like Epic's sandbox Practitioner (docs/epic-smart.md §7.2, §7.3): identifiers typed by
 * `type.text` only — an NPI, the EMP record id (= the login, 'JSMITH12') as space-padded 'INTERNAL' and plain
 * 'EXTERNAL', the 'PROVID' provider id, the SER record id padded and plain — and a work email
 * `<login lowercase>@<emailDomain>`. A few renamed users still carry their former login as 'EXTERNAL' with use 'old',
 * listed first. The noLoginRate share has neither email nor EMP identifier, so their rows are rejected
 * (docs/mapping.md §7.1, §9.1).
 *
 * Only users linked to a provider (SER) record have a Practitioner at Epic (docs/epic-smart.md §7.3): clerks, billing
 * and HIM staff have none. The nonProviderRate share of users are such staff: no Practitioner is served for them, and
 * their events name them by their EMP identifier and display name only (generator-events.ts).
 */
import type { ContactPoint, Identifier, Practitioner } from 'fhir/r4.js';
import { SANDBOX_IDS } from './epic-ids.js';
import { canaryToken, entityId, ID_KIND, rngFor, STREAM } from './generator-random.js';
import { dayAfter, yearsBefore } from './generator-time.js';
import { FAMILY, GIVEN_FEMALE, GIVEN_MALE, PRACTITIONER_SUFFIXES } from './generator-words.js';

/** What people generation needs from the dataset options, defaults resolved. */
export interface PeopleContext {
  readonly seed: number;
  readonly canary: boolean;
  readonly noLoginRate: number;
  /** Share of users without a provider record, so without a Practitioner resource. */
  readonly nonProviderRate: number;
  /** Dataset start (epoch ms): ended names, addresses and emails end before it, so "valid at event time" is well-defined. */
  readonly startMs: number;
}

/** Canary field codes for practitioners (patients use 0x01–0x1f), so every token names one value. */
const FIELD = { given: 0x21, middle: 0x22, family: 0x23, login: 0x24, oldEmail: 0x25, oldLogin: 0x26 } as const;
const SER_BASE = 1000;
const NPI_BASE = 100_000_000;
/** Share of users with a login who were renamed and keep their former login as an 'old' identifier. */
const RENAMED_RATE = 0.05;

interface PractitionerCore {
  readonly female: boolean;
  readonly given: string;
  readonly middle: string | undefined;
  readonly family: string;
  readonly suffix: string;
  /** Login without the canary token, e.g. 'JSMITH12'; undefined for the no-login share. */
  readonly loginBase: string | undefined;
  /** No provider record: no Practitioner resource exists for this user. */
  readonly nonProvider: boolean;
}

/** The part of a practitioner that events need too (the login), from its own small stream. */
function practitionerCore(ctx: PeopleContext, index: number): PractitionerCore {
  const rng = rngFor(ctx.seed, STREAM.practitionerName, index);
  const female = rng.chance(0.5);
  const givenList = female ? GIVEN_FEMALE : GIVEN_MALE;
  const given = rng.pick(givenList);
  const second = rng.pick(givenList);
  const middle = second !== given && rng.chance(0.3) ? second : undefined;
  const family = rng.pick(FAMILY);
  const suffix = rng.pick(PRACTITIONER_SUFFIXES);
  const noLogin = rng.chance(ctx.noLoginRate);
  // From a stream of its own, so adding it reshuffled no name, login or event.
  const nonProvider = rngFor(ctx.seed, STREAM.practitionerRecord, index).chance(ctx.nonProviderRate);
  return { female, given, middle, family, suffix, loginBase: noLogin ? undefined : loginBase(given, family, index), nonProvider };
}

/** Epic-style login: first initial + up to 7 letters of the family name, ASCII upper case, + the index (unique). */
function loginBase(given: string, family: string, index: number): string {
  const letters = `${asciiLetters(given).slice(0, 1)}${asciiLetters(family).slice(0, 7)}` || 'USER';
  return `${letters}${index}`;
}

/** 'Núñez' → 'NUNEZ'. Memoised: names come from small word lists and NFD normalisation is slow. */
const ASCII_CACHE = new Map<string, string>();
function asciiLetters(value: string): string {
  let ascii = ASCII_CACHE.get(value);
  if (ascii === undefined) {
    ascii = value
      .normalize('NFD')
      .replace(/[^A-Za-z]/g, '')
      .toUpperCase();
    ASCII_CACHE.set(value, ascii);
  }
  return ascii;
}

function token(ctx: PeopleContext, field: number, index: number): string {
  return ctx.canary ? canaryToken(ctx.seed, field, index) : '';
}

/** In canary mode a name word gets ' CANARY…' appended. */
function marked(ctx: PeopleContext, value: string, field: number, index: number): string {
  return ctx.canary ? `${value} ${canaryToken(ctx.seed, field, index)}` : value;
}

/** The EMP login the practitioner's events carry as `altId` (canary mode: with its token); undefined when none. */
export function practitionerLogin(ctx: PeopleContext, index: number): string | undefined {
  const base = practitionerCore(ctx, index).loginBase;
  return base === undefined ? undefined : `${base}${token(ctx, FIELD.login, index)}`;
}

/** Whether user `index` has a Practitioner resource (a provider record). */
export function hasPractitioner(ctx: PeopleContext, index: number): boolean {
  return !practitionerCore(ctx, index).nonProvider;
}

/**
 * How an event names a user who has no Practitioner: a "Family, Given" display (in canary mode with the name's
 * tokens, so a leak of it is caught like a leak of the resource's name).
 */
export function userDisplay(ctx: PeopleContext, index: number): string {
  const core = practitionerCore(ctx, index);
  return `${marked(ctx, core.family, FIELD.family, index)}, ${marked(ctx, core.given, FIELD.given, index)}`;
}

/** User `index`'s Practitioner; undefined for a user without a provider record (nonProviderRate). */
export function practitionerAt(ctx: PeopleContext, index: number): Practitioner | undefined {
  const core = practitionerCore(ctx, index);
  if (core.nonProvider) return undefined;
  const rng = rngFor(ctx.seed, STREAM.practitioner, index);
  const given = [marked(ctx, core.given, FIELD.given, index)];
  if (core.middle) given.push(marked(ctx, core.middle, FIELD.middle, index));
  const family = marked(ctx, core.family, FIELD.family, index);
  const practitioner: Practitioner = {
    resourceType: 'Practitioner',
    id: entityId(ctx.seed, ID_KIND.practitioner, index),
    // Stamped by the data set, not by whichever store loads it: an export's _since and _lastUpdated read the same time
    // from every backend and every run.
    meta: { versionId: '1', lastUpdated: new Date(ctx.startMs).toISOString() },
    identifier: practitionerIdentifiers(ctx, index, core),
    active: true,
    name: [{ use: 'official', text: `${[...given, family].join(' ')}, ${core.suffix}`, family, given, suffix: [core.suffix] }],
    gender: core.female ? 'female' : 'male',
  };
  const telecom = practitionerTelecom(ctx, index, core, rng.chance(0.5), rng.chance(0.25));
  if (telecom.length > 0) practitioner.telecom = telecom;
  return practitioner;
}

/** Epic's order: (old EXTERNAL EMP), NPI, INTERNAL/EXTERNAL EMP, PROVID, INTERNAL/EXTERNAL SER. */
function practitionerIdentifiers(ctx: PeopleContext, index: number, core: PractitionerCore): Identifier[] {
  const typed = (text: string, system: string, value: string, use: Identifier['use'] = 'usual'): Identifier => ({ use, type: { text }, system, value });
  const login = practitionerLogin(ctx, index);
  const identifiers: Identifier[] = [];
  if (login && rngFor(ctx.seed, STREAM.practitionerIdentifiers, index).chance(RENAMED_RATE)) {
    // The former login: other letters, same index (so it decodes), its own canary token.
    identifiers.push(typed('EXTERNAL', SANDBOX_IDS.empSystem, `X${core.loginBase ?? ''}${token(ctx, FIELD.oldLogin, index)}`, 'old'));
  }
  identifiers.push(typed('NPI', SANDBOX_IDS.npiSystem, npiOf(index)));
  if (login) identifiers.push(typed('INTERNAL', SANDBOX_IDS.empSystem, login.padStart(login.length + 2, ' ')), typed('EXTERNAL', SANDBOX_IDS.empSystem, login));
  const ser = `E${SER_BASE + index}`;
  identifiers.push(
    typed('PROVID', SANDBOX_IDS.providerIdSystem, String(SER_BASE + index)),
    typed('INTERNAL', SANDBOX_IDS.serSystem, ser.padStart(ser.length + 3, ' ')),
    typed('EXTERNAL', SANDBOX_IDS.serSystem, ser),
  );
  return identifiers;
}

/**
 * A work phone first (the mapper must filter on system 'email'), then sometimes an ended older email before the
 * current one (it must pick the email valid at the event time, not the first).
 */
function practitionerTelecom(ctx: PeopleContext, index: number, core: PractitionerCore, phone: boolean, oldEmail: boolean): ContactPoint[] {
  const telecom: ContactPoint[] = [];
  if (phone) telecom.push({ system: 'phone', value: `608-555-01${String(index % 100).padStart(2, '0')}`, use: 'work' });
  if (core.loginBase === undefined) return telecom;
  const email = `${core.loginBase.toLowerCase()}${token(ctx, FIELD.login, index)}@${SANDBOX_IDS.emailDomain}`;
  if (!oldEmail) return [...telecom, { system: 'email', value: email, use: 'work' }];
  const ended = yearsBefore(ctx.startMs, 1 + (index % 4));
  const previous = `${core.loginBase.toLowerCase()}${token(ctx, FIELD.oldEmail, index)}@legacy.${SANDBOX_IDS.emailDomain}`;
  return [
    ...telecom,
    { system: 'email', value: previous, use: 'work', period: { start: yearsBefore(ctx.startMs, 9), end: ended } },
    { system: 'email', value: email, use: 'work', period: { start: dayAfter(ended) } },
  ];
}

/** NPI: 9 digits + the Luhn check digit computed over '80840' + those digits (CMS NPI check-digit rule). */
export function npiOf(index: number): string {
  const payload = String(NPI_BASE + index);
  return `${payload}${luhnCheckDigit(`80840${payload}`)}`;
}

export function luhnCheckDigit(payload: string): number {
  let sum = 0;
  let double = true;
  for (let k = payload.length - 1; k >= 0; k--) {
    let digit = payload.charCodeAt(k) - 48;
    if (double) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
    sum += digit;
    double = !double;
  }
  return (10 - (sum % 10)) % 10;
}

/**
 * The practitioner index an identifier value would belong to, decoded in O(1) (the caller checks the resource
 * really carries it). `system` undefined = try every system this generator uses.
 */
export function practitionerIndexFromIdentifier(system: string | undefined, value: string): number[] {
  const candidates: number[] = [];
  const add = (match: RegExpExecArray | null, base: number): void => {
    if (match?.[1] !== undefined) candidates.push(Number(match[1]) - base);
  };
  if (system === undefined || system === SANDBOX_IDS.empSystem) add(/^ *[A-Z]+(\d{1,10})(?:CANARY[0-9a-f]{10})?$/.exec(value), 0);
  if (system === undefined || system === SANDBOX_IDS.serSystem) add(/^ *E(\d{1,10})$/.exec(value), SER_BASE);
  if (system === undefined || system === SANDBOX_IDS.providerIdSystem) add(/^(\d{1,10})$/.exec(value), SER_BASE);
  if (system === undefined || system === SANDBOX_IDS.npiSystem) add(/^(\d{9})\d$/.exec(value), NPI_BASE);
  return candidates.filter((i) => Number.isSafeInteger(i) && i >= 0);
}

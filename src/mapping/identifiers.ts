/**
 * Choosing one identifier among many (docs/mapping.md §5.3, §7.1, §7.2): the patient's MRN, the user's login and the
 * user's EHR id. Epic sends several identifiers per resource, typed by `type.text` only ("EPI", "MRN", "INTERNAL",
 * "EXTERNAL" or a site's own text), with Epic OIDs as systems and no v2-0203 coding (docs/epic-smart.md §7.1, §7.2). So
 * each choice is an ordered list of tests: the v2-0203 code where a server sends one, the site's pinned systems and
 * type texts, then the shapes Epic is known to send. The first test that some usable identifier passes wins; among
 * those, official > usual > no use > secondary > temp. `use: old` never counts (a merged chart's previous MRN, a
 * renamed user's former login). The lists are built once per compiled mapping; the builtins that use them are memoised
 * per patient or user.
 */
import type { Identifier } from 'fhir/r4.js';
import { rankedIdentifiers } from './validity.js';

export type IdentifierTest = (identifier: Identifier) => boolean;

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/**
 * Epic's OIDs: `1.2.840.114350.1.13.<CID>.<EnvType>.7.<kind>.<value>` (Epic's "ID Types for APIs"). The CID and
 * environment differ per customer and per environment, so only the tail is matched.
 */
function epicOid(tail: string): RegExp {
  return new RegExp(`^urn:oid:1\\.2\\.840\\.114350\\.1\\.13\\.\\d+\\.\\d+\\.7\\.${tail.replaceAll('.', '\\.')}$`);
}

/** IIT id type 14, Epic's enterprise MRN ("EPI" in Epic's sandbox and at many customers). */
const EPIC_MRN_SYSTEM = epicOid('5.737384.14');
/** The EMP master file (INI "EMP" as ASCII 69 77 80): Epic user records; EXTERNAL is the user id, INTERNAL it padded. */
const EPIC_EMP_SYSTEM = epicOid('2.697780');

/** "EPI", " mrn " and "Mrn" are the same type text. */
export function typeText(identifier: Identifier): string | undefined {
  const text = identifier.type?.text;
  return text === undefined ? undefined : text.trim().toUpperCase();
}

function hasTypeText(texts: readonly string[]): IdentifierTest {
  const wanted = new Set(texts.map((text) => text.trim().toUpperCase()));
  return (identifier) => {
    const text = typeText(identifier);
    return text !== undefined && wanted.has(text);
  };
}

function hasSystem(system: string): IdentifierTest {
  return (identifier) => identifier.system === system;
}

function isMrCoded(identifier: Identifier): boolean {
  return identifier.type?.coding?.some((coding) => coding.system === V2_0203 && coding.code === 'MR') ?? false;
}

/** Site pins: every system, then every type text, each in the order the site listed them. */
function pinned(systems: readonly string[], texts: readonly string[]): IdentifierTest[] {
  return [...systems.map(hasSystem), ...texts.map((text) => hasTypeText([text]))];
}

export interface IdentifierChoices {
  readonly mrn: readonly IdentifierTest[];
  readonly login: readonly IdentifierTest[];
  /** The site's own login pins alone: a login found by them needs no warning (see the userLogin built-in). */
  readonly loginPinned: readonly IdentifierTest[];
  readonly userId: readonly IdentifierTest[];
}

export interface IdentifierPins {
  readonly mrnSystems: readonly string[];
  readonly mrnTypeTexts: readonly string[];
  readonly loginSystems: readonly string[];
  readonly loginTypeTexts: readonly string[];
  readonly userIdSystems: readonly string[];
  readonly userIdTypeTexts: readonly string[];
}

/**
 * MRN: pinned systems, pinned texts, v2-0203 MR, then "MRN"/"MR", "EPI", Epic's IIT 14 system. Other Epic types
 * ("EPIC" enterprise id, "INTERNAL"/"EXTERNAL" patient record id, "MYCHARTLOGIN", "CEID", "FHIR") never qualify.
 * Login and user id: pinned systems, pinned texts, then Epic's EMP record (EXTERNAL first, else INTERNAL, trimmed).
 */
export function identifierChoices(pins: IdentifierPins): IdentifierChoices {
  const empExternal: IdentifierTest = (identifier) => EPIC_EMP_SYSTEM.test(identifier.system ?? '') && typeText(identifier) === 'EXTERNAL';
  const emp: IdentifierTest = (identifier) => EPIC_EMP_SYSTEM.test(identifier.system ?? '');
  return {
    // The site's pins first: a server that codes every facility's MRN (and a community one) MR leaves the choice to them.
    mrn: [
      ...pinned(pins.mrnSystems, pins.mrnTypeTexts),
      isMrCoded,
      hasTypeText(['MRN', 'MR']),
      hasTypeText(['EPI']),
      (identifier) => EPIC_MRN_SYSTEM.test(identifier.system ?? ''),
    ],
    login: [...pinned(pins.loginSystems, pins.loginTypeTexts), empExternal, emp],
    loginPinned: pinned(pins.loginSystems, pins.loginTypeTexts),
    userId: [...pinned(pins.userIdSystems, pins.userIdTypeTexts), empExternal, emp],
  };
}

/**
 * National identifiers that are never a medical record number, whatever carries them untyped: US SSN, NPI and Medicare
 * ids (the MBI, and the SSN-based HICN, 2.16.840.1.113883.4.572), passports, US driver's licences (by state OID).
 */
const NOT_AN_MRN = /^(http:\/\/hl7\.org\/fhir\/sid\/(us-ssn|us-npi|us-mbi|us-medicare|passport-.*)|urn:oid:2\.16\.840\.1\.113883\.4\.(1|6|572|927|3\.\d+))$/;

export function isNationalIdentifier(identifier: Identifier): boolean {
  return identifier.system !== undefined && NOT_AN_MRN.test(identifier.system);
}

/**
 * Any Epic OID (`urn:oid:1.2.840.114350.…`: the organisation's root, whatever the customer, environment or id type), or
 * one of the systems Epic names under open.epic.com (the patient's FHIR id, `…/patient-fhir-id`).
 */
const EPIC_ROOT = /^(urn:oid:1\.2\.840\.114350\.|https?:\/\/open\.epic\.com\/)/;

/**
 * An identifier in one of Epic's systems other than its MRN id type: the patient record id (INTERNAL/EXTERNAL,
 * `.2.698084`), the enterprise id, a MyChart login, the FHIR id… Its system says what it is, so it is never an MRN
 * untyped either.
 */
export function isEpicNonMrnIdentifier(identifier: Identifier): boolean {
  const system = identifier.system;
  return system !== undefined && EPIC_ROOT.test(system) && !EPIC_MRN_SYSTEM.test(system);
}

/** Not `use: old`, and a value that is more than padding (Epic pads INTERNAL ids with leading spaces). */
function usable(identifier: Identifier): boolean {
  const value = identifier.value;
  return value !== undefined && value.trim() !== '' && identifier.use !== 'old';
}

/** The identifier the first passing test finds, valid at tMs and ranked by use; undefined when none qualifies. */
export function chooseIdentifier(identifiers: readonly Identifier[] | undefined, tMs: number, tests: readonly IdentifierTest[]): Identifier | undefined {
  if (!identifiers || identifiers.length === 0) return undefined;
  for (const test of tests) {
    const found = rankedIdentifiers(identifiers, tMs, (identifier) => usable(identifier) && test(identifier))[0];
    if (found) return found;
  }
  return undefined;
}

/** For a lone identifier (an AuditEvent entity's): does any test accept it? `use: old` never does. */
export function qualifies(identifier: Identifier, tests: readonly IdentifierTest[]): boolean {
  return usable(identifier) && tests.some((test) => test(identifier));
}

/**
 * File-level options with their defaults, validated once at compile time. Every option is also a FHIRPath variable
 * (%mrnSystems, %loginRegex …) so a user's own expressions can use the same settings as the built-ins.
 */
import { BridgeError } from '../errors.js';
import { normaliseBase, userKey } from '../reference-keys.js';
import { type IdentifierChoices, type IdentifierTest, identifierChoices } from './identifiers.js';
import { REGEX_FLAGS, regexProblem } from './regex-safety.js';
import { type DepartmentSource, type MappingFileSpec, optionsSpec } from './spec.js';

/**
 * UPN-shaped (user@domain.tld). The R4 examples put numeric ids ("601847123") in altId; those are not logins
 * (docs/mapping.md §7.1).
 */
export const DEFAULT_LOGIN_REGEX = '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$';
export const NORWAY_PATIENT_EXTENSION = 'http://hl7.no/fhir/StructureDefinition/auditevent-patient-extension';
export const NORWAY_ENCOUNTER_EXTENSION = 'http://hl7.no/fhir/StructureDefinition/auditevent-encounter-extension';

/** R4 AuditEvent.action displays (http://hl7.org/fhir/R4/valueset-audit-event-action.html). */
export const DEFAULT_ACTION_NAMES: Readonly<Record<string, string>> = {
  C: 'Create',
  R: 'Read/View/Print',
  U: 'Update',
  D: 'Delete',
  E: 'Execute',
};

export interface ResolvedOptions {
  readonly mrnSystems: readonly string[];
  readonly mrnTypeTexts: readonly string[];
  readonly loginSystems: readonly string[];
  readonly loginTypeTexts: readonly string[];
  readonly loginRegex: RegExp;
  readonly btgCodes: ReadonlySet<string>;
  readonly btgDetailTypes: ReadonlySet<string>;
  readonly userIdSystems: readonly string[];
  readonly userIdTypeTexts: readonly string[];
  /** The MRN, login and user-id identifier tests (identifiers.ts), built once from the options above. */
  readonly identifiers: IdentifierChoices;
  readonly patientExtensionUrls: ReadonlySet<string>;
  readonly encounterExtensionUrls: ReadonlySet<string>;
  readonly departmentSources: readonly DepartmentSource[];
  readonly actionNames: Readonly<Record<string, string>>;
  readonly eventNameResourceType: 'rest' | 'always' | 'never';
  readonly parseCxIdentifiers: boolean;
  /** excludeUsers, sorted by form (context.ts isExcludedUser). */
  readonly excludeUsers: ExcludedUsers;
  /**
   * The connector's FHIR base (MappingOverrides.fhirBase), normalised by normaliseBase: an absolute reference names one
   * of our resources only with this base. Undefined: every base counts as ours. Not a mapping-file option or variable.
   */
  readonly fhirBase: string | undefined;
  /** Every option (defaults applied) by name, as FHIRPath variables. */
  readonly variables: Readonly<Record<string, unknown>>;
  /**
   * The configuration's setting that gave option `name` (`key`: one entry of actionNames, which merges key by key),
   * undefined when its value is the mapping file's or the default: an error about the value names that setting.
   */
  readonly settingOf: (name: string, key?: string) => string | undefined;
}

/** Where the configuration set an option (MappingOverrides.optionOrigin). */
export type OptionOrigin = (name: string) => string;

/** An override's place when its caller does not say (an in-memory override, a test). */
const IN_THE_CONFIGURATION: OptionOrigin = (name) => `mapping.options.${name} in the configuration`;

export interface SkipPolicy {
  readonly noPatient: boolean;
  readonly nonHumanRequestor: boolean;
  readonly patientRequestor: boolean;
  readonly failureOutcome: boolean;
}

const DEFAULTS = {
  mrnSystems: [] as string[],
  mrnTypeTexts: [] as string[],
  loginSystems: [] as string[],
  loginTypeTexts: [] as string[],
  loginRegex: DEFAULT_LOGIN_REGEX,
  btgCodes: ['BTG'],
  btgDetailTypes: [] as string[],
  userIdSystems: [] as string[],
  userIdTypeTexts: [] as string[],
  patientExtensionUrls: [NORWAY_PATIENT_EXTENSION],
  encounterExtensionUrls: [NORWAY_ENCOUNTER_EXTENSION],
  departmentSources: ['encounter-service-provider', 'encounter-location', 'requestor-location', 'practitioner-role-organization'] as DepartmentSource[],
  actionNames: DEFAULT_ACTION_NAMES,
  eventNameResourceType: 'rest' as const,
  parseCxIdentifiers: true,
  excludeUsers: [] as string[],
};

/** Names the row context already uses; an option may not shadow them. */
export const CONTEXT_VARIABLES = ['event', 'requestor', 'user', 'role', 'userName', 'patient', 'subject', 'name', 'address', 't'] as const;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Defaults < the file's options < `extra` (config overrides), validated again after merging. An error about a value
 * `extra` gave is the configuration's (BRG_ERR_CONFIG_INVALID naming its setting), not the mapping file's.
 * @param fhirBase - the connector's fhir.baseUrl (MappingOverrides.fhirBase), if any.
 * @param origin - where the configuration set each of `extra` (MappingOverrides.optionOrigin).
 */
export function resolveOptions(
  file: MappingFileSpec,
  extra: Record<string, unknown> | undefined,
  source: string,
  fhirBase?: string,
  origin: OptionOrigin = IN_THE_CONFIGURATION,
): ResolvedOptions {
  const settingOf = settingsOf(extra, origin);
  // actionNames merges key by key: a site's { R: "View" } keeps the file's names of the other actions.
  const actionNames =
    file.options?.actionNames || extra?.['actionNames'] ? { ...file.options?.actionNames, ...(extra?.['actionNames'] as object | undefined) } : undefined;
  const parsed = optionsSpec.safeParse({ ...file.options, ...extra, ...(actionNames ? { actionNames } : {}) });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? '');
    const key = issue?.path[1];
    throw invalidOption(source, name, `is invalid: ${issue?.message ?? 'invalid'}`, settingOf(name, key === undefined ? undefined : String(key)));
  }
  const merged = withDefaults(DEFAULTS, parsed.data);
  for (const name of Object.keys(merged)) {
    if (!IDENTIFIER.test(name) || (CONTEXT_VARIABLES as readonly string[]).includes(name)) {
      throw invalidOption(source, name, `is not a usable variable name (letters, digits, _; not one of ${CONTEXT_VARIABLES.join(', ')})`, settingOf(name));
    }
  }
  const identifiers = identifierChoices(merged);
  return {
    mrnSystems: merged.mrnSystems,
    mrnTypeTexts: merged.mrnTypeTexts,
    loginSystems: merged.loginSystems,
    loginTypeTexts: merged.loginTypeTexts,
    loginRegex: compileRegex(merged.loginRegex, source, settingOf('loginRegex')),
    btgCodes: new Set(merged.btgCodes),
    btgDetailTypes: new Set(merged.btgDetailTypes),
    userIdSystems: merged.userIdSystems,
    userIdTypeTexts: merged.userIdTypeTexts,
    identifiers,
    patientExtensionUrls: new Set(merged.patientExtensionUrls),
    encounterExtensionUrls: new Set(merged.encounterExtensionUrls),
    departmentSources: merged.departmentSources,
    actionNames: { ...DEFAULT_ACTION_NAMES, ...merged.actionNames },
    eventNameResourceType: merged.eventNameResourceType,
    parseCxIdentifiers: merged.parseCxIdentifiers,
    excludeUsers: excludedUsers(merged.excludeUsers, identifiers),
    fhirBase: fhirBase === undefined ? undefined : ownBase(fhirBase, source),
    variables: Object.freeze({ ...merged }),
    settingOf,
  };
}

/**
 * The configuration's setting of an option `extra` gives, else undefined. `extra` replaces the file's value whole, but
 * for actionNames, which merges key by key: there the setting is the configuration's only for a key it gives.
 */
function settingsOf(extra: Readonly<Record<string, unknown>> | undefined, origin: OptionOrigin): ResolvedOptions['settingOf'] {
  return (name, key) => {
    if (extra === undefined || !Object.hasOwn(extra, name)) return undefined;
    const value = extra[name];
    if (name !== 'actionNames' || key === undefined || value === null || typeof value !== 'object') return origin(name);
    return Object.hasOwn(value, key) ? origin(name) : undefined;
  };
}

/**
 * excludeUsers by form: `Type/id` names a resource (the requestor's reference, the resolved Practitioner or
 * PractitionerRole); `system|value` an identifier in that system; anything else a login (altId) or a user id (an
 * identifier the mapping would take as the user id or login), never just any identifier: Epic's EMP, SER and NPI
 * numbers are separate spaces, and one user's EMP id can be another's provider id.
 */
export interface ExcludedUsers {
  readonly size: number;
  /** `type/id`, the type in lower case (FHIR ids keep their case): referenceName. */
  readonly references: ReadonlySet<string>;
  /** `system|value`, the value in userKey form. */
  readonly identifiers: ReadonlySet<string>;
  /** userKey form. */
  readonly names: ReadonlySet<string>;
  /** The tests that take an identifier as the user's id or login: only such an identifier answers to a bare name. */
  readonly userTests: readonly IdentifierTest[];
}

const RESOURCE_NAME = /^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;

/** `Practitioner/eBG` and `practitioner/eBG` alike: the type without case, the id as it is. */
export function referenceName(type: string, id: string): string {
  return `${type.toLowerCase()}/${id}`;
}

function excludedUsers(entries: readonly string[], choices: IdentifierChoices): ExcludedUsers {
  const references = new Set<string>();
  const identifiers = new Set<string>();
  const names = new Set<string>();
  for (const entry of entries.map((e) => e.trim())) {
    const bar = entry.lastIndexOf('|');
    if (bar > 0) identifiers.add(`${entry.slice(0, bar)}|${userKey(entry.slice(bar + 1))}`);
    else if (RESOURCE_NAME.test(entry)) references.add(referenceName(entry.slice(0, entry.indexOf('/')), entry.slice(entry.indexOf('/') + 1)));
    else names.add(userKey(entry));
  }
  return { size: entries.length, references, identifiers, names, userTests: [...choices.userId, ...choices.loginPinned, ...choices.login] };
}

/** The option names the bridge itself knows (the rest are a mapping file's own variables). */
export const KNOWN_OPTIONS: readonly string[] = Object.keys(DEFAULTS);

/**
 * An option the bridge does not know is a variable only a mapping expression can read. One that no expression reads
 * is a mistake, usually a misspelt site option ("mrnSystem") that would otherwise be ignored without a word, so it
 * fails, naming the known option it most resembles.
 */
export function checkUnusedOptions(options: ResolvedOptions, usedVariables: ReadonlySet<string>, source: string): void {
  for (const name of Object.keys(options.variables)) {
    if (KNOWN_OPTIONS.includes(name) || usedVariables.has(name)) continue;
    const near = closestOption(name);
    throw invalidOption(
      source,
      name,
      `is not a known option${near ? ` (did you mean "${near}"?)` : ''} and no expression uses %${name}; known options: ${KNOWN_OPTIONS.join(', ')}`,
      options.settingOf(name),
    );
  }
}

function closestOption(name: string): string | undefined {
  const folded = name.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const known of KNOWN_OPTIONS) {
    const distance = editDistance(folded, known.toLowerCase());
    if (distance <= Math.max(2, Math.floor(known.length / 4)) && (!best || distance < best.distance)) best = { name: known, distance };
  }
  return best?.name;
}

/** Levenshtein distance; option names are short and this runs once per unknown option at compile time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

export function resolveSkipPolicy(file: MappingFileSpec): SkipPolicy {
  return {
    noPatient: file.skip?.noPatient ?? true,
    nonHumanRequestor: file.skip?.nonHumanRequestor ?? true,
    patientRequestor: file.skip?.patientRequestor ?? true,
    failureOutcome: file.skip?.failureOutcome ?? true,
  };
}

function ownBase(fhirBase: string, source: string): string {
  const normal = normaliseBase(fhirBase);
  if (normal === undefined) {
    throw new BridgeError('BRG_ERR_MAPPING_INVALID', `Mapping file ${source}: the FHIR base "${fhirBase}" it is compiled for is not an absolute URL.`, {
      details: { file: source, option: 'fhirBase' },
    });
  }
  return normal;
}

/**
 * Same flags as FHIRPath matches() in fhirpath.js ('su'), so %loginRegex means the same in both places; refused when it
 * could backtrack for minutes (regex-safety.ts).
 */
function compileRegex(pattern: string, source: string, setting: string | undefined): RegExp {
  const problem = regexProblem(pattern);
  if (problem !== undefined) throw invalidOption(source, 'loginRegex', `is ${problem}`, setting);
  return new RegExp(pattern, REGEX_FLAGS);
}

/**
 * An option whose value is wrong: the mapping file's error, or, when the configuration set it (`setting`), the
 * configuration's, naming that setting, so the operator corrects the file that holds the value.
 */
export function invalidOption(source: string, option: string, what: string, setting: string | undefined): BridgeError {
  if (setting === undefined) {
    return new BridgeError('BRG_ERR_MAPPING_INVALID', `Mapping file ${source}: option "${option}" ${what}.`, { details: { file: source, option } });
  }
  return new BridgeError(
    'BRG_ERR_CONFIG_INVALID',
    `Invalid configuration: ${setting}: option "${option}" ${what}. Correct it in the configuration: it overrides the option of mapping file ${source}.`,
    { details: { setting, option, mappingFile: source } },
  );
}

type Defined<G> = { [K in keyof G]-?: Exclude<G[K], undefined> };

/** `given` over `defaults`, leaving a default in place where `given` holds undefined (an option left out). */
function withDefaults<D extends Record<string, unknown>, G extends object>(defaults: D, given: G): Omit<D, keyof G> & Defined<G> {
  const merged: Record<string, unknown> = { ...defaults };
  for (const [name, value] of Object.entries(given)) if (value !== undefined) merged[name] = value;
  return merged as Omit<D, keyof G> & Defined<G>;
}

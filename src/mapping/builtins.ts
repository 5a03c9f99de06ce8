/**
 * Named built-ins for what FHIRPath cannot say cleanly: time formatting, ranked/valid-at-time choices, reference
 * resolution and the BTG rules. Each declares its scope so compile.ts can cache per patient or per user.
 */
import type { AuditEventEntity, Encounter, FhirResource, Identifier, Reference } from 'fhir/r4.js';
import { btgComment, btgReason } from './btg.js';
import { DCM } from './context.js';
import { chooseIdentifier, isEpicNonMrnIdentifier, isNationalIdentifier, qualifies } from './identifiers.js';
import type { ResolvedOptions } from './options.js';
import { literalKey, normaliseIdentifier, referenceType } from './resolve.js';
import type { RowContext } from './row-context.js';
import type { BuiltinName } from './spec.js';
import { formatInstant } from './time.js';
import { isValidAt, workEmails } from './validity.js';

/** patient: depends only on %patient and the validity interval of %t; user: likewise on %user; event: anything. */
export type Scope = 'patient' | 'user' | 'event';
/** Receives warning codes (stable, no PHI); the row engine adds the column name. */
export interface WarningSink {
  warn(code: string): void;
}

export interface Builtin {
  readonly scope: Scope;
  evaluate(ctx: RowContext, sink: WarningSink): string | undefined;
}

const AUDIT_EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESOURCE_TYPES = 'http://hl7.org/fhir/resource-types';
const AUDIT_ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';

export const BUILTINS: Readonly<Record<BuiltinName, Builtin>> = {
  eventTime: { scope: 'event', evaluate: (ctx) => (ctx.instant ? formatInstant(ctx.instant, ctx.timeFormat) : undefined) },
  eventName: { scope: 'event', evaluate: eventName },
  workstation: { scope: 'event', evaluate: workstation },
  // Own keys only: an action such as "constructor" must not read the object's prototype (§4.5: not listed ⇒ empty).
  actionName: {
    scope: 'event',
    evaluate: (ctx) => (ctx.event.action && Object.hasOwn(ctx.options.actionNames, ctx.event.action) ? ctx.options.actionNames[ctx.event.action] : undefined),
  },
  mrn: { scope: 'patient', evaluate: patientMrn },
  subjectMrn: { scope: 'event', evaluate: (ctx) => subjectMrn(ctx.subject.ref, ctx.options, ctx.tMs) },
  department: { scope: 'event', evaluate: department },
  btgReason: { scope: 'event', evaluate: btgReason },
  btgComment: { scope: 'event', evaluate: btgComment },
  userPinnedLogin: { scope: 'user', evaluate: (ctx) => chooseIdentifier(ctx.user?.identifier, ctx.tMs, ctx.options.identifiers.loginPinned)?.value },
  userWorkEmail: { scope: 'user', evaluate: (ctx) => workEmails(ctx.user?.telecom, ctx.tMs)[0]?.value },
  userLogin: { scope: 'user', evaluate: (ctx, sink) => loginOf(ctx.user?.identifier, ctx, sink) },
  requestorLogin: { scope: 'event', evaluate: requestorLogin },
  userId: { scope: 'user', evaluate: (ctx) => chooseIdentifier(ctx.user?.identifier, ctx.tMs, ctx.options.identifiers.userId)?.value },
  userLogicalId: { scope: 'event', evaluate: (ctx) => (ctx.userIdIsGlobal ? ctx.user?.id : undefined) },
  // docs/mapping.md §7.4: only with no name of the user (unresolved, or a Practitioner without one); with one, a guess
  // would fill the column its name leaves empty, and the row would hold two sources' halves.
  requestorFamilyName: { scope: 'event', evaluate: (ctx) => (ctx.userName ? undefined : splitDisplayName(ctx)?.family) },
  requestorGivenName: { scope: 'event', evaluate: (ctx) => (ctx.userName ? undefined : splitDisplayName(ctx)?.given) },
};

/**
 * docs/mapping.md §7.1 (steps 4 and 6): among a user's identifiers, the login the site pinned; else Epic's EMP record
 * id, which is the directory login only where a site made them equal (unverified in general): that fallback says so in
 * a warning, so the run summary and the doctor show which rows carry it.
 */
function loginOf(identifiers: readonly Identifier[] | undefined, ctx: RowContext, sink: WarningSink): string | undefined {
  const choices = ctx.options.identifiers;
  const pinned = chooseIdentifier(identifiers, ctx.tMs, choices.loginPinned);
  if (pinned) return pinned.value;
  const emp = chooseIdentifier(identifiers, ctx.tMs, choices.login);
  if (emp?.value) sink.warn('login-from-emp-id');
  return emp?.value;
}

/**
 * docs/mapping.md §7.1 (step 6): the requestor's own identifier (already split from a CX value, context.ts
 * requestorAsRead) judged together with a resolved user's, by the same tests in order: pins, then Epic's EMP id with
 * type.text EXTERNAL (the login), then any EMP id (with its warning). So an agent naming the user by EMP EXTERNAL id
 * wins over the Practitioner's EMP INTERNAL record number, and a Practitioner with only NPI and SER numbers does not
 * reject the row. It speaks for staff whom no Practitioner carries (at Epic, those without a provider record) too.
 * Undefined when the agent has no identifier of its own: userLogin (memoised per user) then says it.
 */
function requestorLogin(ctx: RowContext, sink: WarningSink): string | undefined {
  const own = ctx.requestor?.who?.identifier;
  return own === undefined ? undefined : loginOf([own, ...(ctx.user?.identifier ?? [])], ctx, sink);
}

/**
 * docs/mapping.md §4.2: subtype display|code, else type display|code; RESTful verbs ("vread") get the data resource
 * type appended.
 */
function eventName(ctx: RowContext): string | undefined {
  const { event, options } = ctx;
  const subtype = event.subtype?.[0];
  const base = subtype?.display || subtype?.code || event.type?.display || event.type?.code;
  if (!base) return undefined;
  const append =
    options.eventNameResourceType === 'always' ||
    (options.eventNameResourceType === 'rest' && event.type?.system === AUDIT_EVENT_TYPE && event.type.code === 'rest');
  const type = append ? dataResourceType(ctx) : undefined;
  return type ? `${base} ${type}` : base;
}

function dataResourceType(ctx: RowContext): string | undefined {
  const entities = ctx.event.entity ?? [];
  // System objects (audit-entity-type 2) first: they are the data the operation touched.
  const ordered = [...entities.filter(isSystemObject), ...entities.filter((entity) => !isSystemObject(entity))];
  for (const entity of ordered) {
    if (entity.type?.system === RESOURCE_TYPES && entity.type.code) return entity.type.code;
    const type = entity.what?.reference?.startsWith('#') ? ctx.resolver.resolve(entity.what)?.resourceType : typeFromReference(entity.what);
    if (type) return type;
  }
  return undefined;
}

function isSystemObject(entity: AuditEventEntity): boolean {
  return entity.type?.system === AUDIT_ENTITY_TYPE && entity.type.code === '2';
}

function typeFromReference(ref: Reference | undefined): string | undefined {
  return referenceType(ref?.reference) ?? ref?.type;
}

/**
 * Which DICOM role the user's machine plays (docs/mapping.md §4.3): in a read the server sends the data, so the client
 * is the Destination (110152); in a query, create, update, delete or execute the client sends the request, so it is the
 * Source (110153) and the Destination is the server (IHE BALP's Read and Query/Create profiles, IHE ATNA).
 */
const CLIENT_ROLES_READ = ['110152', '110153'] as const;
const CLIENT_ROLES_OTHER = ['110153', '110152'] as const;

/**
 * docs/mapping.md §4.3: the requestor's own network address (of type 1 or 2, or none: type 5 is BALP's server URL), else
 * that of another flagged agent (the requesting process an IHE ATNA audit flags beside the person, the row being the
 * person's: it runs on the user's machine), else a non-requestor client agent (DCM 110152 then 110153 for a read,
 * 110153 then 110152 otherwise) with network type 1|2 (machine name or IP), else any agent with type 1|2.
 */
function workstation(ctx: RowContext): string | undefined {
  const own = ctx.requestor?.network;
  // A machine name or an IP address (type 1, 2, or none given); a phone number, an e-mail or a URI is no workstation.
  if (own?.address && (own.type === undefined || own.type === '1' || own.type === '2')) return own.address;
  const agents = ctx.event.agent ?? [];
  const local = agents.filter((agent) => agent.network?.address && (agent.network.type === '1' || agent.network.type === '2'));
  const displaced = local.find((agent) => agent.requestor === true && agent.network !== own);
  if (displaced) return displaced.network?.address;
  for (const role of ctx.event.action === 'R' ? CLIENT_ROLES_READ : CLIENT_ROLES_OTHER) {
    const found = local.find((agent) => agent.requestor === false && agent.type?.coding?.some((coding) => coding.system === DCM && coding.code === role));
    if (found) return found.network?.address;
  }
  return local[0]?.network?.address;
}

/**
 * docs/mapping.md §5.3: the identifier the MRN tests choose (identifiers.ts: MR code, site pins, then Epic's shapes),
 * valid at %t.
 */
function patientMrn(ctx: RowContext, sink: WarningSink): string | undefined {
  const identifiers = ctx.patient?.identifier;
  if (!identifiers) return undefined;
  const found = chooseIdentifier(identifiers, ctx.tMs, ctx.options.identifiers.mrn);
  if (found) return normaliseIdentifier(found, ctx.options.parseCxIdentifiers)?.value;
  // HL7 Norway puts the number in Identifier.id (an element id); never read it, but say why the MRN is empty.
  if (identifiers.some((identifier) => !identifier.value && identifier.id)) sink.warn('identifier-value-in-id');
  return undefined;
}

/**
 * docs/mapping.md §5.3 (step 2): the subject reference's own identifier, valid at %t (tMs), by the same tests, or an
 * untyped one (IHE patient entities).
 */
export function subjectMrn(ref: Reference, options: ResolvedOptions, tMs: number): string | undefined {
  const given: Identifier | undefined = ref.identifier;
  if (!given?.value || given.use === 'old' || !isValidAt(given.period, tMs)) return undefined;
  // An HL7v2 CX value (`123456789^^^&2.16.840.1.113883.4.1&ISO`) names its system in its assigning authority: the tests
  // below judge that system, not the empty one beside it (an SSN so written is still an SSN). Unparsed, it is no MRN.
  const normal = normaliseIdentifier(given, options.parseCxIdentifiers);
  if (!normal || normal.value.includes('^')) return undefined;
  const identifier: Identifier = { ...given, ...(normal.system === undefined ? {} : { system: normal.system }), value: normal.value };
  // An untyped one, as IHE patient entities carry it; never a national identifier (an SSN is no MRN), nor one in an
  // Epic system other than its MRN's (an access log's patient record id, Clarity's PAT_ID, is no MRN).
  const untyped =
    identifier.type === undefined &&
    (identifier.system === undefined || options.mrnSystems.length === 0) &&
    !isNationalIdentifier(identifier) &&
    !isEpicNonMrnIdentifier(identifier);
  return untyped || qualifies(identifier, options.identifiers.mrn) ? normal.value : undefined;
}

/**
 * docs/mapping.md §5.6: department, sources in the configured order (patient's encounter first by default, then the
 * user's location). The event's encounters are resolved once, when a source first needs them.
 */
function department(ctx: RowContext): string | undefined {
  let found: readonly Encounter[] | undefined;
  for (const source of ctx.options.departmentSources) {
    let name: string | undefined;
    switch (source) {
      case 'encounter-service-provider':
        found ??= encounters(ctx);
        for (const encounter of found) {
          name = nameOf(ctx, encounter.serviceProvider, 'Organization', encounter);
          if (name) break;
        }
        break;
      case 'encounter-location':
        found ??= encounters(ctx);
        for (const encounter of found) {
          name = nameOf(ctx, encounter.location?.[0]?.location, 'Location', encounter);
          if (name) break;
        }
        break;
      case 'requestor-location':
        name = nameOf(ctx, ctx.requestor?.location, 'Location');
        break;
      case 'practitioner-role-organization':
        name = ctx.role ? nameOf(ctx, ctx.role.organization, 'Organization', ctx.role) : undefined;
        break;
    }
    if (name) return name;
  }
  return undefined;
}

const NO_ENCOUNTERS: readonly Encounter[] = [];

/**
 * Above this many entities an event's encounters are found once and kept for its rows: an event about thousands of
 * patients (a report, a list) would otherwise scan and resolve every entity again for every row, quadratic in its size.
 */
const SMALL_EVENT_ENTITIES = 16;

/** A large event's encounters, each with its subject's key (undefined: it names no subject), by its per-event resolver. */
const largeEventEncounters = new WeakMap<object, ReadonlyArray<{ readonly encounter: Encounter; readonly subject: string | undefined }>>();

function encounters(ctx: RowContext): readonly Encounter[] {
  if ((ctx.event.entity?.length ?? 0) <= SMALL_EVENT_ENTITIES) {
    const all = eventEncounters(ctx);
    return all === undefined ? NO_ENCOUNTERS : all.filter((encounter) => ofThisPatient(ctx, encounter));
  }
  let all = largeEventEncounters.get(ctx.resolver);
  if (all === undefined) {
    all = (eventEncounters(ctx) ?? NO_ENCOUNTERS).map((encounter) => ({ encounter, subject: literalKey(encounter.subject?.reference, ctx.options.fhirBase) }));
    largeEventEncounters.set(ctx.resolver, all);
  }
  if (all.length === 0) return NO_ENCOUNTERS;
  const patient = patientKey(ctx);
  return all.flatMap(({ encounter, subject }) => (subject === undefined || patient === undefined || subject === patient ? [encounter] : []));
}

/** The event's Encounters named by entity or encounter extension, in order, of any patient; undefined when none. */
function eventEncounters(ctx: RowContext): Encounter[] | undefined {
  let found: Encounter[] | undefined;
  for (const entity of ctx.event.entity ?? NO_ENTITIES) {
    // A contained `what` may be anything; only Encounter-typed literal references are worth a lookup.
    if (entity.what?.reference?.startsWith('#') || typeFromReference(entity.what) === 'Encounter') found = withEncounter(ctx, entity.what, found);
  }
  for (const extension of ctx.event.extension ?? NO_EXTENSIONS) {
    const ref = extension.valueReference;
    if (ctx.options.encounterExtensionUrls.has(extension.url) && (ref?.reference?.startsWith('#') || typeFromReference(ref) === 'Encounter')) {
      found = withEncounter(ctx, ref, found);
    }
  }
  return found;
}

function withEncounter(ctx: RowContext, ref: Reference | undefined, found: Encounter[] | undefined): Encounter[] | undefined {
  const resource = ctx.resolver.resolve(ref, 'Encounter');
  if (resource?.resourceType !== 'Encounter') return found;
  if (found === undefined) return [resource];
  found.push(resource);
  return found;
}

/**
 * An encounter of another patient of the same event (one access to two charts) names that patient's department: only
 * an encounter whose subject is this row's patient, or that names no subject, counts.
 */
function ofThisPatient(ctx: RowContext, encounter: Encounter): boolean {
  const subject = literalKey(encounter.subject?.reference, ctx.options.fhirBase);
  if (subject === undefined) return true;
  const patient = patientKey(ctx);
  return patient === undefined || subject === patient;
}

/** The row's patient as a literal key, to compare with an encounter's subject; undefined when it has none. */
function patientKey(ctx: RowContext): string | undefined {
  return ctx.patient?.id === undefined ? literalKey(ctx.subject.ref.reference, ctx.options.fhirBase) : `Patient/${ctx.patient.id}`;
}

const NO_ENTITIES: readonly AuditEventEntity[] = [];
const NO_EXTENSIONS: ReadonlyArray<{ url: string; valueReference?: Reference }> = [];

/** The resolved resource's name, else the reference display (docs/mapping.md §5.6). */
function nameOf(ctx: RowContext, ref: Reference | undefined, type: string, holder?: FhirResource): string | undefined {
  if (!ref) return undefined;
  const resource = ctx.resolver.resolve(ref, type, holder);
  const name = resource && 'name' in resource && typeof resource.name === 'string' ? resource.name : undefined;
  return name || ref.display;
}

/**
 * docs/mapping.md §7.4: heuristic for employees with no resolved name: "Family, Given" by the comma, else first and
 * last token.
 */
function splitDisplayName(ctx: RowContext): { family: string | undefined; given: string | undefined } | undefined {
  // A PractitionerRole's display is often a job title ("Attending Physician, Cardiology"), which the comma rule would
  // make a family and a given name: the role's practitioner's display stands in for it, when the role gives one.
  const who = ctx.requestor?.who;
  const role = ctx.role !== undefined || referenceType(who?.reference) === 'PractitionerRole' || who?.type === 'PractitionerRole';
  const display = role ? ctx.role?.practitioner?.display : who?.display;
  const text = (ctx.requestor?.name || display)?.trim();
  if (!text) return undefined;
  // "Smith, Jane" is Family, Given; "Jane Smith, MD" is a name and a credential, and "Dr. Jane Smith" a title and a name.
  // A credential counts only after a comma or as a last word, a title only as a first word and never when it would
  // leave no name; a credential that is also a family name (DO, PA) stays in a two-word name: "Anh Do" is a name.
  const parts = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  // ", MD PhD" is credentials, however many.
  const named = parts.filter((part, index) => index === 0 || !part.split(/\s+/).every((word) => CREDENTIALS.has(bare(word))));
  if (named.length >= 2 && named[0]) {
    // "Smith Jr, Jane" and Epic's "SMITH JR.,JOHN A": a suffix inside the family part is no part of the family name, and
    // "Dr. Smith, Jane" has a title before it.
    const family = withoutTitles(named[0].split(/\s+/));
    while (family.length > 1 && CREDENTIALS.has(bare(family.at(-1) ?? '')) && !SURNAME_CREDENTIALS.has(bare(family.at(-1) ?? ''))) family.pop();
    const given = withoutTitles((named[1] ?? '').split(/\s+/));
    return { family: family.join(' '), given: given[0] };
  }
  const tokens = withoutTitles((named[0] ?? '').split(/\s+/).filter((word) => word !== ''));
  // "Santos MD" and "John Smith Jr. MD" are a name and credentials; "Anh Do" and "Pa Vang" are names (DO and PA are
  // surnames too).
  const credentialLast = (): boolean => {
    const last = bare(tokens.at(-1) ?? '');
    return tokens.length > 1 && CREDENTIALS.has(last) && (tokens.length > 2 || !SURNAME_CREDENTIALS.has(last));
  };
  while (credentialLast()) tokens.pop();
  if (tokens.length === 1) return { family: tokens[0], given: undefined };
  return tokens.length >= 2 ? { family: tokens[tokens.length - 1], given: tokens[0] } : undefined;
}

/** Titles before a name, and credentials and suffixes after one (compared without case and dots). */
const TITLES = new Set(['dr', 'mr', 'mrs', 'ms', 'mx', 'prof']);
const CREDENTIALS = new Set(['md', 'do', 'rn', 'np', 'pa', 'pac', 'phd', 'pharmd', 'dds', 'lpn', 'cna', 'jr', 'sr', 'ii', 'iii', 'iv']);
/** Credentials that are also family names: kept as the family of a two-word name. */
const SURNAME_CREDENTIALS = new Set(['do', 'pa']);

/** "Prof. Dr. Jane Smith": every leading title goes, never the last word. */
function withoutTitles(words: string[]): string[] {
  let from = 0;
  while (words.length - from > 1 && TITLES.has(bare(words[from] ?? ''))) from += 1;
  return words.slice(from);
}

function bare(word: string): string {
  return word.toLowerCase().replace(/[.\s-]/g, '');
}

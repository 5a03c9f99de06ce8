/**
 * Pure FHIR reference handling shared by the pull (which fetches) and the mapping (which looks up).
 * See: https://hl7.org/fhir/R4/references.html#literal
 */

export interface ParsedReference {
  /** Resource type, e.g. "Patient"; undefined for a contained reference. */
  readonly type?: string;
  /** Logical id, or the contained id without '#'. */
  readonly id: string;
  readonly version?: string;
  readonly contained: boolean;
  /** The server base of an absolute reference (`scheme://…` before `Type/id`), as written; undefined for a relative one. */
  readonly base?: string;
}

const LITERAL = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?\/?$/;

/** Parses `#id`, `Type/id`, `Type/id/_history/v` and absolute URLs ending in those; undefined otherwise (urn:uuid, garbage). */
export function parseReference(reference: string | undefined): ParsedReference | undefined {
  if (!reference) return undefined;
  const trimmed = reference.trim();
  if (trimmed.startsWith('#')) return trimmed.length > 1 ? { id: trimmed.slice(1), contained: true } : undefined;
  const path = trimmed.split(/[?#]/)[0] ?? '';
  const match = LITERAL.exec(path);
  if (!match) return undefined;
  const [, type, id, version] = match;
  if (!type || !id) return undefined;
  const prefix = match.index > 0 ? path.slice(0, match.index) : '';
  const base = prefix.includes('://') ? { base: prefix } : {};
  return version ? { type, id, version, contained: false, ...base } : { type, id, contained: false, ...base };
}

/** Normalised key for caches and de-duplication: `Type/id`, version and base stripped. */
export function referenceKey(type: string, id: string): string {
  return `${type}/${id}`;
}

/**
 * Key of a parsed non-contained reference, or undefined. Any base is stripped: for keys already normalised, or where
 * every base counts as the server's; a reference read from an event or a resource goes through ownKeyOf.
 */
export function keyOf(reference: string | undefined): string | undefined {
  const parsed = parseReference(reference);
  return parsed?.type ? referenceKey(parsed.type, parsed.id) : undefined;
}

/**
 * A FHIR base URL in the one form every spelling of it shares: scheme and host lower-cased, the scheme's default port
 * left out (the WHATWG URL parser does both), the path without trailing slashes (paths are case-sensitive). Undefined
 * when `url` is no absolute URL.
 */
export function normaliseBase(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname.replace(/\/+$/, '')}`;
}

/**
 * keyOf for a reference the server at `ownBase` (normaliseBase form) handed over: an absolute reference is one of its
 * resources only when it carries that base. `https://other.example/fhir/Patient/123` is another server's patient, not
 * our Patient/123, so it has no key here and resolves like any reference this server cannot answer. With `ownBase`
 * undefined (no server known, as in the offline `bridge map`) every base counts as the server's.
 * See: https://hl7.org/fhir/R4/references.html#literal
 */
export function ownKeyOf(reference: string | undefined, ownBase: string | undefined): string | undefined {
  const parsed = parseReference(reference);
  if (!parsed?.type) return undefined;
  if (parsed.base !== undefined && ownBase !== undefined && lastBase.of(parsed.base) !== ownBase) return undefined;
  return referenceKey(parsed.type, parsed.id);
}

/** normaliseBase of the last base asked: a feed's absolute references share one or two bases, and a URL parse is not free. */
const lastBase = {
  base: '',
  normal: undefined as string | undefined,
  of(base: string): string | undefined {
    if (base !== this.base) {
      this.base = base;
      this.normal = normaliseBase(base);
    }
    return this.normal;
  },
};

/** Identifier-only references are looked up by `identifier=system|value`; this is their cache key. */
export function identifierKey(type: string, system: string | undefined, value: string): string {
  return `${type}?identifier=${system ?? ''}|${value}`;
}

/** How user identifiers are compared (excludeUsers, a lookup's answer): Epic pads EMP ids with spaces. */
export function userKey(value: string): string {
  return value.trim().toLowerCase();
}

/**
 * The resource carries the reference's identifier: in its system (any, when the reference names none), with the
 * value as userKey reads it. A server that misreads a search (an escaped `\|` taken for the system bar) answers
 * someone else; a lookup then takes nobody rather than the wrong person.
 */
export function carriesIdentifier(resource: object, ref: { readonly system?: string | undefined; readonly value: string }): boolean {
  const list: unknown = (resource as { identifier?: unknown }).identifier;
  const identifiers: ReadonlyArray<{ system?: unknown; value?: unknown } | undefined> = Array.isArray(list) ? list : [];
  const wanted = userKey(ref.value);
  return identifiers.some(
    (identifier) =>
      typeof identifier?.value === 'string' && (ref.system === undefined || identifier.system === ref.system) && userKey(identifier.value) === wanted,
  );
}

/**
 * The identifier keys a resource answers to, as token search matches them: `system|value` for each identifier, and the
 * bare value too (a reference with an identifier but no system matches any system, as `identifier=value` does).
 */
export function identifierKeysOf(resource: { readonly resourceType: string; readonly identifier?: unknown }): string[] {
  const identifiers: ReadonlyArray<{ system?: unknown; value?: unknown } | undefined> = Array.isArray(resource.identifier) ? resource.identifier : [];
  const keys: string[] = [];
  for (const identifier of identifiers) {
    const value = identifier?.value;
    if (typeof value !== 'string' || value === '') continue;
    const system = typeof identifier?.system === 'string' && identifier.system !== '' ? identifier.system : undefined;
    keys.push(identifierKey(resource.resourceType, system, value));
    if (system !== undefined) keys.push(identifierKey(resource.resourceType, undefined, value));
  }
  return keys;
}

/**
 * References inside a fetched resource that the department column reads (docs/mapping.md §5.6), beyond a role's
 * practitioner, which is always followed: an Encounter's service provider and first location, a role's organization.
 */
export type ReferenceFollow = 'Encounter.serviceProvider' | 'Encounter.location' | 'PractitionerRole.organization';

/**
 * The keys a fetched resource leads to: a PractitionerRole's practitioner, and what `follow` names, each only as a
 * reference of the expected type on our server (ownKeyOf).
 */
export function followedKeys(resource: object | undefined, follow: ReadonlySet<ReferenceFollow>, ownBase: string | undefined): string[] {
  const keys: string[] = [];
  const key = (ref: { reference?: string } | undefined, type: string): void => {
    const own = ownKeyOf(ref?.reference, ownBase);
    if (own?.startsWith(`${type}/`)) keys.push(own);
  };
  const typed = resource as { resourceType?: string; practitioner?: { reference?: string }; organization?: { reference?: string } } | undefined;
  if (typed?.resourceType === 'PractitionerRole') {
    key(typed.practitioner, 'Practitioner');
    if (follow.has('PractitionerRole.organization')) key(typed.organization, 'Organization');
  } else if (typed?.resourceType === 'Encounter') {
    const encounter = typed as { serviceProvider?: { reference?: string }; location?: Array<{ location?: { reference?: string } }> };
    if (follow.has('Encounter.serviceProvider')) key(encounter.serviceProvider, 'Organization');
    if (follow.has('Encounter.location')) key(encounter.location?.[0]?.location, 'Location');
  }
  return keys;
}

/**
 * A PractitionerRole's practitioner named by identifier only (no literal reference to our server; not `#id`, which is
 * in the role): the mapping looks the Practitioner up by that identifier (mapping/resolve.ts), so it is fetched with the
 * role as a literal one is (followedKeys), in the form the mapping looks it up by first: `normalise` (the mapping's
 * parseCxIdentifiers: an HL7v2 CX value `E123^^^&1.2.840.…&ISO` is value E123 in system urn:oid:1.2.840.…).
 */
export function followedIdentifiers(
  resource: object | undefined,
  ownBase: string | undefined,
  normalise: (identifier: { system?: string; value: string }) => { system?: string; value: string } | undefined = (identifier) => identifier,
): IdentifierReference[] {
  const typed = resource as { resourceType?: string; practitioner?: { reference?: string; identifier?: { system?: string; value?: string } } } | undefined;
  const practitioner = typed?.resourceType === 'PractitionerRole' ? typed.practitioner : undefined;
  const value = practitioner?.identifier?.value;
  if (!value || practitioner?.reference?.startsWith('#') || ownKeyOf(practitioner?.reference, ownBase) !== undefined) return [];
  const given = practitioner?.identifier?.system;
  const normal = normalise(given ? { system: given, value } : { value }) ?? { value };
  return [normal.system ? { type: 'Practitioner', system: normal.system, value: normal.value } : { type: 'Practitioner', value: normal.value }];
}

/** What the mapping needs fetched for one page of events: literal keys (`Type/id`) and identifier-only references. */
export interface ReferenceRequest {
  readonly keys: readonly string[];
  readonly identifiers: readonly IdentifierReference[];
}

export interface IdentifierReference {
  readonly type: 'Patient' | 'Practitioner' | 'PractitionerRole';
  readonly system?: string;
  readonly value: string;
}

/**
 * Read side of the reference cache, filled by the pull before the mapping runs.
 * `get` takes a `referenceKey` or an `identifierKey`; `undefined` = not resolved (missing, deleted, or never asked).
 */
export interface ResourceLookup {
  get(key: string): import('fhir/r4.js').FhirResource | undefined;
}

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
}

const LITERAL = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?\/?$/;

/** Parses `#id`, `Type/id`, `Type/id/_history/v` and absolute URLs ending in those; undefined otherwise (urn:uuid, garbage). */
export function parseReference(reference: string | undefined): ParsedReference | undefined {
  if (!reference) return undefined;
  const trimmed = reference.trim();
  if (trimmed.startsWith('#')) return trimmed.length > 1 ? { id: trimmed.slice(1), contained: true } : undefined;
  const match = LITERAL.exec(trimmed.split(/[?#]/)[0] ?? '');
  if (!match) return undefined;
  const [, type, id, version] = match;
  if (!type || !id) return undefined;
  return version ? { type, id, version, contained: false } : { type, id, contained: false };
}

/** Normalised key for caches and de-duplication: `Type/id`, version and base stripped. */
export function referenceKey(type: string, id: string): string {
  return `${type}/${id}`;
}

/** Key of a parsed non-contained reference, or undefined. */
export function keyOf(reference: string | undefined): string | undefined {
  const parsed = parseReference(reference);
  return parsed?.type ? referenceKey(parsed.type, parsed.id) : undefined;
}

/** Identifier-only references are looked up by `identifier=system|value`; this is their cache key. */
export function identifierKey(type: string, system: string | undefined, value: string): string {
  return `${type}?identifier=${system ?? ''}|${value}`;
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

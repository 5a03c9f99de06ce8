/**
 * Reference resolution for one AuditEvent (docs/mapping.md §3.3), in TS rather than FHIRPath's resolve(): `#id` from
 * `contained` (contained resources never nest, dom-2, so a reference inside a contained resource points at its
 * siblings), literal `Type/id` (versioned forms, and absolute ones with the connector's own base, normalised) through
 * the caller's lookup, then the reference's identifier by `identifierKey`. Display-only references, and literal ones
 * to another server without an identifier, stay unresolved.
 */
import type { AuditEvent, FhirResource, Identifier, Reference } from 'fhir/r4.js';
import { identifierKey, ownKeyOf, parseReference, type ResourceLookup } from '../reference-keys.js';
import type { ResolvedOptions } from './options.js';

export interface Resolver {
  /**
   * @param ref - the reference to follow.
   * @param expectedType - type used for identifier-only references that carry no `type`.
   * @param holder - the resource that holds the reference; its own `contained` list answers `#id` first.
   */
  resolve(ref: Reference | undefined, expectedType?: string, holder?: FhirResource): FhirResource | undefined;
}

/**
 * The common relative form `Type/id` needs no regex: it already is its own key. Same grammar as references.ts
 * (type [A-Z][A-Za-z]+, id [A-Za-z0-9-.]{1,64}); anything else goes through parseReference.
 */
function simpleSlash(reference: string): number {
  const slash = reference.indexOf('/');
  if (slash < 2 || slash + 1 >= reference.length || reference.length - slash - 1 > 64) return -1;
  const first = reference.charCodeAt(0);
  if (first < 0x41 || first > 0x5a) return -1;
  for (let index = 1; index < slash; index += 1) {
    const c = reference.charCodeAt(index) | 0x20;
    if (c < 0x61 || c > 0x7a) return -1;
  }
  for (let index = slash + 1; index < reference.length; index += 1) {
    const c = reference.charCodeAt(index);
    const ok = (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x2d || c === 0x2e;
    if (!ok) return -1;
  }
  return slash;
}

/**
 * An event's few references are each parsed several times (subjects, requestor kind, user, patient): the last two
 * strings parsed are remembered, with their slash position and type. Strings are immutable, so this is a pure cache.
 */
class ReferenceMemo {
  private reference: string | undefined;
  private slash = -1;
  private type: string | undefined;
  private older: string | undefined;
  private olderSlash = -1;
  private olderType: string | undefined;

  /** simpleSlash(reference), remembered. */
  slashOf(reference: string): number {
    if (reference === this.reference) return this.slash;
    if (reference === this.older) {
      this.swap();
      return this.slash;
    }
    this.older = this.reference;
    this.olderSlash = this.slash;
    this.olderType = this.type;
    this.reference = reference;
    this.slash = simpleSlash(reference);
    this.type = undefined;
    return this.slash;
  }

  /** The type of a `Type/id` reference (the same string object each time); call slashOf first. */
  typeOf(reference: string): string {
    this.type ??= commonType(reference, this.slash) ?? reference.slice(0, this.slash);
    return this.type;
  }

  private swap(): void {
    const reference = this.reference;
    const slash = this.slash;
    const type = this.type;
    this.reference = this.older;
    this.slash = this.olderSlash;
    this.type = this.olderType;
    this.older = reference;
    this.olderSlash = slash;
    this.olderType = type;
  }
}

const memo = new ReferenceMemo();

/** Types an AuditEvent's references usually name, as constants: set and map lookups then need no new string's hash. */
const COMMON_TYPES = ['Patient', 'Practitioner', 'PractitionerRole', 'Encounter', 'Location', 'Organization', 'Device', 'RelatedPerson'];

function commonType(reference: string, slash: number): string | undefined {
  for (const type of COMMON_TYPES) if (type.length === slash && reference.startsWith(type)) return type;
  return undefined;
}

/**
 * `ownKeyOf` (Type/id, versions and the server's own base stripped; another server's reference has no key) with the
 * fast path above: a relative `Type/id` never meets the base check.
 * @param ownBase - the connector's FHIR base, normalised (ResolvedOptions.fhirBase); undefined: every base is ours.
 */
export function literalKey(reference: string | undefined, ownBase: string | undefined): string | undefined {
  if (reference === undefined) return undefined;
  return memo.slashOf(reference) > 0 ? reference : ownKeyOf(reference, ownBase);
}

/** The resource type a literal reference names, or undefined (contained, urn:uuid, garbage). */
export function referenceType(reference: string | undefined): string | undefined {
  if (reference === undefined) return undefined;
  return memo.slashOf(reference) > 0 ? memo.typeOf(reference) : parseReference(reference)?.type;
}

/**
 * HL7v2 CX as used by IHE (`id^^^&2.16.840.1.113883.4.2&ISO`): the assigning authority's OID becomes the system. The
 * whole shape is `id^check digit^check scheme^namespace&OID&ISO^type code^…`: a check digit, a scheme, the authority's
 * namespace id (`EPI&1.2.840.…&ISO`), a type code (`^MR`) and any later component may be there or not; the id and the
 * OID are what is read.
 */
const CX = /^([^^]+)\^[^^]*\^[^^]*\^[^^&]*&([0-9]+(?:\.[0-9]+)*)&ISO(?:\^.*)?$/;

export function normaliseIdentifier(identifier: Identifier, parseCx: boolean): { system?: string; value: string } | undefined {
  const value = identifier.value;
  if (!value) return undefined;
  const cx = parseCx ? CX.exec(value) : null;
  if (cx?.[1] && cx[2]) return { system: identifier.system ?? `urn:oid:${cx[2]}`, value: cx[1] };
  return identifier.system ? { system: identifier.system, value } : { value };
}

/** The lookup keys of an identifier-only reference, most specific first. */
export function identifierKeys(type: string, identifier: Identifier, parseCx: boolean): string[] {
  const normal = normaliseIdentifier(identifier, parseCx);
  if (!normal) return [];
  const keys = [identifierKey(type, normal.system, normal.value)];
  if (identifier.value && normal.value !== identifier.value) keys.push(identifierKey(type, identifier.system, identifier.value));
  return keys;
}

/** What the resolver reads of the mapping's options. */
export type ResolverOptions = Pick<ResolvedOptions, 'parseCxIdentifiers' | 'fhirBase'>;

export function createResolver(event: AuditEvent, lookup: ResourceLookup, options: ResolverOptions): Resolver {
  return new EventResolver(event, lookup, options);
}

/** A class rather than closures: one is made per event on the hot path. */
class EventResolver implements Resolver {
  private contained: Map<string, FhirResource> | undefined;

  constructor(
    private readonly event: AuditEvent,
    private readonly lookup: ResourceLookup,
    private readonly options: ResolverOptions,
  ) {}

  resolve(ref: Reference | undefined, expectedType?: string, holder?: FhirResource): FhirResource | undefined {
    if (!ref) return undefined;
    const reference = ref.reference;
    if (reference?.startsWith('#')) return this.fromContained(reference.slice(1), holder);
    const key = literalKey(reference, this.options.fhirBase);
    const byKey = key === undefined ? undefined : this.lookup.get(key);
    if (byKey || !ref.identifier) return byKey;
    const type = ref.type ?? expectedType;
    if (!type) return undefined;
    for (const candidate of identifierKeys(type, ref.identifier, this.options.parseCxIdentifiers)) {
      const found = this.lookup.get(candidate);
      if (found) return found;
    }
    return undefined;
  }

  private fromContained(id: string, holder: FhirResource | undefined): FhirResource | undefined {
    // @types/fhir types `contained` as the abstract Resource; its members are concrete resources.
    const own = holder && holder !== this.event && 'contained' in holder ? (holder.contained as FhirResource[] | undefined) : undefined;
    const found = own?.find((resource) => resource.id === id);
    if (found) return found;
    const list = this.event.contained as FhirResource[] | undefined;
    if (!list?.length) return undefined;
    this.contained ??= new Map(list.filter((resource) => resource.id).map((resource) => [resource.id as string, resource]));
    return this.contained.get(id);
  }
}

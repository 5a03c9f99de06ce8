/**
 * The ReferenceResolver of a bulk export: references the export's own files hold are served from the lookup index,
 * the rest (a Patient not changed since `_since`, a type not exported) go to the FHIR resolver like in a search sync,
 * in its `_id=` batches. Parsed resources are kept in a bounded LRU (fhir.referenceCacheSize), the vocabulary strings
 * shared; an evicted one is parsed again from the index on the next `get`, so nothing needs to stay in memory for
 * correctness.
 */
import type { FhirResource } from 'fhir/r4.js';
import { followedIdentifiers, followedKeys, identifierKey, keyOf, type ReferenceFollow, type ReferenceRequest } from '../../reference-keys.js';
import { StringInterner } from '../intern.js';
import { type IdentifierNormaliser, identifierNormaliser, type PrefetchOptions, type ReferenceResolver } from '../reference-resolver.js';
import type { LookupIndex } from './lookup-index.js';

export class BulkResolver implements ReferenceResolver {
  private readonly parsed = new Map<string, FhirResource>();
  private readonly interner = new StringInterner();
  private index: LookupIndex | undefined;
  /** Keys served from the export's files. */
  private exported = 0;

  /**
   * @param ownBase - the FHIR server's base (normaliseBase form): a role's practitioner elsewhere is not ours to fetch.
   * @param follow - what the department reads inside encounters and roles (ReferenceResolverOptions.follow).
   */
  constructor(
    private readonly fallback: ReferenceResolver,
    private readonly cacheSize: number,
    private readonly ownBase?: string | undefined,
    private readonly follow: ReadonlySet<ReferenceFollow> = new Set(),
    private readonly normalise: IdentifierNormaliser = identifierNormaliser(true),
  ) {}

  /** The index of the export being read (undefined: everything goes to the FHIR resolver). */
  use(index: LookupIndex | undefined): void {
    this.index = index;
    this.parsed.clear();
  }

  get stats(): { hits: number; misses: number; missing: number; exported: number } {
    const f = this.fallback.stats;
    return { hits: f.hits + this.exported, misses: f.misses, missing: f.missing, exported: this.exported };
  }

  async prefetch(request: ReferenceRequest, signal?: AbortSignal, options?: PrefetchOptions): Promise<void> {
    const index = this.index;
    if (!index) return this.fallback.prefetch(request, signal, options);
    const keys = new Set<string>();
    const identifiers = request.identifiers.filter((ref) => {
      const found = index.identifier(identifierKey(ref.type, ref.system, ref.value));
      if (found === undefined) return true;
      this.exported += 1;
      return false;
    });
    for (const raw of request.keys) {
      const key = keyOf(raw);
      if (key === undefined) continue;
      const resource = this.fromIndex(key);
      if (!resource) {
        keys.add(key);
        continue;
      }
      this.exported += 1;
      // A role names its practitioner, whose login and name the mapping reads; an encounter or a role what the department
      // reads (follow). The export may lack them.
      for (const named of followedKeys(resource, this.follow, this.ownBase)) if (!this.fromIndex(named)) keys.add(named);
      // A role may name its practitioner by identifier alone: the mapping looks that up, in the export or over FHIR.
      for (const ref of followedIdentifiers(resource, this.ownBase, this.normalise)) {
        if (index.identifier(identifierKey(ref.type, ref.system, ref.value)) === undefined) identifiers.push(ref);
      }
    }
    if (keys.size > 0 || identifiers.length > 0 || options?.holdPartialBatches !== true) {
      await this.fallback.prefetch({ keys: [...keys], identifiers }, signal, options);
    }
  }

  get(key: string): FhirResource | undefined {
    const index = this.index;
    if (!index) return this.fallback.get(key);
    if (key.includes('?identifier=')) {
      const ref = index.identifier(key);
      if (ref === '') return undefined;
      return ref === undefined ? this.fallback.get(key) : this.fromIndex(ref);
    }
    return this.fromIndex(key) ?? this.fallback.get(key);
  }

  isHeld(key: string): boolean {
    return this.fallback.isHeld(key);
  }

  /** The resource from the LRU, or parsed from the index (and remembered); undefined when the export lacks it. */
  private fromIndex(key: string): FhirResource | undefined {
    const cached = this.parsed.get(key);
    if (cached) {
      this.parsed.delete(key);
      this.parsed.set(key, cached);
      return cached;
    }
    const json = this.index?.json(key);
    if (json === undefined) return undefined;
    const resource = this.interner.internAll(JSON.parse(json) as FhirResource);
    this.parsed.set(key, resource);
    if (this.parsed.size > this.cacheSize) {
      const oldest = this.parsed.keys().next();
      if (!oldest.done) this.parsed.delete(oldest.value);
    }
    return resource;
  }
}

/**
 * Resolves the Patient/Practitioner/PractitionerRole references of a page of events before the mapping runs, in as
 * few requests as the server allows: literal references as `_id=a,b,c` per type (at most `batchSize` ids per
 * request), or one read per id where /metadata offers only `read` for the type; identifier-only references as
 * `identifier=system|value`, then the `practitioner` of every PractitionerRole found (by reference, or by identifier
 * when the role names it so). What the server does not return is remembered as missing so it is not asked again, once
 * asked for alone (a server may honour only part of a list); a read's 404, once read again, for that prefetch only
 * (it may be a load balancer's for a moment). But a search answering 404/405 means the endpoint is missing, not the
 * resources, and stops the run (BRG_ERR_FHIR_NOT_SUPPORTED) before any row is rejected, as does an answer carrying an
 * error outcome or Epic's 4127 (cut short). An absolute reference to another server than `baseUrl` names none of ours
 * and is not asked for.
 * Except for the types only the department column reads (Encounter, Location, Organization): a server that refuses
 * them (403, as Epic answers an API the client's scope lacks) or does not offer them (404/405) leaves that optional
 * cell empty, with one warning per type, instead of stopping every run over it (docs/mapping.md §5.6). And a Patient
 * refused under Break-the-Glass (403 with Epic's 4130/4131/4134) counts as not found, that chart alone (restricted.ts).
 * See: https://hl7.org/fhir/R4/search.html#id, https://hl7.org/fhir/R4/search.html#token, #escaping.
 */
import type { FhirResource } from 'fhir/r4.js';
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { normaliseIdentifier } from '../mapping/resolve.js';
import {
  carriesIdentifier,
  followedIdentifiers,
  followedKeys,
  type IdentifierReference,
  identifierKey,
  identifierKeysOf,
  normaliseBase,
  ownKeyOf,
  parseReference,
  type ReferenceFollow,
  type ReferenceRequest,
  type ResourceLookup,
  referenceKey,
} from '../reference-keys.js';
import { TtlLruCache } from './cache.js';
import type { FhirClient } from './client.js';
import { StringInterner } from './intern.js';
import { refuseIncompleteLookup } from './page-checks.js';
import { resourcesOf } from './pages.js';
import { everyChartRefused, isRestrictedChart, REFUSED_WITHOUT_ANY, RESTRICTED_MESSAGE } from './restricted.js';
import { tokenValue } from './search-escape.js';
import { type UnknownUserStore, UnknownUsers } from './unknown-users.js';

export interface ReferenceResolverOptions {
  /** Ids per `_id=` search. Default 50 (keeps URLs short; Epic pages at 100 or fewer). */
  readonly batchSize?: number;
  /** Resources (and known-missing keys) kept. Default 20000. */
  readonly cacheSize?: number;
  /** After this a cached entry is fetched again by the next prefetch. Default 3600000 ms (1 h). */
  readonly cacheTtlMs?: number;
  /**
   * How long a user identifier that no Practitioner (or PractitionerRole) carries is remembered as nobody's: at Epic,
   * staff without a provider record, whose every look-up costs a search of its own and always finds nothing. Their
   * rows map from the identifier and display all the same. Kept across runs with `unknownUsers`. Default 86400000 ms
   * (24 h).
   */
  readonly unknownUserTtlMs?: number;
  /**
   * Where those user identifiers are kept across runs (the state database, per connector and FHIR server), so each run
   * does not search for every clerk again. Default none: for this resolver's life only.
   */
  readonly unknownUsers?: UnknownUserStore;
  /**
   * The FHIR base the references come from (fhir.baseUrl): an absolute reference with another base is another
   * server's resource and is not fetched. Default none: every base counts as this server's.
   */
  readonly baseUrl?: string;
  readonly clock: Clock;
  /** Where the warning for an unavailable optional type goes (see OPTIONAL_TYPES). */
  readonly logger?: Logger;
  /**
   * References inside fetched Encounters and PractitionerRoles that the mapping reads (mapping/prefetch.ts
   * departmentFollows): fetched with them, as a role's practitioner always is. Default none.
   */
  readonly follow?: ReadonlySet<ReferenceFollow>;
  /**
   * The mapping's parseCxIdentifiers: a role's practitioner named by an HL7v2 CX identifier is searched in the split
   * form the mapping looks it up by (followedIdentifiers). Default true, the mappings' default.
   */
  readonly parseCxIdentifiers?: boolean;
}

/**
 * Types fetched only for the department column (mapping/prefetch.ts): a cell no row is rejected for. Their lookups
 * answering 403 or not being offered (404/405, or /metadata without read or search) mark the type unavailable for
 * one cache TTL: its references count as missing without a request, and the logger says once which scope or API to add.
 */
const OPTIONAL_TYPES: ReadonlySet<string> = new Set(['Encounter', 'Location', 'Organization']);

/** The types a requestor's identifier names (ReferenceResolverOptions.unknownUserTtlMs). */
const USER_TYPES: ReadonlySet<string> = new Set(['Practitioner', 'PractitionerRole']);

export interface ReferenceResolver extends ResourceLookup {
  /**
   * Fetches what is not cached yet. Missing resources (absent from the bundle, or a read answering 410, or 404 twice)
   * are remembered as missing and `get` returns undefined for them (a read's 404 for this prefetch's events only). An
   * identifier matching more than one resource counts as missing too: attributing an access to the wrong person is
   * worse than not attributing it. A search answering 404/405 rejects with BRG_ERR_FHIR_NOT_SUPPORTED and remembers
   * nothing.
   */
  prefetch(request: ReferenceRequest, signal?: AbortSignal, options?: PrefetchOptions): Promise<void>;
  /** True while `key` waits, uncached, in a partial `_id=` batch held back by `holdPartialBatches`. */
  isHeld(key: string): boolean;
  /** hits: requested keys served from cache; misses: keys fetched; missing: keys the server did not have. */
  readonly stats: { hits: number; misses: number; missing: number };
}

export interface PrefetchOptions {
  /**
   * Fetch only full `_id=` batches and hold the remainder (< batchSize keys per type, oldest first) for the next
   * prefetch, which adds its own keys to it. A prefetch without this flag fetches everything held too. The pull uses
   * it so a long sync asks for each resource in about ⌈U/batchSize⌉ requests instead of one partial batch per group.
   */
  readonly holdPartialBatches?: boolean;
}

export function createReferenceResolver(client: FhirClient, options: ReferenceResolverOptions): ReferenceResolver {
  const ttlMs = positiveInteger('cacheTtlMs', options.cacheTtlMs ?? 3_600_000);
  const cache = new TtlLruCache<FhirResource>(positiveInteger('cacheSize', options.cacheSize ?? 20_000), ttlMs, options.clock);
  const unknownUserTtlMs = positiveInteger('unknownUserTtlMs', options.unknownUserTtlMs ?? 86_400_000);
  const unknownUsers = new UnknownUsers(unknownUserTtlMs, options.clock, options.unknownUsers, options.logger);
  return new CachingResolver(client, cache, positiveInteger('batchSize', options.batchSize ?? 50), ownBase(options.baseUrl), unknownUsers, {
    clock: options.clock,
    ttlMs,
    follow: options.follow ?? new Set(),
    normalise: identifierNormaliser(options.parseCxIdentifiers ?? true),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}

/** How a role's practitioner identifier is searched: as the mapping reads it (resolve.ts normaliseIdentifier). */
export function identifierNormaliser(parseCx: boolean): IdentifierNormaliser {
  return (identifier) => normaliseIdentifier(identifier, parseCx);
}

function ownBase(baseUrl: string | undefined): string | undefined {
  if (baseUrl === undefined) return undefined;
  const base = normaliseBase(baseUrl);
  if (base === undefined) throw new TypeError(`Expected \`baseUrl\` to be an absolute URL, got \`${baseUrl}\``);
  return base;
}

/** A search by `_id` answered with resources not asked for: missing ones could not be told from the server's noise. */
function idIgnored(type: string, others: number): BridgeError {
  return new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `The FHIR server answered a ${type} search by _id with ${others} resources not asked for: it does not seem to honour the _id parameter, ` +
      `and paging on would read its whole ${type} list. The bridge stopped before mapping the events that name them; report it to the EHR team.`,
    { details: { resourceType: type, status: 200, idIgnored: true } },
  );
}

const UNAVAILABLE_WORDS: Readonly<Record<string, string>> = {
  forbidden: 'refused (HTTP 403: the access token lacks the scope)',
  'not-offered': 'not offered by the server',
  'id-ignored': 'answered with resources not asked for (the server does not honour _id)',
};

/** An identifier as the mapping reads it (split when it is an HL7v2 CX value and the mapping splits those). */
export type IdentifierNormaliser = (identifier: { system?: string; value: string }) => { system?: string; value: string } | undefined;

/** What marks an optional type unavailable: its lookups refused (403) or not offered (404/405, or not in /metadata). */
function unavailableReason(error: unknown): string | undefined {
  if (!(error instanceof BridgeError)) return undefined;
  if (error.code === 'BRG_ERR_FHIR_NOT_SUPPORTED') return 'not-offered';
  if (error.code === 'BRG_ERR_FHIR_HTTP' && error.details['status'] === 403) return 'forbidden';
  if (error.details['idIgnored'] === true) return 'id-ignored';
  return undefined;
}

class CachingResolver implements ReferenceResolver {
  readonly stats = { hits: 0, misses: 0, missing: 0 };
  private readonly interner = new StringInterner();
  /** Uncached `Type/id` keys waiting for a full batch, in arrival order. */
  private readonly held = new Set<string>();
  /** Resource types whose server answered an identifier list with 400: their identifiers are searched one by one. */
  private readonly listsRefused = new Set<string>();
  /** Resource types whose server answered an `_id=a,b,c` list with 400: their ids are asked for one by one. */
  private readonly idListsRefused = new Set<string>();
  /** Patient lookups refused under Break-the-Glass, and whether any Patient was found (restricted.ts). */
  private readonly charts = { refused: 0, found: false };
  /** Optional types found unavailable, and until when (clock ms) their references count as missing unasked. */
  private readonly unavailable = new Map<string, number>();
  /**
   * What the latest prefetch found or was served from the cache, kept until the next prefetch that asks for anything:
   * its events are mapped in between. The LRU alone could drop some of them during the prefetch itself, when one group
   * names more resources than it holds (events naming many patients each), and their rows would be rejected as
   * missing although the server has them.
   */
  private readonly pinned = new Map<string, FhirResource | undefined>();

  constructor(
    private readonly client: FhirClient,
    private readonly cache: TtlLruCache<FhirResource>,
    private readonly batchSize: number,
    /** normaliseBase(baseUrl), or undefined: every base is ours. */
    private readonly ownBase: string | undefined,
    /** Requestor identifiers nobody carries, apart from the cache (unknown-users.ts). */
    private readonly unknownUsers: UnknownUsers,
    private readonly optional: {
      readonly clock: Clock;
      readonly ttlMs: number;
      readonly follow: ReadonlySet<ReferenceFollow>;
      readonly normalise: IdentifierNormaliser;
      readonly logger?: Logger;
    },
  ) {}

  /** What the last prefetch cached, expired or not: the mapping reads right after the prefetch of its page. */
  get(key: string): FhirResource | undefined {
    return this.pinned.get(key) ?? this.cache.peek(key);
  }

  async prefetch(request: ReferenceRequest, signal?: AbortSignal, options: PrefetchOptions = {}): Promise<void> {
    // A prefetch asking for nothing only releases held keys, for the events of the prefetch before it.
    if (request.keys.length > 0 || request.identifiers.length > 0) this.pinned.clear();
    this.unknownUsers.load();
    try {
      await this.prefetchNow(request, signal, options);
    } finally {
      this.unknownUsers.save(options.holdPartialBatches !== true);
    }
  }

  private async prefetchNow(request: ReferenceRequest, signal: AbortSignal | undefined, options: PrefetchOptions): Promise<void> {
    const requested = request.keys.map((key) => ownKeyOf(key, this.ownBase)).filter((key): key is string => key !== undefined);
    for (const key of this.uncached(
      requested,
      (key) => key,
      (key) => this.held.has(key),
    ))
      this.held.add(key);
    const keys = this.takeHeld(options.holdPartialBatches === true);
    const identifiers = this.uncached(request.identifiers, (ref) => identifierKey(ref.type, ref.system, ref.value));
    const fetched = (await Promise.all([this.fetchKeys(keys, signal), this.fetchIdentifiers(identifiers, signal)])).flat();
    await this.fetchFollowed([...fetched, ...this.cachedHolders(requested, request.identifiers)], signal);
    this.refuseIfNoChartRead();
  }

  /**
   * The requested roles and encounters served from the cache, by key or identifier: what they name counts too, as it
   * may have been evicted or expired since, and must be pinned for this prefetch's events.
   */
  private cachedHolders(requested: readonly string[], identifiers: readonly IdentifierReference[]): Array<FhirResource | undefined> {
    const keys = requested.filter((key) => key.startsWith('PractitionerRole/') || key.startsWith('Encounter/'));
    for (const ref of identifiers) if (ref.type === 'PractitionerRole') keys.push(identifierKey(ref.type, ref.system, ref.value));
    return keys.map((key) => this.cache.peek(key));
  }

  /**
   * A role names its practitioner (by reference, or by identifier alone); the mapping reads the login and name from the
   * Practitioner itself, and the department from a role's organization or an encounter's service provider or location
   * when it reads those (options.follow). Fetched now even if held: the events naming the holder are mapped right after
   * this prefetch; and what is cached is pinned until then (uncached), so a small cache cannot drop it meanwhile.
   */
  private async fetchFollowed(holders: ReadonlyArray<FhirResource | undefined>, signal?: AbortSignal): Promise<void> {
    const named = holders.flatMap((resource) => followedKeys(resource, this.optional.follow, this.ownBase));
    const more = this.uncached(
      named,
      (key) => key,
      (key) => this.held.has(key),
    );
    const released = [...new Set(named.filter((key) => this.held.delete(key)))];
    const byIdentifier = this.uncached(
      holders.flatMap((resource) => followedIdentifiers(resource, this.ownBase, this.optional.normalise)),
      (ref) => identifierKey(ref.type, ref.system, ref.value),
    );
    const keys = [...more, ...released];
    if (keys.length + byIdentifier.length > 0) await Promise.all([this.fetchKeys(keys, signal), this.fetchIdentifiers(byIdentifier, signal)]);
  }

  /**
   * Judged once every lookup of the prefetch has answered, never on the first refusals to come back: restricted charts
   * that happen to be asked first (the queue sends a batch's ids in order) must not stop a run whose other charts read.
   */
  private refuseIfNoChartRead(): void {
    if (!this.charts.found && this.charts.refused >= REFUSED_WITHOUT_ANY) throw everyChartRefused(this.charts.refused);
  }

  isHeld(key: string): boolean {
    return this.held.has(key);
  }

  /** The held keys to fetch now: all of them, or only whole batches per type (the oldest keys first). */
  private takeHeld(wholeBatchesOnly: boolean): string[] {
    if (!wholeBatchesOnly) {
      const all = [...this.held];
      this.held.clear();
      return all;
    }
    const taken: string[] = [];
    for (const [type, ids] of groupIdsByType([...this.held])) {
      const batch = this.idBatchSize(type);
      for (const id of ids.slice(0, ids.length - (ids.length % batch))) taken.push(referenceKey(type, id));
    }
    for (const key of taken) this.held.delete(key);
    return taken;
  }

  /** The items not cached (or expired) and not already waiting, de-duplicated; counts hits and misses. */
  private uncached<T>(items: readonly T[], keyFor: (item: T) => string | undefined, waiting: (key: string) => boolean = () => false): T[] {
    const seen = new Set<string>();
    return items.filter((item) => {
      const key = keyFor(item);
      if (key === undefined || seen.has(key) || waiting(key)) return false;
      seen.add(key);
      const cached = this.cache.isFresh(key);
      // Served from the cache, it is this prefetch's find as well: pinned until its events are mapped.
      if (cached) this.pinned.set(key, this.cache.peek(key));
      const fresh = cached || this.unknownUsers.isFresh(key);
      if (fresh) this.stats.hits += 1;
      else this.stats.misses += 1;
      return !fresh;
    });
  }

  /** Ids per `_id` search of `type`: one where its server refused a list (no batch to fill or wait for). */
  private idBatchSize(type: string): number {
    return this.idListsRefused.has(type) ? 1 : this.batchSize;
  }

  /**
   * A chart refused under Break-the-Glass (restricted.ts): not found for the cache's TTL, and said once per chart. Only
   * counted here: whether every chart is refused is judged when the prefetch's lookups have all answered.
   */
  private restricted(key: string, type: string): [] {
    this.charts.refused += 1;
    this.remember(key, undefined);
    this.optional.logger?.warn({ resourceType: type, outcome: 'break-the-glass' }, RESTRICTED_MESSAGE);
    return [];
  }

  /** `forThisPrefetch`: known for the events of this prefetch only; the next prefetch that names it asks again. */
  private remember(key: string, resource: FhirResource | undefined, forThisPrefetch = false): void {
    if (!resource) this.stats.missing += 1;
    else if (resource.resourceType === 'Patient') this.charts.found = true;
    const kept = resource && this.interner.internAll(resource);
    this.cache.set(key, kept, forThisPrefetch ? 0 : this.optional.ttlMs);
    this.pinned.set(key, kept);
  }

  private async fetchKeys(keys: readonly string[], signal?: AbortSignal): Promise<FhirResource[]> {
    const byType = [...groupIdsByType(keys)];
    return (await Promise.all(byType.map(([type, ids]) => this.fetchType(type, ids, signal)))).flat();
  }

  /** One type's ids, by `_id` batches or reads as /metadata says; an optional type that is unavailable is not asked. */
  private async fetchType(type: string, ids: readonly string[], signal?: AbortSignal): Promise<FhirResource[]> {
    if (!OPTIONAL_TYPES.has(type)) return this.lookUp(type, ids, signal);
    if ((this.unavailable.get(type) ?? Number.NEGATIVE_INFINITY) > this.optional.clock.now()) return this.rememberMissing(type, ids);
    try {
      return await this.lookUp(type, ids, signal);
    } catch (error) {
      const reason = unavailableReason(error);
      if (reason === undefined || signal?.aborted) throw error;
      this.unavailable.set(type, this.optional.clock.now() + this.optional.ttlMs);
      this.optional.logger?.warn(
        { resourceType: type, reason, status: error instanceof BridgeError ? error.details['status'] : undefined },
        `FHIR ${type} lookups are ${UNAVAILABLE_WORDS[reason]}: ` +
          `the department column stays empty where it needs a ${type}; add system/${type}.read to smart.scope and the ${type} API to the client at the EHR, or drop the department sources that read it (docs/mapping.md §5.6)`,
      );
      return this.rememberMissing(type, ids);
    }
  }

  private async lookUp(type: string, ids: readonly string[], signal?: AbortSignal): Promise<FhirResource[]> {
    const mode = await this.client.lookupMode(type, signal);
    const requests =
      mode === 'read' ? ids.map((id) => this.readId(type, id, signal)) : chunk(ids, this.idBatchSize(type)).map((batch) => this.fetchIds(type, batch, signal));
    return (await Promise.all(requests)).flat();
  }

  /** The ids not cached by a batch that got through before the refusal count as missing. */
  private rememberMissing(type: string, ids: readonly string[]): FhirResource[] {
    for (const id of ids) {
      const key = referenceKey(type, id);
      if (!this.cache.isFresh(key)) this.remember(key, undefined);
    }
    return [];
  }

  /**
   * One `_id=a,b,c` search. An id the answer lacks is asked for again alone before it is remembered as missing: a server
   * may honour only part of a list (cap it, or drop what it cannot read) without a word, and a missing resource's rows
   * are rejected for good.
   */
  private async fetchIds(type: string, ids: readonly string[], signal?: AbortSignal): Promise<FhirResource[]> {
    const found = new Map<string, FhirResource>();
    const wanted = new Set(ids);
    let others = 0;
    let pages = 0;
    try {
      for await (const bundle of this.client.searchPages(type, { _id: ids.join(','), _count: String(ids.length) }, signal)) {
        pages += 1;
        // Only Epic's 4127 ("additional data may exist") stops the run here: an error outcome may be the server's word on
        // one id it cannot return (merged, unreadable), and each absent id is asked for alone below. An optional type's
        // lookup never stops it (its cell stays empty).
        if (ids.length > 1 && !OPTIONAL_TYPES.has(type)) refuseIncompleteLookup(bundle, type, 'cut-short');
        const before = found.size;
        for (const resource of resourcesOf(bundle, type)) {
          if (resource.id === undefined) continue;
          if (wanted.has(resource.id)) found.set(resource.id, resource);
          else others += 1;
        }
        if (others > ids.length) throw idIgnored(type, others);
        // Everything asked for is here, or a later page brought nothing new that was (a next link that loops, changing
        // or not): the ids still absent are asked for alone below.
        if (found.size === wanted.size || (pages > 1 && found.size === before)) break;
      }
    } catch (error) {
      // A server that takes no `_id` list (400 to its first page: a later page's 400 is no answer to the list itself).
      const listRefused = ids.length > 1 && pages === 0 && isRefused(error);
      if (listRefused) this.idListsRefused.add(type);
      if (!listRefused && !isRestrictedChart(error, type)) throw error;
      if (ids.length === 1) return this.restricted(referenceKey(type, ids[0] as string), type);
      // A list refused as a list, or for one restricted chart in it: each id it has not answered, alone.
      if (listRefused)
        this.optional.logger?.warn(
          { resourceType: type },
          `the FHIR server refused an _id list of ${type}s (HTTP 400): they are asked for one by one from now on`,
        );
      const rest = ids.filter((id) => !found.has(id));
      for (const [id, resource] of found) this.remember(referenceKey(type, id), resource);
      return [...found.values(), ...(await Promise.all(rest.map((id) => this.fetchIds(type, [id], signal)))).flat()];
    }
    const absent: string[] = [];
    for (const id of ids) {
      const resource = found.get(id);
      if (resource || ids.length === 1) this.remember(referenceKey(type, id), resource);
      else absent.push(id);
    }
    const confirmed = await Promise.all(absent.map((id) => this.fetchIds(type, [id], signal)));
    return [...found.values(), ...confirmed.flat()];
  }

  /**
   * One read; a 410 is the server's word that this one resource was deleted: missing for the cache TTL. A 404 says so
   * too, but may be a load balancer's or a gateway's for a moment: it is read once more before it counts, and then it
   * counts for this prefetch's events only (the next prefetch that names it reads it again). Held for the cache TTL, one
   * passing 404 left the patient off every later event of it in the run. A resource that is really gone costs two reads
   * per prefetch that names it (reads are one request per id anyway).
   */
  private async readId(type: string, id: string, signal?: AbortSignal, again = true): Promise<FhirResource[]> {
    let resource: FhirResource | undefined;
    let status: number | undefined;
    try {
      resource = await this.client.read(type, id, signal);
    } catch (error) {
      if (isRestrictedChart(error, type)) return this.restricted(referenceKey(type, id), type);
      status = goneStatus(error);
      if (status === undefined) throw error;
      if (status === 404 && again) return this.readId(type, id, signal, false);
    }
    this.remember(referenceKey(type, id), resource, status === 404);
    return resource ? [resource] : [];
  }

  /** Identifier-only references, up to batchSize per search and type. */
  private async fetchIdentifiers(refs: readonly IdentifierReference[], signal?: AbortSignal): Promise<FhirResource[]> {
    const byType = groupBy(refs, (ref) => [ref.type, ref]);
    const requests = [...byType.values()].flatMap((list) => chunk(list, this.batchSize).map((batch) => this.fetchIdentifierBatch(batch, signal)));
    return (await Promise.all(requests)).flat();
  }

  /**
   * One `identifier=a|1,b|2,…` search (a comma is FHIR search's OR), each identifier then matched to the resources
   * in the answer that carry it. The answer is trusted only as far as it must be right whatever the server did with
   * the list: an identifier is resolved from it only when its carriers there carry no other identifier of the list (a
   * server may OR only part of a list); every other identifier is searched on its own, as is the whole list when the
   * server refuses it (400, remembered per type), fails on a later page, or answers more than twice as many resources
   * as it was asked for (it ignored the list). Two carriers make an identifier ambiguous: it resolves to nothing.
   */
  private async fetchIdentifierBatch(refs: readonly IdentifierReference[], signal?: AbortSignal): Promise<FhirResource[]> {
    const [first] = refs;
    if (!first) return [];
    if (refs.length === 1 || this.listsRefused.has(first.type)) return this.fetchEach(refs, signal);
    const found = await this.searchList(first.type, refs, signal);
    if (!found) return this.fetchEach(refs, signal);
    const matched: FhirResource[] = [];
    const alone: IdentifierReference[] = [];
    // Which identifiers of the list each resource carries (as token search matches them), worked out once per resource.
    const carried = found.map((resource) => {
      const keys = new Set(identifierKeysOf(resource));
      return refs.filter((ref) => keys.has(identifierKey(ref.type, ref.system, ref.value)));
    });
    for (const ref of refs) {
      const carriers = found.filter((_, i) => carried[i]?.includes(ref));
      const exclusive = found.every((_, i) => !carried[i]?.includes(ref) || carried[i]?.length === 1);
      if (carriers.length === 0 || !exclusive) {
        alone.push(ref);
        continue;
      }
      const match = this.rememberIdentifier(ref, carriers.length === 1 ? carriers[0] : undefined);
      if (match) matched.push(match);
    }
    return [...matched, ...(await this.fetchEach(alone, signal))];
  }

  /** The resources a list search answers, each once; undefined when the answer cannot be used (see fetchIdentifierBatch). */
  private async searchList(type: string, refs: readonly IdentifierReference[], signal?: AbortSignal): Promise<FhirResource[] | undefined> {
    const found = new Map<string, FhirResource>();
    let pages = 0;
    try {
      const query = { identifier: refs.map(identifierToken).join(','), _count: String(refs.length * 2) };
      for await (const bundle of this.client.searchPages(type, query, signal)) {
        refuseIncompleteLookup(bundle, type);
        pages += 1;
        const before = found.size;
        for (const resource of resourcesOf(bundle, type)) found.set(resource.id ?? `#${found.size}`, resource);
        if (found.size > refs.length * 2) return undefined;
        // A later page with nothing new is a next link that loops: what it would repeat is already here.
        if (pages > 1 && found.size === before) break;
      }
    } catch (error) {
      // A list refused for one restricted chart in it: each identifier is searched alone.
      if (isRestrictedChart(error, type)) return undefined;
      if (!isRefused(error)) throw error;
      if (pages === 0) this.listsRefused.add(type);
      return undefined;
    }
    return [...found.values()];
  }

  private async fetchEach(refs: readonly IdentifierReference[], signal?: AbortSignal): Promise<FhirResource[]> {
    return (await Promise.all(refs.map((ref) => this.fetchIdentifier(ref, signal)))).flat();
  }

  /** One `identifier=system|value` search; no match or more than one match is remembered as missing. */
  private async fetchIdentifier(ref: IdentifierReference, signal?: AbortSignal): Promise<FhirResource[]> {
    let matches: FhirResource[] = [];
    let more = false;
    try {
      for await (const bundle of this.client.searchPages(ref.type, { identifier: identifierToken(ref), _count: '2' }, signal)) {
        refuseIncompleteLookup(bundle, ref.type);
        matches = resourcesOf(bundle, ref.type);
        // A server paging smaller than asked shows a second match by a next page or its total, not on this page.
        more = bundle.link?.some((link) => link.relation === 'next') === true || (bundle.total ?? 0) > matches.length;
        break; // two results already make it ambiguous; no need for more pages.
      }
    } catch (error) {
      if (!isRestrictedChart(error, ref.type)) throw error;
      return this.restricted(identifierKey(ref.type, ref.system, ref.value), ref.type);
    }
    // One answer that does not carry the identifier is the server's misreading, not the user.
    if (matches.length === 1 && !carriesIdentifier(matches[0] as FhirResource, ref)) matches = [];
    // One match of several is no one's: an access pinned on the wrong person is worse than one on nobody.
    const match = this.rememberIdentifier(ref, matches.length === 1 && !more ? matches[0] : undefined, matches.length === 0);
    return match ? [match] : [];
  }

  /**
   * Caches what an identifier names (or that it names nothing usable), and the resource under its own key. A user
   * identifier asked for alone that nobody carries is kept unknownUserTtlMs: staff without a provider record stay so.
   */
  private rememberIdentifier(ref: IdentifierReference, match: FhirResource | undefined, nobody = false): FhirResource | undefined {
    const key = identifierKey(ref.type, ref.system, ref.value);
    if (nobody && USER_TYPES.has(ref.type)) {
      this.stats.missing += 1;
      this.unknownUsers.add(key);
      return undefined;
    }
    this.remember(key, match);
    this.unknownUsers.forget(key);
    if (match?.id !== undefined) {
      const key = referenceKey(match.resourceType, match.id);
      this.cache.set(key, match);
      this.pinned.set(key, match);
      this.held.delete(key); // found through its identifier: no need to ask for it by id as well
    }
    return match;
  }
}

/** A search the server refused as a request (400): it may not take a comma list for this parameter. */
function isRefused(error: unknown): boolean {
  return error instanceof BridgeError && error.code === 'BRG_ERR_FHIR_HTTP' && error.details['status'] === 400;
}

/** 404 or 410 when a read answered so: this one resource does not exist (any more); undefined for any other failure. */
function goneStatus(error: unknown): 404 | 410 | undefined {
  if (!(error instanceof BridgeError) || error.code !== 'BRG_ERR_FHIR_HTTP') return undefined;
  const status = error.details['status'];
  return status === 404 || status === 410 ? status : undefined;
}

function groupIdsByType(keys: readonly string[]): Map<string, string[]> {
  return groupBy(keys, (key) => {
    const parsed = parseReference(key);
    return parsed?.type ? [parsed.type, parsed.id] : undefined;
  });
}

/** Items grouped under the key `entry` gives them, in first-seen order; an item without an entry is left out. */
function groupBy<T, V>(items: Iterable<T>, entry: (item: T) => readonly [key: string, value: V] | undefined): Map<string, V[]> {
  const groups = new Map<string, V[]>();
  for (const item of items) {
    const pair = entry(item);
    if (pair === undefined) continue;
    const group = groups.get(pair[0]);
    if (group) group.push(pair[1]);
    else groups.set(pair[0], [pair[1]]);
  }
  return groups;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
}

/** `system|value`, escaped for a search; a bare value matches any system. */
function identifierToken(ref: IdentifierReference): string {
  return tokenValue(ref.system, ref.value);
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`Expected \`${name}\` to be a whole number >= 1, got \`${value}\``);
  return value;
}

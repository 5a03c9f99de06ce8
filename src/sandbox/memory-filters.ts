/**
 * The searches medplum's MemoryRepository gets wrong, done here on the resources it returns (R4 search,
 * https://hl7.org/fhir/R4/search.html):
 * - `date` (AuditEvent.recorded) and `_lastUpdated` compare an instant as a point (§3.1.1.4.2: "an interval with an
 *   effective width of 0"); medplum takes `…T00:01:00Z` as the whole second, so `ge…00.500Z` matched it and an event fell
 *   into two adjacent half-open windows.
 * - `_id` and `identifier` match exactly (ids are case-sensitive, as Epic's are) and honour `\|` and `\,` escapes;
 *   medplum ignores case and splits a token at an escaped bar.
 * The server in front has already refused unknown parameters and modifiers.
 */
import type { FhirResource, Identifier } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { parseFhirDateTime, type TimeRange } from './generator-time.js';
import { parseTokenValue, splitUnescaped, unescapeSearchValue } from './search-token.js';

export type ResourceFilter = (resource: FhirResource) => boolean;

/** The query without the parameters filtered here, and their filters (all must hold). */
export function takeExactFilters(resourceType: string, query: URLSearchParams): { rest: URLSearchParams; filters: ResourceFilter[] } {
  const rest = new URLSearchParams();
  const filters: ResourceFilter[] = [];
  for (const [name, value] of query) {
    if (name === '_id') filters.push(idFilter(value));
    else if (name === 'identifier') filters.push(identifierFilter(value));
    else if (name === '_lastUpdated') filters.push(instantFilter(resourceType, name, value, (r) => r.meta?.lastUpdated));
    else if (name === 'date' && resourceType === 'AuditEvent')
      filters.push(instantFilter(resourceType, name, value, (r) => (r as { recorded?: string }).recorded));
    else rest.append(name, value);
  }
  return { rest, filters };
}

/** A comma list ORs (R4 §3.1.1.1: `\,` is no list comma). */
function anyOf<T>(list: string, parse: (item: string) => T): T[] {
  return splitUnescaped(list, ',').map(parse);
}

function idFilter(list: string): ResourceFilter {
  const ids = new Set(anyOf(list, unescapeSearchValue));
  return (resource) => resource.id !== undefined && ids.has(resource.id);
}

function identifierFilter(list: string): ResourceFilter {
  const tokens = anyOf(list, parseTokenValue);
  const matches = (identifier: Identifier): boolean =>
    tokens.some(({ system, value }) => {
      // `system|` any value in that system, `|value` no system, `value` any system (R4 §3.1.1.4.7).
      if (system === undefined) return identifier.value === value;
      if (system === '') return identifier.system === undefined && identifier.value === value;
      return identifier.system === system && (value === '' || identifier.value === value);
    });
  return (resource) => ((resource as { identifier?: Identifier[] }).identifier ?? []).some(matches);
}

type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb';

/** t is the resource's instant (a point); [startMs, endMs) the range the value's precision covers. */
const POINT_TESTS: Readonly<Record<Prefix, (t: number, range: TimeRange) => boolean>> = {
  eq: (t, r) => t >= r.startMs && t < r.endMs,
  ne: (t, r) => t < r.startMs || t >= r.endMs,
  gt: (t, r) => t >= r.endMs,
  sa: (t, r) => t >= r.endMs,
  ge: (t, r) => t >= r.startMs,
  lt: (t, r) => t < r.startMs,
  eb: (t, r) => t < r.startMs,
  le: (t, r) => t < r.endMs,
};

function instantFilter(resourceType: string, name: string, list: string, instantOf: (resource: FhirResource) => string | undefined): ResourceFilter {
  const tests = anyOf(list, (item) => {
    const match = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.*)$/s.exec(item);
    const prefix = (match?.[1] ?? 'eq') as Prefix | 'ap';
    const range = parseFhirDateTime(match?.[2] ?? '');
    if (range === undefined) throw invalid(`${resourceType} ${name}=${item} is not a FHIR date, dateTime or instant (e.g. ge2026-11-01T00:00:00Z).`);
    if (prefix === 'ap') throw invalid(`${resourceType} ${name} prefix "ap" is not supported by the sandbox; use eq, ne, gt, lt, ge, le, sa or eb.`);
    const test = POINT_TESTS[prefix];
    return (t: number): boolean => test(t, range);
  });
  return (resource) => {
    const text = instantOf(resource);
    const t = text === undefined ? undefined : parseFhirDateTime(text)?.startMs;
    return t !== undefined && tests.some((test) => test(t));
  };
}

function invalid(message: string): BridgeError {
  return new BridgeError('BRG_ERR_INPUT_INVALID', message);
}

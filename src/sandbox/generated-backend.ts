/**
 * A FhirBackend over a GeneratedDataset that builds only the requested page: AuditEvent time windows become an index
 * range by binary search over the deterministic timeline, and Patient/Practitioner ids and identifiers decode to
 * their index in O(1). Memory stays flat however many events the dataset has, so benchmarks measure the bridge.
 * Search semantics: https://hl7.org/fhir/R4/search.html (date prefixes §3.1.1.4.2, _sort, _count, _summary=count).
 */
import type { FhirResource, Identifier } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import type { FhirBackend } from './fhir-backend.js';
import type { GeneratedDataset } from './generator.js';
import { patientIndexFromIdentifier } from './generator-patients.js';
import { practitionerIndexFromIdentifier } from './generator-practitioners.js';
import { ID_KIND, type IdKind, indexFromId } from './generator-random.js';
import { parseFhirDateTime } from './generator-time.js';
import { parseTokenValue, splitUnescaped } from './search-token.js';

export type { FhirBackend } from './fhir-backend.js';

/** `_count` when the caller sends none (the sandbox server always sends one). */
export const DEFAULT_PAGE_SIZE = 100;

type SearchResult = { resources: FhirResource[]; total: number };

interface Kind {
  readonly idKind: IdKind;
  readonly count: number;
  /** Undefined where the index names no resource (a user without a Practitioner): only in a sparse kind. */
  readonly at: (i: number) => FhirResource | undefined;
  readonly sparse?: true;
  readonly fromIdentifier?: (system: string | undefined, value: string) => number[];
}

const EVENT_PARAMS = new Set(['date', '_lastUpdated', '_sort', '_count', '_offset', '_summary']);
const PEOPLE_PARAMS = new Set(['_id', 'identifier', '_count', '_offset', '_summary']);
const SORTS = new Set(['date', '_lastUpdated', '-date', '-_lastUpdated']);

export function createGeneratedBackend(dataset: GeneratedDataset): FhirBackend {
  const o = dataset.options;
  const kinds: Readonly<Record<string, Kind>> = {
    AuditEvent: { idKind: ID_KIND.event, count: o.events, at: (i) => dataset.eventAt(i) },
    Patient: { idKind: ID_KIND.patient, count: o.patients, at: (i) => dataset.patientAt(i), fromIdentifier: patientIndexFromIdentifier },
    Practitioner: {
      idKind: ID_KIND.practitioner,
      count: o.practitioners,
      at: (i) => dataset.practitionerAt(i),
      sparse: true,
      fromIdentifier: practitionerIndexFromIdentifier,
    },
  };
  return {
    async read(resourceType, id) {
      const kind = kinds[resourceType];
      const index = kind ? indexFromId(o.seed, kind.idKind, id, kind.count) : undefined;
      return kind && index !== undefined ? kind.at(index) : undefined;
    },
    async search(resourceType, query) {
      const kind = kinds[resourceType];
      // The dataset has no resources of other types (PractitionerRole, Encounter …): an empty searchset.
      if (!kind) return { resources: [], total: 0 };
      if (resourceType === 'AuditEvent') return searchEvents(dataset, query);
      return searchPeople(o.seed, kind, resourceType, query);
    },
  };
}

function searchEvents(dataset: GeneratedDataset, query: URLSearchParams): SearchResult {
  rejectUnknown(query, EVENT_PARAMS, 'AuditEvent');
  const sorts = query.getAll('_sort');
  if (sorts.length > 1 || (sorts[0] !== undefined && !SORTS.has(sorts[0]))) {
    throw invalid(`AuditEvent _sort=${sorts.join(',')} is not supported; use date, _lastUpdated, -date or -_lastUpdated.`);
  }
  const descending = sorts[0]?.startsWith('-') ?? false;
  // meta.lastUpdated equals recorded in the generated data, so `date` and `_lastUpdated` bound the same timeline.
  let from = 0;
  let to = dataset.options.events;
  for (const param of ['date', '_lastUpdated']) {
    for (const value of query.getAll(param)) {
      const bound = indexBound(dataset, param, value);
      from = Math.max(from, bound.from);
      to = Math.min(to, bound.to ?? to);
    }
  }
  const total = Math.max(0, to - from);
  const { offset, count } = paging(query, total);
  const size = Math.max(0, Math.min(count, total - offset));
  const resources = Array.from({ length: size }, (_, k) => dataset.eventAt(descending ? to - 1 - offset - k : from + offset + k));
  return { resources, total };
}

/**
 * One `date`/`_lastUpdated` value as an index range. A recorded instant is a point t; the value covers [lo, hi)
 * by its precision, so: eq lo ≤ t < hi, ge t ≥ lo, gt t ≥ hi, le t < hi, lt t < lo (R4 search §3.1.1.4.2).
 */
function indexBound(dataset: GeneratedDataset, param: string, raw: string): { from: number; to?: number } {
  const match = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.*)$/.exec(raw);
  const prefix = match?.[1] ?? 'eq';
  // An unencoded '+' in a zone offset arrives as a space after form decoding.
  const range = parseFhirDateTime((match?.[2] ?? '').replace(/ (\d{2}:\d{2})$/, '+$1'));
  if (!range) throw invalid(`AuditEvent ${param}=${raw} is not a FHIR date, dateTime or instant (e.g. ge2026-11-01T00:00:00Z).`);
  // Range bounds are already rounded up to whole milliseconds, like the recorded times they are compared with.
  const first = (ms: number): number => dataset.firstEventAtOrAfter(new Date(clampMs(ms)).toISOString());
  switch (prefix) {
    case 'eq':
      return { from: first(range.startMs), to: first(range.endMs) };
    case 'ge':
      return { from: first(range.startMs) };
    case 'gt':
      return { from: first(range.endMs) };
    case 'le':
      return { from: 0, to: first(range.endMs) };
    case 'lt':
      return { from: 0, to: first(range.startMs) };
    default:
      throw invalid(`AuditEvent ${param} prefix "${prefix}" is not supported by the generated sandbox backend; use eq, ge, gt, le or lt.`);
  }
}

/** Years 0000–9999 only, so the ISO text stays four-digit. */
function clampMs(ms: number): number {
  return Math.min(253_402_300_799_999, Math.max(-62_167_219_200_000, ms));
}

/** `_id` and `identifier` decode to candidate indexes; several params AND together, comma lists OR (`\,` is no list comma). */
function searchPeople(seed: number, kind: Kind, resourceType: string, query: URLSearchParams): SearchResult {
  rejectUnknown(query, PEOPLE_PARAMS, resourceType);
  let matches: number[] | undefined;
  const narrow = (indexes: Iterable<number>): void => {
    const set = new Set(indexes);
    matches = matches === undefined ? [...set] : matches.filter((i) => set.has(i));
  };
  for (const ids of query.getAll('_id')) narrow(splitUnescaped(ids, ',').flatMap((id) => decodeId(seed, kind, id)));
  for (const tokens of query.getAll('identifier')) narrow(splitUnescaped(tokens, ',').flatMap((token) => decodeIdentifier(kind, resourceType, token)));
  if (matches === undefined) return listAll(kind, query);
  const sorted = [...new Set(matches)].sort((a, b) => a - b);
  const { offset, count } = paging(query, sorted.length);
  const resources = sorted.slice(offset, offset + count).map((i) => kind.at(i) as FhirResource);
  return { resources, total: sorted.length };
}

/**
 * Every resource of the kind, in index order, `_offset` counting resources (not indexes): in a sparse kind the indexes
 * that name none (users without a Practitioner) are skipped, their positions worked out once per kind and kept.
 */
const EXISTING = new WeakMap<Kind, number[]>();
function listAll(kind: Kind, query: URLSearchParams): SearchResult {
  if (!kind.sparse) {
    const { offset, count } = paging(query, kind.count);
    const resources = Array.from({ length: Math.max(0, Math.min(count, kind.count - offset)) }, (_, k) => kind.at(offset + k) as FhirResource);
    return { resources, total: kind.count };
  }
  let existing = EXISTING.get(kind);
  if (!existing) {
    existing = [];
    for (let i = 0; i < kind.count; i += 1) if (kind.at(i) !== undefined) existing.push(i);
    EXISTING.set(kind, existing);
  }
  const { offset, count } = paging(query, existing.length);
  const resources = existing.slice(offset, offset + count).map((i) => kind.at(i) as FhirResource);
  return { resources, total: existing.length };
}

function decodeId(seed: number, kind: Kind, id: string): number[] {
  const index = indexFromId(seed, kind.idKind, id.trim(), kind.count);
  return index === undefined || kind.at(index) === undefined ? [] : [index];
}

/**
 * `system|value`, `value` (any system) or `|value` (no system: nothing here has none), with FHIR search escapes.
 * Values are never echoed (PHI).
 */
function decodeIdentifier(kind: Kind, resourceType: string, token: string): number[] {
  const { system, value } = parseTokenValue(token);
  if (value === '') throw invalid(`${resourceType} identifier=system| (any value) is not supported by the generated sandbox backend; give a value.`);
  if (system === '') return [];
  const candidates = kind.fromIdentifier?.(system, value) ?? [];
  return candidates.filter((i) => i < kind.count && carries(kind.at(i), system, value));
}

function carries(resource: FhirResource | undefined, system: string | undefined, value: string): boolean {
  if (resource === undefined) return false;
  const identifiers: Identifier[] = 'identifier' in resource && Array.isArray(resource.identifier) ? resource.identifier : [];
  return identifiers.some((id) => id.value === value && (system === undefined || id.system === system));
}

function paging(query: URLSearchParams, total: number): { offset: number; count: number } {
  const summary = query.get('_summary');
  if (summary !== null && summary !== 'count') throw invalid(`_summary=${summary} is not supported by the generated sandbox backend; only _summary=count.`);
  const offset = wholeNumber(query, '_offset') ?? 0;
  const count = summary === 'count' ? 0 : (wholeNumber(query, '_count') ?? DEFAULT_PAGE_SIZE);
  return { offset: Math.min(offset, total), count };
}

function wholeNumber(query: URLSearchParams, name: string): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw invalid(`${name} must be a whole number ≥ 0, got "${value}".`);
  return Number(value);
}

function rejectUnknown(query: URLSearchParams, allowed: ReadonlySet<string>, resourceType: string): void {
  for (const key of new Set(query.keys())) {
    if (!allowed.has(key)) {
      throw invalid(`${resourceType} search parameter "${key}" is not supported by the generated sandbox backend (supported: ${[...allowed].join(', ')}).`);
    }
  }
}

function invalid(message: string): BridgeError {
  return new BridgeError('BRG_ERR_INPUT_INVALID', message);
}

/**
 * A FhirBackend over a GeneratedDataset that builds only the requested page: AuditEvent time windows are resolved by
 * binary search over the deterministic timeline, Patient/Practitioner ids decode to their index. Memory stays flat
 * however many events the dataset has, so benchmarks measure the bridge and not the sandbox.
 */
import type { FhirResource } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import type { FhirBackend } from './fhir-backend.js';
import { EVENT_KIND, type GeneratedDataset } from './generator.js';
import { PATIENT_KIND, PRACTITIONER_KIND } from './generator-people.js';
import { indexFromId } from './generator-random.js';

const AUDIT_PARAMS = new Set(['date', '_lastUpdated', '_sort', '_count', '_offset', '_summary']);
const PEOPLE_PARAMS = new Set(['_id', 'identifier', '_count', '_offset']);

export function createGeneratedBackend(dataset: GeneratedDataset): FhirBackend {
  const o = dataset.options;
  const kinds: Record<string, { kind: string; count: number; at: (i: number) => FhirResource }> = {
    AuditEvent: { kind: EVENT_KIND, count: o.events, at: (i) => dataset.eventAt(i) },
    Patient: { kind: PATIENT_KIND, count: o.patients, at: (i) => dataset.patientAt(i) },
    Practitioner: { kind: PRACTITIONER_KIND, count: o.practitioners, at: (i) => dataset.practitionerAt(i) },
  };
  return {
    async read(resourceType, id) {
      const k = kinds[resourceType];
      const index = k ? indexFromId(o.seed, k.kind, id, k.count) : undefined;
      return k && index !== undefined ? k.at(index) : undefined;
    },
    async search(resourceType, query) {
      if (resourceType === 'AuditEvent') return searchEvents(dataset, query);
      const k = kinds[resourceType];
      if (!k) return { resources: [], total: 0 };
      rejectUnknown(query, PEOPLE_PARAMS, resourceType);
      const ids = query.get('_id')?.split(',').filter(Boolean);
      const identifier = query.get('identifier');
      let matches: FhirResource[];
      if (ids) {
        matches = ids.map((id) => indexFromId(o.seed, k.kind, id, k.count)).filter((i): i is number => i !== undefined).map(k.at);
      } else if (identifier) {
        const [system, value] = identifier.includes('|') ? identifier.split('|', 2) : [undefined, identifier];
        // A linear scan is fine here: only identifier-only references use it, and the sandbox data has none.
        matches = [];
        for (let i = 0; i < k.count; i++) {
          const resource = k.at(i) as { identifier?: Array<{ system?: string; value?: string }> };
          if (resource.identifier?.some((id) => id.value === value && (!system || id.system === system))) matches.push(resource as FhirResource);
        }
      } else {
        matches = Array.from({ length: Math.min(k.count, 1000) }, (_, i) => k.at(i));
      }
      return page(matches.length, query, (from, to) => matches.slice(from, to));
    },
  };
}

function searchEvents(dataset: GeneratedDataset, query: URLSearchParams): { resources: FhirResource[]; total: number } {
  rejectUnknown(query, AUDIT_PARAMS, 'AuditEvent');
  const sort = query.get('_sort');
  if (sort && sort !== 'date' && sort !== '_lastUpdated') throw invalid(`AuditEvent _sort=${sort} is not supported (date, _lastUpdated)`);
  let from = 0;
  let to = dataset.options.events;
  for (const param of ['date', '_lastUpdated']) {
    for (const value of query.getAll(param)) {
      const match = /^(ge|gt|le|lt|eq)?(.+)$/.exec(value);
      const prefix = match?.[1] ?? 'eq';
      const instant = Date.parse(match?.[2] ?? '');
      if (Number.isNaN(instant)) throw invalid(`AuditEvent ${param}=${value} is not a date`);
      const iso = new Date(instant).toISOString();
      // recorded has whole milliseconds, so "after t" is "at or after t + 1 ms".
      const after = new Date(instant + 1).toISOString();
      if (prefix === 'ge') from = Math.max(from, dataset.firstEventAtOrAfter(iso));
      else if (prefix === 'gt') from = Math.max(from, dataset.firstEventAtOrAfter(after));
      else if (prefix === 'lt') to = Math.min(to, dataset.firstEventAtOrAfter(iso));
      else if (prefix === 'le') to = Math.min(to, dataset.firstEventAtOrAfter(after));
      else {
        from = Math.max(from, dataset.firstEventAtOrAfter(iso));
        to = Math.min(to, dataset.firstEventAtOrAfter(after));
      }
    }
  }
  const total = Math.max(0, to - from);
  if (query.get('_summary') === 'count') return { resources: [], total };
  return page(total, query, (a, b) => Array.from({ length: b - a }, (_, i) => dataset.eventAt(from + a + i)));
}

function page(total: number, query: URLSearchParams, slice: (from: number, to: number) => FhirResource[]): { resources: FhirResource[]; total: number } {
  const offset = Math.max(0, Number(query.get('_offset') ?? 0) || 0);
  const count = query.has('_count') ? Math.max(0, Number(query.get('_count')) || 0) : total;
  const from = Math.min(offset, total);
  return { resources: slice(from, Math.min(total, from + count)), total };
}

function rejectUnknown(query: URLSearchParams, allowed: ReadonlySet<string>, type: string): void {
  for (const key of query.keys()) if (!allowed.has(key)) throw invalid(`${type} search parameter "${key}" is not supported by the generated sandbox backend`);
}

function invalid(message: string): BridgeError {
  return new BridgeError('BRG_ERR_INPUT_INVALID', message);
}

/**
 * The /metadata probe: which software answers, which AuditEvent search parameters it offers, and how each other
 * resource type can be fetched by id. Epic's public R4 server lists no AuditEvent at all (docs/epic-smart.md §6.1), so the
 * bridge checks before its first run and fails loudly. Patient/Practitioner lookups use `_id` search where the
 * statement offers it and read-by-id where it offers only `read` (issue #15.3: a server answering 404 to
 * `Patient?_id=` made real patients look missing).
 * See: https://hl7.org/fhir/R4/capabilitystatement.html
 */
import type { CapabilityStatement, CapabilityStatementRest } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';

/** What the statement says about one resource type. */
export interface TypeCapability {
  /** `interaction.code`s, e.g. 'read', 'search-type'. */
  readonly interactions: readonly string[];
  /** Search parameter names of the type, plus those the rest element lists for every type. */
  readonly searchParams: readonly string[];
}

export interface CapabilitySummary {
  /** `software.name software.version`, or a placeholder when the statement names none. */
  readonly software: string;
  /** AuditEvent search parameter names, resource-level and server-wide; empty when AuditEvent search is not offered. */
  readonly auditEventSearch: readonly string[];
  /** Every resource type the server-mode rest elements list. */
  readonly resources: Readonly<Record<string, TypeCapability>>;
}

/** How the reference resolver asks for resources of one type by id. */
export type LookupMode = 'search' | 'read';

export function summarizeCapability(body: unknown): CapabilitySummary {
  const statement = body as Partial<CapabilityStatement> | null;
  if (statement?.resourceType !== 'CapabilityStatement') {
    throw new BridgeError('BRG_ERR_FHIR_CAPABILITY', 'GET /metadata did not return a CapabilityStatement; check fhir.baseUrl points at the FHIR R4 base.');
  }
  const software = [statement.software?.name, statement.software?.version].filter(Boolean).join(' ') || 'an unnamed FHIR server';
  const resources: Record<string, { interactions: Set<string>; searchParams: Set<string> }> = {};
  for (const rest of (statement.rest ?? []).filter((r) => r.mode === 'server')) addRest(resources, rest);
  const typed = Object.fromEntries(
    Object.entries(resources).map(([type, r]) => [type, { interactions: [...r.interactions].sort(), searchParams: [...r.searchParams].sort() }]),
  );
  const auditEvent = typed['AuditEvent'];
  const auditEventSearch = auditEvent?.interactions.includes('search-type') ? auditEvent.searchParams : [];
  return { software, auditEventSearch, resources: typed };
}

function addRest(into: Record<string, { interactions: Set<string>; searchParams: Set<string> }>, rest: CapabilityStatementRest): void {
  // Parameters such as _id and _lastUpdated apply to every resource and may be listed once at the rest level.
  const common = (rest.searchParam ?? []).map((param) => param.name);
  for (const resource of rest.resource ?? []) {
    let entry = into[resource.type];
    if (!entry) {
      entry = { interactions: new Set(), searchParams: new Set() };
      into[resource.type] = entry;
    }
    for (const interaction of resource.interaction ?? []) entry.interactions.add(interaction.code);
    for (const name of [...(resource.searchParam ?? []).map((param) => param.name), ...common]) entry.searchParams.add(name);
  }
}

/**
 * `_id` search when the type offers search-type and lists `_id` (or offers no read to fall back on); read-by-id
 * when it offers read only. A type the statement does not list is searched: a 404/405 then stops the run. A type
 * listed with neither stops it now, before any row could be rejected for want of a resource.
 */
export function lookupMode(summary: CapabilitySummary, resourceType: string, baseUrl: string): LookupMode {
  const type = summary.resources[resourceType];
  if (!type) return 'search';
  const search = type.interactions.includes('search-type');
  const read = type.interactions.includes('read');
  if (search && (type.searchParams.includes('_id') || !read)) return 'search';
  if (read) return 'read';
  throw new BridgeError(
    'BRG_ERR_FHIR_NOT_SUPPORTED',
    `The FHIR server at ${baseUrl} (${summary.software}) lists ${resourceType} in its /metadata without read or search, so the bridge cannot look ${resourceType} resources up; ` +
      `the run stopped without rejecting anything. Ask the EHR team to enable ${resourceType} read or search.`,
    { details: { software: summary.software, resourceType, interactions: type.interactions.join(',') } },
  );
}

/** BRG_ERR_FHIR_CAPABILITY naming the software when AuditEvent search by `param` is not offered. */
export function requireSearchParam(summary: CapabilitySummary, param: string, baseUrl: string): void {
  if (summary.auditEventSearch.includes(param)) return;
  const offered =
    summary.auditEventSearch.length === 0
      ? 'its /metadata lists no AuditEvent search at all'
      : `it offers AuditEvent search by ${summary.auditEventSearch.join(', ')}`;
  throw new BridgeError(
    'BRG_ERR_FHIR_CAPABILITY',
    `The FHIR server at ${baseUrl} (${summary.software}) does not offer AuditEvent search by ${param}: ${offered}. ` +
      'Ask the EHR team to enable AuditEvent search, set fhir.dateParam to an offered parameter, or use a flat-file export with `bridge push`.',
    { details: { software: summary.software, param, offered: summary.auditEventSearch.join(',') } },
  );
}

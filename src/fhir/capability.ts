/**
 * The /metadata probe: which software answers and which AuditEvent search parameters it offers. Epic's public R4
 * server lists no AuditEvent at all (research §3.7), so the bridge checks before its first run and fails loudly.
 * See: https://hl7.org/fhir/R4/capabilitystatement.html
 */
import type { CapabilityStatement, CapabilityStatementRestResource } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';

export interface CapabilitySummary {
  /** `software.name software.version`, or a placeholder when the statement names none. */
  readonly software: string;
  /** AuditEvent search parameter names, resource-level and server-wide; empty when AuditEvent search is not offered. */
  readonly auditEventSearch: readonly string[];
}

export function summarizeCapability(body: unknown): CapabilitySummary {
  const statement = body as Partial<CapabilityStatement> | null;
  if (statement?.resourceType !== 'CapabilityStatement') {
    throw new BridgeError('BRG_ERR_FHIR_CAPABILITY', 'GET /metadata did not return a CapabilityStatement; check fhir.baseUrl points at the FHIR R4 base.');
  }
  const software = [statement.software?.name, statement.software?.version].filter(Boolean).join(' ') || 'an unnamed FHIR server';
  const servers = (statement.rest ?? []).filter((rest) => rest.mode === 'server');
  const params = new Set<string>();
  for (const rest of servers) {
    const auditEvent: CapabilityStatementRestResource | undefined = rest.resource?.find((resource) => resource.type === 'AuditEvent');
    if (!auditEvent?.interaction?.some((interaction) => interaction.code === 'search-type')) continue;
    // Parameters such as _lastUpdated apply to every resource and may be listed once at the rest level.
    for (const param of [...(auditEvent.searchParam ?? []), ...(rest.searchParam ?? [])]) params.add(param.name);
  }
  return { software, auditEventSearch: [...params].sort() };
}

/** BRG_ERR_FHIR_CAPABILITY naming the software when AuditEvent search by `param` is not offered. */
export function requireSearchParam(summary: CapabilitySummary, param: string, baseUrl: string): void {
  if (summary.auditEventSearch.includes(param)) return;
  const offered = summary.auditEventSearch.length === 0
    ? 'its /metadata lists no AuditEvent search at all'
    : `it offers AuditEvent search by ${summary.auditEventSearch.join(', ')}`;
  throw new BridgeError(
    'BRG_ERR_FHIR_CAPABILITY',
    `The FHIR server at ${baseUrl} (${summary.software}) does not offer AuditEvent search by ${param}: ${offered}. ` +
      'Ask the EHR team to enable AuditEvent search, set fhir.dateParam to an offered parameter, or use a flat-file export with `bridge push`.',
    { details: { software: summary.software, param, offered: summary.auditEventSearch.join(',') } },
  );
}

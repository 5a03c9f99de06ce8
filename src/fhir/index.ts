/**
 * The FHIR pull stage: a typed client over fhir-kit-client (one queue, token, timeouts, retries), the AuditEvent
 * window pull and the reference resolver the mapping reads from.
 */
export { createFhirClient, type FhirClient, type FhirClientOptions } from './client.js';
export { summarizeCapability, type CapabilitySummary } from './capability.js';
export { resourcesOf, type SearchParams } from './pages.js';
export { pullAuditEvents, type AuditEventPullOptions, type PullWindow } from './windows.js';
export { createReferenceResolver, type ReferenceResolver, type ReferenceResolverOptions } from './references.js';

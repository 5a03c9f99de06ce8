/**
 * The FHIR pull stage: a typed client (one queue, origin-wide hold, token, timeouts, size cap, retries), the
 * AuditEvent window pull with its paging-loop guards, and the reference resolver the mapping reads from.
 */
export type { BulkExportEvent } from './bulk/export.js';
export { BulkHttp, type BulkHttpOptions } from './bulk/http.js';
export { kickOffUrl } from './bulk/job.js';
export { type BulkExportSource, type BulkSourceOptions, type BulkSourceSettings, createBulkExportSource, exportSince } from './bulk-source.js';
export { type CapabilitySummary, type LookupMode, lookupMode, summarizeCapability, type TypeCapability } from './capability.js';
export { createFhirClient, DEFAULT_MAX_RESPONSE_BYTES, type FhirClient, type FhirClientOptions } from './client.js';
export { FhirError, type FhirOutcome } from './fhir-error.js';
export { instantMs } from './instant.js';
export { resourcesOf, type SearchParams } from './pages.js';
export { createPrefetchGroups, type GroupedItem, type PrefetchGroups } from './prefetch-groups.js';
export { createReferenceResolver, type ReferenceResolver, type ReferenceResolverOptions } from './reference-resolver.js';
export { createSearchSource, type SearchSource } from './search-source.js';
export type { UnknownUserStore } from './unknown-users.js';
export { type AuditEventPullOptions, type PullWindow, pullAuditEvents } from './windows.js';

/**
 * The FHIR pull stage: a typed client (one queue, origin-wide hold, token, timeouts, size cap, retries), the
 * AuditEvent window pull with its paging-loop guards, and the reference resolver the mapping reads from.
 */
export { createFhirClient, DEFAULT_MAX_RESPONSE_BYTES, type FhirClient, type FhirClientOptions } from './client.js';
export { summarizeCapability, lookupMode, type CapabilitySummary, type LookupMode, type TypeCapability } from './capability.js';
export { resourcesOf, type SearchParams } from './pages.js';
export { pullAuditEvents, type AuditEventPullOptions, type PullWindow } from './windows.js';
export { createReferenceResolver, type ReferenceResolver, type ReferenceResolverOptions } from './reference-resolver.js';
export { createPrefetchGroups, type GroupedItem, type PrefetchGroups } from './prefetch-groups.js';
export { createSearchSource, type SearchSource } from './search-source.js';
export { instantMs } from './instant.js';
export { FhirError, type FhirOutcome } from './fhir-error.js';
export { createBulkExportSource, exportSince, type BulkExportSource, type BulkSourceOptions, type BulkSourceSettings } from './bulk-source.js';
export { BulkHttp, type BulkHttpOptions } from './bulk/http.js';
export type { BulkExportEvent } from './bulk/export.js';
export { kickOffUrl } from './bulk/job.js';

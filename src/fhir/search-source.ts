/** The FHIR search source: `AuditEvent?date=ge…&date=lt…` over a window, references resolved by `_id` batches or reads. */
import type { AuditEvent } from 'fhir/r4.js';
import type { FhirClient } from './client.js';
import { searchedTimeOf } from './instant.js';
import type { ReferenceResolver } from './reference-resolver.js';
import { type AuditEventPullOptions, type PullWindow, pullAuditEvents } from './windows.js';

export interface SearchSource {
  check(signal?: AbortSignal): Promise<void>;
  pages(window: PullWindow, signal?: AbortSignal): AsyncIterable<readonly AuditEvent[]>;
  windowTimeOf(event: AuditEvent): number | undefined;
  /** The FHIR server's time now, by its last answer's Date header (FhirClient.serverNow). */
  serverNow(): number | undefined;
  readonly resolver: ReferenceResolver;
}

export function createSearchSource(client: FhirClient, resolver: ReferenceResolver, options: AuditEventPullOptions): SearchSource {
  return {
    resolver,
    check: (signal) => client.requireAuditEventSearch(options.dateParam ?? 'date', signal),
    pages: (window, signal) => pullAuditEvents(client, { since: window.since, until: window.until }, options, signal),
    // The window is on the date parameter searched by.
    windowTimeOf: (event) => searchedTimeOf(event, options.dateParam ?? 'date'),
    serverNow: () => client.serverNow(),
  };
}

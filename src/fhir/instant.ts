/**
 * FHIR instants as numbers. Text with offsets does not sort as time ("…T23:30:00-05:00" is after "…T01:00:00Z" of the
 * next day), so every comparison and every ledger partition uses ms since the epoch. An instant must carry an offset
 * (https://hl7.org/fhir/R4/datatypes.html#instant); one that does not is read as UTC, never in this machine's own zone,
 * so that two machines in different zones file the same event under the same day.
 */
import type { AuditEvent } from 'fhir/r4.js';

const HAS_ZONE = /(?:Z|[+-]\d{2}:?\d{2})$/i;
const HAS_TIME = /T\d{2}:\d{2}/;

export function instantMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(HAS_TIME.test(text) && !HAS_ZONE.test(text) ? `${text}Z` : text);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The time a search by `dateParam` selects the event by: `recorded` for `date`, the stored `meta.lastUpdated` for `_lastUpdated`. */
export function searchedTimeOf(event: AuditEvent, dateParam: 'date' | '_lastUpdated'): number | undefined {
  return instantMs(dateParam === 'date' ? event.recorded : event.meta?.lastUpdated);
}

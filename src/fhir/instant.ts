/**
 * FHIR instants as numbers. Text with offsets does not sort as time ("…T23:30:00-05:00" is after "…T01:00:00Z" of the
 * next day), so every comparison and every ledger partition uses ms since the epoch. An instant must carry an offset
 * (https://hl7.org/fhir/R4/datatypes.html#instant); one that does not is read as UTC, never in this machine's own zone,
 * so that two machines in different zones file the same event under the same day.
 */
import type { AuditEvent } from 'fhir/r4.js';

/**
 * The FHIR (RFC 3339) shapes: a date, or a date and time with an optional offset. Anything else is no instant at all:
 * Date.parse would read "2026-11-01 20:00:00" or "Nov 1 2026 20:00" in this machine's zone.
 */
const FHIR_DATE_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

export function instantMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const shape = FHIR_DATE_TIME.exec(text);
  if (shape === null) return undefined;
  // A date alone is UTC midnight to Date.parse; a time without an offset is read as UTC here.
  const hasTime = text.length > 10;
  const ms = Date.parse(hasTime && shape[1] === undefined ? `${text}Z` : text);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The time a search by `dateParam` selects the event by: `recorded` for `date`, the stored `meta.lastUpdated` for `_lastUpdated`. */
export function searchedTimeOf(event: AuditEvent, dateParam: 'date' | '_lastUpdated'): number | undefined {
  return instantMs(dateParam === 'date' ? event.recorded : event.meta?.lastUpdated);
}

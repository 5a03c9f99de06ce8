/**
 * Epic's Break-the-Glass refusals (docs/epic-smart.md §6.3): a chart whose access needs a stated reason answers a
 * background user's lookup with HTTP 403 and an OperationOutcome coded 4130, 4131 or 4134 ("do not retry"). It is that
 * one chart's answer, not the client's scope: the other lookups go on, and the chart counts as not found for the run.
 * A 403 without these codes (a missing scope, an API not attached to the client) still stops the run.
 */
import { FhirError } from './fhir-error.js';

const BREAK_THE_GLASS = new Set(['4130', '4131', '4134']);

export function isBreakTheGlass(error: unknown): boolean {
  return error instanceof FhirError && error.status === 403 && (error.outcome?.codes.some((code) => BREAK_THE_GLASS.has(code)) ?? false);
}

/** The log line for a refused lookup: its type only (the id or identifier says which patient: kept out of logs). */
export const RESTRICTED_MESSAGE =
  'the FHIR server refused a lookup under Break-the-Glass (Epic 4130/4131/4134): that resource counts as not found, so its rows carry only what the event says of it (a display name, no MRN or address), and the run goes on';

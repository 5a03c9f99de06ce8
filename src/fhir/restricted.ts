/**
 * Epic's Break-the-Glass refusals (docs/epic-smart.md §6.3): a chart whose access needs a stated reason answers a
 * background user's lookup with HTTP 403 and an OperationOutcome coded 4130, 4131 or 4134 ("do not retry"). For a
 * Patient it is that one chart's answer, not the client's scope: the other lookups go on, and the chart counts as not
 * found for the cache's TTL. Every other 403 still stops the run: one without these codes (a missing scope, an API not
 * attached to the client); one on a user lookup (the login, and excludeUsers, read the Practitioner); and Patient
 * refusals that find no patient at all (REFUSED_WITHOUT_ANY), which are the background user's security, not a chart.
 * That is judged once a prefetch's lookups have all answered, never on the first answers to come back: restricted charts
 * asked first (the queue sends a batch's ids in order) stopped every run over their window, though the rest were readable.
 */
import { BridgeError } from '../errors.js';
import { FhirError } from './fhir-error.js';

const BREAK_THE_GLASS = new Set(['4130', '4131', '4134']);

/** A Patient lookup refused under Break-the-Glass. */
export function isRestrictedChart(error: unknown, type: string): boolean {
  return type === 'Patient' && error instanceof FhirError && error.status === 403 && (error.outcome?.codes.some((code) => BREAK_THE_GLASS.has(code)) ?? false);
}

/**
 * This many refusals, and no Patient found by the time every lookup of the prefetch has answered (nor by any before it in
 * the run): every chart is refused, so the run stops. Once one chart has been read, refusals are restricted charts.
 */
export const REFUSED_WITHOUT_ANY = 10;

/** The log line for a refused lookup: its type only (the id or identifier says which patient: kept out of logs). */
export const RESTRICTED_MESSAGE =
  "the FHIR server refused a Patient lookup under Break-the-Glass (Epic 4130/4131/4134): that chart counts as not found for fhir.referenceCacheTtlMs, so its events' rows carry only what the event says of the patient (a display name; no MRN or address), or are rejected (missing-patient-name) when it says nothing; the run goes on. Rows are not sent again once the chart is readable: ask the EHR team for a Break-the-Glass exemption for the bridge's background user";

export function everyChartRefused(refused: number): BridgeError {
  return new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `The FHIR server refused ${refused} Patient lookups under Break-the-Glass (Epic 4130/4131/4134) and returned no patient: that is the background user's security, not a few restricted charts. The run stopped before any row lost its patient. Ask the EHR team to give the bridge's background user a Break-the-Glass exemption (docs/epic-smart.md §6.3), then run it again.`,
    { details: { status: 403, resourceType: 'Patient', refused } },
  );
}

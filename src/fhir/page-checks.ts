/**
 * What a page of the AuditEvent search (or a Patient/Practitioner lookup) must not carry, or the window would pass as complete when it is not (or bring
 * events from far outside it):
 * - an error outcome: Epic adds OperationOutcome entries to a searchset; one of severity error or fatal, or Epic's 4127
 *   ("additional data may exist"), says the results were cut short (docs/epic-smart.md §6.3);
 * - an event far outside the slice searched: a server that ignores the date parameter hands over history that the
 *   delivery ledger may have forgotten, and it would go out again unflagged.
 */
import type { AuditEvent, Bundle, OperationOutcome } from 'fhir/r4.js';
import { BridgeError } from '../errors.js';
import { outcomeCodes } from './outcome.js';

/** Epic: "additional data may exist" (results cut short; paging does not help). */
const CUT_SHORT = '4127';
/** Beyond any misreading of a UTC offset (−12:00 … +14:00): an event this far outside its slice was not searched for. */
const FAR_MS = 26 * 3_600_000;

export function refuseIncompletePage(bundle: Bundle): void {
  refuseErrorOutcome(bundle, 'any-error', (said) => ({
    message:
      `The FHIR server answered a page of the AuditEvent search with an error outcome (${said}): ` +
      'its results may be cut short, so this run stopped before pushing anything of its window. A smaller fhir.maxResultsPerSlice may keep each search within the server’s limit; otherwise report it to the EHR team.',
    resourceType: 'AuditEvent',
  }));
}

/** The page carries Epic's 4127 ("additional data may exist"): the server capped the search's results. */
export function isCutShort(bundle: Bundle): boolean {
  return (bundle.entry ?? []).some(
    (entry) => entry.resource?.resourceType === 'OperationOutcome' && outcomeCodes(entry.resource as OperationOutcome).includes(CUT_SHORT),
  );
}

/**
 * The same rule for a Patient/Practitioner lookup (`_id` or identifier list): resources a cut-short answer left out
 * cannot be told from missing ones, and an identifier's second match (which makes it ambiguous) may be among them.
 */
export function refuseIncompleteLookup(bundle: Bundle, type: string, which: 'cut-short' | 'any-error' = 'any-error'): void {
  refuseErrorOutcome(bundle, which, (said) => ({
    message:
      `The FHIR server answered a ${type} lookup with an error outcome (${said}): ` +
      'resources it left out cannot be told from missing ones, so the bridge stopped before mapping the events that name them. ' +
      'A smaller fhir.referenceBatchSize may keep each lookup within the server’s limit; otherwise report it to the EHR team.',
    resourceType: type,
  }));
}

/**
 * Throws the error `describe` words for the first OperationOutcome entry with Epic's 4127, or (`any-error`) of severity
 * error or fatal.
 */
function refuseErrorOutcome(bundle: Bundle, which: 'cut-short' | 'any-error', describe: (said: string) => { message: string; resourceType: string }): void {
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.resourceType !== 'OperationOutcome') continue;
    const outcome = entry.resource as OperationOutcome;
    const codes = outcomeCodes(outcome);
    const severe = which === 'any-error' && (outcome.issue ?? []).some((issue) => issue.severity === 'error' || issue.severity === 'fatal');
    if (!severe && !codes.includes(CUT_SHORT)) continue;
    // Codes only: an outcome's text can echo the request.
    const said = `${codes.length > 0 ? `code ${codes.join(', ')}` : 'severity error'}${codes.includes(CUT_SHORT) ? ': additional data may exist' : ''}`;
    const { message, resourceType } = describe(said);
    throw new BridgeError('BRG_ERR_FHIR_HTTP', message, {
      details: { resourceType, status: 200, ...(codes[0] === undefined ? {} : { outcomeCode: codes[0] }) },
    });
  }
}

export function refuseFarOutside(event: AuditEvent, atMs: number, slice: { readonly since: number; readonly until: number }, param: string): void {
  if (atMs >= slice.since - FAR_MS && atMs < slice.until + FAR_MS) return;
  const iso = (ms: number): string => new Date(ms).toISOString();
  throw new BridgeError(
    'BRG_ERR_FHIR_HTTP',
    `The FHIR server answered an AuditEvent search for ${param} from ${iso(slice.since)} to ${iso(slice.until)} with AuditEvent/${event.id ?? '(no id)'} at ${iso(atMs)}, more than a day outside it: ` +
      `it does not seem to honour the ${param} parameter, and events the delivery ledger no longer remembers could be sent twice. This run stopped before pushing anything of its window; report it to the EHR team.`,
    { details: { resourceType: 'AuditEvent', status: 200, ...(event.id === undefined ? {} : { resourceId: event.id }) } },
  );
}

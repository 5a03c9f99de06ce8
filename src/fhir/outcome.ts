/**
 * Reading upstream failures: the transport turns what fhir-kit-client throws into a FhirHttpError (http-errors.ts)
 * with the status, the response headers and the body (parsed, or its text). The request URL is never part of it:
 * its query can carry identifiers (MRNs, logins).
 * See: https://hl7.org/fhir/R4/operationoutcome.html
 */
import { quoteUpstreamText, scrubUpstreamText } from '../http.js';
import { FhirHttpError } from './http-errors.js';

/** The parts of an HTTP failure we use. */
export interface HttpFailure {
  readonly status: number;
  readonly headers: Headers | undefined;
  /** The parsed body: usually an OperationOutcome, a string when it was not JSON. */
  readonly data: unknown;
}

/** OperationOutcome text is short and PHI-free in practice, but it is upstream text: cap it anyway. */
export const MAX_OUTCOME_TEXT = 300;

export function httpFailureOf(error: unknown): HttpFailure | undefined {
  return error instanceof FhirHttpError ? { status: error.status, headers: error.headers, data: error.data } : undefined;
}

interface OutcomeIssue {
  readonly code?: unknown;
  readonly diagnostics?: unknown;
  readonly details?: { readonly text?: unknown; readonly coding?: ReadonlyArray<{ readonly code?: unknown }> };
}

function issuesOf(data: unknown): readonly OutcomeIssue[] {
  if (typeof data !== 'object' || data === null) return [];
  const outcome = data as { resourceType?: unknown; issue?: unknown };
  return outcome.resourceType === 'OperationOutcome' && Array.isArray(outcome.issue) ? (outcome.issue as OutcomeIssue[]) : [];
}

/** `details.text` (or `diagnostics`) of each issue, joined and capped; undefined when there is no OperationOutcome. */
export function outcomeText(data: unknown, max: number = MAX_OUTCOME_TEXT): string | undefined {
  const texts = issuesOf(data)
    .map((issue) => (typeof issue.details?.text === 'string' ? issue.details.text : typeof issue.diagnostics === 'string' ? issue.diagnostics : ''))
    .filter((text) => text.length > 0);
  if (texts.length === 0) return undefined;
  // Diagnostics can echo the request (an identifier search carries an MRN): scrubbed like any upstream text.
  return scrubUpstreamText([...new Set(texts)].join('; '), max);
}

/** Every `issue.details.coding.code`, e.g. Epic's '4113' (docs/epic-smart.md §6.2, §6.3). */
export function outcomeCodes(data: unknown): string[] {
  return issuesOf(data).flatMap((issue) => (issue.details?.coding ?? []).flatMap((coding) => (typeof coding.code === 'string' ? [coding.code] : [])));
}

/**
 * Each issue's type (`issue.code`, e.g. `processing`, `not-found`) and details codes: tokens from value sets, never
 * free text, so they may be logged where diagnostics may not (a name survives any scrubbing). Anything not shaped like
 * a code is left out.
 */
export function issueCodes(data: unknown): string[] {
  const token = (value: unknown): value is string => typeof value === 'string' && /^[A-Za-z0-9._-]{1,40}$/.test(value);
  return [...issuesOf(data).flatMap((issue) => (token(issue.code) ? [issue.code] : [])), ...outcomeCodes(data).filter(token)];
}

/** The OperationOutcome text, or a cleaned excerpt of a body that is not one. */
export function bodyText(data: unknown): string {
  return outcomeText(data) ?? (typeof data === 'string' ? `a body that is not FHIR JSON: ${quoteUpstreamText(data)}` : 'no OperationOutcome text');
}

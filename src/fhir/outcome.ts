/**
 * Reading upstream failures: the transport turns what fhir-kit-client throws into a FhirHttpError (http-errors.ts)
 * with the status, the response headers and the body (parsed, or its text). The request URL is never part of it:
 * its query can carry identifiers (MRNs, logins). Nor are the server's words: an OperationOutcome's diagnostics,
 * details.text or a coding's display may name the patient ("Patient Jane Doe MRN 123 not permitted"), and no scrubbing
 * recognises a name, so an answer is told by its severity and codes only (describeAnswer), with where its text is.
 * See: https://hl7.org/fhir/R4/operationoutcome.html
 */
import { quoteUpstreamText } from '../http.js';
import { FhirHttpError } from './http-errors.js';

/** The parts of an HTTP failure we use. */
export interface HttpFailure {
  readonly status: number;
  readonly headers: Headers | undefined;
  /** The parsed body: usually an OperationOutcome, a string when it was not JSON. */
  readonly data: unknown;
}

export function httpFailureOf(error: unknown): HttpFailure | undefined {
  return error instanceof FhirHttpError ? { status: error.status, headers: error.headers, data: error.data } : undefined;
}

interface OutcomeIssue {
  readonly severity?: unknown;
  readonly code?: unknown;
  readonly diagnostics?: unknown;
  readonly details?: {
    readonly text?: unknown;
    readonly coding?: ReadonlyArray<{ readonly system?: unknown; readonly code?: unknown; readonly display?: unknown }>;
  };
}

function issuesOf(data: unknown): readonly OutcomeIssue[] {
  if (typeof data !== 'object' || data === null) return [];
  const outcome = data as { resourceType?: unknown; issue?: unknown };
  return outcome.resourceType === 'OperationOutcome' && Array.isArray(outcome.issue) ? (outcome.issue as OutcomeIssue[]) : [];
}

/**
 * Every `issue.details.coding.code`, e.g. Epic's '4113' (docs/epic-smart.md §6.2, §6.3); only those shaped like a code,
 * as they are quoted and logged.
 */
export function outcomeCodes(data: unknown): string[] {
  return issuesOf(data).flatMap((issue) => (issue.details?.coding ?? []).flatMap((coding) => (isToken(coding.code) ? [coding.code] : [])));
}

/**
 * Each issue's type (`issue.code`, e.g. `processing`, `not-found`) and details codes: tokens from value sets, never
 * free text, so they may be logged where diagnostics may not (a name survives any scrubbing). Anything not shaped like
 * a code is left out.
 */
export function issueCodes(data: unknown): string[] {
  return [...issuesOf(data).flatMap((issue) => (isToken(issue.code) ? [issue.code] : [])), ...outcomeCodes(data)];
}

/** A code of a value set (an issue type, Epic's "4113"): what may be quoted of an answer. */
function isToken(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,40}$/.test(value);
}

/** A code system's URI (an OID, a URN, or an http(s) URL without query): quoted beside its code. */
function isSystem(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    /^(?:urn:oid:[0-9.]{1,100}|urn:uuid:[0-9a-fA-F-]{36}|https?:\/\/[A-Za-z0-9.-]{1,100}(?::\d{1,5})?(?:\/[A-Za-z0-9._~-]{1,64}){0,10}\/?)$/.test(value)
  );
}

const SEVERITIES = new Set(['fatal', 'error', 'warning', 'information']);

/** Most issues described in one answer (the rest are counted), and codings quoted of one issue. */
const MAX_DESCRIBED_ISSUES = 4;
const MAX_CODINGS = 3;

/** "error processing [urn:oid:…|59100]": an issue's severity, type and its codings' codes with their systems. */
function describeIssue(issue: OutcomeIssue): string {
  const severity = typeof issue.severity === 'string' && SEVERITIES.has(issue.severity) ? issue.severity : undefined;
  const codes = (issue.details?.coding ?? [])
    .flatMap((coding) => (isToken(coding.code) ? [isSystem(coding.system) ? `${coding.system}|${coding.code}` : coding.code] : []))
    .slice(0, MAX_CODINGS);
  const head = [severity, isToken(issue.code) ? issue.code : undefined].filter((part) => part !== undefined).join(' ');
  return [head, codes.length > 0 ? `[${codes.join(', ')}]` : ''].filter((part) => part !== '').join(' ');
}

/**
 * What an error answer was, for a message, a log line or an error's details: "an OperationOutcome (error processing
 * [urn:oid:…|59100])", "a body that is not FHIR JSON: "Bad gateway…"", "an empty body". Never the FHIR server's words.
 */
export function describeAnswer(data: unknown): string {
  if (data === undefined || data === null || data === '') return 'an empty body';
  // A body that is no JSON comes from what stands before the FHIR application (a proxy's, a gateway's or a web server's
  // page), which knows no patient: quoted short, on one line, with whatever may identify a person blanked (issue #15.4).
  if (typeof data === 'string') return `a body that is not FHIR JSON: ${quoteUpstreamText(data)}`;
  const type = typeof data === 'object' ? (data as { resourceType?: unknown }).resourceType : undefined;
  if (type !== 'OperationOutcome') return isToken(type) ? `a ${type}, not an OperationOutcome` : 'JSON that is not an OperationOutcome';
  const issues = [...new Set(issuesOf(data).map(describeIssue))].filter((issue) => issue !== '');
  if (issues.length === 0) return 'an OperationOutcome';
  const more = issues.length > MAX_DESCRIBED_ISSUES ? `; ${issues.length - MAX_DESCRIBED_ISSUES} more` : '';
  return `an OperationOutcome (${issues.slice(0, MAX_DESCRIBED_ISSUES).join('; ')}${more})`;
}

/**
 * Whether the answer had words describeAnswer left out: an issue's diagnostics, details.text or a coding's display, or
 * JSON that is no OperationOutcome.
 */
function hasWords(data: unknown): boolean {
  const said = (value: unknown): boolean => typeof value === 'string' && value.trim() !== '';
  if (typeof data === 'string') return false;
  if (typeof data !== 'object' || data === null) return false;
  // JSON of another shape is not quoted at all.
  if ((data as { resourceType?: unknown }).resourceType !== 'OperationOutcome') return true;
  return issuesOf(data).some(
    (issue) => said(issue.diagnostics) || said(issue.details?.text) || (issue.details?.coding ?? []).some((coding) => said(coding.display)),
  );
}

/** Where an answer's unquoted text is, for most requests: the server logs what it answered. */
export const IN_SERVER_LOG = "the FHIR server's log has it";

/**
 * Which of `words` (the bridge's own: the types it asked for) the answer's text names, to choose the advice by. The
 * text itself never leaves here. A word followed by a slash or a capitalised word is a reference or a person
 * ("Patient/123", "Patient Jane Doe"), not the type.
 */
export function namedIn(data: unknown, words: readonly string[]): string[] {
  const texts = issuesOf(data).flatMap((issue) => [issue.diagnostics, issue.details?.text].filter((text): text is string => typeof text === 'string'));
  const named = (word: string): RegExp => new RegExp(`\\b${word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b(?!\\/|\\s+[A-Z])`);
  return words.filter((word) => texts.some((text) => named(word).test(text)));
}

/**
 * The sentence an error message adds when the answer had words it does not quote: why, and `where` the operator (or the
 * EHR team) can read them, e.g. "the FHIR server's log has it". Empty when there were none.
 */
export function textNotQuoted(data: unknown, where: string): string {
  return hasWords(data) ? ` Its text is not quoted, as it may name a patient; ${where}.` : '';
}

/**
 * The one error type of an upstream FHIR failure: a BridgeError (stable code, exit code, fix) that also carries the
 * HTTP status and what the server's OperationOutcome said, for callers that decide by them (a 4113 search-session
 * expiry, a 404 on a read). Never the server's words (outcome.ts describeAnswer): they may name a patient.
 */
import { BridgeError, type ErrorCode, type ErrorDetails } from '../errors.js';

export interface FhirOutcome {
  /** What the answer was, by its severity and codes (describeAnswer), e.g. "an OperationOutcome (error processing)". */
  readonly summary: string;
  /** Its issue codes (Epic's own numeric codes among them, e.g. "4113"). */
  readonly codes: readonly string[];
}

export class FhirError extends BridgeError {
  override readonly name: string = 'FhirError';
  /** HTTP status of the last answer; 0 when none arrived (network error, timeout). */
  readonly status: number;
  readonly resourceType: string;
  readonly outcome: FhirOutcome | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    fields: { status: number; resourceType: string; outcome?: FhirOutcome; cause?: unknown; details?: ErrorDetails },
  ) {
    super(code, message, {
      ...(fields.cause === undefined ? {} : { cause: fields.cause }),
      details: {
        status: fields.status,
        resourceType: fields.resourceType,
        outcome: fields.outcome?.summary,
        outcomeCode: fields.outcome?.codes[0],
        ...fields.details,
      },
    });
    this.status = fields.status;
    this.resourceType = fields.resourceType;
    this.outcome = fields.outcome;
  }
}

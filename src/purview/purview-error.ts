/**
 * The one error type of an upstream Purview failure (ingestion or Entra ID): a BridgeError that also carries the HTTP
 * status and Purview's short reason (its 403 says "jobId and corresponding appId do not match." in the status line),
 * and the block it ended, for reports. Never a row or a token.
 */
import { BridgeError, type ErrorCode } from '../errors.js';

export class PurviewError extends BridgeError {
  override readonly name: string = 'PurviewError';
  /** HTTP status of the last answer; 0 when none arrived. */
  readonly status: number;
  /** Purview's (or Entra's) own words, cleaned and short; empty when it said nothing. */
  readonly reason: string;
  /** The block's index in this push, for upload failures. */
  readonly blockIndex: number | undefined;

  constructor(code: ErrorCode, message: string, fields: { status: number; reason?: string; blockIndex?: number; attempts?: number; cause?: unknown }) {
    super(code, message, {
      ...(fields.cause === undefined ? {} : { cause: fields.cause }),
      details: { status: fields.status, reason: fields.reason || undefined, index: fields.blockIndex, attempts: fields.attempts },
    });
    this.status = fields.status;
    this.reason = fields.reason ?? '';
    this.blockIndex = fields.blockIndex;
  }
}

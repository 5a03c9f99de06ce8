/**
 * What an upload's failure means. Transient (no answer, 408, 429, 5xx) is retried through the one retry policy; a
 * 401 is retried once with a fresh token; everything else is permanent and becomes one typed BridgeError whose message
 * names the block and what to fix (docs/purview-protocol.md §2.4). Messages carry status lines and Purview's short reason,
 * never tokens or rows.
 */
import { STATUS_CODES } from 'node:http';
import type { BridgeError, ErrorCode } from '../errors.js';
import { parseRetryAfter, type RetryVerdict } from '../http.js';
import { certificateFailureIn, proxyRefusalIn, proxyRefusedError } from '../net/index.js';
import { PurviewError } from './purview-error.js';
import { purviewSaid } from './purview-words.js';
import { type BlockResponse, UploadNetworkError } from './upload.js';

/** A non-2xx HTTP answer to an upload. */
export class UploadStatusError extends Error {
  override readonly name = 'UploadStatusError';
  readonly status: number;
  readonly statusText: string;
  readonly body: string;
  readonly retryAfterMs: number | undefined;

  constructor(response: Omit<BlockResponse, 'bodySent'>, nowMs: number) {
    // The standard reason phrase, not the one sent: this message is the retry reason, logged and in the run log, and a
    // phrase is whatever the server (or a proxy) put there.
    const phrase = STATUS_CODES[response.status];
    super(`HTTP ${response.status}${phrase ? ` ${phrase}` : ''}`);
    this.status = response.status;
    this.statusText = response.statusText;
    this.body = response.body;
    this.retryAfterMs = parseRetryAfter(response.retryAfter, nowMs);
  }
}

export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/** @param state - Counts 401s of the block, so exactly one token refresh is tried. */
export function classifyUploadFailure(error: unknown, state: { unauthorized: number }): RetryVerdict {
  // A proxy that refuses us (407, CONNECT denied) answers the same way every time: not worth 15 minutes of retries.
  // So does a certificate this machine does not trust (a private CA missing from caFile), names another host, or expired.
  if (error instanceof UploadNetworkError)
    return proxyRefusalIn(error.cause) || certificateFailureIn(error.cause) ? { retry: false } : { retry: true, reason: error.reason };
  if (!(error instanceof UploadStatusError)) return { retry: false };
  if (error.status === 401 && state.unauthorized++ === 0) return { retry: true, retryAfterMs: 0, reason: 'HTTP 401: retrying once with a new token' };
  if (!isTransientStatus(error.status)) return { retry: false };
  return { retry: true, reason: error.message, ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }) };
}

export interface BlockContext {
  /** The block's index in this push. */
  readonly index: number;
  readonly jobId: string;
  readonly attempts: number;
  /**
   * Purview's words, already checked against the block's cells (purviewSaidOfBlock). Without it, only what can be
   * judged without the block is quoted (purviewSaid).
   */
  readonly said?: string;
  /** The ledger recorded that Purview cannot hold the block (send-block.ts isKnownUnreceived): resent unflagged. */
  readonly refused?: boolean;
  /** Rows of the block sent before without an answer: they stay flagged, refused or not. */
  readonly resentRows?: number;
  /** Where its rows sit in a pushed file ("data row(s) 11–20 of the file"). */
  readonly rows?: string;
}

/** Normalises the last failure of a block once, after the retry budget or a permanent answer. */
export function toPushError(error: unknown, block: BlockContext): unknown {
  if (error instanceof UploadNetworkError) {
    const refusal = proxyRefusalIn(error.cause);
    if (refusal) return proxyRefusedError(refusal, `Purview upload of block ${block.index} (job ${block.jobId})`);
    const certificate = certificateFailureIn(error.cause);
    if (certificate) {
      return new PurviewError(
        'BRG_ERR_PURVIEW_UNAVAILABLE',
        `Block ${block.index} of this push (job ${block.jobId}) was not sent: the ingestion host's certificate is not accepted here (${certificate}), which no retry changes; nothing of the block reached Purview. If a TLS-inspecting proxy or a private CA signs it, add that CA to network.caFile (bridge push --ca-file); otherwise check that purview.ingestionBase (--ingestion-base) names the host the certificate is for, and this machine's clock.`,
        { cause: error, status: 0, blockIndex: block.index, attempts: block.attempts },
      );
    }
    return unavailable(`no answer (${error.reason})`, block, error);
  }
  if (!(error instanceof UploadStatusError)) return error;
  const said = block.said ?? purviewSaid(error);
  if (isTransientStatus(error.status)) {
    // The standard phrase (error.message), then Purview's words.
    return unavailable(`${error.message}${said ? ` "${said}"` : ''}`, block, error);
  }
  const where = `block ${block.index} of this push (${block.rows === undefined ? '' : `${block.rows}, `}job ${block.jobId})`;
  const [code, message] = permanentMessage(error.status, where, said);
  // A sync's block (rows of events, not of a file the operator can edit) refused as invalid is refused on every run.
  const next = error.status === 400 && block.rows === undefined ? ` ${GIVE_UP_HINT}` : '';
  return new PurviewError(code, `${message}${next}`, { cause: error, status: error.status, blockIndex: block.index, reason: said });
}

/** The way out when Purview refuses the same events every run (src/cli/commands/state-refused.ts). */
export const GIVE_UP_HINT =
  'If it refuses this block on every run, fix the mapping if the refusal names a column; otherwise `bridge state refused <connector>` shows the block, and `bridge state give-up <connector> --reason <why>` lets the connector go on, recording its events as rejected.';

function permanentMessage(status: number, where: string, said: string): [ErrorCode, string] {
  const answer = `${status}${said ? ` "${said}"` : ''}`;
  switch (status) {
    case 400:
      return [
        'BRG_ERR_PURVIEW_REJECTED',
        `Purview rejected ${where} with ${answer}; nothing was acknowledged for it. Check that the header names the connector schema's columns and the file is UTF-8, one row per line.`,
      ];
    case 401:
      return [
        'BRG_ERR_PURVIEW_AUTH',
        `Purview refused the token for ${where} with ${answer}, also after a token refresh. Check purview.tenantId, purview.appId and purview.resource, the cloud's App ID URI (bridge push: --tenant-id, --app-id, --resource).`,
      ];
    case 403:
      return [
        'BRG_ERR_PURVIEW_FORBIDDEN',
        `Purview refused ${where} with ${answer}: the job id does not belong to this Entra app in this tenant. Copy the job id from the connector created with this app id (Purview portal → Data connectors), or use that connector's app id, and check purview.tenantId (a multi-tenant app has the same app id in every tenant). bridge push: --job-id, --app-id, --tenant-id.`,
      ];
    case 413:
      // Too large for the service (or a proxy on the way): every block of this size would be, whatever the file.
      return [
        'BRG_ERR_PURVIEW_REJECTED',
        `Purview refused ${where} with ${answer}: the block is too large. Lower purview.blockRows (bridge push --block-rows), e.g. to 5000, and run again; rows Purview acknowledged are not sent again.`,
      ];
    default:
      return [
        'BRG_ERR_PURVIEW_REJECTED',
        `Purview answered ${where} with ${answer}; nothing was acknowledged for it. Check purview.cloud or purview.ingestionBase, bridge push's --cloud or --ingestion-base (uploads go to {ingestionBase}/api/signals).`,
      ];
  }
}

function unavailable(last: string, block: BlockContext, cause: unknown): BridgeError {
  return new PurviewError(
    'BRG_ERR_PURVIEW_UNAVAILABLE',
    `Block ${block.index} of this push (job ${block.jobId}) was not acknowledged after ${block.attempts} attempt(s); last: ${last}. Run again later: rows Purview acknowledged are not sent again, and this block's rows are sent again${block.refused ? ` (Purview took none of them this time${block.resentRows ? `; the ${block.resentRows} of them sent before without an answer stay flagged possibly duplicated` : ''})` : ' and flagged possibly duplicated'}.`,
    { cause, status: cause instanceof UploadStatusError ? cause.status : 0, blockIndex: block.index, attempts: block.attempts },
  );
}

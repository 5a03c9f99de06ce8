/**
 * Sends one claimed block until Purview answers 2xx: every attempt is recorded in the ledger before its request goes
 * out, the answer classified (transient → retried through the one retry policy, 401 → once more with a new token,
 * anything else permanent), and the block marked acknowledged only after a 2xx. Unlike Microsoft's script
 * (docs/purview-protocol.md §4.4), a network error or a timeout is never taken for success.
 */
import type { Clock } from '../clock.js';
import { DEFAULT_RETRY, type RetryOptions, withRetry } from '../http.js';
import type { IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import type { TokenSource } from '../token-cache.js';
import type { createHttpsAgent } from './https-pool.js';
import type { DeliveryLedger, OpenedBlock } from './ledger.js';
import { classifyUploadFailure, toPushError, UploadStatusError } from './outcomes.js';
import { purviewSaidOfBlock } from './purview-words.js';
import type { PushEvent } from './push-events.js';
import { type BlockResponse, type ByteRange, postBlock, UploadNetworkError } from './upload.js';

export const DEFAULT_PUSH_TIMEOUT_MS = 400_000;
/** Microsoft's script tries 15 times 60 s apart; this stays within the same quarter hour but backs off with jitter. */
export const PUSH_RETRY: RetryOptions = { ...DEFAULT_RETRY, maxAttempts: 10, maxTotalMs: 900_000, baseDelayMs: 1_000 };

/** What every block of one push shares. */
export interface SendContext {
  readonly url: string;
  readonly jobId: string;
  readonly tokenSource: TokenSource;
  readonly ledger: Pick<DeliveryLedger, 'markAttempt' | 'markAcked' | 'markRefused' | 'markAnswered'>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly dispatcher: ReturnType<typeof createHttpsAgent>;
  readonly spoolPath: string;
  /** Header line with its CRLF, sent at the top of every block. */
  readonly header: Buffer;
  readonly timeoutMs: number;
  readonly retry: RetryOptions;
  readonly random?: () => number;
  readonly signal?: AbortSignal;
  readonly newBoundary: IdSource;
  readonly onEvent?: (event: PushEvent) => void;
}

export interface OutgoingBlock {
  readonly claim: OpenedBlock;
  /** 0-based index of the block in this push, for events and messages. */
  readonly index: number;
  readonly segments: readonly ByteRange[];
  /** `tmp_<guid><NNNN>.txt`. */
  readonly filename: string;
  /** Where its rows sit in a pushed file ("data row(s) 11–20 of the file"); undefined for events. */
  readonly rows?: string;
}

export interface SentBlock {
  readonly status: number;
  readonly ms: number;
  readonly possiblyDuplicated: boolean;
  /** The re-sent rows, or every row of the block when an attempt of this push went out whole without an answer. */
  readonly possiblyDuplicatedRows: number;
}

export async function sendBlock(ctx: SendContext, block: OutgoingBlock): Promise<SentBlock> {
  const started = ctx.clock.now();
  const rows = block.claim.rows;
  const state: AttemptState = { lostAnswer: false, attempts: 0, unauthorized: 0, unsettled: false };
  const response = await withRetry(
    (attempt) => attemptBlock(ctx, block, attempt, state),
    (error) => classifyUploadFailure(error, state),
    {
      clock: ctx.clock,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(ctx.random ? { random: ctx.random } : {}),
      onRetry: ({ attempt, delayMs, reason }) => {
        ctx.logger.warn({ index: block.index, attempt, delayMs, reason }, 'purview block retry');
        ctx.onEvent?.({ type: 'block_retry', index: block.index, attempt, delayMs, reason });
      },
    },
    ctx.retry,
  ).catch(async (error: unknown) => {
    // Not received in this push: refused when no attempt lost its answer and every attempt that went out is known not
    // received, whatever ended the retries after that (a token that could not be had after a 401, an abort during a
    // Retry-After wait, the lease lost before the next attempt): judged by each attempt's outcome, not by the last error.
    // With no attempt at all the block never went out, and its writer gives it up here: refused too, so no later run
    // takes it for one that may still be sent. Its re-sent rows keep their flag all the same (an event's claim remembers
    // it may be in Purview; a file's rows have the record of the earlier block that sent them without an answer), so
    // the block's other rows go again unflagged.
    const refused = !state.lostAnswer && !state.unsettled;
    // A 3xx is a final answer too: nothing follows redirects here, so the block was not processed.
    const status = error instanceof UploadStatusError && error.status >= 300 && error.status < 500 ? error.status : undefined;
    if (refused) ctx.ledger.markRefused(block.claim.id, status);
    // A 4xx after an attempt of unknown outcome: the block stays flagged, but its refusal (a 400 to give up) is known.
    else if (status !== undefined) ctx.ledger.markAnswered(block.claim.id, status);
    // Purview's words may echo a cell of the block (a patient's name): they are checked against the block's rows.
    const said = error instanceof UploadStatusError ? await purviewSaidOfBlock(error, ctx.spoolPath, block.segments) : undefined;
    throw toPushError(error, {
      index: block.index,
      jobId: ctx.jobId,
      attempts: state.attempts,
      refused,
      ...(block.claim.resentRows > 0 ? { resentRows: block.claim.resentRows } : {}),
      ...(said === undefined ? {} : { said }),
      ...(block.rows === undefined ? {} : { rows: block.rows }),
    });
  });
  // Flagged for rows it re-sent, or whole once an attempt of it went out without an answer.
  const possiblyDuplicatedRows = state.lostAnswer ? rows : block.claim.resentRows;
  const possiblyDuplicated = possiblyDuplicatedRows > 0;
  ctx.ledger.markAcked(block.claim.id, possiblyDuplicatedRows);
  const ms = ctx.clock.now() - started;
  ctx.logger.debug({ index: block.index, rows, status: response.status, ms, possiblyDuplicated }, 'purview block acknowledged');
  ctx.onEvent?.({ type: 'block_acked', index: block.index, rows, status: response.status, ms, possiblyDuplicated, possiblyDuplicatedRows });
  return { status: response.status, ms, possiblyDuplicated, possiblyDuplicatedRows };
}

/** What sendBlock learns of its attempts. */
interface AttemptState {
  /** An attempt's whole body went out without an answer, or a 5xx came after it: Purview may hold the block. */
  lostAnswer: boolean;
  /** Attempts recorded in the ledger (markAttempt); 0 while none went out. */
  attempts: number;
  /** 401s met (classifyUploadFailure), so exactly one token refresh is tried. */
  unauthorized: number;
  /**
   * The latest attempt went out (recorded by markAttempt) and nothing says yet that Purview did not receive it. Set as
   * each attempt's request starts (not before: what fails between markAttempt and the request sent nothing); cleared
   * only by a known "not received" outcome (isKnownUnreceived). An abort in flight, or any other failure of the
   * request, leaves it set: the body may have gone out whole.
   */
  unsettled: boolean;
}

/**
 * One attempt's outcome is known not received: Purview answered (a 3xx, a 4xx refusal, a 401, a 429 or 408, a 5xx before the
 * body went out whole), or the connection failed before the body went out whole (refused, unresolvable, a TLS
 * failure). A 5xx or a failure after the whole body made the block's outcome unknown (state.lostAnswer, set before
 * this is asked). An abort or any other error says nothing of what Purview got.
 */
function isKnownUnreceived(error: unknown): boolean {
  return (error instanceof UploadStatusError && error.status >= 300) || (error instanceof UploadNetworkError && !error.bodySent);
}

async function attemptBlock(ctx: SendContext, block: OutgoingBlock, attempt: number, state: AttemptState): Promise<BlockResponse> {
  const token = await ctx.tokenSource.getToken(ctx.signal);
  // Durable before the request: a crash from here on leaves "sent, answer unknown", which a rerun flags.
  ctx.ledger.markAttempt(block.claim.id);
  state.attempts = attempt;
  try {
    return await requestBlock(ctx, block, attempt, token, state);
  } catch (error) {
    if (!state.lostAnswer && isKnownUnreceived(error)) state.unsettled = false;
    throw error;
  }
}

async function requestBlock(ctx: SendContext, block: OutgoingBlock, attempt: number, token: string, state: AttemptState): Promise<BlockResponse> {
  // A listener that throws (the run log on a full disk) stops the attempt before anything went out: its block is not
  // unsettled, so it is not flagged possibly duplicated when sent again.
  ctx.onEvent?.({ type: 'block_sent', index: block.index, rows: block.claim.rows, attempt });
  let response: BlockResponse;
  state.unsettled = true;
  try {
    response = await postBlock({
      url: ctx.url,
      token,
      boundary: ctx.newBoundary(),
      filename: block.filename,
      header: ctx.header,
      spoolPath: ctx.spoolPath,
      segments: block.segments,
      dispatcher: ctx.dispatcher,
      timeoutMs: ctx.timeoutMs,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
  } catch (error) {
    if (error instanceof UploadNetworkError && error.bodySent) {
      state.lostAnswer = true;
    }
    throw error;
  }
  if (response.status >= 200 && response.status < 300) {
    if (response.bodySent) return response;
    // Purview answers a block once it has it all. A 2xx before the body ended came from something on the way (a proxy,
    // a gateway answering at the headers) and is no receipt: the block goes again, unacknowledged.
    throw new UploadNetworkError(`HTTP ${response.status} answered before the block was sent whole`, false);
  }
  if (response.bodySent && response.status >= 500) {
    // A gateway's 502/503/504 (or a 520-524 of another one), or a 500 from behind it, can come after Purview stored the
    // block: as unknown as a lost answer. Any 5xx after the whole body counts so, or a 4xx after it would mark the
    // block refused while Purview may hold it.
    state.lostAnswer = true;
  }
  if (response.status === 401) ctx.tokenSource.invalidate(token);
  throw new UploadStatusError(response, ctx.clock.now());
}

/**
 * The part name of a block: one GUID per upload, NNNN counting that upload's blocks from 0001
 * (docs/purview-protocol.md §2.2).
 */
export function blockFilename(fileIds: Map<number, string>, newFileId: IdSource, upload: number, number: number): string {
  let fileId = fileIds.get(upload);
  if (fileId === undefined) {
    fileId = newFileId();
    fileIds.set(upload, fileId);
  }
  return `tmp_${fileId}${String(number).padStart(4, '0')}.txt`;
}

/**
 * The push stage: a complete connector file on disk goes to Purview in blocks, strictly one after another, each
 * checkpointed in the ledger. Unlike Microsoft's script (purview-protocol.md §3.2), a network error or a timeout is
 * never taken for success, permanent answers (400, 401 after a refresh, 403) stop at once, and a block whose outcome
 * is unknown (sent, then no answer) is re-sent and reported as possibly duplicated rather than silently skipped.
 */
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import { DEFAULT_RETRY, withRetry, type RetryOptions } from '../http.js';
import { uuidSource, type IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import type { TokenSource } from '../token-cache.js';
import { createHttpsAgent } from './agent.js';
import type { BlockPlan, UploadLimits } from './blocks.js';
import { signalsUrl } from './clouds.js';
import type { BlockLedger } from './ledger.js';
import { classifyUploadFailure, toPushError, UploadStatusError } from './outcomes.js';
import { scanSpool, type SpoolScan } from './spool.js';
import { postBlock, UploadNetworkError, type BlockResponse } from './upload.js';

export type PushEvent =
  | { type: 'block_sent'; index: number; rows: number; attempt: number }
  | { type: 'block_acked'; index: number; rows: number; status: number; ms: number; possiblyDuplicated: boolean }
  /** `attempt` is the attempt that failed; the next one starts after `delayMs`. */
  | { type: 'block_retry'; index: number; attempt: number; delayMs: number; reason: string }
  | { type: 'block_skipped'; index: number; rows: number };

export interface PushOptions {
  /** A complete connector file: header line + rows, CRLF, UTF-8 without BOM (what the pipeline writes). */
  readonly spoolPath: string;
  /** Rows per block. Default 100,000 (the docs' figure; the script sends 5,000 since 2026-02). */
  readonly blockRows?: number;
  /** Scheme and host of the ingestion service, e.g. CLOUDS.commercial.ingestionBase. */
  readonly ingestionBase: string;
  /** The connector's job id from the Purview portal. */
  readonly jobId: string;
  readonly tokenSource: TokenSource;
  /** Per-block checkpoints; markSending must be durable when it returns. */
  readonly ledger: BlockLedger;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Whole-request timeout per attempt. Default 400,000 ms, like the script. */
  readonly timeoutMs?: number;
  /** Retry budget per block. Default PUSH_RETRY (10 attempts, at most 15 minutes). */
  readonly retry?: RetryOptions;
  /** Jitter source, uniform [0,1). Default Math.random. */
  readonly random?: () => number;
  /** Extra CA (PEM) to trust for these requests only (the sandbox). */
  readonly caPem?: string;
  /** Aborts at once, the block in flight included (its outcome is then unknown; a rerun flags it). */
  readonly signal?: AbortSignal;
  /** Graceful stop: once aborted, no further block starts; throws BRG_ERR_ABORTED after the block in flight. */
  readonly stopAfterBlock?: AbortSignal;
  readonly onEvent?: (event: PushEvent) => void;
  /** Multipart boundary per request. Default random UUIDs, like .NET. */
  readonly newBoundary?: IdSource;
  /** The GUID in `tmp_<guid><NNNN>.txt`, one per upload. Default random UUIDs. */
  readonly newFileId?: IdSource;
  /** Per-upload limits (default 5,000,000 rows / 3 GB); tests lower them. */
  readonly limits?: UploadLimits;
}

export interface PushReport {
  readonly spoolSha256: string;
  readonly blocks: number;
  /** Blocks sent and acknowledged in this run. */
  readonly blocksSent: number;
  /** Blocks an earlier run had already delivered. */
  readonly blocksSkipped: number;
  /** Rows of every acknowledged block of the file, this run's and earlier runs'. */
  readonly rowsAcked: number;
  /** Indexes of blocks Purview may have received twice (outcome of an earlier send unknown). */
  readonly possiblyDuplicated: number[];
}

export const DEFAULT_BLOCK_ROWS = 100_000;
export const DEFAULT_PUSH_TIMEOUT_MS = 400_000;
/** Microsoft's script tries 15 times 60 s apart; this stays within the same quarter hour but backs off with jitter. */
export const PUSH_RETRY: RetryOptions = { ...DEFAULT_RETRY, maxAttempts: 10, maxTotalMs: 900_000, baseDelayMs: 1_000 };

interface PushRun {
  readonly options: PushOptions;
  readonly scan: SpoolScan;
  readonly url: string;
  readonly dispatcher: ReturnType<typeof createHttpsAgent>;
  readonly fileIds: Map<number, string>;
  readonly firstIndexOfUpload: Map<number, number>;
  readonly report: { -readonly [K in keyof PushReport]: PushReport[K] };
}

export async function pushSpoolFile(options: PushOptions): Promise<PushReport> {
  const scan = await scanSpool(options.spoolPath, options.blockRows ?? DEFAULT_BLOCK_ROWS, options.limits);
  const run: PushRun = {
    options, scan, url: signalsUrl(options.ingestionBase, options.jobId), dispatcher: createHttpsAgent(options.caPem),
    fileIds: new Map(), firstIndexOfUpload: firstIndexes(scan.plans),
    report: { spoolSha256: scan.sha256, blocks: scan.plans.length, blocksSent: 0, blocksSkipped: 0, rowsAcked: 0, possiblyDuplicated: [] },
  };
  options.logger.info({ spoolSha256: scan.sha256, rows: scan.rows, blocks: scan.plans.length }, 'purview push starting');
  try {
    for (const plan of scan.plans) await pushOrSkip(run, plan);
  } finally {
    await run.dispatcher.close();
  }
  const { report } = run;
  options.logger.info({ spoolSha256: scan.sha256, blocksSent: report.blocksSent, blocksSkipped: report.blocksSkipped, rowsAcked: report.rowsAcked }, 'purview push complete');
  return report;
}

async function pushOrSkip(run: PushRun, plan: BlockPlan): Promise<void> {
  const { ledger, onEvent, stopAfterBlock } = run.options;
  const entry = ledger.get(run.scan.sha256, plan.index);
  if (entry?.rows !== undefined && entry.rows !== plan.rows) {
    throw new BridgeError('BRG_ERR_STATE', `Block ${plan.index} of spool ${run.scan.sha256} was recorded with ${entry.rows} rows, but is ${plan.rows} rows now: `
      + 'the block size changed since the interrupted push. Resume it with the block size it started with.', { details: { index: plan.index } });
  }
  if (entry?.state === 'acked') {
    run.report.blocksSkipped += 1;
    run.report.rowsAcked += plan.rows;
    onEvent?.({ type: 'block_skipped', index: plan.index, rows: plan.rows });
    return;
  }
  if (stopAfterBlock?.aborted) {
    throw new BridgeError('BRG_ERR_ABORTED', `Stopped on request before block ${plan.index} of ${run.scan.plans.length}; the next run resumes there.`);
  }
  // 'sending' left by an earlier run: it went out and nobody saw the answer.
  await sendBlock(run, plan, entry?.state === 'sending');
}

async function sendBlock(run: PushRun, plan: BlockPlan, carriedOver: boolean): Promise<void> {
  const { options, scan } = run;
  const started = options.clock.now();
  const state = { possiblyDuplicated: carriedOver, attempts: 0, unauthorized: 0 };
  const response = await withRetry(
    (attempt) => attemptBlock(run, plan, attempt, state),
    (error) => classifyUploadFailure(error, state),
    {
      clock: options.clock,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.random ? { random: options.random } : {}),
      onRetry: ({ attempt, delayMs, reason }) => {
        options.logger.warn({ index: plan.index, attempt, delayMs, reason }, 'purview block retry');
        options.onEvent?.({ type: 'block_retry', index: plan.index, attempt, delayMs, reason });
      },
    },
    options.retry ?? PUSH_RETRY,
  ).catch((error: unknown) => {
    throw toPushError(error, { index: plan.index, blocks: scan.plans.length, jobId: options.jobId, attempts: state.attempts });
  });
  options.ledger.markAcked(scan.sha256, plan.index, plan.rows, state.possiblyDuplicated);
  run.report.blocksSent += 1;
  run.report.rowsAcked += plan.rows;
  if (state.possiblyDuplicated) run.report.possiblyDuplicated.push(plan.index);
  const ms = options.clock.now() - started;
  options.logger.debug({ index: plan.index, rows: plan.rows, status: response.status, ms, possiblyDuplicated: state.possiblyDuplicated }, 'purview block acknowledged');
  options.onEvent?.({ type: 'block_acked', index: plan.index, rows: plan.rows, status: response.status, ms, possiblyDuplicated: state.possiblyDuplicated });
}

async function attemptBlock(
  run: PushRun, plan: BlockPlan, attempt: number, state: { possiblyDuplicated: boolean; attempts: number },
): Promise<BlockResponse> {
  const { options, scan } = run;
  const token = await options.tokenSource.getToken(options.signal);
  options.ledger.markSending(scan.sha256, plan.index, plan.rows);
  state.attempts = attempt;
  options.onEvent?.({ type: 'block_sent', index: plan.index, rows: plan.rows, attempt });
  let response: BlockResponse;
  try {
    response = await postBlock({
      url: run.url, token, boundary: (options.newBoundary ?? uuidSource)(), filename: filenameOf(run, plan), header: scan.header,
      spoolPath: options.spoolPath, start: plan.start, end: plan.end, dispatcher: run.dispatcher,
      timeoutMs: options.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (error instanceof UploadNetworkError && error.bodySent) state.possiblyDuplicated = true;
    throw error;
  }
  if (response.status >= 200 && response.status < 300) return response;
  if (response.status === 401) options.tokenSource.invalidate(token);
  throw new UploadStatusError(response, options.clock.now());
}

/** `tmp_<guid><NNNN>.txt`: one GUID per upload, NNNN counting that upload's blocks from 0001 (§2.2). */
function filenameOf(run: PushRun, plan: BlockPlan): string {
  let fileId = run.fileIds.get(plan.upload);
  if (fileId === undefined) {
    fileId = (run.options.newFileId ?? uuidSource)();
    run.fileIds.set(plan.upload, fileId);
  }
  const number = plan.index - (run.firstIndexOfUpload.get(plan.upload) ?? 0) + 1;
  return `tmp_${fileId}${String(number).padStart(4, '0')}.txt`;
}

function firstIndexes(plans: readonly BlockPlan[]): Map<number, number> {
  const first = new Map<number, number>();
  for (const plan of plans) if (!first.has(plan.upload)) first.set(plan.upload, plan.index);
  return first;
}

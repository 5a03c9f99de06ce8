/**
 * The push stage: a connector file on disk goes to Purview in blocks, strictly one after another. Each block is
 * claimed in the delivery ledger (with everything in it, keyed by destination and event or row identity) before its
 * request goes out and acknowledged after a 2xx, so a rerun — with another block size, in another process, or after a
 * kill -9 — sends exactly what Purview has not acknowledged, and flags what it may have received twice
 * (docs/purview-protocol.md §6).
 *
 * Two inputs: an event spool written by the pipeline (claims per AuditEvent) and a normalised flat file from
 * `bridge push` or a drop folder (claims per row range of its content hash).
 */
import type { Clock } from '../clock.js';
import type { NormalizedFile } from '../connector-file/index.js';
import { BridgeError } from '../errors.js';
import type { RetryOptions } from '../http.js';
import { type IdSource, uuidSource } from '../ids.js';
import type { Logger } from '../log.js';
import type { NetworkSettings } from '../net/index.js';
import type { TokenSource } from '../token-cache.js';
import { appendSegment, createUploadCounter, mergeRanges, planRowBlocks, type UploadLimits } from './blocks.js';
import { signalsUrl } from './clouds.js';
import { openEventSpool, type SpoolEvent } from './event-spool.js';
import { createHttpsAgent } from './https-pool.js';
import { type DeliveryLedger, type DeliveryTarget, fileSource, type LeaseRef, type OpenedBlock, type RowRange } from './ledger.js';
import { emptyReport, type PushEvent, type PushReport } from './push-events.js';
import { blockFilename, DEFAULT_PUSH_TIMEOUT_MS, PUSH_RETRY, type SendContext, type SentBlock, sendBlock } from './send-block.js';
import type { ByteRange } from './upload.js';

export interface PushOptions {
  /** Rows per block. Default 100,000 (the docs' figure; the script sends 5,000 since 2026-02). */
  readonly blockRows?: number;
  /** Scheme and host of the ingestion service, e.g. CLOUDS.commercial.ingestionBase. */
  readonly ingestionBase: string;
  /** The connector's job id from the Purview portal. */
  readonly jobId: string;
  /** From destinationKey(): the job. */
  readonly destination: string;
  readonly tokenSource: TokenSource;
  readonly ledger: DeliveryLedger;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The run the blocks belong to, for reports. */
  readonly runId?: string;
  /**
   * The lease this push runs under (HeldLease.ref): the ledger opens and attempts its blocks only while the lease is
   * still this holder's, so a push that lost it stops before sending what the new holder may send too. Without it,
   * nothing but the heartbeat stops a push that lost its lease.
   */
  readonly lease?: LeaseRef;
  /** Whole-request timeout per attempt. Default 400,000 ms, like the script. */
  readonly timeoutMs?: number;
  /** Retry budget per block. Default PUSH_RETRY (10 attempts, at most 15 minutes). */
  readonly retry?: RetryOptions;
  /** Jitter source, uniform [0,1). Default Math.random. */
  readonly random?: () => number;
  /** Extra CA (PEM) to trust for these requests only (the sandbox). */
  readonly caPem?: string;
  /** Forward proxy, NO_PROXY and CA bundle (src/net). Default: direct. */
  readonly network?: NetworkSettings;
  /** Aborts at once, the block in flight included (its outcome is then unknown; a rerun flags it). */
  readonly signal?: AbortSignal;
  /** Graceful stop: once aborted, no further block is claimed; throws BRG_ERR_ABORTED after the block in flight. */
  readonly stopAfterBlock?: AbortSignal;
  readonly onEvent?: (event: PushEvent) => void;
  /** Multipart boundary per request. Default random UUIDs, like .NET. */
  readonly newBoundary?: IdSource;
  /** The GUID in `tmp_<guid><NNNN>.txt`, one per upload. Default random UUIDs. */
  readonly newFileId?: IdSource;
  /** Per-upload limits (default 5,000,000 rows / 3 GB); tests lower them. */
  readonly limits?: UploadLimits;
}

export const DEFAULT_BLOCK_ROWS = 100_000;
export { DEFAULT_PUSH_TIMEOUT_MS, PUSH_RETRY };

/**
 * Pushes the pipeline's event spool: each block claims whole events the destination has not acknowledged.
 * `onGivenUp`: an event of the spool the operator gave up (ClaimDecision `given-up`), not sent; the caller records it
 * as rejected.
 */
export async function pushEventSpool(
  options: PushOptions & { spoolPath: string; indexPath: string; source: string; onGivenUp?: (event: SpoolEvent) => void },
): Promise<PushReport> {
  const target = targetOf(options, options.source);
  const spool = openEventSpool(options.spoolPath, options.indexPath);
  try {
    const session = openSession(options, options.spoolPath, spool.header);
    const givenUp = new Set<string>();
    let givenUpRows = 0;
    try {
      for (;;) {
        // Stopped for a reason of its own (the lease taken over): no claim at all, whatever is left.
        throwIfStoppedFor(options);
        const segments: ByteRange[] = [];
        let delivered = 0;
        const claim = options.ledger.openEventBlock(target, spool.cursor, session.blockRows, (event, decision) => {
          if (decision === 'send' || decision === 'resend') appendSegment(segments, event.start, event.end);
          else if (decision === 'delivered') delivered += event.rows;
          else if (decision === 'given-up' && !givenUp.has(event.key)) {
            // The ledger keeps a given-up claim on its refused block, so it cannot tell a second copy of the event in
            // this spool (a page shift during the pull) from the first: this push does.
            givenUp.add(event.key);
            givenUpRows += event.rows;
            options.onGivenUp?.(event);
          } else session.report.duplicateRows += event.rows;
        });
        session.alreadyDelivered(delivered);
        session.gaveUp(givenUpRows);
        givenUpRows = 0;
        if (!claim) break;
        // A stop asked for during the last block ends nothing: only a block about to go out is held back (claimed, never
        // attempted: the next run sends it, unflagged). Checked before the claim, a run whose rows had all gone would
        // stop unfinished, its watermark unmoved, for a block that did not exist.
        throwIfStopped(options, session.report.blocks);
        await session.send(claim, segments);
      }
    } finally {
      await session.close();
    }
    return session.finish();
  } finally {
    spool.close();
  }
}

/** What a push of a file reports besides the counts: where in the file the rows Purview may hold twice are. */
export interface RowFilePushReport extends PushReport {
  /**
   * The file's rows (0-based, half-open, merged and in order) of this push's blocks flagged possibly duplicated: the
   * rows each re-sent, or all of its rows once an attempt of it lost its answer. `possiblyDuplicated` numbers blocks
   * of this push alone, which says nothing of where their rows are once a rerun planned blocks around acknowledged rows.
   */
  readonly possiblyDuplicatedRanges: readonly RowRange[];
}

/** Pushes a normalised flat file: each block claims row ranges of its content the destination has not acknowledged. */
export async function pushRowFile(options: PushOptions & { file: NormalizedFile }): Promise<RowFilePushReport> {
  const { file } = options;
  const target = targetOf(options, fileSource(file.sha256));
  const session = openSession(options, file.spoolPath, file.header);
  const flagged: RowRange[] = [];
  try {
    const plan = planRowBlocks(file.rows, session.blockRows, options.ledger.rangesOf(target));
    session.alreadyDelivered(plan.deliveredRows);
    for (const block of plan.blocks) {
      throwIfStopped(options, session.report.blocks);
      const segments = block.ranges.map((r) => ({ start: file.offsets.offsetOf(file.spoolPath, r.first), end: file.offsets.offsetOf(file.spoolPath, r.end) }));
      const rows = `${fileRowsText(block.ranges)} of the file`;
      const sent = await session.send(options.ledger.openRangeBlock(target, block.ranges, block.resentRows), segments, rows);
      if (sent.possiblyDuplicatedRows > 0) flagged.push(...(sent.possiblyDuplicatedRows === block.rows ? block.ranges : block.resentRanges));
    }
  } catch (error) {
    // A push that fails after a block went again (its answer lost) is the only one to know those rows: the rerun finds
    // them acknowledged, and a push has no run to list them. The failure names them.
    if (flagged.length > 0 && error instanceof Error) {
      error.message += ` Before it, Purview may have been sent ${fileRowsText(mergeRanges(flagged, file.rows), 10)} of the file twice (an answer lost, the block sent again).`;
    }
    throw error;
  } finally {
    await session.close();
  }
  return { ...session.finish(), possiblyDuplicatedRanges: mergeRanges(flagged, file.rows) };
}

/**
 * Rows of a file as an operator finds them: data rows counted from 1, the first after the header ("data row(s) 11–20, 31");
 * with `max`, the first `max` ranges and how many more.
 */
export function fileRowsText(ranges: readonly RowRange[], max = Number.POSITIVE_INFINITY): string {
  const shown = ranges.slice(0, max).map((r) => (r.end - r.first === 1 ? `${r.first + 1}` : `${r.first + 1}–${r.end}`));
  const more = ranges.length > max ? ` and ${ranges.length - max} more range(s)` : '';
  return `data row(s) ${shown.join(', ')}${more}`;
}

function targetOf(options: PushOptions, source: string): DeliveryTarget {
  return { destination: options.destination, source, ...(options.runId ? { runId: options.runId } : {}), ...(options.lease ? { lease: options.lease } : {}) };
}

function throwIfStopped(options: PushOptions, sent: number): void {
  const stop = options.stopAfterBlock;
  if (!stop?.aborted) return;
  throwIfStoppedFor(options);
  throw new BridgeError('BRG_ERR_ABORTED', `Stopped on request after ${sent} block(s); the next run sends what Purview has not acknowledged.`);
}

/** Stopped for a reason of its own (the run's lease taken over, or not renewable): that reason, not "on request". */
function throwIfStoppedFor(options: PushOptions): void {
  const stop = options.stopAfterBlock;
  if (stop?.aborted && stop.reason instanceof BridgeError) throw stop.reason;
}

interface PushSession {
  readonly blockRows: number;
  readonly report: ReturnType<typeof emptyReport>;
  alreadyDelivered(rows: number): void;
  /** Rows of events the operator gave up: not sent (ClaimDecision `given-up`). */
  gaveUp(rows: number): void;
  /** @param rows - where the block's rows sit in a file ("data rows 11–20"), for messages; none for events. */
  send(claim: OpenedBlock, segments: readonly ByteRange[], rows?: string): Promise<SentBlock>;
  close(): Promise<void>;
  finish(): PushReport;
}

/** What one push's blocks share: connection pool, upload numbering, the report. */
function openSession(options: PushOptions, spoolPath: string, header: Buffer): PushSession {
  const blockRows = options.blockRows ?? DEFAULT_BLOCK_ROWS;
  if (!Number.isInteger(blockRows) || blockRows < 1)
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Expected blockRows to be an integer ≥ 1, got ${String(blockRows)}.`);
  const dispatcher = createHttpsAgent(options.caPem, options.network);
  const ctx: SendContext = {
    url: signalsUrl(options.ingestionBase, options.jobId),
    jobId: options.jobId,
    tokenSource: options.tokenSource,
    ledger: options.ledger,
    clock: options.clock,
    logger: options.logger,
    dispatcher,
    spoolPath,
    header,
    timeoutMs: options.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS,
    retry: options.retry ?? PUSH_RETRY,
    newBoundary: options.newBoundary ?? uuidSource,
    ...(options.random ? { random: options.random } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  };
  const report = emptyReport();
  const upload = createUploadCounter(header.length, options.limits);
  const fileIds = new Map<number, string>();
  options.logger.info({ destinationJob: options.jobId, runId: options.runId }, 'purview push starting');
  return {
    blockRows,
    report,
    alreadyDelivered(rows) {
      if (rows === 0) return;
      report.rowsAlreadyDelivered += rows;
      options.onEvent?.({ type: 'rows_already_delivered', rows });
    },
    gaveUp(rows) {
      if (rows === 0) return;
      report.rowsGivenUp += rows;
      options.onEvent?.({ type: 'rows_given_up', rows });
    },
    async send(claim, segments, rows) {
      const bytes = segments.reduce((sum, s) => sum + (s.end - s.start), 0);
      const { upload: file, number } = upload(claim.rows, bytes);
      const index = report.blocks;
      const filename = blockFilename(fileIds, options.newFileId ?? uuidSource, file, number);
      const sent = await sendBlock(ctx, { claim, index, segments, filename, ...(rows === undefined ? {} : { rows }) });
      report.blocks += 1;
      report.rowsSent += claim.rows;
      if (sent.possiblyDuplicated) {
        report.possiblyDuplicated.push(index);
        report.rowsPossiblyDuplicated += sent.possiblyDuplicatedRows;
      }
      return sent;
    },
    close: () => dispatcher.close(),
    finish() {
      report.rowsAcked = report.rowsSent + report.rowsAlreadyDelivered;
      options.logger.info({ blocks: report.blocks, rowsSent: report.rowsSent, rowsAlreadyDelivered: report.rowsAlreadyDelivered }, 'purview push complete');
      return { ...report, possiblyDuplicated: [...report.possiblyDuplicated] };
    },
  };
}

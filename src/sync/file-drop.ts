/**
 * The flat-file source (issue #19): a run takes the files an EHR export (e.g. Clarity) dropped in a folder, instead of
 * pulling a time window over FHIR. Under the connector's lease it
 *   1. checks the folder and its archive (same filesystem, writable) before taking anything;
 *   2. checks every ready file — matching the pattern, unmodified for the settle time, oldest first — into a spool:
 *      encoding converted to UTF-8, BOM dropped, header equal to the schema's columns, every row's field count,
 *      line ends; optionally fills empty patient/employee cells from FHIR (file-enrich.ts). A bad file is moved to
 *      `archiveDir/rejected/` with a `.why.txt` naming line and column; the others go on;
 *   3. pushes each checked file through the delivery ledger (rows claimed per destination + `file:<sha256>` of its
 *      normalised content: UTF-8, CRLF, no BOM, so the same rows re-exported with other line ends are the same file),
 *      and only after its last block is acknowledged renames it into `archiveDir/done/`.
 * A crash between the last acknowledgement and the rename, or the same file dropped again, finds every row in the
 * ledger: the file is archived without sending ("already delivered"). A delivered file that grows in `done/` afterwards
 * (its export was still writing it) fails the next run once, saying what Purview lacks (file-drop-watch.ts). The run
 * record, events, rejects file and watermark are the pipeline's, so status, metrics and the operator page read this source like the others. The
 * watermark is the modification time of the newest file delivered: `bridge status` lag then grows when the export
 * stops arriving, which is what an operator needs to see.
 */
import { appendFileSync, statfsSync } from 'node:fs';
import { type ConnectorSchema, encodingName } from '../connector-file/index.js';
import { BridgeError, type ErrorCode, toBridgeError } from '../errors.js';
import { afterCompletion, announceCompletion, announceFailure, UNRECORDED, warnOnFailure } from './completion.js';
import { checkFolder, type DropFile, type DropFolder, globMatcher, listReady } from './file-drop-folder.js';
import { pruneSentAndLeft, sentAndNotTaken } from './file-drop-left.js';
import { closeInterrupted, dropRunFiles, writeDryRun } from './file-drop-state.js';
import { type Checked, checkFile, type DropContext, pushFile, wholeFileRefusalsOf } from './file-drop-steps.js';
import { forgetDelivered, grownMessage, grownSinceDelivered } from './file-drop-watch.js';
import type { EnrichReport, FileEnricher } from './file-enrich.js';
import type { SyncDeps, SyncRequest, SyncSummary } from './pipeline.js';
import { throwIfStopped } from './pull-stage.js';
import { ensureRunDirs, removeFiles, runFiles, sweepAtRunStart } from './run-files.js';
import { type RunCounts, type RunDetails, type RunRecord, ZERO_COUNTS } from './state/index.js';

export interface FileDropDeps {
  readonly folder: DropFolder;
  /** Schema whose columns (names and order) every file's header must list. */
  readonly schema: ConnectorSchema;
  /** Encoding of the files (a WHATWG label); a byte order mark overrides it. */
  readonly encoding: string;
  readonly maxLineBytes?: number;
  /** Bytes free where the normalised copies go (default: the filesystem's, by statfs); undefined when unknown. */
  readonly freeBytes?: (dir: string) => number | undefined;
  /** Built on first use (it needs the FHIR and SMART settings): fills empty patient and employee cells. */
  readonly enrich?: () => FileEnricher;
}

/**
 * What became of one file. `message` names the file, line and column, never a cell. `left`: the file stays in the drop
 * folder for the next run (nothing of it lost).
 */
export interface FileOutcome {
  readonly file: string;
  readonly outcome: 'delivered' | 'already-delivered' | 'rejected' | 'vanished' | 'changed' | 'checked' | 'left';
  readonly rows: number;
  readonly sha256?: string;
  readonly rowsSent?: number;
  readonly rowsAlreadyDelivered?: number;
  readonly rowsPossiblyDuplicated?: number;
  readonly reason?: string;
  readonly line?: number;
  readonly column?: number;
  readonly message?: string;
  readonly code?: string;
  readonly archivedTo?: string;
  readonly why?: string | undefined;
}

export interface FileDropTally {
  ready: number;
  settling: number;
  delivered: number;
  alreadyDelivered: number;
  rejected: number;
  left: number;
  /** Ready files left for the next run: their normalised copies would not fit beside this run's (freed as it pushes). */
  waiting: number;
}

export interface FileDropDetails extends RunDetails {
  readonly files: readonly FileOutcome[];
  readonly drop: Readonly<FileDropTally>;
  readonly enrich?: EnrichReport;
}

export interface FileDropSummary extends SyncSummary {
  readonly files: readonly FileOutcome[];
  readonly drop: Readonly<FileDropTally>;
  readonly enrich?: EnrichReport;
}

export async function runFileDrop(deps: SyncDeps, drop: FileDropDeps, request: SyncRequest): Promise<FileDropSummary> {
  if (request.since !== undefined || request.until !== undefined) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `Connector "${deps.connector}" reads the drop folder ${drop.folder.dir}: it has no time window. Run it without --since/--until (or since/until).`,
    );
  }
  ensureRunDirs(deps.stateDir);
  closeInterrupted(deps);
  sweepAtRunStart(deps);
  dropRunFiles(deps);
  // Purview credentials are read now, so a missing secret stops the run before any file is read.
  if (!request.dryRunOut) deps.purview();
  const nowMs = deps.clock.now();
  const cutoff = new Date(nowMs - drop.folder.settleMs).toISOString();
  const run: RunRecord = {
    id: deps.newId(),
    connector: deps.connector,
    state: 'running',
    trigger: request.trigger,
    since: deps.store.getWatermark(deps.connector) ?? cutoff,
    until: cutoff,
    startedAt: new Date(nowMs).toISOString(),
    counts: { ...ZERO_COUNTS },
    dryRun: Boolean(request.dryRunOut),
  };
  deps.store.createRun(run);
  deps.events.emit('run_start', { runId: run.id, connector: deps.connector, since: run.since, until: run.until, dryRun: run.dryRun, backfill: false });
  request.onRunId?.(run.id);
  const ctx = newContext(deps, drop, run, request);
  try {
    return await execute(ctx, nowMs);
  } catch (error) {
    throw recordFailure(ctx, error);
  }
}

async function execute(ctx: DropContext, nowMs: number): Promise<FileDropSummary> {
  const { deps, drop, run, request } = ctx;
  checkFolder(drop.folder, run.id, { readOnly: Boolean(request.dryRunOut) });
  // Where the delivered files found grown in done/ were archived: forgotten once this run has said so.
  const grownPaths: string[] = [];
  if (!request.dryRunOut) {
    pruneSentAndLeft(deps, drop.folder.dir);
    for (const grown of grownSinceDelivered(deps, nowMs)) {
      grownPaths.push(grown.file.archivedTo);
      const reason = grown.file.refused ? GREW_REFUSED : GREW;
      ctx.record({ file: grown.file.name, outcome: 'changed', rows: 0, reason, message: grownMessage(grown, drop.folder.settleMs) });
    }
  }
  const { ready, settling } = listReady(drop.folder, nowMs);
  if (!request.dryRunOut) for (const missed of sentAndNotTaken(deps, drop.folder.dir, globMatcher(drop.folder.pattern))) recordNotTaken(ctx, missed);
  Object.assign(ctx.tally, { ready: ready.length, settling });
  deps.logger.info({ runId: run.id, ready: ready.length, settling }, 'drop folder listed');
  const checked: Checked[] = [];
  const room = copiesRoom(ctx);
  for (const [index, file] of ready.entries()) {
    stopIfAsked(request);
    // The first file is taken whatever its size: a file too large for the disk fails with what to free.
    if (!room.fits(file) && index > 0) {
      waitForSpace(ctx, ready.length - index);
      break;
    }
    let result: Checked | undefined;
    try {
      result = await checkFile(ctx, file, index);
    } catch (error) {
      // The estimate fell short (a copy grew more than planned): what was checked goes out now, which frees the space
      // the rest needs next run. Only a first file that cannot be copied stops the run.
      if (!(error instanceof BridgeError) || error.code !== 'BRG_ERR_STATE' || checked.length === 0) throw error;
      waitForSpace(ctx, ready.length - index, error);
      break;
    }
    if (result) checked.push(result);
  }
  deps.events.emit('spool_complete', { runId: run.id, rows: ctx.counts.rows });
  if (request.dryRunOut) {
    await writeDryRun(checked, request.dryRunOut);
    deps.store.completeRun(run.id, { counts: ctx.counts });
    return finish(ctx);
  }
  deps.store.updateRun(run.id, {
    state: 'pushing',
    counts: ctx.counts,
    details: details(ctx),
    ...(ctx.rejectsWritten ? { rejectsPath: ctx.rejectsPath } : {}),
  });
  for (const item of checked) {
    stopIfAsked(request);
    await pushFile(ctx, item);
  }
  const left = ctx.outcomes.filter((o) => o.outcome === 'left');
  // Rows an earlier run archived as delivered are missing from Purview (file-drop-watch.ts): said once, by a failed run
  // (a scheduler notices), after this run's own files went out. The next run does not say it again.
  const grown = ctx.outcomes.filter((o) => o.reason === GREW);
  const grownRefused = ctx.outcomes.filter((o) => o.reason === GREW_REFUSED);
  if (left.length > 0 || grown.length > 0 || grownRefused.length > 0) {
    const first = left[0];
    // The first file's own cause decides the exit status: an archive that cannot be written, the EHR refusing a
    // lookup of its enrichment (4), or else the input.
    const code: ErrorCode =
      first?.code === 'BRG_ERR_DROP_ARCHIVE' || first?.code === 'BRG_ERR_FHIR_HTTP' || first?.code === 'BRG_ERR_FHIR_NOT_SUPPORTED'
        ? first.code
        : 'BRG_ERR_INPUT_INVALID';
    const said = [
      ...(left.length > 0
        ? [`${left.length} file(s) stayed in the drop folder for the next run: ${left.map((o) => o.message ?? `${o.file}: ${o.reason}`).join('; ')}`]
        : []),
      ...(grown.length > 0
        ? [`${grown.length} delivered file(s) grew in done/ after they were read, sent and archived: ${grown.map((o) => o.message).join(' ')}`]
        : []),
      ...(grownRefused.length > 0
        ? [`${grownRefused.length} refused file(s) grew in rejected/ after they were read: ${grownRefused.map((o) => o.message).join(' ')}`]
        : []),
    ];
    forgetDelivered(deps, grownPaths);
    const grew = grown.length + grownRefused.length;
    throw new BridgeError(code, said.join('. '), { details: { files: left.length, ...(grew > 0 ? { grown: grew } : {}) } });
  }
  deps.store.updateRun(run.id, { details: details(ctx), ...(ctx.rejectsWritten ? { rejectsPath: ctx.rejectsPath } : {}) });
  deps.store.completeRun(run.id, {
    counts: ctx.counts,
    ...(ctx.newestDeliveredMs !== undefined ? { watermark: new Date(ctx.newestDeliveredMs).toISOString() } : {}),
  });
  return finish(ctx);
}

/**
 * Every checked file keeps its normalised copy until its push: a backlog larger than the free space would fail every
 * run before its first block. Files are taken while their copies fit (a single-byte encoding can double in UTF-8);
 * the first always, so a file too large for the disk fails with what to free. Pushing frees the space for the next run.
 */
function copiesRoom(ctx: DropContext): { fits(file: DropFile): boolean } {
  const free = (ctx.drop.freeBytes ?? freeBytesOf)(ctx.deps.stateDir);
  // UTF-8 in: as large (a UTF-16 file by its BOM: 1.5×); a single-byte encoding: up to 3× (€, dashes, quotes); an
  // enriched file is copied twice.
  const growth = (encodingName(ctx.drop.encoding) === 'utf-8' ? 1.5 : 3) * (ctx.drop.enrich ? 2 : 1);
  let planned = MARGIN_BYTES;
  return {
    fits(file) {
      planned += file.size * growth;
      return free === undefined || planned <= free;
    },
  };
}

/** `failure`: the copy that could not be written; only a full disk (ENOSPC) is a want of space, and anything else says itself. */
function waitForSpace(ctx: DropContext, files: number, failure?: BridgeError): void {
  ctx.tally.waiting = files;
  const code = (failure?.cause as NodeJS.ErrnoException | undefined)?.code;
  if (failure !== undefined && code !== 'ENOSPC') {
    ctx.deps.logger.warn(
      { runId: ctx.run.id, waiting: files, code: failure.code },
      `a normalised copy could not be written (${failure.message}); what was checked goes out, the rest wait for the next run`,
    );
    return;
  }
  ctx.deps.logger.warn(
    { runId: ctx.run.id, waiting: files },
    'not enough free space for the normalised copies of every ready file; the rest wait for the next run',
  );
}

/**
 * A file rows of which went out (or may have) that this run does not take (file-drop-left.ts sentAndNotTaken): it stays,
 * named with what Purview has of it and how to finish it, and the run fails without moving the watermark past it.
 */
function recordNotTaken(ctx: DropContext, missed: ReturnType<typeof sentAndNotTaken>[number]): void {
  const { entry, where } = missed;
  const { acked, unknown } = missed.sent;
  const maybe = unknown > 0 ? ` (${unknown} more sent without an answer)` : '';
  const folder = ctx.drop.folder;
  const why =
    where === 'pattern'
      ? `source.pattern (${folder.pattern}) no longer takes it. Put the pattern back until it is delivered, or rename the file to one it takes`
      : `it is in ${entry.dir}, and source.dir is ${folder.dir} now. Put source.dir back until it is delivered, or move the file into ${folder.dir}`;
  ctx.record({
    file: entry.name,
    outcome: 'left',
    rows: 0,
    reason: where === 'pattern' ? 'sent-and-unmatched' : 'sent-in-other-folder',
    message: `${entry.name}: an earlier run sent ${acked} of its row(s) to Purview${maybe} and stopped; ${why} (the rows Purview has are not sent again, being the same content). Until then its other rows are not sent`,
  });
}

/** The reason of a delivered file found grown in done/, and of a refused one found grown in rejected/ (file-drop-watch.ts). */
const GREW = 'grew-after-delivery';
const GREW_REFUSED = 'grew-after-refusal';

/** Kept free beside the copies (the state database, the run log), once per run. */
const MARGIN_BYTES = 16 * 1024 * 1024;

function freeBytesOf(dir: string): number | undefined {
  try {
    const stats = statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}

function newContext(deps: SyncDeps, drop: FileDropDeps, run: RunRecord, request: SyncRequest): DropContext {
  const counts: RunCounts = { ...ZERO_COUNTS };
  const ctx: DropContext = {
    deps,
    drop,
    run,
    request,
    counts,
    outcomes: [],
    rejectReasons: {},
    possiblyDuplicated: [],
    blockOffset: 0,
    wholeFileRefusals: wholeFileRefusalsOf(deps),
    spools: new Set(),
    tally: { ready: 0, settling: 0, delivered: 0, alreadyDelivered: 0, rejected: 0, left: 0, waiting: 0 },
    rejectsPath: runFiles(deps.stateDir, run.id).rejectsPath,
    rejectsWritten: false,
    enrich: undefined,
    newestDeliveredMs: undefined,
    record(outcome) {
      ctx.outcomes.push(outcome);
      if (outcome.outcome === 'delivered') ctx.tally.delivered += 1;
      else if (outcome.outcome === 'already-delivered') ctx.tally.alreadyDelivered += 1;
      else if (outcome.outcome === 'rejected') ctx.tally.rejected += 1;
      else if (outcome.outcome === 'left') ctx.tally.left += 1;
      const level = outcome.outcome === 'rejected' || outcome.outcome === 'left' || outcome.outcome === 'changed' ? 'warn' : 'info';
      deps.logger[level](
        { runId: run.id, file: outcome.file, outcome: outcome.outcome, rows: outcome.rows, reason: outcome.reason, line: outcome.line, column: outcome.column },
        `dropped file ${outcome.outcome}`,
      );
    },
    writeReject(entry) {
      appendFileSync(ctx.rejectsPath, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
      ctx.rejectsWritten = true;
    },
  };
  return ctx;
}

function stopIfAsked(request: SyncRequest): void {
  request.signal?.throwIfAborted();
  throwIfStopped(request.stopSignal);
}

function details(ctx: DropContext): FileDropDetails {
  return {
    rejectReasons: { ...ctx.rejectReasons },
    possiblyDuplicatedBlocks: [...ctx.possiblyDuplicated],
    files: [...ctx.outcomes],
    drop: { ...ctx.tally },
    ...(ctx.enrich ? { enrich: ctx.enrich } : {}),
  };
}

function finish(ctx: DropContext): FileDropSummary {
  const { deps, run, counts } = ctx;
  // Not kept even with retainFiles: the archived file is the copy to look at.
  afterCompletion(deps.logger, run.id, "the run's spool files were not removed; the next run sweeps them", () => removeFiles(...ctx.spools));
  announceCompletion(deps, run.id, counts);
  return {
    runId: run.id,
    connector: deps.connector,
    since: run.since,
    until: run.until,
    backfill: false,
    counts,
    skipReasons: {},
    rejectReasons: { ...ctx.rejectReasons },
    possiblyDuplicatedBlocks: [...ctx.possiblyDuplicated],
    fillWarnings: [],
    files: [...ctx.outcomes],
    drop: { ...ctx.tally },
    ...(ctx.enrich ? { enrich: ctx.enrich } : {}),
    ...(ctx.request.dryRunOut ? { dryRunOut: ctx.request.dryRunOut } : {}),
  };
}

/**
 * A failed run is over: its spools go (they hold PHI), and every file it did not archive is still in the drop folder,
 * taken again by the next run, which the ledger keeps from sending a row twice.
 */
function recordFailure(ctx: DropContext, error: unknown): BridgeError {
  const { deps, run } = ctx;
  const bridgeError = toBridgeError(error);
  warnOnFailure(deps.logger, run.id, "the failed run's spool files were not removed; the next run sweeps them", () => removeFiles(...ctx.spools));
  // A completed run's files are acknowledged and archived: nothing after that makes it failed (the store keeps it so).
  // A state database failing too (locked) must not keep the failure from the sinks: the next run closes the run.
  warnOnFailure(deps.logger, run.id, UNRECORDED, () =>
    deps.store.updateRun(run.id, {
      state: 'failed',
      finishedAt: new Date(deps.clock.now()).toISOString(),
      counts: ctx.counts,
      details: details(ctx),
      error: { code: bridgeError.code, message: bridgeError.message },
      ...(ctx.rejectsWritten ? { rejectsPath: ctx.rejectsPath } : {}),
    }),
  );
  announceFailure(deps, run.id, bridgeError);
  return bridgeError;
}

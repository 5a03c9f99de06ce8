/**
 * One sync run of one connector: take the connector's lease, finish whatever an earlier run left unpushed, then
 * pull → map → spool → push a new window. State advances only after durable progress: the push claims and
 * acknowledges events in the delivery ledger block by block, and the watermark moves in one transaction once every
 * row up to it is acknowledged or rejected — never backwards, so a backfill cannot rewind it.
 */

import { setMaxListeners } from 'node:events';
import type { Clock } from '../clock.js';
import { BridgeError, toBridgeError } from '../errors.js';
import type { IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import { type CompiledMapping, createSerializer, type FillReport, type FillWarning, fillWarnings } from '../mapping/index.js';
import { type DeliveryTarget, eventSpoolHeader, isCompleteEventSpool, type PushOptions, type PushReport, pushEventSpool } from '../purview/index.js';
import { type LeaseRef, parseEventClaimKey } from '../purview/ledger.js';
import { afterCompletion, announceCompletion, announceFailure, UNRECORDED, warnOnFailure } from './completion.js';
import { refuseOrphanedDeliveries } from './connector-identity.js';
import { withDelivered } from './delivered-counts.js';
import type { EventSource } from './event-source.js';
import { forwardPushEvent, type SyncEvents } from './events.js';
import { type FileDropDeps, runFileDrop } from './file-drop.js';
import { GIVEN_UP_REASON, GivenUpRecorder } from './given-up.js';
import { connectorLeaseName, holdLease, type LeasePolicy } from './lease.js';
import { refuseBeyondLedger } from './ledger-horizon.js';
import { type PullResult, pullToSpool, STOPPED_PULLING, throwIfStopped } from './pull-stage.js';
import { ensureRunDirs, indexPathOf, removeFiles, runFiles, sweepAtRunStart } from './run-files.js';
import { type RunCounts, type RunDetails, type RunRecord, type RunTrigger, type StateStore, ZERO_COUNTS } from './state/index.js';
import { refuseWatermarkOfAnotherSource, watermarkSourceState } from './watermark-source.js';
import { BODY_LABELS, computeWindow, FLAG_LABELS, type SyncWindow, type WindowLabels, type WindowPolicy } from './window.js';

/** Push settings the pipeline passes through; the ledger, destination, clock, logger, signals and events are its own. */
export type PushTarget = Omit<PushOptions, 'ledger' | 'destination' | 'clock' | 'logger' | 'signal' | 'stopAfterBlock' | 'onEvent' | 'runId' | 'lease'>;

export interface SyncDeps {
  readonly connector: string;
  /**
   * Every connector name of the config (default: this one alone). A name with deliveries to this connector's Purview
   * job but not in this list is a connector renamed or removed: a connector without a watermark waits for the operator
   * to say which (connector-identity.ts).
   */
  readonly knownConnectors?: readonly string[];
  /** Where this connector's rows go and what they come from, as the delivery ledger keys them. */
  readonly target: Pick<DeliveryTarget, 'destination' | 'source'>;
  readonly store: StateStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly newId: IdSource;
  readonly events: SyncEvents;
  readonly stateDir: string;
  /** Keep spool files after a successful run (default: delete them). */
  readonly retainFiles: boolean;
  /** How long a completed run's rejects file is kept (retention.rejectsDays); 0 removes it at completion. */
  readonly rejectsRetentionMs: number;
  /** How long a finished run's event log stays under stateDir/runs (retention.runLogDays); kept for ever when undefined. */
  readonly runLogRetentionMs?: number;
  readonly window: WindowPolicy;
  readonly lease: LeasePolicy;
  /**
   * Acknowledgements older than this (before the watermark) are forgotten; no window may reach before them, so the
   * overlap may not be longer.
   */
  readonly ledgerRetentionMs: number;
  /** Events pulled before one reference prefetch + map pass (bounded lookahead; memory ≈ this many events). */
  readonly prefetchEvents: number;
  readonly mapping: CompiledMapping;
  /** Built on first use, so a resume-only run needs no EHR credentials and a dry run no Purview ones. */
  readonly source: () => EventSource;
  /**
   * The source decides where a run's window ends (a Bulk Data export covers up to its own transactionTime): a run
   * takes no `until`, which is refused as a bad window (the HTTP trigger's 400) rather than moved past in silence.
   */
  readonly sourceEndsWindows?: boolean;
  /**
   * What the watermark is a point in: the FHIR search source's base URL (normalised). A watermark recorded reading
   * another base (fhir.baseUrl changed, or a state renamed onto a connector of another server) says nothing of this
   * one's events: an incremental run is refused until one run with --since says where to start (watermark-source.ts).
   */
  readonly watermarkSource?: string;
  readonly purview: () => PushTarget;
  /** A flat-file source (issue #19): the run takes the drop folder's files instead of pulling a window (file-drop.ts). */
  readonly fileDrop?: FileDropDeps;
}

export interface SyncRequest {
  readonly trigger: RunTrigger;
  /** An explicit start makes the run a backfill: it may not move the watermark backwards, and is de-duplicated. */
  readonly since?: string | undefined;
  readonly until?: string | undefined;
  /** Write the connector file here and push nothing; the watermark does not move. */
  readonly dryRunOut?: string;
  readonly signal?: AbortSignal;
  /**
   * Graceful stop (first SIGTERM, service shutdown): the pull stops at the next page, the push after the block in
   * flight is acknowledged; the run stays resumable. `signal` aborts at once.
   */
  readonly stopSignal?: AbortSignal;
  /**
   * Called with the run id as soon as the run is recorded (the HTTP trigger answers 202 with it): the unfinished run it
   * resumes first, when there is one (`resumed` true), then its own (a caller may keep only the first).
   */
  readonly onRunId?: (runId: string, resumed?: boolean) => void;
  /** Called once the unfinished run resumed first completed: until onRunId names its own run, a failure has no record. */
  readonly onResumedComplete?: (runId: string) => void;
}

export interface SyncSummary {
  readonly runId: string;
  readonly connector: string;
  readonly since: string;
  readonly until: string;
  readonly backfill: boolean;
  readonly counts: RunCounts;
  readonly skipReasons: Readonly<Record<string, number>>;
  readonly rejectReasons: Readonly<Record<string, number>>;
  readonly possiblyDuplicatedBlocks: readonly number[];
  /** Resources the source reported it could not deliver (RunDetails.unexported), when any. */
  readonly unexported?: number;
  /** Per mandatory or key column, how many rows were left empty; and a warning for each over 5%. */
  readonly fill?: FillReport;
  readonly fillWarnings: readonly FillWarning[];
  readonly dryRunOut?: string;
  /** The earlier unfinished run this invocation completed first, if any. */
  readonly resumed?: SyncSummary;
  /** A dry run's note: this earlier run's push is unfinished; the next sync without --dry-run finishes it. */
  readonly unfinishedRun?: string;
  /** A flat-file source's files and what became of each, its tally and its enrichment (src/sync/file-drop.ts). */
  readonly files?: RunDetails['files'];
  readonly drop?: RunDetails['drop'];
  readonly enrich?: RunDetails['enrich'];
}

export async function runSync(deps: SyncDeps, request: SyncRequest): Promise<SyncSummary> {
  const lease = holdLease(deps.store, connectorLeaseName(deps.connector), deps.lease, deps.clock, deps.newId, `A sync of connector "${deps.connector}"`);
  // A lost lease stops the run like a graceful stop, with the lease's error as the reason.
  const stopSignal = request.stopSignal ? AbortSignal.any([request.stopSignal, lease.lost]) : lease.lost;
  const signal = request.signal ? AbortSignal.any([request.signal, lease.lost]) : lease.lost;
  // Every queued FHIR request of the run listens on these (p-queue adds one listener per task): many is normal, not a leak.
  setMaxListeners(0, signal, stopSignal);
  // The push claims and sends blocks under this lease: the ledger refuses them once it is no longer ours.
  const stops = { ...request, stopSignal, signal, lease: lease.ref };
  try {
    // Flat-file source: its own flow under the same lease (files, not a time window; no spool of a window to resume).
    if (deps.fileDrop) return await runFileDrop(deps, deps.fileDrop, stops);
    ensureRunDirs(deps.stateDir);
    sweepAtRunStart(deps);
    // A dry run pushes nothing, so it leaves an unfinished push for the next real run (and says so).
    if (request.dryRunOut) {
      // The newest the next real run finishes: past runs it would close (a dry run killed while it pulled).
      const unfinished = deps.store.findUnfinishedRuns(deps.connector).find((run) => !run.dryRun && isResumable(run));
      const summary = await runWindow(deps, stops, undefined);
      return unfinished ? { ...summary, unfinishedRun: unfinished.id } : summary;
    }
    // An explicit window is checked before an unfinished push is resumed: the HTTP trigger answers with the first run
    // id it hears of, and a bad --since/--until must be its 400, not a log line after a 202.
    if (request.since !== undefined || request.until !== undefined) plannedWindow(deps, stops);
    const resumed = await resumeUnfinished(deps, stops);
    if (resumed) request.onResumedComplete?.(resumed.runId);
    // A service starting up finishes what its last shutdown interrupted, and pulls nothing new (RunTrigger 'resume').
    if (request.trigger === 'resume') {
      if (resumed) return resumed;
      throw new BridgeError('BRG_ERR_ABORTED', `Nothing to resume: connector "${deps.connector}" has no unfinished push.`);
    }
    throwIfStopped(stopSignal);
    return await runWindow(deps, stops, resumed);
  } finally {
    lease.release();
  }
}

/** The run's window from the state as it is now, refused when it reaches before what the delivery ledger remembers. */
function plannedWindow(deps: SyncDeps, request: SyncRequest): { window: SyncWindow; watermark: string | undefined; backfill: boolean } {
  if (deps.sourceEndsWindows && request.until !== undefined) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `Connector "${deps.connector}" reads a Bulk Data export, which has no end of its own choosing: it covers what changed up to the export's transactionTime. Run it without --until (until); --since is the export's _since.`,
    );
  }
  const watermark = deps.store.getWatermark(deps.connector);
  if (request.since === undefined) refuseWatermarkOfAnotherSource(deps, watermark);
  const forgotten = deps.store.prunedBefore(deps.target);
  const window: SyncWindow = {
    ...computeWindow(deps.clock.now(), watermark, deps.window, request, deps.sourceEndsWindows === true, labelsOf(request)),
    ...(forgotten === undefined ? {} : { forgottenBefore: new Date(forgotten).toISOString() }),
  };
  const backfill = request.since !== undefined;
  if (!request.dryRunOut) refuseBeyondLedger(deps, window, watermark, backfill, labelsOf(request));
  return { window, watermark, backfill };
}

/** The HTTP trigger's caller gave the window's ends as body fields, not flags: refusals name them so. */
function labelsOf(request: Pick<SyncRequest, 'trigger'>): WindowLabels {
  return request.trigger === 'http' ? BODY_LABELS : FLAG_LABELS;
}

async function runWindow(deps: SyncDeps, request: LeasedRequest, resumed: SyncSummary | undefined): Promise<SyncSummary> {
  const { window, watermark, backfill } = plannedWindow(deps, request);
  // Purview credentials are read now, so a missing secret stops the run before hours of pulling, not after.
  if (!request.dryRunOut) deps.purview();
  let run = startRun(deps, window, request, backfill);
  request.onRunId?.(run.id);
  const files = runFiles(deps.stateDir, run.id);
  const spoolPath = request.dryRunOut ?? files.spoolPath;
  const pullFiles = { ...files, spoolPath, indexPath: request.dryRunOut ? files.indexPath : indexPathOf(spoolPath) };
  try {
    // A renamed connector must not start afresh. Refused as a run, so the status page and the run history say why; a
    // dry run too, or its Bulk export checkpoint would stand in the way of the move.
    refuseOrphanedDeliveries(deps, watermark);
    const pulled = await pullToSpool(deps, run, window, pullFiles, request);
    warnAboutFill(deps, pulled.fill);
    if (pulled.coveredUntil !== undefined && pulled.coveredUntil !== run.until) {
      // The source says how far its events are complete (e.g. an export's transactionTime): the watermark moves there.
      deps.store.updateRun(run.id, { until: pulled.coveredUntil });
      run = { ...run, until: pulled.coveredUntil };
    }
    if (request.dryRunOut) {
      removeFiles(pullFiles.indexPath, files.rejectsPath);
      deps.store.completeRun(run.id, { counts: pulled.counts });
      return finish(deps, run, pulled, [], resumed, request.dryRunOut);
    }
    // One transaction: a run resumable without its seen events would let the next run count its overlap again.
    deps.store.beginPush(
      run.id,
      {
        counts: pulled.counts,
        spoolPath,
        rejectsPath: files.rejectsPath,
        details: {
          skipReasons: pulled.skipReasons,
          rejectReasons: pulled.rejectReasons,
          ...(pulled.fill ? { fill: pulled.fill } : {}),
          ...(pulled.unexported ? { unexported: pulled.unexported } : {}),
          ...(deps.watermarkSource === undefined ? {} : { pulledFrom: deps.watermarkSource }),
        },
      },
      pulled.seen,
    );
    const pushed = await pushRun(deps, { ...run, spoolPath, rejectsPath: files.rejectsPath }, pulled.counts, request);
    const rejectReasons = withGivenUp(pulled.rejectReasons, pushed.givenUpRows);
    completeRun(deps, { ...run, backfill }, pushed, rejectReasons, deps.watermarkSource);
    removeCompletedFiles(deps, run.id, spoolPath, pullFiles.indexPath, files.rejectsPath);
    return finish(deps, run, { ...pulled, counts: pushed.counts, rejectReasons }, pushed.possiblyDuplicated, resumed);
  } catch (error) {
    throw recordFailure(deps, run.id, error, pullFiles);
  }
}

function startRun(deps: SyncDeps, window: SyncWindow, request: SyncRequest, backfill: boolean): RunRecord {
  const run: RunRecord = {
    id: deps.newId(),
    connector: deps.connector,
    state: 'running',
    trigger: request.trigger,
    since: window.since,
    until: window.until,
    startedAt: new Date(deps.clock.now()).toISOString(),
    counts: { ...ZERO_COUNTS },
    dryRun: Boolean(request.dryRunOut),
    ...(backfill ? { backfill } : {}),
  };
  deps.store.createRun(run);
  deps.events.emit('run_start', { runId: run.id, connector: deps.connector, since: run.since, until: run.until, dryRun: run.dryRun, backfill });
  return run;
}

/** What a run's push did: its counts, the blocks flagged possibly duplicated, and the rows given up (given-up.ts). */
interface PushedRun {
  readonly counts: RunCounts;
  readonly possiblyDuplicated: number[];
  readonly givenUpRows: number;
}

async function pushRun(deps: SyncDeps, run: RunRecord & { spoolPath: string }, counts: RunCounts, stops: Stops): Promise<PushedRun> {
  if (counts.rows === 0) return { counts, possiblyDuplicated: [], givenUpRows: 0 };
  const givenUp = run.rejectsPath ? new GivenUpRecorder(run.rejectsPath, run.spoolPath) : undefined;
  let report: PushReport;
  try {
    report = await pushEventSpool({
      ...deps.purview(),
      spoolPath: run.spoolPath,
      indexPath: indexPathOf(run.spoolPath),
      source: deps.target.source,
      destination: deps.target.destination,
      runId: run.id,
      ledger: deps.store,
      lease: stops.lease,
      clock: deps.clock,
      logger: deps.logger,
      ...(stops.signal ? { signal: stops.signal } : {}),
      ...(stops.stopSignal ? { stopAfterBlock: stops.stopSignal } : {}),
      onEvent: (event) => forwardPushEvent(deps.events, run.id, event),
      onGivenUp: (event) => {
        // A resumed push meets the events again: the run's live reject count takes each once.
        if (givenUp?.add(event) === false) return;
        deps.events.emit('reject', {
          runId: run.id,
          eventId: parseEventClaimKey(event.key).id,
          reason: GIVEN_UP_REASON,
          ...(event.rows > 1 ? { rows: event.rows } : {}),
        });
      },
    });
  } catch (error) {
    // The push's own error is the one to report; the push that resumes the run completes the rejects file.
    closeQuietly(givenUp, deps.logger, run.id);
    throw error;
  }
  givenUp?.close();
  if (report.rowsGivenUp > 0) {
    deps.logger.warn(
      { runId: run.id, rows: report.rowsGivenUp },
      'rows given up after Purview refused them (bridge state give-up) were recorded as rejected, not sent',
    );
  }
  const pushed: RunCounts = {
    ...counts,
    rejects: counts.rejects + report.rowsGivenUp,
    blocks: report.blocks,
    blocksAcked: report.blocks,
    rowsAcked: report.rowsAcked,
    rowsAlreadyDelivered: report.rowsAlreadyDelivered,
    possiblyDuplicated: report.possiblyDuplicated.length,
    rowsPossiblyDuplicated: report.rowsPossiblyDuplicated,
  };
  return {
    givenUpRows: report.rowsGivenUp,
    // A resumed run's earlier pushes acknowledged blocks (some flagged possibly duplicated) this push does not count.
    counts: withDelivered(pushed, deps.store.deliveredOf(run.id), true),
    possiblyDuplicated: report.possiblyDuplicated,
  };
}

/**
 * One of the connector's unfinished runs is a real one that reached its push, with its whole spool on this machine: a
 * run here (a 'resume') finishes it, closing any newer run it cannot resume on the way (resumeUnfinished), such as a
 * dry run killed while it pulled. A replica whose spool is elsewhere leaves it to its own machine.
 */
export function hasResumablePush(store: StateStore, connector: string): boolean {
  return store.findUnfinishedRuns(connector).some((run) => run.state === 'pushing' && !run.dryRun && isResumable(run));
}

function isResumable(run: RunRecord): run is RunRecord & { spoolPath: string } {
  return run.state !== 'running' && run.spoolPath !== undefined && isCompleteEventSpool(run.spoolPath, indexPathOf(run.spoolPath));
}

/**
 * A run left in 'pushing' whose spool is here and whole is pushed: its events Purview acknowledged are skipped, the
 * rest sent. Without its spool (it ran on another machine, or the disk lost it) it is closed as failed: an incremental
 * run's window is pulled again by this run (the watermark did not move) and the ledger skips what was acknowledged;
 * a backfill has to be started again, as its message says.
 */
async function resumeUnfinished(deps: SyncDeps, stops: Stops): Promise<SyncSummary | undefined> {
  // Newest first; a run that cannot be resumed is closed and the next looked at, so an older push left unfinished is
  // not hidden behind it (a dry run killed while it pulled, after a backfill's push failed).
  for (let run = deps.store.findUnfinishedRun(deps.connector); run; run = deps.store.findUnfinishedRun(deps.connector)) {
    const resumable = resumableOrClosed(deps, run);
    if (resumable) return resumeRun(deps, resumable, stops);
  }
  return undefined;
}

/** The run, when it can be pushed here as it is; otherwise it is closed as failed (saying why and what to do). */
function resumableOrClosed(deps: SyncDeps, run: RunRecord): (RunRecord & { spoolPath: string }) | undefined {
  // A spool written under another header (the mapping's columns or delimiter changed since) would be pushed as it is,
  // every run: a job refusing it (a 400) would keep the connector stuck even after the setting is put back.
  const stale = isResumable(run) && eventSpoolHeader(run.spoolPath, indexPathOf(run.spoolPath)) !== createSerializer(deps.mapping).headerLine();
  if (!isResumable(run) || stale) {
    const again = run.backfill
      ? `Start the backfill again (${backfillAgain(deps, run)}); rows Purview acknowledged are not sent twice.`
      : 'Its window is pulled again by the next run; rows Purview acknowledged are not sent twice.';
    const why = stale
      ? 'its spool was written with another header (the mapping or its delimiter changed since), so it is not pushed as it is'
      : 'its spool is not here';
    deps.store.updateRun(run.id, {
      state: 'failed',
      finishedAt: new Date(deps.clock.now()).toISOString(),
      counts: withDelivered(run.counts, deps.store.deliveredOf(run.id), false),
      error: {
        code: 'BRG_ERR_ABORTED',
        message: run.dryRun
          ? 'A dry run interrupted before it finished; nothing of it was pushed.'
          : `Interrupted before its push finished, and ${why}. ${again}`,
      },
    });
    if (!run.dryRun) removeFiles(run.spoolPath, run.spoolPath && indexPathOf(run.spoolPath), run.rejectsPath);
    if (run.backfill)
      deps.logger.warn({ runId: run.id, since: run.since, until: run.until }, 'an interrupted backfill could not be resumed here; start it again');
    return undefined;
  }
  return run;
}

/** Pushes the rest of an unfinished run whose spool is here and whole, and completes it. */
async function resumeRun(deps: SyncDeps, run: RunRecord & { spoolPath: string }, stops: Stops): Promise<SyncSummary> {
  deps.logger.info({ runId: run.id, connector: deps.connector }, 'resuming the push of an unfinished run');
  deps.events.emit('run_start', {
    runId: run.id,
    connector: deps.connector,
    since: run.since,
    until: run.until,
    resumedFrom: run.id,
    dryRun: false,
    backfill: run.backfill ?? false,
  });
  // Whoever waits for a run id (the HTTP trigger) hears of this one now, not after the whole resumed push.
  stops.onRunId?.(run.id, true);
  try {
    const pushed = await pushRun(deps, { ...run, spoolPath: run.spoolPath }, run.counts, stops);
    const rejectReasons = withGivenUp({ ...run.details?.rejectReasons }, pushed.givenUpRows);
    completeRun(deps, run, pushed, rejectReasons, run.details?.pulledFrom);
    removeCompletedFiles(deps, run.id, run.spoolPath, indexPathOf(run.spoolPath), run.rejectsPath);
    const summary: PullResult = {
      counts: pushed.counts,
      seen: [],
      skipReasons: { ...run.details?.skipReasons },
      rejectReasons,
      ...(run.details?.fill ? { fill: run.details.fill } : {}),
      ...(run.details?.unexported ? { unexported: run.details.unexported } : {}),
    };
    return finish(deps, run, summary, pushed.possiblyDuplicated, undefined);
  } catch (error) {
    throw recordFailure(deps, run.id, error, { spoolPath: run.spoolPath, indexPath: indexPathOf(run.spoolPath), rejectsPath: run.rejectsPath });
  }
}

/**
 * Completes the run and moves the watermark: an incremental run to its end; a backfill only when it starts at or before
 * the watermark and ends after it (otherwise the gap between them was never pulled). The store never moves it back.
 * When the watermark is then the run's end, it is a point in `pulledFrom`, the source the run was pulled from (this
 * run's, or the record's for a resumed push, pulled maybe on another machine): recorded with it, in one transaction. A backfill that ended before
 * the watermark leaves it a point in the other source: recorded as this one, the next incremental run would skip this
 * source's events between the backfill's end and the watermark.
 */
function completeRun(deps: SyncDeps, run: RunRecord, pushed: PushedRun, rejectReasons: Readonly<Record<string, number>>, pulledFrom: string | undefined): void {
  const { counts, possiblyDuplicated } = pushed;
  const current = deps.store.getWatermark(deps.connector);
  const contiguous = !run.backfill || current === undefined || Date.parse(run.since) <= Date.parse(current);
  deps.store.completeRun(run.id, {
    counts,
    ...(contiguous ? { watermark: run.until } : {}),
    pruneSeenBeforeMs: Date.parse(run.until) - 2 * deps.window.overlapMs,
    destination: deps.target.destination,
    details: { rejectReasons, possiblyDuplicatedBlocks: [...possiblyDuplicated] },
    ...(pulledFrom === undefined ? {} : { sourceState: watermarkSourceState(pulledFrom) }),
  });
  const watermark = deps.store.getWatermark(deps.connector);
  if (watermark)
    afterCompletion(deps.logger, run.id, 'the delivery ledger was not pruned; the next run prunes it', () =>
      deps.store.pruneDeliveries(deps.target, Date.parse(watermark) - deps.ledgerRetentionMs),
    );
}

function closeQuietly(recorder: GivenUpRecorder | undefined, logger: Logger, runId: string): void {
  try {
    recorder?.close();
  } catch (error) {
    logger.warn({ runId, err: toBridgeError(error).code }, 'the rejects file of a failed push could not be closed');
  }
}

/** The pull's reject reasons, and the rows of events given up after Purview refused them (counted per push, not added). */
function withGivenUp(reasons: Readonly<Record<string, number>>, rows: number): Readonly<Record<string, number>> {
  if (rows === 0) return reasons;
  return { ...reasons, [GIVEN_UP_REASON]: rows };
}

/** A completed run's spool goes (unless retainFiles); its rejects stay for retention.rejectsDays, for the operator. */
function removeCompletedFiles(deps: SyncDeps, runId: string, spoolPath: string, indexPath: string, rejectsPath: string | undefined): void {
  afterCompletion(deps.logger, runId, "the run's files were not removed; the next run sweeps them", () => {
    if (!deps.retainFiles) removeFiles(spoolPath, indexPath);
    if (!deps.retainFiles && deps.rejectsRetentionMs === 0) removeFiles(rejectsPath);
  });
}

/** A mostly empty mandatory or key column goes unnoticed otherwise: Purview takes empty cells without a word. */
function warnAboutFill(deps: SyncDeps, fill: FillReport | undefined): void {
  for (const warning of fill ? fillWarnings(fill) : []) {
    deps.logger.warn({ column: warning.column, empty: warning.empty, rows: warning.rows }, warning.message);
  }
}

function finish(
  deps: SyncDeps,
  run: RunRecord,
  result: PullResult,
  possiblyDuplicated: readonly number[],
  resumed: SyncSummary | undefined,
  dryRunOut?: string,
): SyncSummary {
  announceCompletion(deps, run.id, result.counts, result.unexported);
  return {
    runId: run.id,
    connector: deps.connector,
    since: run.since,
    until: run.until,
    backfill: run.backfill ?? false,
    counts: result.counts,
    skipReasons: result.skipReasons,
    rejectReasons: result.rejectReasons,
    possiblyDuplicatedBlocks: possiblyDuplicated,
    ...(result.unexported ? { unexported: result.unexported } : {}),
    ...(result.fill ? { fill: result.fill } : {}),
    fillWarnings: result.fill ? fillWarnings(result.fill) : [],
    ...(dryRunOut ? { dryRunOut } : {}),
    ...(resumed ? { resumed } : {}),
  };
}

/**
 * A failure during the push keeps the run in 'pushing' with its spool: the next run resumes it (to the destination
 * then configured; the ledger skips what that destination acknowledged). A failure before (pulling, mapping) ends the
 * run and removes its files, which hold PHI: the next run pulls the window again.
 */
function recordFailure(
  deps: SyncDeps,
  runId: string,
  error: unknown,
  files: { spoolPath?: string; indexPath?: string; rejectsPath?: string | undefined },
): BridgeError {
  const bridgeError = toBridgeError(error);
  // The state database failing too (locked: often why the run failed) must not keep the failure from the sinks: its
  // reads and writes here warn, and the next run closes the run as it finds it (left 'running' without its spool:
  // closed as failed and its window pulled again; left 'pushing': resumed).
  let run: RunRecord | undefined;
  let read = false;
  warnOnFailure(deps.logger, runId, UNRECORDED, () => {
    run = deps.store.getRun(runId);
    read = true;
  });
  if (!read) {
    // Not knowing the run's state (a push left to resume, or a pull to close), nothing is written over it.
    announceFailure(deps, runId, bridgeError);
    return bridgeError;
  }
  // A completed run's rows are acknowledged and its watermark moved: nothing after that makes it failed (the sinks
  // still hear of the error: this process's part did fail).
  if (run?.state === 'completed') {
    announceFailure(deps, runId, bridgeError);
    return bridgeError;
  }
  const keepForResume = run?.state === 'pushing';
  // A backfill ended before its push (a stop, a failed pull) is pulled again by nobody: the next run starts from the
  // watermark. Its error, however it began ("the next run resumes…"), says to start it again.
  // A stop during its pull pushed nothing of it, and no next run resumes it: the stop's own words would say both.
  const said = bridgeError.message === STOPPED_PULLING ? 'Stopped on request before its push: nothing of this backfill was pushed.' : bridgeError.message;
  const reported =
    run?.backfill === true && !keepForResume && !run.dryRun
      ? new BridgeError(
          bridgeError.code,
          `${said} This backfill's window is not pulled again by the next run: start it again (${backfillAgain(deps, run)}); rows Purview acknowledged are not sent twice.`,
          { cause: bridgeError, details: bridgeError.details },
        )
      : bridgeError;
  if (reported !== bridgeError) deps.logger.warn({ runId, since: run?.since, until: run?.until }, 'a backfill ended before its push; start it again');
  warnOnFailure(deps.logger, runId, UNRECORDED, () =>
    deps.store.updateRun(runId, {
      ...(keepForResume ? {} : { state: 'failed' as const, finishedAt: new Date(deps.clock.now()).toISOString() }),
      error: { code: reported.code, message: reported.message },
    }),
  );
  // The spool holds PHI and cannot finish this run any more; a removal that fails must not hide the run's own error.
  warnOnFailure(deps.logger, runId, "the failed run's files were not removed; the next run sweeps them", () => {
    if (!keepForResume && run && !run.dryRun) removeFiles(files.spoolPath, files.indexPath, files.rejectsPath);
    if (run?.dryRun) removeFiles(files.indexPath, files.rejectsPath);
  });
  announceFailure(deps, runId, reported, keepForResume);
  return reported;
}

/** A request of a run holding the connector's lease: the push passes the lease to every ledger write. */
type LeasedRequest = SyncRequest & { readonly lease: LeaseRef };
type Stops = Pick<LeasedRequest, 'signal' | 'stopSignal' | 'lease' | 'onRunId'>;

/** How to ask for a backfill's window again: a Bulk export takes no end (it covers up to its own transactionTime). */
/** How the backfill is asked for again: the flags of the command line, or the HTTP trigger's body fields. */
function backfillAgain(deps: Pick<SyncDeps, 'sourceEndsWindows'>, run: Pick<RunRecord, 'connector' | 'since' | 'until' | 'trigger'>): string {
  const window = deps.sourceEndsWindows ? { since: run.since } : { since: run.since, until: run.until };
  if (run.trigger === 'http') return `POST /v1/connectors/${encodeURIComponent(run.connector)}/syncs with ${JSON.stringify(window)}`;
  return Object.entries(window)
    .map(([name, value]) => `${FLAG_LABELS[name as keyof WindowLabels]} ${value}`)
    .join(' ');
}

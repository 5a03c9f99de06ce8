/**
 * Pull → map → spool for one window: pages of AuditEvents, minus those an earlier run already handled, mapped in
 * groups with their Patient/Practitioner references prefetched, written to the run's event spool (rows + per-event
 * index) and rejects file. Nothing here talks to Purview; the spool is pushed afterwards.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { AuditEvent } from 'fhir/r4.js';
import { BridgeError, localWriteError } from '../errors.js';
import { createPrefetchGroups, instantMs, type ReferenceResolver } from '../fhir/index.js';
import { collectReferences, type FillReport } from '../mapping/index.js';
import { EventSpoolWriter, eventClaimKey, SPOOL_UNPUSHED } from '../purview/index.js';
import type { ReferenceRequest } from '../reference-keys.js';
import type { EventSource } from './event-source.js';
import { createMapStep, type MapStep } from './map-step.js';
import type { SyncDeps, SyncRequest } from './pipeline.js';
import { type RunCounts, type RunRecord, type SeenEvent, ZERO_COUNTS } from './state/index.js';
import type { SyncWindow } from './window.js';

export interface PullResult {
  counts: RunCounts;
  seen: SeenEvent[];
  skipReasons: Record<string, number>;
  rejectReasons: Record<string, number>;
  /** Per mandatory or key column, how many rows were left empty. */
  fill?: FillReport;
  /** The source's own end of what it delivered (EventSource.coveredUntil), when not the window's. */
  coveredUntil?: string;
  /** Resources the source reported it could not deliver (EventSource.unexported), when any. */
  unexported?: number;
}

export interface PullFiles {
  readonly spoolPath: string;
  readonly indexPath: string;
  readonly rejectsPath: string;
}

interface PendingEvent {
  readonly event: AuditEvent;
  /** `recorded`: the ledger partitions claims by it (the same for an event whatever the source or its settings). */
  readonly recordedMs: number | undefined;
  /** The time the source selects the event by (EventSource.windowTimeOf): the overlap is remembered by it. */
  readonly windowMs: number | undefined;
  readonly references: ReferenceRequest;
}

/** Instants are compared as numbers: `recorded` may carry any UTC offset (text order is not time order). */
export function recordedMsOf(event: Pick<AuditEvent, 'recorded'>): number | undefined {
  return instantMs(event.recorded);
}

export async function pullToSpool(deps: SyncDeps, run: RunRecord, window: SyncWindow, files: PullFiles, request: SyncRequest): Promise<PullResult> {
  const source = deps.source();
  try {
    await source.check(request.signal);
    return await pullChecked(deps, source, run, window, files, request);
  } finally {
    source.close?.();
  }
}

async function pullChecked(
  deps: SyncDeps,
  source: EventSource,
  run: RunRecord,
  window: SyncWindow,
  files: PullFiles,
  request: SyncRequest,
): Promise<PullResult> {
  const step = createMapStep(deps.mapping);
  const spool = new EventSpoolWriter(files.spoolPath, files.indexPath, step.headerLine());
  let rejects: number;
  try {
    rejects = openSync(files.rejectsPath, 'w', 0o600);
  } catch (error) {
    spool.close();
    throw localWriteError(files.rejectsPath, error, SPOOL_UNPUSHED);
  }
  const result: PullResult = { counts: { ...ZERO_COUNTS }, seen: [], skipReasons: {}, rejectReasons: {} };
  const rememberFrom = Date.parse(window.until) - deps.window.overlapMs;
  let sinceLastMap: RunCounts = { ...result.counts };
  const map = (ready: readonly PendingEvent[]): void => {
    mapGroup(deps, run.id, ready, source.resolver, { spool, rejects, rejectsPath: files.rejectsPath, step }, result, sinceLastMap);
    sinceLastMap = { ...result.counts };
    for (const p of ready) {
      if (p.windowMs !== undefined && p.windowMs >= rememberFrom) result.seen.push({ key: eventClaimKey(p.event), windowMs: p.windowMs });
    }
  };
  try {
    const dedupe = new Deduplicator(deps, window, (event) => source.windowTimeOf?.(event) ?? recordedMsOf(event));
    const groups = createPrefetchGroups<PendingEvent>(source.resolver, deps.prefetchEvents, request.signal);
    const note = (message: string): void => deps.events.emit('source_progress', { runId: run.id, connector: deps.connector, message });
    // The server's clock is judged by its search answers (never a cache's: /metadata may come from one), at the first
    // page and once more when the pull ends: before anything of the window is pushed.
    let clockChecked = false;
    for await (const page of source.pages(window, request.signal, note)) {
      throwIfStopped(request.stopSignal);
      if (!clockChecked) refuseWindowPastServerClock(deps, window, source.serverNow?.());
      clockChecked = true;
      result.counts.events += page.length;
      for await (const ready of groups.add(dedupe.fresh(page, result.counts))) map(ready);
    }
    refuseWindowPastServerClock(deps, window, source.serverNow?.());
    // Also when only already-pushed duplicates came since the last group: the page event reports them.
    if (groups.waiting > 0 || result.counts.events > sinceLastMap.events) map(await groups.finish());
    spool.finish();
    if (!window.explicitSince) warnIfLate(deps, run.id, dedupe.late);
  } finally {
    spool.close();
    closeSync(rejects);
  }
  deps.events.emit('spool_complete', { runId: run.id, rows: result.counts.rows });
  result.fill = step.fill();
  const covered = source.coveredUntil?.();
  if (covered !== undefined) result.coveredUntil = covered;
  const unexported = source.unexported?.() ?? 0;
  if (unexported > 0) result.unexported = unexported;
  return result;
}

/**
 * A window ends by this host's clock. Ending past the EHR's own now by more than the overlap, it reaches instants the EHR
 * has not reached: events it records there afterwards fall before the next window (which starts at this end less the
 * overlap), and no run reads them. Refused before anything of the window is pushed, so the watermark stays and the next
 * run, with the clock set right, reads the same window. (`bridge doctor` measures the skew against the token server too.)
 */
function refuseWindowPastServerClock(deps: SyncDeps, window: SyncWindow, serverNowMs: number | undefined): void {
  if (serverNowMs === undefined) return;
  const untilMs = Date.parse(window.until);
  const aheadMs = untilMs - deps.window.overlapMs - serverNowMs;
  if (aheadMs <= 0) return;
  const ahead = Math.ceil((deps.clock.now() - serverNowMs) / 60_000);
  throw new BridgeError(
    'BRG_ERR_CLOCK_AHEAD',
    `This host's clock is about ${ahead} minute(s) ahead of the FHIR server's (its answers' Date header): the window would end at ${window.until}, past the server's now by more than fhir.overlapMinutes (${deps.window.overlapMs / 60_000}) can absorb, so events the EHR records afterwards with earlier times would be read by no run. ` +
      "Nothing of the window was pushed, and the watermark did not move. Sync this host's clock (NTP), then run again; if it is right, the EHR's clock is behind: tell the EHR team.",
    { details: { until: window.until, serverNow: new Date(serverNowMs).toISOString(), aheadMinutes: ahead } },
  );
}

/**
 * Drops events an earlier run already handled: in an incremental run, those of the overlap it processed (the seen
 * set, which also covers skipped and rejected events); in any run, those the ledger records as acknowledged by this
 * destination (a backfill, or a run finishing one that died elsewhere). Only events recorded at or before the ledger's
 * high mark can be in it, so most of a run's events cost no lookup.
 */
class Deduplicator {
  private readonly seenBefore: number | undefined;
  private readonly highMark: number | undefined;
  /**
   * Events of the overlap no earlier run saw: the EHR wrote them after a run had read past their time. How late the
   * latest of them was (the watermark minus its time) says how close late events come to falling before a window.
   */
  readonly late = { events: 0, maxMs: 0 };

  constructor(
    private readonly deps: SyncDeps,
    window: SyncWindow,
    private readonly windowTimeOf: (event: AuditEvent) => number | undefined,
  ) {
    this.seenBefore = window.dedupeBefore === undefined ? undefined : Date.parse(window.dedupeBefore);
    this.highMark = deps.store.highMark(deps.target);
  }

  fresh(page: readonly AuditEvent[], counts: RunCounts): PendingEvent[] {
    const events = page.map((event) => ({ event, key: eventClaimKey(event), recordedMs: recordedMsOf(event), windowMs: this.windowTimeOf(event) }));
    const inOverlap = this.seenBefore === undefined ? [] : events.filter((e) => e.windowMs !== undefined && e.windowMs < (this.seenBefore as number));
    const seen =
      inOverlap.length > 0
        ? this.deps.store.seenEvents(
            this.deps.connector,
            this.deps.target.destination,
            inOverlap.map((e) => e.key),
          )
        : new Set<string>();
    const mayBeInLedger = this.highMark === undefined ? [] : events.filter((e) => e.recordedMs === undefined || e.recordedMs <= (this.highMark as number));
    const acknowledged = mayBeInLedger.length > 0 ? this.deps.store.acknowledgedEvents(this.deps.target, mayBeInLedger) : new Set<string>();
    const fresh: PendingEvent[] = [];
    for (const e of inOverlap) {
      if (seen.has(e.key) || acknowledged.has(e.key)) continue;
      this.late.events += 1;
      this.late.maxMs = Math.max(this.late.maxMs, (this.seenBefore as number) - (e.windowMs as number));
    }
    for (const e of events) {
      if (seen.has(e.key) || acknowledged.has(e.key)) continue;
      fresh.push({ event: e.event, recordedMs: e.recordedMs, windowMs: e.windowMs, references: collectReferences(e.event, this.deps.mapping) });
    }
    counts.duplicates += page.length - fresh.length;
    return fresh;
  }
}

/**
 * Events written later than their time by more than half the overlap: one a little later still would fall before the
 * next window's start and never be read (the watermark moved past it). Said while there is room to raise the overlap.
 */
function warnIfLate(deps: SyncDeps, runId: string, late: { events: number; maxMs: number }): void {
  if (late.events === 0 || late.maxMs <= deps.window.overlapMs / 2) return;
  deps.logger.warn(
    { runId, lateEvents: late.events, lateMinutes: Math.ceil(late.maxMs / 60_000), overlapMinutes: deps.window.overlapMs / 60_000 },
    'events reach the EHR up to lateMinutes after their time, more than half of fhir.overlapMinutes: one later than the overlap would never be read; raise fhir.overlapMinutes',
  );
}

interface GroupSinks {
  spool: EventSpoolWriter;
  rejects: number;
  rejectsPath: string;
  step: MapStep;
}

function mapGroup(
  deps: SyncDeps,
  runId: string,
  group: readonly PendingEvent[],
  resolver: ReferenceResolver,
  sinks: GroupSinks,
  result: PullResult,
  before: RunCounts,
): void {
  const mapped = sinks.step.map(group, resolver);
  for (const reject of mapped.rejects) {
    deps.events.emit('reject', { runId, eventId: reject.eventId, reason: reject.reason, ...(reject.column ? { column: reject.column } : {}) });
  }
  const tallies = sinks.step.tallies;
  result.counts.skipped = tallies.skipped;
  result.counts.rows = tallies.rows;
  result.counts.rejects = tallies.rejects;
  result.skipReasons = tallies.skipReasons;
  result.rejectReasons = tallies.rejectReasons;
  sinks.spool.append(mapped.events);
  if (mapped.rejectText.length > 0) writeRejects(sinks, mapped.rejectText);
  deps.events.emit('page', {
    runId,
    events: result.counts.events - before.events,
    duplicates: result.counts.duplicates - before.duplicates,
    skipped: result.counts.skipped - before.skipped,
    rows: mapped.rows,
    rejects: mapped.rejects.length,
  });
}

/** The rejects file is written beside the spool, and fails the same way: naming it, before anything is pushed. */
function writeRejects(sinks: GroupSinks, text: string): void {
  try {
    writeSync(sinks.rejects, text);
  } catch (error) {
    throw localWriteError(sinks.rejectsPath, error, SPOOL_UNPUSHED);
  }
}

/** What a graceful stop during the pull says (a backfill's failure words it for itself: nobody resumes it). */
export const STOPPED_PULLING = 'Stopped on request; the next run resumes from the last checkpoint.';

/** A graceful stop (or a lost lease, whose reason is the error to report) ends the pull at the next page. */
export function throwIfStopped(stopSignal: AbortSignal | undefined): void {
  if (!stopSignal?.aborted) return;
  throw stopSignal.reason instanceof BridgeError ? stopSignal.reason : new BridgeError('BRG_ERR_ABORTED', STOPPED_PULLING);
}

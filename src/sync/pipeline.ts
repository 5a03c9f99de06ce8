/**
 * One sync run: resume whatever an earlier run left unpushed, then pull → map → spool → push for a new window.
 * State advances only after durable progress: blocks are checkpointed by the push stage as Purview acknowledges
 * them, and the watermark moves in one transaction once every row up to it is acknowledged or rejected.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import type { Clock } from '../clock.js';
import { BridgeError, toBridgeError } from '../errors.js';
import type { IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import { pullAuditEvents, type AuditEventPullOptions, type FhirClient, type ReferenceResolver } from '../fhir/index.js';
import { collectReferences, createSerializer, mapEvent, type CompiledMapping } from '../mapping/index.js';
import { pushSpoolFile, type PushEvent, type PushOptions } from '../purview/index.js';
import type { ReferenceRequest } from '../references.js';
import type { SyncEvents } from './events.js';
import { openLineWriter, type LineWriter } from './spool.js';
import { ZERO_COUNTS, type RunCounts, type RunRecord, type RunTrigger, type SeenEvent, type StateStore } from './state/index.js';
import { computeWindow, eventKey, type SyncWindow, type WindowPolicy } from './window.js';

/** Push settings the pipeline passes through; the spool, ledger, clock, logger, signal and events are its own. */
export type PushTarget = Omit<PushOptions, 'spoolPath' | 'ledger' | 'clock' | 'logger' | 'signal' | 'onEvent'>;

export interface SyncDeps {
  readonly connector: string;
  readonly store: StateStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly newId: IdSource;
  readonly events: SyncEvents;
  readonly stateDir: string;
  /** Keep spool and rejects files after a successful run (default: delete them). */
  readonly retainFiles: boolean;
  readonly window: WindowPolicy;
  readonly pull: AuditEventPullOptions;
  /** Events pulled before one reference prefetch + map pass (bounded lookahead; memory ≈ this many events). */
  readonly prefetchEvents: number;
  readonly mapping: CompiledMapping;
  /** Built on first use, so a resume-only run needs no EHR credentials and a dry run no Purview ones. */
  readonly fhir: () => { client: FhirClient; resolver: ReferenceResolver };
  readonly purview: () => PushTarget;
}

export interface SyncRequest {
  readonly trigger: RunTrigger;
  readonly since?: string;
  readonly until?: string;
  /** Write the connector file here and push nothing; the watermark does not move. */
  readonly dryRunOut?: string;
  readonly signal?: AbortSignal;
  /**
   * Graceful stop (first SIGTERM, service shutdown): the pull stops at the next page, the push after the block in
   * flight is acknowledged; the run stays resumable. `signal` aborts at once.
   */
  readonly stopSignal?: AbortSignal;
  /** Called with the run id as soon as the run is recorded (the HTTP trigger answers 202 with it). */
  readonly onRunId?: (runId: string) => void;
}

export interface SyncSummary {
  readonly runId: string;
  readonly connector: string;
  readonly since: string;
  readonly until: string;
  readonly counts: RunCounts;
  readonly skipReasons: Readonly<Record<string, number>>;
  readonly rejectReasons: Readonly<Record<string, number>>;
  readonly possiblyDuplicatedBlocks: readonly number[];
  readonly dryRunOut?: string;
  /** The earlier unfinished run this invocation completed first, if any. */
  readonly resumed?: SyncSummary;
}

export async function runSync(deps: SyncDeps, request: SyncRequest): Promise<SyncSummary> {
  const resumed = await resumeUnfinished(deps, request);
  throwIfStopped(request.stopSignal);
  const window = computeWindow(deps.clock.now(), deps.store.getWatermark(deps.connector), deps.window, request);
  const run = startRun(deps, window, request);
  request.onRunId?.(run.id);
  try {
    const pulled = await pullToSpool(deps, run, window, request);
    if (request.dryRunOut) {
      deps.store.completeRun(run.id, { counts: pulled.counts });
      return finish(deps, run, pulled, [], resumed);
    }
    deps.store.updateRun(run.id, { state: 'pushing', counts: pulled.counts, spoolPath: pulled.spoolPath, rejectsPath: pulled.rejectsPath });
    deps.store.stageSeenEvents(run.id, pulled.seen);
    const pushed = await pushRun(deps, { ...run, spoolPath: pulled.spoolPath }, pulled.counts, request);
    completeWithWatermark(deps, run, pushed.counts);
    removeFiles(deps, pulled.spoolPath, pulled.rejectsPath);
    return finish(deps, run, { ...pulled, counts: pushed.counts }, pushed.possiblyDuplicated, resumed);
  } catch (error) {
    throw recordFailure(deps, run.id, error);
  }
}

interface PullResult {
  counts: RunCounts;
  spoolPath: string;
  rejectsPath: string;
  seen: SeenEvent[];
  skipReasons: Record<string, number>;
  rejectReasons: Record<string, number>;
}

function startRun(deps: SyncDeps, window: SyncWindow, request: SyncRequest): RunRecord {
  const run: RunRecord = {
    id: deps.newId(), connector: deps.connector, state: 'running', trigger: request.trigger, since: window.since,
    until: window.until, startedAt: new Date(deps.clock.now()).toISOString(), counts: { ...ZERO_COUNTS }, dryRun: Boolean(request.dryRunOut),
  };
  deps.store.createRun(run);
  deps.events.emit('run_start', { runId: run.id, connector: deps.connector, since: run.since, until: run.until, dryRun: run.dryRun });
  return run;
}

async function pullToSpool(deps: SyncDeps, run: RunRecord, window: SyncWindow, request: SyncRequest): Promise<PullResult> {
  const { client, resolver } = deps.fhir();
  await client.requireAuditEventSearch(deps.pull.dateParam ?? 'date', request.signal);
  const spoolPath = request.dryRunOut ?? join(ensureDir(deps.stateDir, 'spool'), `${run.id}.txt`);
  const rejectsPath = join(ensureDir(deps.stateDir, 'rejects'), `${run.id}.ndjson`);
  const spool = openLineWriter(spoolPath, '\r\n');
  const rejects = openLineWriter(rejectsPath, '\n');
  const serializer = createSerializer(deps.mapping);
  const result: PullResult = { counts: { ...ZERO_COUNTS }, spoolPath, rejectsPath, seen: [], skipReasons: {}, rejectReasons: {} };
  const rememberFrom = Date.parse(window.until) - deps.window.overlapMs;
  // Pages are mapped in groups of about `prefetchEvents` events. Each group's prefetch fetches only whole `_id=` batches;
  // the few events naming a resource left in a partial batch wait for a later group (or the end), so a long sync asks
  // for each Patient/Practitioner in about ⌈U/50⌉ + ⌈P/50⌉ requests. Rows therefore leave in near-time order.
  const maxWaiting = Math.max(1, Math.floor(deps.prefetchEvents / 4));
  let group: PendingEvent[] = [];
  let sinceLastFlush: RunCounts = { ...result.counts };
  const flush = async (last: boolean): Promise<void> => {
    const pending = group;
    group = [];
    await resolver.prefetch(mergeRequests(pending.map((p) => p.references)), request.signal, { holdPartialBatches: !last });
    let ready: PendingEvent[] = [];
    const waiting: PendingEvent[] = [];
    for (const p of pending) (p.references.keys.some((key) => resolver.isHeld(key)) ? waiting : ready).push(p);
    if (waiting.length > maxWaiting) {
      await resolver.prefetch(NOTHING_MORE, request.signal); // Too many waiting: fetch the partial batches now.
      ready = pending;
    } else {
      group = waiting;
    }
    const events = ready.map((p) => p.event);
    await mapPage(deps, run.id, events, resolver, { spool, rejects, serializer }, result, sinceLastFlush);
    sinceLastFlush = { ...result.counts };
    for (const event of events) {
      if (event.recorded && Date.parse(event.recorded) >= rememberFrom) result.seen.push({ key: eventKey(event), recorded: event.recorded });
    }
  };
  try {
    await spool.write([serializer.headerLine()]);
    for await (const page of pullAuditEvents(client, { since: window.since, until: window.until }, deps.pull, request.signal)) {
      throwIfStopped(request.stopSignal);
      for (const event of dropAlreadyPushed(deps, page, window, result.counts)) group.push({ event, references: collectReferences(event, deps.mapping) });
      if (group.length >= deps.prefetchEvents) await flush(false);
    }
    // Also when only already-pushed duplicates came since the last group: the page event reports them.
    if (group.length > 0 || result.counts.events > sinceLastFlush.events) await flush(true);
  } finally {
    await Promise.all([spool.close(), rejects.close()]);
  }
  deps.events.emit('spool_complete', { runId: run.id, rows: result.counts.rows });
  return result;
}

/** Events recorded before the previous watermark sit in the overlap: drop those an earlier run already pushed. */
function dropAlreadyPushed(deps: SyncDeps, page: readonly AuditEvent[], window: SyncWindow, counts: RunCounts): AuditEvent[] {
  counts.events += page.length;
  const before = window.dedupeBefore ? Date.parse(window.dedupeBefore) : undefined;
  if (before === undefined) return [...page];
  const candidates = page.filter((event) => event.recorded !== undefined && Date.parse(event.recorded) < before).map(eventKey);
  if (candidates.length === 0) return [...page];
  const seen = deps.store.seenEvents(deps.connector, candidates);
  const fresh = page.filter((event) => !seen.has(eventKey(event)));
  counts.duplicates += page.length - fresh.length;
  return fresh;
}

interface PendingEvent {
  readonly event: AuditEvent;
  readonly references: ReferenceRequest;
}

const NOTHING_MORE: ReferenceRequest = { keys: [], identifiers: [] };

interface PageSinks {
  spool: LineWriter;
  rejects: LineWriter;
  serializer: ReturnType<typeof createSerializer>;
}

async function mapPage(
  deps: SyncDeps, runId: string, events: readonly AuditEvent[], resolver: ReferenceResolver, sinks: PageSinks, result: PullResult,
  before: RunCounts,
): Promise<void> {
  const lines: string[] = [];
  const rejectLines: string[] = [];
  for (const event of events) {
    const mapped = mapEvent(event, deps.mapping, resolver);
    if (mapped.skipped) {
      result.counts.skipped += 1;
      increment(result.skipReasons, mapped.skipped);
    }
    for (const line of sinks.serializer.lines(mapped)) lines.push(line);
    for (const reject of mapped.rejects) {
      rejectLines.push(JSON.stringify(reject));
      increment(result.rejectReasons, reject.reason);
      deps.events.emit('reject', { runId, eventId: reject.eventId, reason: reject.reason, ...(reject.column ? { column: reject.column } : {}) });
    }
  }
  result.counts.rows += lines.length;
  result.counts.rejects += rejectLines.length;
  await sinks.spool.write(lines);
  await sinks.rejects.write(rejectLines);
  deps.events.emit('page', {
    runId, events: result.counts.events - before.events, duplicates: result.counts.duplicates - before.duplicates,
    skipped: result.counts.skipped - before.skipped, rows: lines.length, rejects: rejectLines.length,
  });
}

async function pushRun(
  deps: SyncDeps, run: RunRecord & { spoolPath: string }, counts: RunCounts, stops: Stops,
): Promise<{ counts: RunCounts; possiblyDuplicated: number[] }> {
  if (counts.rows === 0) return { counts, possiblyDuplicated: [] };
  const report = await pushSpoolFile({
    ...deps.purview(),
    spoolPath: run.spoolPath,
    ledger: deps.store,
    clock: deps.clock,
    logger: deps.logger,
    ...(stops.signal ? { signal: stops.signal } : {}),
    ...(stops.stopSignal ? { stopAfterBlock: stops.stopSignal } : {}),
    onEvent: (event) => forwardPushEvent(deps.events, run.id, event),
  });
  return {
    counts: {
      ...counts,
      blocks: report.blocks,
      blocksAcked: report.blocksSent + report.blocksSkipped,
      rowsAcked: report.rowsAcked,
      possiblyDuplicated: report.possiblyDuplicated.length,
    },
    possiblyDuplicated: report.possiblyDuplicated,
  };
}

function forwardPushEvent(events: SyncEvents, runId: string, event: PushEvent): void {
  switch (event.type) {
    case 'block_sent':
      return events.emit('block_sent', { runId, index: event.index, rows: event.rows, attempt: event.attempt });
    case 'block_retry':
      return events.emit('block_retry', { runId, index: event.index, attempt: event.attempt, delayMs: event.delayMs, reason: event.reason });
    case 'block_acked':
      return events.emit('block_acked', {
        runId, index: event.index, rows: event.rows, status: event.status, ms: event.ms, possiblyDuplicated: event.possiblyDuplicated,
      });
    case 'block_skipped':
      return events.emit('block_skipped', { runId, index: event.index, rows: event.rows });
  }
}

/**
 * A run left in 'pushing' has a complete spool: push what Purview has not acknowledged, then complete it. A run left in
 * 'running' died while pulling: its partial spool is discarded and, the watermark not having moved, its window is pulled again.
 */
async function resumeUnfinished(deps: SyncDeps, stops: Stops): Promise<SyncSummary | undefined> {
  const run = deps.store.findUnfinishedRun(deps.connector);
  if (!run) return undefined;
  if (run.state === 'running' || !run.spoolPath || !existsSync(run.spoolPath)) {
    deps.store.updateRun(run.id, {
      state: 'failed', finishedAt: new Date(deps.clock.now()).toISOString(),
      error: { code: 'BRG_ERR_ABORTED', message: 'Interrupted before its spool was complete; its window is pulled again by the next run.' },
    });
    if (!run.dryRun) removeFiles(deps, run.spoolPath, run.rejectsPath);
    return undefined;
  }
  deps.logger.info({ runId: run.id, connector: deps.connector }, 'resuming the push of an unfinished run');
  deps.events.emit('run_start', { runId: run.id, connector: deps.connector, since: run.since, until: run.until, resumedFrom: run.id, dryRun: false });
  try {
    const pushed = await pushRun(deps, { ...run, spoolPath: run.spoolPath }, run.counts, stops);
    completeWithWatermark(deps, run, pushed.counts);
    removeFiles(deps, run.spoolPath, run.rejectsPath);
    const summary: PullResult = { counts: pushed.counts, spoolPath: run.spoolPath, rejectsPath: run.rejectsPath ?? '', seen: [], skipReasons: {}, rejectReasons: {} };
    return finish(deps, run, summary, pushed.possiblyDuplicated, undefined);
  } catch (error) {
    throw recordFailure(deps, run.id, error);
  }
}

function completeWithWatermark(deps: SyncDeps, run: RunRecord, counts: RunCounts): void {
  const pruneBefore = new Date(Date.parse(run.until) - 2 * deps.window.overlapMs).toISOString();
  deps.store.completeRun(run.id, { counts, watermark: run.until, pruneBefore });
}

function finish(
  deps: SyncDeps, run: RunRecord, result: PullResult, possiblyDuplicated: readonly number[], resumed: SyncSummary | undefined,
): SyncSummary {
  deps.events.emit('run_complete', { runId: run.id, connector: deps.connector, counts: result.counts });
  return {
    runId: run.id, connector: deps.connector, since: run.since, until: run.until, counts: result.counts,
    skipReasons: result.skipReasons, rejectReasons: result.rejectReasons, possiblyDuplicatedBlocks: possiblyDuplicated,
    ...(run.dryRun ? { dryRunOut: result.spoolPath } : {}),
    ...(resumed ? { resumed } : {}),
  };
}

/** A failure while pushing keeps the run in 'pushing' (the next run resumes it); any other failure ends it. */
function recordFailure(deps: SyncDeps, runId: string, error: unknown): BridgeError {
  const bridgeError = toBridgeError(error);
  const run = deps.store.getRun(runId);
  const keepForResume = run?.state === 'pushing';
  deps.store.updateRun(runId, {
    ...(keepForResume ? {} : { state: 'failed' as const, finishedAt: new Date(deps.clock.now()).toISOString() }),
    error: { code: bridgeError.code, message: bridgeError.message },
  });
  if (!keepForResume && run && !run.dryRun) removeFiles(deps, run.spoolPath, run.rejectsPath);
  deps.events.emit('error', { runId, connector: deps.connector, code: bridgeError.code, message: bridgeError.message });
  return bridgeError;
}

type Stops = Pick<SyncRequest, 'signal' | 'stopSignal'>;

function throwIfStopped(stopSignal: AbortSignal | undefined): void {
  if (stopSignal?.aborted) throw new BridgeError('BRG_ERR_ABORTED', 'Stopped on request; the next run resumes from the last checkpoint.');
}

/** One request for a group of events; the resolver drops duplicates and cached keys itself. */
function mergeRequests(requests: readonly ReferenceRequest[]): ReferenceRequest {
  return { keys: requests.flatMap((r) => r.keys), identifiers: requests.flatMap((r) => r.identifiers) };
}

function increment(tally: Record<string, number>, key: string): void {
  tally[key] = (tally[key] ?? 0) + 1;
}

function ensureDir(root: string, name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function removeFiles(deps: SyncDeps, ...paths: ReadonlyArray<string | undefined>): void {
  if (deps.retainFiles) return;
  for (const path of paths) if (path) rmSync(path, { force: true });
}

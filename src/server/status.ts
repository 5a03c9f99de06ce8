/**
 * Each connector at a glance, from the state store alone, so the page, `GET /v1/status`, `bridge status` and the metrics
 * agree whichever process ran the syncs (a `bridge sync` from cron and a `bridge serve` share the state directory).
 * Health: "failing" when the last run that is not in flight failed (or was left unfinished), or when `bridge serve`'s
 * last attempt since could not even start (StartFailure); else "late" when the lag
 * (now − watermark) is over the connector's late threshold or nothing was ever synced; else "ok". Counts, states and
 * reason codes only: no PHI.
 */
import type { Config } from '../config/index.js';
import { withDelivered } from '../sync/delivered-counts.js';
import { connectorLeaseName } from '../sync/lease.js';
import type { LeaseHolder, RunCounts, RunRecord, RunState, RunTrigger, StateStore } from '../sync/state/index.js';
import { nextFireTime } from './scheduler.js';

export type Health = 'ok' | 'late' | 'failing';

/** Live progress of the run in flight in this process (src/server/progress.ts). */
export interface RunProgress {
  readonly runId: string;
  readonly phase: 'pulling' | 'pushing';
  readonly startedAt: string;
  readonly events: number;
  /** Rows written to the spool (during the pull), or the spool's rows once it is complete. */
  readonly rows: number;
  readonly rejects: number;
  /** Rows Purview acknowledged in this run, plus rows the ledger says it acknowledged before. */
  readonly rowsAcked: number;
  readonly blocksAcked: number;
  /** An estimate (acknowledged + what is left ÷ block size), known once the spool is complete. */
  readonly blocksTotal?: number;
}

export interface RunBrief {
  readonly id: string;
  readonly state: RunState;
  readonly trigger: RunTrigger;
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly durationSeconds?: number;
  readonly counts: RunCounts;
  readonly error?: { readonly code: string; readonly message: string };
  /** Resources the FHIR server reported it could not export (a Bulk export's error files), when any. */
  readonly unexported?: number;
}

export interface InFlight {
  readonly runId?: string;
  /** Who holds the connector's run lease, e.g. "bridge serve (http)" or "bridge sync (pid 4242 on host-1)". */
  readonly holder: string;
  readonly since: string;
  /** Only for a run of this process: another process's counts reach the state at its checkpoints. */
  readonly progress?: RunProgress;
}

/**
 * A run that failed before it had a run record (a missing Purview secret, a window refused before the ledger's horizon,
 * a broken build): only the process that tried knows of it. BridgeError messages carry no PHI or secrets.
 */
export interface StartFailure {
  readonly code: string;
  readonly message: string;
  readonly at: string;
  /** A window a trigger asked for and never got a run of (its caller was answered with a resumed run first). */
  readonly window?: { readonly since?: string; readonly until?: string };
}

export interface ConnectorStatus {
  readonly name: string;
  readonly health: Health;
  /** Why, in words, for a person and a monitoring check's output. */
  readonly reason: string;
  readonly watermark?: string;
  readonly lagSeconds?: number;
  readonly lateAfterSeconds: number;
  readonly lastRun?: RunBrief;
  readonly lastSuccess?: { readonly runId: string; readonly finishedAt: string };
  /** This process's last attempt that could not start, while no run has started since. */
  readonly lastStartFailure?: StartFailure;
  /** When `bridge serve` starts the next scheduled run (absent when schedules are off for it). */
  readonly nextRunAt?: string;
  readonly schedule: { readonly cron: string; readonly timezone?: string; readonly enabled: boolean };
  readonly inFlight?: InFlight;
}

export interface StatusReport {
  readonly now: string;
  /** True when every connector is "ok". */
  readonly healthy: boolean;
  readonly connectors: readonly ConnectorStatus[];
}

/** What status needs of a connector's config; the late threshold is derived once, at start. */
export interface StatusConnector {
  readonly name: string;
  readonly cron: string;
  readonly timezone?: string;
  readonly scheduleEnabled: boolean;
  readonly lateAfterMs: number;
}

export interface StatusOptions {
  /** This process runs the schedules (`bridge serve` without --no-schedules): next run times are shown. */
  readonly schedules: boolean;
  /** The live progress of a run this process has in flight. */
  readonly progress?: (connector: string) => RunProgress | undefined;
  /** The last run of the connector this process could not start (src/server/start-failures.ts). */
  readonly startFailure?: (connector: string) => StartFailure | undefined;
  /**
   * Whether a lease holder is gone (a process of this host that no longer runs: LeasePolicy.isStale): its lease,
   * though not expired, shows no run in flight, since the next run takes it over at once.
   */
  readonly isStale?: (holder: LeaseHolder) => boolean;
}

/** Runs looked at for the last run and the run in flight (a connector running hourly sees about eight days). */
const RUNS_SCANNED = 200;

export function statusConnectors(config: Pick<Config, 'connectors' | 'server'>, nowMs: number): StatusConnector[] {
  const explicit = lateAfterMinutes(config.server);
  return config.connectors.map((c) => {
    const entry = { connector: c.name, cron: c.schedule.cron, ...(c.schedule.timezone ? { timezone: c.schedule.timezone } : {}) };
    // One missed run is tolerated: late after two of the schedule's longest gaps, plus the settle delay the window keeps.
    const lateAfterMs = explicit !== undefined ? explicit * 60_000 : 2 * longestGapMs(entry, nowMs) + (c.fhir?.settleMinutes ?? 0) * 60_000;
    return {
      name: c.name,
      cron: c.schedule.cron,
      ...(c.schedule.timezone ? { timezone: c.schedule.timezone } : {}),
      scheduleEnabled: c.schedule.enabled,
      lateAfterMs,
    };
  });
}

/** `server.lateAfterMinutes` when the config schema has it; read defensively so this works before and after it is added. */
function lateAfterMinutes(server: object): number | undefined {
  const value = (server as { lateAfterMinutes?: unknown }).lateAfterMinutes;
  return typeof value === 'number' && value > 0 ? value : undefined;
}

/** The longest gap between the next dozen fire times: "weekdays at 02:00" has a three-day gap at the weekend. */
export function longestGapMs(entry: { connector: string; cron: string; timezone?: string }, nowMs: number): number {
  let longest = 0;
  let previous = nextFireTime(entry, nowMs);
  for (let i = 0; previous && i < 12; i++) {
    const next = nextFireTime(entry, previous.getTime());
    if (!next) break;
    longest = Math.max(longest, next.getTime() - previous.getTime());
    previous = next;
  }
  return longest || 86_400_000;
}

export function statusReport(connectors: readonly StatusConnector[], store: StateStore, nowMs: number, options: StatusOptions): StatusReport {
  const statuses = connectors.map((c) => connectorStatus(c, store, nowMs, options));
  return { now: new Date(nowMs).toISOString(), healthy: statuses.every((s) => s.health === 'ok'), connectors: statuses };
}

export function connectorStatus(c: StatusConnector, store: StateStore, nowMs: number, options: StatusOptions): ConnectorStatus {
  const watermark = store.getWatermark(c.name);
  const runs = store.listRuns({ connector: c.name, limit: RUNS_SCANNED }).filter((r) => !r.dryRun);
  const inFlight = inFlightRun(c.name, store, runs, nowMs, options.progress?.(c.name), options.isStale);
  const last = runs.find((r) => r.id !== inFlight?.runId);
  // Asked of the store, not looked for among the runs above: a long outage fails more runs than they hold.
  const success = store.lastCompletedRun(c.name);
  const startFailure = standingStartFailure(options.startFailure?.(c.name), runs);
  const lagSeconds = watermark === undefined ? undefined : Math.max(0, Math.round((nowMs - Date.parse(watermark)) / 1000));
  const lateAfterSeconds = Math.round(c.lateAfterMs / 1000);
  const next =
    options.schedules && c.scheduleEnabled
      ? nextFireTime({ connector: c.name, cron: c.cron, ...(c.timezone ? { timezone: c.timezone } : {}) }, nowMs)
      : undefined;
  const [health, reason] = startFailure
    ? ([
        'failing',
        `${startFailure.window ? 'a window asked for was not run' : 'the last run could not start'}: ${startFailure.code}: ${startFailure.message}`,
      ] as const)
    : judge(last, lagSeconds, lateAfterSeconds);
  return {
    name: c.name,
    health,
    reason,
    lateAfterSeconds,
    ...(watermark !== undefined ? { watermark } : {}),
    ...(lagSeconds !== undefined ? { lagSeconds } : {}),
    // The ledger's count of what the run delivered, as `bridge runs` and /v1/runs read it: a run stopped or killed mid-push
    // recorded no counts of its blocks, which the ledger holds.
    ...(last ? { lastRun: brief({ ...last, counts: withDelivered(last.counts, store.deliveredOf(last.id), last.state === 'completed') }) } : {}),
    ...(success?.finishedAt ? { lastSuccess: { runId: success.id, finishedAt: success.finishedAt } } : {}),
    ...(startFailure ? { lastStartFailure: startFailure } : {}),
    ...(next ? { nextRunAt: next.toISOString() } : {}),
    schedule: { cron: c.cron, ...(c.timezone ? { timezone: c.timezone } : {}), enabled: c.scheduleEnabled },
    ...(inFlight ? { inFlight } : {}),
  };
}

/**
 * A start failure stands until a run starts after it, in this process or another: that run's outcome then tells. A window
 * asked for and not run stands until a run of it (or of a window holding it) starts: the next scheduled run pulls the
 * usual window, and a backfill nobody ran would otherwise be forgotten at the next tick.
 */
function standingStartFailure(failure: StartFailure | undefined, runs: readonly RunRecord[]): StartFailure | undefined {
  if (!failure) return undefined;
  const atMs = Date.parse(failure.at);
  const since = runs.filter((run) => Date.parse(run.startedAt) >= atMs);
  const { window } = failure;
  if (window === undefined) return since.length > 0 ? undefined : failure;
  const holds = (run: RunRecord): boolean =>
    (window.since === undefined || Date.parse(run.since) <= Date.parse(window.since)) &&
    Date.parse(run.until) >= (window.until === undefined ? atMs : Date.parse(window.until));
  return since.some(holds) ? undefined : failure;
}

function judge(last: RunRecord | undefined, lagSeconds: number | undefined, lateAfterSeconds: number): [Health, string] {
  if (last && last.state === 'failed') return ['failing', `the last run failed: ${last.error?.code ?? 'BRG_ERR_INTERNAL'}`];
  if (last && last.state !== 'completed') {
    // Left 'running' or 'pushing' by a crash or a stop, and no process holds its lease: the next run resumes or redoes it.
    return ['failing', `the last run stopped before it finished${last.error ? `: ${last.error.code}` : ''}; the next run resumes it`];
  }
  if (lagSeconds === undefined) return ['late', 'no run has completed yet'];
  if (lagSeconds > lateAfterSeconds) return ['late', `lag ${formatDuration(lagSeconds)} is over ${formatDuration(lateAfterSeconds)}`];
  return ['ok', `lag ${formatDuration(lagSeconds)}`];
}

/** The run in flight: this process's (with live progress), or whoever holds the connector's lease across processes. */
function inFlightRun(
  connector: string,
  store: StateStore,
  runs: readonly RunRecord[],
  nowMs: number,
  progress: RunProgress | undefined,
  isStale: ((holder: LeaseHolder) => boolean) | undefined,
): InFlight | undefined {
  const lease = store.readLease(connectorLeaseName(connector));
  const held = lease !== undefined && lease.expiresMs > nowMs && isStale?.(lease.holder) !== true;
  if (progress) {
    // A resumed push starts without the pull's counts in its events: they are in its run record.
    const resumed = progress.phase === 'pushing' && progress.rows === 0 ? runs.find((r) => r.id === progress.runId) : undefined;
    const shown = resumed ? { ...progress, events: resumed.counts.events, rows: resumed.counts.rows, rejects: resumed.counts.rejects } : progress;
    return { runId: progress.runId, holder: held ? lease.holder.command : 'this service', since: progress.startedAt, progress: shown };
  }
  if (!held) return undefined;
  const active = runs.find((r) => r.state === 'running' || r.state === 'pushing');
  const { holder } = lease;
  return { ...(active ? { runId: active.id } : {}), holder: `${holder.command} (pid ${holder.pid} on ${holder.host})`, since: holder.since };
}

export function brief(run: RunRecord): RunBrief {
  const durationSeconds = run.finishedAt ? Math.max(0, (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000) : undefined;
  return {
    id: run.id,
    state: run.state,
    trigger: run.trigger,
    startedAt: run.startedAt,
    counts: run.counts,
    ...(run.finishedAt ? { finishedAt: run.finishedAt } : {}),
    ...(durationSeconds !== undefined ? { durationSeconds } : {}),
    ...(run.error ? { error: run.error } : {}),
    ...(run.details?.unexported ? { unexported: run.details.unexported } : {}),
  };
}

/** "45 s", "12 min", "3 h 20 min", "2 d 4 h": for reasons and the CLI (the page formats its own). */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

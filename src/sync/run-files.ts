/**
 * The files of a run under the state directory: its spool and spool index (`spool/<run>.txt`, `.idx`) and its rejects
 * (`rejects/<run>.ndjson`). Both hold PHI, so they are 0600 and never outlive their use: a spool is removed when its
 * run completes (unless `retainFiles`) or fails; a completed run's rejects are kept `retention.rejectsDays` for the
 * operator to read (`bridge rejects`), a failed run's removed (its rerun rejects the same rows again); whatever an
 * earlier process died holding is swept at the start of a run.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { isRetired } from './connector-identity.js';
import type { StateStore } from './state/index.js';

export interface RunFiles {
  readonly spoolPath: string;
  readonly indexPath: string;
  readonly rejectsPath: string;
}

const SPOOL_DIR = 'spool';
const REJECTS_DIR = 'rejects';
/** Per-run event logs (run-log.ts): no PHI, but one file per run for as long as the service runs. */
const RUN_LOG_DIR = 'runs';
/** A file whose run the state does not know is left alone this long (another state database may own it). */
const UNKNOWN_GRACE_MS = 3_600_000;

export function runFiles(stateDir: string, runId: string): RunFiles {
  return {
    spoolPath: join(stateDir, SPOOL_DIR, `${runId}.txt`),
    indexPath: join(stateDir, SPOOL_DIR, `${runId}.idx`),
    rejectsPath: join(stateDir, REJECTS_DIR, `${runId}.ndjson`),
  };
}

/** The spool index sits beside the spool, whatever directory the spool is in. */
export function indexPathOf(spoolPath: string): string {
  return `${spoolPath.replace(/\.txt$/, '')}.idx`;
}

export function ensureRunDirs(stateDir: string): void {
  for (const dir of [SPOOL_DIR, REJECTS_DIR]) mkdirSync(join(stateDir, dir), { recursive: true, mode: 0o700 });
}

export function removeFiles(...paths: ReadonlyArray<string | undefined>): void {
  for (const path of paths) if (path) rmSync(path, { force: true });
}

/** What a run's start sweeps by (SyncDeps): its state directory, store, connector and retention settings. */
export interface SweepSettings {
  readonly stateDir: string;
  readonly store: StateStore;
  readonly connector: string;
  readonly retainFiles: boolean;
  readonly rejectsRetentionMs: number;
  readonly runLogRetentionMs?: number | undefined;
  readonly clock: { now(): number };
}

/** sweepRunFiles at the start of a run (either source), with the run's settings. */
export function sweepAtRunStart(deps: SweepSettings): number {
  return sweepRunFiles(deps.stateDir, deps.store, deps.connector, {
    retainCompleted: deps.retainFiles,
    rejectsRetentionMs: deps.rejectsRetentionMs,
    ...(deps.runLogRetentionMs === undefined ? {} : { runLogRetentionMs: deps.runLogRetentionMs }),
    nowMs: deps.clock.now(),
  });
}

/**
 * Removes spool and rejects files left by runs of this connector (or of a retired one) that are over (completed runs
 * keep theirs when `retainFiles`), and files of runs the state does not know once they are an hour old. Files of the connector's
 * unfinished run, and of other connectors' runs still in flight, are left alone.
 */
export function sweepRunFiles(
  stateDir: string,
  store: StateStore,
  connector: string,
  options: { retainCompleted: boolean; rejectsRetentionMs: number; nowMs: number; runLogRetentionMs?: number },
): number {
  let removed = options.runLogRetentionMs === undefined ? 0 : sweepRunLogs(stateDir, store, options.nowMs - options.runLogRetentionMs);
  for (const dir of [SPOOL_DIR, REJECTS_DIR]) {
    let names: string[];
    try {
      names = readdirSync(join(stateDir, dir));
    } catch {
      continue;
    }
    for (const name of names) {
      const path = join(stateDir, dir, name);
      const run = store.getRun(basename(name, extname(name)));
      const keepCompleted =
        dir === REJECTS_DIR ? !isOlderThan(path, options.nowMs - options.rejectsRetentionMs) || options.retainCompleted : options.retainCompleted;
      // A retired connector's runs (bridge state retire) have no connector of their own left to sweep them.
      const ours = run !== undefined && (run.connector === connector || isRetired(run.connector));
      const over = ours && (run.state === 'failed' || (run.state === 'completed' && !keepCompleted));
      const unknown = run === undefined && isOlderThan(path, options.nowMs - UNKNOWN_GRACE_MS);
      if (over || unknown) {
        rmSync(path, { force: true });
        removed += 1;
      }
    }
  }
  return removed;
}

/**
 * Removes the event logs of finished runs (any connector's: they hold no PHI, and a run still in flight writes to its
 * own) whose last line is older than `beforeMs`. The log of events without a run stays.
 */
function sweepRunLogs(stateDir: string, store: StateStore, beforeMs: number): number {
  let names: string[];
  try {
    names = readdirSync(join(stateDir, RUN_LOG_DIR));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const id = basename(name, '.ndjson');
    if (!name.endsWith('.ndjson') || id === 'no-run') continue;
    const path = join(stateDir, RUN_LOG_DIR, name);
    // The file's age first: the state is read only for the few logs old enough to go, not for every run's.
    if (!isOlderThan(path, beforeMs)) continue;
    const state = store.getRun(id)?.state;
    if (state === undefined || state === 'completed' || state === 'failed') {
      rmSync(path, { force: true });
      removed += 1;
    }
  }
  return removed;
}

/** The file's last change is before `limitMs`; false when it cannot be read (gone already). */
export function isOlderThan(path: string, limitMs: number): boolean {
  try {
    return statSync(path).mtimeMs < limitMs;
  } catch {
    return false;
  }
}

/**
 * A run as the API and the CLI show it: its rejects file and its spool only while they exist, and when retention removes
 * the rejects. (The run record keeps the paths after the files are gone; showing them as they are pointed operators at
 * deleted files.) Its blocks, possibly duplicated blocks and (until it completes) acknowledged rows are what the
 * delivery ledger holds of it where that is more (sync/delivered-counts.ts): "0 blocks" for a run killed after ten misled.
 */
import { existsSync } from 'node:fs';
import { withDelivered } from '../sync/delivered-counts.js';
import type { RunDelivered, RunRecord } from '../sync/state/index.js';

export interface RejectsPolicy {
  readonly retentionDays: number;
  readonly retainFiles: boolean;
}

export type RunView = RunRecord & { rejectsAvailable: boolean; rejectsExpireAt?: string };

/** `delivered`: the ledger's acknowledgements of the run (StateStore.deliveredOf). */
export function runView(run: RunRecord, policy: RejectsPolicy, delivered?: RunDelivered): RunView {
  const { rejectsPath, spoolPath, ...rest } = run;
  const counts = delivered ? withDelivered(run.counts, delivered, run.state === 'completed') : run.counts;
  const available = rejectsPath !== undefined && existsSync(rejectsPath);
  const spooled = spoolPath !== undefined && existsSync(spoolPath);
  const expires =
    available && run.state === 'completed' && run.finishedAt && !policy.retainFiles
      ? new Date(Date.parse(run.finishedAt) + policy.retentionDays * 86_400_000).toISOString()
      : undefined;
  return {
    ...rest,
    counts,
    ...(spooled ? { spoolPath } : {}),
    ...(available ? { rejectsPath } : {}),
    rejectsAvailable: available,
    ...(expires ? { rejectsExpireAt: expires } : {}),
  };
}

/**
 * A run's rejects file is whole once the run is over: while it pulls or pushes (a push stopped or failed waits for the
 * next run to resume it) rows are still appended, rows given up after Purview refused them with the row as sent (PHI).
 */
export function rejectsFinal(run: Pick<RunRecord, 'state'>): boolean {
  return run.state === 'completed' || run.state === 'failed';
}

/** Why an unfinished run's rejects are not served yet, and when they are. */
export function rejectsUnfinished(run: Pick<RunRecord, 'id' | 'state'>): string {
  // A run left 'pushing' is finished by the next run, which resumes its push; one left 'running' (killed while it pulled)
  // is closed as failed by the next run, and keeps no rejects (its window is pulled again).
  const after =
    run.state === 'pushing'
      ? 'a push left unfinished completes when the next run resumes it'
      : 'a run killed while it pulled is closed as failed by the next run, and its window pulled again';
  return `Run ${run.id} is still in progress (${run.state}): its rejects file is written until the run completes. Fetch its rejects once it completes (${after}).`;
}

/** Why a run has no rejects file to read. */
export function rejectsGone(run: RunRecord, retentionDays: number): string {
  if (run.counts.rejects === 0 && run.state === 'completed') return `Run ${run.id} rejected no rows.`;
  if (run.dryRun)
    return `Run ${run.id} was a dry run: it keeps no rejects file (its summary counted them). To read them, map the same events with \`bridge map --rejects <file>\`, or run the sync for real.`;
  if (run.state === 'failed') return `Run ${run.id} failed: a failed run keeps no rejects (its rerun rejects the same rows again).`;
  if (run.state !== 'completed') return `Run ${run.id} is not finished: its rejects are readable once it completes.`;
  return `The rejects of run ${run.id} were removed: a completed run keeps them retention.rejectsDays (${retentionDays}) day(s).`;
}

/**
 * A run as the API and the CLI show it: its rejects file only while it exists, and when retention removes it. (The
 * run record keeps the path after the file is gone; showing it as is pointed operators at a deleted file.)
 */
import { existsSync } from 'node:fs';
import type { RunRecord } from '../sync/state/index.js';

export interface RejectsPolicy {
  readonly retentionDays: number;
  readonly retainFiles: boolean;
}

export type RunView = RunRecord & { rejectsAvailable: boolean; rejectsExpireAt?: string };

export function runView(run: RunRecord, policy: RejectsPolicy): RunView {
  const { rejectsPath, ...rest } = run;
  const available = rejectsPath !== undefined && existsSync(rejectsPath);
  const expires =
    available && run.state === 'completed' && run.finishedAt && !policy.retainFiles
      ? new Date(Date.parse(run.finishedAt) + policy.retentionDays * 86_400_000).toISOString()
      : undefined;
  return { ...rest, ...(available ? { rejectsPath } : {}), rejectsAvailable: available, ...(expires ? { rejectsExpireAt: expires } : {}) };
}

/** Why a run has no rejects file to read. */
export function rejectsGone(run: RunRecord, retentionDays: number): string {
  if (run.counts.rejects === 0 && run.state === 'completed') return `Run ${run.id} rejected no rows.`;
  if (run.state === 'failed') return `Run ${run.id} failed: a failed run keeps no rejects (its rerun rejects the same rows again).`;
  if (run.state !== 'completed') return `Run ${run.id} is not finished: its rejects are readable once it completes.`;
  return `The rejects of run ${run.id} were removed: a completed run keeps them retention.rejectsDays (${retentionDays}) day(s).`;
}

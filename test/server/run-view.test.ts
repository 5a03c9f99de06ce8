import { describe, expect, it } from 'vitest';
import { runsTable } from '../../src/cli/commands/runs.js';
import { rejectsGone, runView } from '../../src/server/run-view.js';
import { type RunRecord, ZERO_COUNTS } from '../../src/sync/state/index.js';

const policy = { retentionDays: 14, retainFiles: false };
const run = (state: RunRecord['state'], counts: Partial<RunRecord['counts']> = {}): RunRecord => ({
  id: 'r1',
  connector: 'main',
  state,
  trigger: 'cli',
  since: '2026-11-22T00:00:00.000Z',
  until: '2026-11-23T00:00:00.000Z',
  startedAt: '2026-11-23T00:00:01.000Z',
  counts: { ...ZERO_COUNTS, ...counts },
  dryRun: false,
});
const delivered = { blocks: 3, rows: 300, possiblyDuplicated: 1, rowsPossiblyDuplicated: 40 };

describe('a run as the API and `bridge runs` show it', () => {
  it('a run killed or failed during its push shows what the ledger holds as acknowledged of it', () => {
    for (const state of ['pushing', 'failed', 'running'] as const) {
      expect(runView(run(state, { rows: 500 }), policy, delivered).counts).toMatchObject({ rows: 500, blocksAcked: 3, rowsAcked: 300, possiblyDuplicated: 1 });
    }
    // A flat-file run that failed after one file Purview already had (1000 rows) and 300 rows of the next.
    const files = run('failed', { rowsAcked: 1000, rowsAlreadyDelivered: 1000 });
    expect(runView(files, policy, delivered).counts.rowsAcked).toBe(1300);
  });

  it("a completed run keeps its rows; its blocks are all its pushes' (a resumed run), or its record's once the ledger forgot them", () => {
    const completed = run('completed', { rows: 500, blocksAcked: 2, rowsAcked: 500, rowsAlreadyDelivered: 200 });
    expect(runView(completed, policy, delivered).counts).toEqual({ ...completed.counts, blocksAcked: 3, possiblyDuplicated: 1, rowsPossiblyDuplicated: 40 });
    expect(runView(completed, policy, { blocks: 0, rows: 0, possiblyDuplicated: 0, rowsPossiblyDuplicated: 0 }).counts).toEqual(completed.counts);
    expect(runView(run('pushing'), policy).counts).toEqual(ZERO_COUNTS);
  });

  it('`bridge runs` puts the rows Purview holds of a run beside its blocks', () => {
    const [header, line] = runsTable([runView(run('pushing', { rows: 500 }), policy, delivered)]);
    expect(header).toMatch(/events +rows +rejects +acked +blocks +dup +duration$/);
    expect(line).toMatch(/ 500 +0 +300 +3 +1 +…$/);
  });
});

describe('why a run has no rejects file', () => {
  it('a dry run keeps none: said so, with how to read its rejects, not blamed on retention', () => {
    const dry = { ...run('completed', { rejects: 7 }), dryRun: true };
    expect(rejectsGone(dry, 14)).toBe(
      `Run ${dry.id} was a dry run: it keeps no rejects file (its summary counted them). To read them, map the same events with \`bridge map --rejects <file>\`, or run the sync for real.`,
    );
    expect(rejectsGone({ ...dry, dryRun: false }, 14)).toContain('were removed: a completed run keeps them retention.rejectsDays (14)');
  });
});

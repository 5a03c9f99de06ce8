/** `bridge sync`'s end-of-run summary (src/cli/reporters/summary.ts): what an operator reads after a run. */
import { describe, expect, it } from 'vitest';
import { formatSummary } from '../../src/cli/reporters/summary.js';
import type { SyncSummary } from '../../src/sync/pipeline.js';
import { ZERO_COUNTS } from '../../src/sync/state/index.js';

const summary = (patch: Partial<SyncSummary>): SyncSummary => ({
  runId: 'run-1',
  connector: 'epic-prod',
  since: '2026-11-01T00:00:00.000Z',
  until: '2026-11-02T00:00:00.000Z',
  backfill: false,
  counts: { ...ZERO_COUNTS, events: 10, rows: 10, blocks: 2, blocksAcked: 2, rowsAcked: 10 },
  skipReasons: {},
  rejectReasons: {},
  possiblyDuplicatedBlocks: [],
  fillWarnings: [],
  ...patch,
});

describe('formatSummary', () => {
  it('says which blocks of this push Purview may hold twice, how they are numbered, and where to list their events', () => {
    const lines = formatSummary(
      summary({ possiblyDuplicatedBlocks: [0, 3], counts: { ...summary({}).counts, possiblyDuplicated: 2, rowsPossiblyDuplicated: 7 } }),
    );
    expect(lines.at(-1)).toBe(
      "  possibly duplicated: 7 row(s) Purview may already hold (re-sent after an unknown outcome, or recorded on a day the delivery ledger forgot), in this push's block(s) 0, 3 (counted from 0); `bridge runs --possibly-duplicated run-1` lists them",
    );
  });

  it('says so for a resumed run whose earlier push flagged blocks, though this push flagged none', () => {
    const lines = formatSummary(summary({ counts: { ...summary({}).counts, possiblyDuplicated: 2, rowsPossiblyDuplicated: 20 } }));
    expect(lines.at(-1)).toBe(
      "  possibly duplicated: 20 row(s) Purview may already hold (re-sent after an unknown outcome, or recorded on a day the delivery ledger forgot), in 2 block(s) sent by this run's earlier push(es); `bridge runs --possibly-duplicated run-1` lists them",
    );
  });

  it("names this push's flagged blocks and counts those of the run's earlier push", () => {
    const lines = formatSummary(
      summary({ possiblyDuplicatedBlocks: [1], counts: { ...summary({}).counts, possiblyDuplicated: 3, rowsPossiblyDuplicated: 25 } }),
    );
    expect(lines.at(-1)).toBe(
      "  possibly duplicated: 25 row(s) Purview may already hold (re-sent after an unknown outcome, or recorded on a day the delivery ledger forgot), in this push's block(s) 1 (counted from 0) and 2 block(s) sent by this run's earlier push(es); `bridge runs --possibly-duplicated run-1` lists them",
    );
  });

  it('says nothing of duplicates when no block was flagged', () => {
    expect(formatSummary(summary({})).some((line) => line.includes('possibly duplicated'))).toBe(false);
  });
});

describe('formatSummary of a run that resumed another', () => {
  it("names each run's rejects file, the resumed run's too", () => {
    const resumed = summary({ runId: 'run-0', counts: { ...summary({}).counts, rejects: 7 } });
    const lines = formatSummary(summary({ runId: 'run-1', counts: { ...summary({}).counts, rejects: 2 }, resumed }), (run) => ({
      path: `/state/rejects/${run.runId}.ndjson`,
      keptDays: 14,
    }));
    expect(lines).toContain('(resumed)   rejects file        /state/rejects/run-0.ndjson (holds PHI, mode 0600; kept 14 day(s); bridge rejects run-0)');
    expect(lines).toContain('  rejects file        /state/rejects/run-1.ndjson (holds PHI, mode 0600; kept 14 day(s); bridge rejects run-1)');
  });
});

/**
 * `bridge runs --possibly-duplicated <run>` for a run whose flagged blocks the delivery ledger has since pruned: the run
 * record still counts them, so the listing says the ledger forgot what they carried, never "nothing flagged".
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runsCommand } from '../../src/cli/commands/runs.js';
import { openStateStore, ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ackedEventBlock } from '../support/ledger-blocks.js';
import { ManualClock } from '../support/manual-clock.js';
import { MINIMAL_CONFIG } from '../support/minimal-config.js';
import { recordingContext } from './support.js';

const DAY = 86_400_000;

it('says the ledger no longer holds what a flagged run carried once its blocks were pruned', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-runs-pruned-'));
  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'bridge.config.json');
  writeFileSync(configPath, JSON.stringify({ ...MINIMAL_CONFIG, stateDir }));
  const clock = new ManualClock('2026-10-01T12:00:00Z');
  const store = openStateStore(stateDir, clock);
  const runId = 'run-aaaaaaaa-1';
  const target = { destination: 'j', source: 'main', runId };
  store.createRun({
    id: runId,
    connector: 'main',
    state: 'running',
    trigger: 'cli',
    since: '2026-10-01T00:00:00.000Z',
    until: '2026-10-01T12:00:00.000Z',
    startedAt: '2026-10-01T12:00:00.000Z',
    counts: { ...ZERO_COUNTS },
    dryRun: false,
  });
  ackedEventBlock(store, target, [{ key: 'ev-1|1', recordedMs: Date.parse('2026-10-01T08:00:00Z'), rows: 1 }], 1);
  store.completeRun(runId, {
    counts: { ...ZERO_COUNTS, possiblyDuplicated: 1, rowsPossiblyDuplicated: 1 },
    watermark: '2026-10-01T12:00:00.000Z',
    destination: 'j',
  });
  const list = async (): Promise<string[]> => {
    const ctx = recordingContext({ env: {} });
    await runsCommand(ctx).exitOverride().parseAsync(['--config', configPath, '--possibly-duplicated', 'run-aaaaaaaa'], { from: 'user' });
    return ctx.printed;
  };
  expect(await list()).toEqual(['AuditEvent/ev-1 version 1']);
  clock.advance(40 * DAY);
  store.pruneDeliveries(target, Date.parse('2026-11-10T12:00:00.000Z') - 31 * DAY);
  store.close();
  expect(await list()).toEqual([
    `run ${runId}: 1 block(s) flagged possibly duplicated, but the delivery ledger no longer holds what they carried (it forgets blocks older than state.ledgerRetentionDays)`,
  ]);
});

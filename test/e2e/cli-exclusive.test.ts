/**
 * Across processes (issue #14.3, #14.11): `bridge serve` running a sync and a `bridge sync` started by hand on the same
 * state — the CLI exits 6 naming the holder, nothing is pushed twice; a state database locked by another process is
 * exit 6 with what to do, not an internal error.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnBridge, spawnServe, triggerSync, until } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const TOKEN = 'cli-exclusive-token-0123456789';
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 71, events: 200, patients: 30, practitioners: 5 } });
});
afterAll(async () => h?.close());

const BLOCKS = { BRIDGE__connectors__0__purview__blockRows: '30' };
const bridge = (args: string[], env: Record<string, string> = {}) => spawnBridge(args, { ...BLOCKS, ...env });

describe('one state, several processes', () => {
  it('a hand-started sync while the service runs one exits 6 naming the service; every row once', async () => {
    const { start, end } = h.sandbox.dataset.options;
    // The service's first block is held long enough for a second process to start, however loaded the machine.
    h.sandbox.ingest.injectFaults({ kind: 'delay', ms: 10_000 });
    const { serve, url } = await spawnServe(h.sandbox.configPath, TOKEN, BLOCKS);
    try {
      expect(await triggerSync(url, TOKEN, 'sandbox', { since: start, until: end })).toBe(202);
      await until('a block in flight', () => (h.sandbox.ingest.requests > 0 ? true : undefined));
      const cli = await bridge(['sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--no-progress']).done;
      expect(cli.code).toBe(6);
      expect(cli.stderr).toMatch(
        /error BRG_ERR_RUN_IN_PROGRESS: A sync of connector "sandbox" is already running: bridge serve \(http\) \(pid \d+ on [^,]+, since /,
      );
      expect(cli.stderr).toContain('what to do:');
      await until('the service run to complete', () => (h.withStore((s) => s.listRuns({ connector: 'sandbox' }))[0]?.state === 'completed' ? true : undefined));
    } finally {
      serve.kill('SIGTERM');
      await serve.done;
    }
    const flagged = h.withStore((s) => flaggedEvents(s, h.config));
    const rows = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
    expect(expectExactlyOnceOrFlagged(rows, expectedRows(h.config, h.sandbox.dataset, h.sandbox.dataset.events()), flagged).duplicates).toBe(0);
  });

  it('a state database locked by another process is exit 6 with what to do', async () => {
    const db = new Database(join(h.config.stateDir, 'bridge.sqlite'));
    db.exec('BEGIN EXCLUSIVE');
    try {
      const cli = await bridge(['sync', '--config', h.sandbox.configPath, '--no-progress']).done;
      expect(cli.code).toBe(6);
      expect(cli.stderr).toMatch(/error BRG_ERR_STATE: The state database .*locked by another process/);
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }
  });
});

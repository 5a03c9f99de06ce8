/**
 * SIGTERM while a `bridge push` block hangs: the push waits for the block in flight only --stop-grace-seconds, then
 * aborts it and releases its lease, as `bridge sync` does with server.shutdownGraceMs. Before, it waited as long as the
 * block took (up to the upload timeout), so a supervisor's SIGKILL ended it holding the file's lease, and a rerun on
 * another host was refused until the lease expired. The rerun (another block size, a second process kept out while it
 * runs) then sends every row exactly once.
 */
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizeFlatFile } from '../../src/connector-file/index.js';
import { destinationKey, MANDATORY_COLUMNS } from '../../src/purview/index.js';
import { fileLeaseName } from '../../src/sync/lease.js';
import { openStateStore } from '../../src/sync/state/index.js';
import { emulatorsWithCaFile, pushArgs } from '../purview/support.js';
import { type BridgeExit, spawnBridge, until } from '../support/bridge-process.js';
import { InstantClock } from '../support/manual-clock.js';

const files = emulatorsWithCaFile('bridge-push-grace-');
const { dir, caFile } = files;

const GRACE_SECONDS = 1;
/** Start-up of nothing new: the abort, closing the state database, and the process exit. */
const MARGIN_MS = 8_000;
const ROWS = 30;

describe('bridge push: SIGTERM while a block hangs', () => {
  it('exits within --stop-grace-seconds with its lease released; the rerun sends every row once', async () => {
    const app = files.emu.newApp();
    const file = join(dir, 'export.txt');
    const epic = MANDATORY_COLUMNS.epic;
    const lines = [epic.join('\t'), ...Array.from({ length: ROWS }, (_, i) => epic.map((_, c) => `r${i}.${c}`).join('\t'))];
    writeFileSync(file, `${lines.join('\r\n')}\r\n`);
    const stateDir = join(dir, 'state');
    const args = ['push', ...pushArgs(files.emu, app, file, stateDir, caFile), '--no-progress'];
    const env = { PURVIEW_APP_SECRET: app.secret };
    // The first block is taken, the second answers only after a minute: far longer than the grace period.
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'delay', ms: 60_000 });
    const first = spawnBridge([...args, '--block-rows', '10', '--stop-grace-seconds', String(GRACE_SECONDS)], env);
    try {
      await until('a second block in flight', () => (files.emu.ingest.requests >= 2 ? true : undefined), 30_000);
      const signalledAt = Date.now();
      first.kill('SIGTERM');
      const stopped = await Promise.race([first.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), GRACE_SECONDS * 1000 + MARGIN_MS))]);
      expect(stopped, `still running after SIGTERM:\n${first.stderr()}`).toBeDefined();
      const exit = stopped as BridgeExit;
      expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(GRACE_SECONDS * 1000);
      expect(exit.code, exit.stderr).toBe(130);
      expect(exit.stderr).toContain('BRG_ERR_ABORTED');
      expect(exit.stderr).toContain('--stop-grace-seconds');
      expect(exit.stderr).not.toContain(app.secret);
    } finally {
      first.kill('SIGKILL');
      await first.done;
    }
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toHaveLength(10);

    // Released, not merely stale: another host's push of the same file to the same job takes the lease at once.
    const normalised = await normalizeFlatFile(file, join(dir, 'copy.txt'), 'epic');
    const lease = fileLeaseName(destinationKey({ ingestionBase: files.emu.ingest.baseUrl, jobId: app.jobId }), normalised.sha256);
    const store = openStateStore(stateDir, new InstantClock());
    try {
      expect(store.readLease(lease)).toBeUndefined();
      const elsewhere = { id: 'host-2', host: `${hostname()}-other`, pid: 1, command: 'bridge push', since: new Date().toISOString() };
      const outcome = store.acquireLease(lease, elsewhere, 120_000, () => false);
      expect(outcome.acquired, 'another host takes the file at once').toBe(true);
      store.releaseLease(lease, elsewhere.id);
    } finally {
      store.close();
    }

    // The rerun with another block size; a second process started while a block of it hangs is refused (exit 6).
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 5_000 });
    const rerun = spawnBridge([...args, '--block-rows', '7'], env);
    await until('the rerun in flight', () => (files.emu.ingest.requests >= 3 ? true : undefined), 30_000);
    const second = await spawnBridge([...args, '--block-rows', '7'], env).done;
    expect(second.code, second.stderr).toBe(6);
    const done = await rerun.done;
    expect(done.code, done.stderr).toBe(0);
    const rows = files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows);
    expect(rows).toHaveLength(ROWS);
    expect(new Set(rows).size).toBe(ROWS);
  }, 90_000);
});

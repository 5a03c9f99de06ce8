/**
 * A connector renamed, or replaced, in the config between runs. Its watermark, seen events and delivery ledger are keyed
 * by its name: without `bridge state rename` the renamed connector would start afresh and send its whole look-back
 * again, unflagged. Real `bridge` processes against the sandbox: kill -9 mid-push under the old name, the renamed
 * connector refused before it pulls, a rename refused while the old name has a run unfinished or another process
 * holds its lease, a replica still on the old config refused after the move, kill -9 and faults on both sides under
 * the new name, and at the end every row is in Purview once (or flagged).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../../src/config/index.js';
import type { BridgeError } from '../../src/errors.js';
import { type BridgeProcess, spawnBridge, until } from '../support/bridge-process.js';
import { expectExactlyOnceOrFlagged, expectedRows, flaggedEvents } from '../support/expected-rows.js';
import { blocksAcked, holdUntilReleased, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();
const RENAMED = { BRIDGE__connectors__0__name: 'ehr-main' };

function accepted(h: SandboxHarness): string[] {
  return h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
}

function renamedConfig(h: SandboxHarness): Config {
  return loadConfig({ base: h.sandbox.config, env: {}, flags: { 'connectors.0.name': 'ehr-main' } });
}

describe('a connector renamed between runs', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 71, events: 360, patients: 50, practitioners: 8 } });
  });
  afterAll(async () => h?.close());

  const bridge = (args: readonly string[], env: Record<string, string> = {}): BridgeProcess => spawnBridge([...args, '--config', h.sandbox.configPath], env);
  const sync = (untilMs: number, env: Record<string, string> = {}, blockRows = 7): BridgeProcess =>
    bridge(['sync', '--until', iso(untilMs), '--no-progress'], { BRIDGE__connectors__0__purview__blockRows: String(blockRows), ...env });

  it('is refused until the operator moves its state, then goes on where the old name stopped: every row once', async () => {
    const { start, end } = h.sandbox.dataset.options;
    // The sandbox's day of events, in four windows.
    const t1 = Date.parse(start) + 6 * HOUR;
    const t2 = Date.parse(start) + 13 * HOUR;
    const t3 = Date.parse(start) + 20 * HOUR;

    // 1. Under the old name, a run is killed with -9 mid-push.
    h.sandbox.ingest.injectFaults(...Array.from({ length: 6 }, () => ({ kind: 'delay' as const, ms: 250 })));
    const killed = sync(t1);
    await until('a block acknowledged', () => (blocksAcked(h) > 0 ? true : undefined));
    killed.kill('SIGKILL');
    await killed.done;
    h.sandbox.ingest.injectFaults();
    expect(h.withStore((s) => s.findUnfinishedRun('sandbox'))?.state).toBe('pushing');

    // 2. The config now calls it "ehr-main": its first run is refused before it reads a single AuditEvent.
    const searches = h.sandbox.fhir.requests.filter((r) => r.path.includes('/AuditEvent')).length;
    const uploads = h.sandbox.ingest.requests;
    const refused = await sync(t1, RENAMED).done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('BRG_ERR_CONNECTOR_STATE');
    expect(refused.stderr).toContain('bridge state rename sandbox ehr-main');
    expect(h.sandbox.fhir.requests.filter((r) => r.path.includes('/AuditEvent')).length).toBe(searches);
    expect(h.sandbox.ingest.requests).toBe(uploads);

    // 3. The old name's run is unfinished: the move is refused, saying how to finish it.
    const early = await bridge(['state', 'rename', 'sandbox', 'ehr-main'], RENAMED).done;
    expect(early.code).toBe(2);
    expect(early.stderr).toContain('bridge sync --connector sandbox');
    const finished = await sync(t1).done;
    expect(finished.code, finished.stderr).toBe(0);

    // 4. A second process holds the old name's lease (its sync in flight, its first block held by Purview until the move
    // was tried: however slowly that process starts, the sync cannot end first): the move waits its turn.
    const hold = holdUntilReleased();
    h.sandbox.ingest.injectFaults(hold.fault);
    const inFlight = sync(t2);
    await until('the sync holds its lease', () => h.withStore((s) => s.readLease('connector:sandbox')));
    const busy = await bridge(['state', 'rename', 'sandbox', 'ehr-main'], RENAMED).done;
    hold.release();
    expect(busy.code).toBe(6);
    expect(busy.stderr).toContain('BRG_ERR_RUN_IN_PROGRESS');
    expect((await inFlight.done).code).toBe(0);
    h.sandbox.ingest.injectFaults();

    // 5. The move: one transaction under both names' leases; a Bulk export's downloads follow the checkpoint.
    const downloads = join(h.config.stateDir, 'bulk');
    mkdirSync(join(downloads, 'sandbox', 'export-1'), { recursive: true });
    writeFileSync(join(downloads, 'sandbox', 'export-1', 'AuditEvent-0.ndjson'), '{}\n');
    const moved = await bridge(['state', 'rename', 'sandbox', 'ehr-main'], RENAMED).done;
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toContain(`Connector "sandbox" is now "ehr-main": watermark ${iso(t2)}`);
    expect(readdirSync(downloads)).toEqual(['ehr-main']);
    expect(existsSync(join(downloads, 'ehr-main', 'export-1', 'AuditEvent-0.ndjson'))).toBe(true);

    // 6. A replica still on the old config: "sandbox" has no state now, and its job's deliveries belong to "ehr-main".
    const stale = await sync(t3).done;
    expect(stale.code).toBe(2);
    expect(stale.stderr).toMatch(/BRG_ERR_CONNECTOR_STATE: Connector "sandbox" has never completed a run, .* connector "ehr-main"/);

    // 7. Under the new name, with another block size: kill -9 mid-push with faults on both sides, then a clean run.
    h.sandbox.fhir.faults.add({ action: { kind: 'status', status: 503 }, match: /AuditEvent\?/ });
    h.sandbox.ingest.injectFaults({ kind: 'accept-then-reset' }, ...Array.from({ length: 6 }, () => ({ kind: 'delay' as const, ms: 250 })));
    const ackedBefore = blocksAcked(h);
    const killedAgain = sync(t3, RENAMED, 5);
    await until('a block acknowledged under the new name', () => (blocksAcked(h) > ackedBefore ? true : undefined));
    killedAgain.kill('SIGKILL');
    await killedAgain.done;
    h.sandbox.fhir.faults.clear();
    h.sandbox.ingest.injectFaults();
    const resumed = await sync(t3, RENAMED, 100_000).done;
    expect(resumed.code, resumed.stderr).toBe(0);
    const last = await sync(Date.parse(end) + HOUR, RENAMED, 100_000).done;
    expect(last.code, last.stderr).toBe(0);

    // The history followed the name; Purview holds every row once, or more only where the bridge flagged it.
    const runs = h.withStore((s) => s.listRuns({ connector: 'ehr-main' }));
    expect(runs.filter((r) => r.state === 'completed').length).toBeGreaterThanOrEqual(4);
    // The stale replica's refusal is a failed run of its own, which the status page shows with the message.
    expect(h.withStore((s) => s.listRuns({ connector: 'sandbox' })).map((r) => [r.state, r.error?.code])).toEqual([['failed', 'BRG_ERR_CONNECTOR_STATE']]);
    const flagged = h.withStore((s) => flaggedEvents(s, renamedConfig(h), 'ehr-main'));
    const { duplicates } = expectExactlyOnceOrFlagged(accepted(h), expectedRows(h.config, h.sandbox.dataset, h.sandbox.dataset.events()), flagged);
    // At most the blocks in flight at the two kills (7 and 5 rows) and the one stored before its connection was reset.
    expect(duplicates).toBeLessThanOrEqual(7 + 5 + h.sandbox.ingest.lostAnswerRows(h.sandbox.ids.jobId));
  });
});

describe('a connector removed for good, and another on the same Purview job', () => {
  let h: SandboxHarness;
  beforeAll(async () => {
    h = await startHarness({ data: { seed: 73, events: 80, patients: 20, practitioners: 4 } });
  });
  afterAll(async () => h?.close());

  it('is refused until the old one is retired; then starts afresh, its history kept under the retired name', async () => {
    await h.sync();
    const delivered = accepted(h).length;
    const replaced = { 'connectors.0.name': 'ehr-new' };
    const error = await h.sync({ connector: 'ehr-new', flags: replaced }).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_CONNECTOR_STATE');
    expect((error as BridgeError).message).toContain('bridge state retire sandbox');
    expect(accepted(h).length).toBe(delivered);

    // Retiring a connector still in the config is refused.
    const inConfig = await spawnBridge(['state', 'retire', 'sandbox', '--config', h.sandbox.configPath]).done;
    expect(inConfig.code).toBe(2);
    expect(inConfig.stderr).toContain('still in the config');
    const downloads = join(h.config.stateDir, 'bulk', 'sandbox');
    mkdirSync(downloads, { recursive: true });
    writeFileSync(join(downloads, 'AuditEvent-0.ndjson'), '{}\n');
    const retired = await spawnBridge(['state', 'retire', 'sandbox', '--config', h.sandbox.configPath], { BRIDGE__connectors__0__name: 'ehr-new' }).done;
    expect(retired.code, retired.stderr).toBe(0);
    const name = /retired as "(retired:sandbox:[^"]+)"/.exec(retired.stdout)?.[1] ?? '';
    expect(h.withStore((s) => s.listRuns({ connector: name }))).toHaveLength(1);
    // Its downloads hold PHI and no export of its own will read them.
    expect(existsSync(downloads)).toBe(false);

    // A process still on the old config runs "sandbox" with no state: refused, not a fresh start.
    const stale = await h.sync().catch((e: unknown) => e);
    expect((stale as BridgeError).code).toBe('BRG_ERR_CONNECTOR_STATE');
    expect((stale as BridgeError).message).toContain(`bridge state rename ${name} sandbox`);
    expect(accepted(h).length).toBe(delivered);

    // As the message said: the new connector sends every event it reads, the old one's included.
    const fresh = await h.sync({ connector: 'ehr-new', flags: replaced });
    expect(fresh.counts.rowsAcked).toBe(delivered);
  });
});

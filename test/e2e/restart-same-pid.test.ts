/**
 * A bridge started again as the pid its killed predecessor had: in a container `bridge serve` is pid 1, and one that
 * was OOM-killed or killed -9 mid-push and restarted within the lease's TTL (same host name, same boot, maybe the same
 * PID namespace inode) finds the dead one's lease naming its own host, namespace and pid. That lease is not this
 * process's (it never took it): the start-up resume finishes the push at once and "Sync now" starts a run, rather than
 * waiting out the TTL (the resume, refused, waited for the next cron tick). A lease this process does hold still
 * refuses another process.
 */
import { hostname } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { pidNamespace } from '../../src/composition/process.js';
import { loadConfig } from '../../src/config/index.js';
import { hashApiToken } from '../../src/server/auth.js';
import { type Service, startService } from '../../src/server/service.js';
import type { LeaseHolder } from '../../src/sync/state/index.js';
import { spawnBridge, until } from '../support/bridge-process.js';
import { holdUntilReleased, interruptedPush, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const TOKEN = 'restart-same-pid-token-0123456789';
const LEASE = 'connector:sandbox';
const TEN_MINUTES = 600_000;

/** The lease a `bridge serve` killed -9 mid-push left: this host, this namespace, this process's pid, not its id. */
function predecessor(command: string): LeaseHolder {
  const ns = pidNamespace();
  return {
    id: 'a-dead-incarnation',
    host: hostname(),
    pid: process.pid,
    ...(ns === undefined ? {} : { pidNamespace: ns }),
    command,
    since: new Date().toISOString(),
  };
}

function serviceConfig(h: SandboxHarness) {
  return loadConfig({ base: h.sandbox.config, env: {}, flags: { 'server.port': 0, 'server.apiTokenSha256': [hashApiToken(TOKEN)] } });
}

/** Every row Purview accepted arrived once. */
function expectEveryRowOnce(h: SandboxHarness, rows: number | undefined): void {
  const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
  expect(accepted.length).toBe(rows);
  expect(new Set(accepted).size).toBe(accepted.length);
}

describe('a bridge restarted as the pid its killed predecessor had (pid 1 of a restarted container)', () => {
  const harnesses: SandboxHarness[] = [];
  const services: Service[] = [];
  const harness = async (seed: number): Promise<SandboxHarness> => {
    const h = await startHarness({ data: { seed, events: 120, patients: 30, practitioners: 6 } });
    harnesses.push(h);
    return h;
  };
  afterAll(async () => {
    for (const service of services) await service.close();
    for (const h of harnesses) await h.close();
  });

  it("bridge serve finishes the push at start-up, taking the dead holder's unexpired lease at once; every row once", async () => {
    const h = await harness(91);
    const runId = await interruptedPush(h);
    h.withStore((s) => s.acquireLease(LEASE, predecessor('bridge serve (schedule)'), TEN_MINUTES, () => false));
    const service = await startService({ config: serviceConfig(h), env: {}, clock: systemClock, logger: h.logger, schedules: true });
    services.push(service);
    const refused = () => h.logLines.find((line) => line.includes('sync not started: another process is running this connector'));
    const state = await until(
      'the interrupted push finished (or its resume refused)',
      () => (refused() ? 'refused' : h.withStore((s) => (s.getRun(runId)?.state === 'completed' ? 'completed' : undefined))),
      30_000,
      50,
    );
    expect(state, refused()).toBe('completed');
    const run = h.withStore((s) => s.getRun(runId));
    expect(run).toMatchObject({ state: 'completed', trigger: 'cli' });
    expect(run?.counts.possiblyDuplicated).toBe(0);
    expectEveryRowOnce(h, run?.counts.rows);
    expect(h.withStore((s) => s.readLease(LEASE))).toBeUndefined(); // released by the run that took it
  });

  it('"Sync now" starts a run (202, not 409 naming the dead process), and the status shows nothing in flight before it', async () => {
    const h = await harness(92);
    const service = await startService({ config: serviceConfig(h), env: {}, clock: systemClock, logger: h.logger, schedules: false });
    services.push(service);
    h.withStore((s) => s.acquireLease(LEASE, predecessor('bridge serve (http)'), TEN_MINUTES, () => false));
    const auth = { authorization: `Bearer ${TOKEN}` };
    const status = (await (await fetch(new URL('/v1/status', service.url), { headers: auth })).json()) as { connectors: Array<Record<string, unknown>> };
    expect(status.connectors[0]).not.toHaveProperty('inFlight');
    const { start, end } = h.sandbox.dataset.options;
    const answer = await fetch(new URL('/v1/connectors/sandbox/syncs', service.url), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ since: start, until: end }),
    });
    const body = (await answer.json()) as { runId?: string; message?: string };
    expect(answer.status, body.message).toBe(202);
    const done = await until('the run finished', () => {
      const record = h.withStore((s) => s.getRun(body.runId ?? ''));
      return record?.state === 'completed' || record?.state === 'failed' ? record : undefined;
    });
    expect(done.state).toBe('completed');
    expectEveryRowOnce(h, done.counts.rows);
  });

  it('a lease this process holds still refuses a `bridge sync` in another process (exit 6), naming this process', async () => {
    const h = await harness(93);
    // The first block is held until the other process has started, asked and been refused.
    const hold = holdUntilReleased();
    h.sandbox.ingest.injectFaults(hold.fault);
    const first = h.sync({ flags: { 'connectors.0.purview.blockRows': 20 } });
    await until('a block in flight', () => (h.sandbox.ingest.requests > 0 ? true : undefined));
    expect(h.withStore((s) => s.readLease(LEASE))?.holder).toMatchObject({ host: hostname(), pid: process.pid });
    const { start, end } = h.sandbox.dataset.options;
    const second = await spawnBridge(['sync', '--config', h.sandbox.configPath, '--since', start, '--until', end, '--no-progress']).done;
    hold.release();
    expect(second.code, second.stderr).toBe(6);
    expect(second.stderr).toContain(`BRG_ERR_RUN_IN_PROGRESS: A sync of connector "sandbox" is already running: bridge (pid ${process.pid} on ${hostname()}`);
    const summary = await first;
    expect(summary.counts.rowsAcked).toBe(summary.counts.rows);
    expectEveryRowOnce(h, summary.counts.rows);
  });
});

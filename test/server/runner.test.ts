/** The service's run starter: a run that cannot even be built fails like any run, never as an exception in a timer. */
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/server/metrics.js';
import { createSyncRunner } from '../../src/server/runner.js';
import { trackStartFailures } from '../../src/server/start-failures.js';
import { type StatusConnector, type StatusReport, statusReport } from '../../src/server/status.js';
import type { SyncSummary } from '../../src/sync/pipeline.js';
import { ZERO_COUNTS } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';
import { AUTH, captureLogger, tempStore, testApp } from './support.js';

const SECRET_MISSING = new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', 'purview.secret: environment variable PURVIEW_APP_SECRET is not set.');
const settle = () => new Promise((r) => setImmediate(r));

describe('sync runner', () => {
  it('reports a sync that throws before it starts as that run failing, and frees the connector', async () => {
    const runner = createSyncRunner(() => {
      throw new BridgeError('BRG_ERR_MAPPING_INVALID', 'mappings/site.json line 3: not JSON');
    }, silentLogger());
    await expect(runner.start('main', { trigger: 'schedule' })).rejects.toMatchObject({ code: 'BRG_ERR_MAPPING_INVALID' });
    await new Promise((r) => setImmediate(r));
    expect(runner.isRunning('main')).toBe(false);
    // The next tick tries again (the operator may have fixed the file meanwhile).
    await expect(runner.start('main', { trigger: 'schedule' })).rejects.toBeInstanceOf(BridgeError);
  });

  it('refuses to start a run once shutdown began draining: a late trigger must not outlive the drain', async () => {
    let started = 0;
    const runner = createSyncRunner(async () => {
      started += 1;
      throw new BridgeError('BRG_ERR_ABORTED', 'never reached');
    }, silentLogger());
    await runner.drain(1_000);
    await expect(runner.start('main', { trigger: 'http' })).rejects.toMatchObject({
      code: 'BRG_ERR_ABORTED',
      message: expect.stringContaining('shutting down'),
    });
    expect(started).toBe(0);
    expect(runner.isRunning('main')).toBe(false);
  });

  it('drains: a run stops at its checkpoint within the grace period, and a second signal aborts it at once', async () => {
    const seen: Array<{ stopped: boolean; aborted: boolean }> = [];
    // A run that ignores the stop request (a block in flight that takes long) and ends only when aborted.
    const runner = createSyncRunner(
      (_connector, request) =>
        new Promise((_, reject) => {
          request.onRunId?.('run-1');
          request.signal?.addEventListener('abort', () => {
            seen.push({ stopped: request.stopSignal?.aborted ?? false, aborted: true });
            reject(new BridgeError('BRG_ERR_ABORTED', 'aborted'));
          });
        }),
      silentLogger(),
    );
    expect(await runner.start('main', { trigger: 'http' })).toEqual({ runId: 'run-1', resumed: false });
    const now = new AbortController();
    const started = Date.now();
    const drained = runner.drain(60_000, now.signal);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([]);
    now.abort();
    await drained;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(seen).toEqual([{ stopped: true, aborted: true }]);
    expect(runner.isRunning('main')).toBe(false);
  });

  it('logs a run that fails before its record with the code and the message, and reports it as a start failure', async () => {
    const { logger, lines } = captureLogger();
    const failures: Array<[string, string]> = [];
    const runner = createSyncRunner(() => Promise.reject(SECRET_MISSING), logger, {
      onStartFailure: (connector, error) => failures.push([connector, error.code]),
    });
    await expect(runner.start('main', { trigger: 'schedule' })).rejects.toBe(SECRET_MISSING);
    await settle();
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 50, connector: 'main', trigger: 'schedule', code: SECRET_MISSING.code, message: SECRET_MISSING.message }),
    );
    expect(failures).toEqual([['main', 'BRG_ERR_CONFIG_SECRET_MISSING']]);

    // A run that has its record (the pipeline stored its failure there) and a refused backfill window (its caller has
    // the 400) are no start failures of the connector.
    const recorded = createSyncRunner(
      async (_connector, request) => {
        request.onRunId?.('run-2');
        throw new BridgeError('BRG_ERR_FHIR_UNAVAILABLE', 'The FHIR server answered 503.');
      },
      logger,
      { onStartFailure: (connector, error) => failures.push([connector, error.code]) },
    );
    expect(await recorded.start('main', { trigger: 'schedule' })).toEqual({ runId: 'run-2', resumed: false });
    const windowed = createSyncRunner(() => Promise.reject(new BridgeError('BRG_ERR_CONFIG_INVALID', 'before the ledger')), logger, {
      onStartFailure: (connector, error) => failures.push([connector, error.code]),
    });
    await expect(windowed.start('main', { trigger: 'http', since: '2026-01-01' })).rejects.toBeInstanceOf(BridgeError);
    await settle();
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, code: 'BRG_ERR_FHIR_UNAVAILABLE', message: 'The FHIR server answered 503.' }));
    expect(failures).toHaveLength(1);
  });

  it('logs a run stopped on request (a redeploy) at warn level, not as a failure', async () => {
    const { logger, lines } = captureLogger();
    const runner = createSyncRunner(async (_connector, request) => {
      request.onRunId?.('run-stopped');
      throw new BridgeError('BRG_ERR_ABORTED', 'Stopped on request; the push resumes at the next run.');
    }, logger);
    await runner.start('main', { trigger: 'schedule' });
    await settle();
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, msg: 'sync stopped', code: 'BRG_ERR_ABORTED' }));
    expect(lines.filter((line) => (line as { level?: number }).level === 50)).toEqual([]);
  });

  it('takes a tick that finds the connector held by another process for a skip: warn level, counted, no failure', async () => {
    const { logger, lines } = captureLogger();
    const skips: string[] = [];
    const failures: string[] = [];
    const held = new BridgeError('BRG_ERR_RUN_IN_PROGRESS', 'A sync of connector "main" is running in bridge sync (pid 4242 on host-1).');
    const runner = createSyncRunner(() => Promise.reject(held), logger, {
      onStartFailure: (connector) => failures.push(connector),
      onScheduleSkip: (connector) => skips.push(connector),
    });
    await expect(runner.start('main', { trigger: 'schedule' })).rejects.toBe(held);
    await settle();
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, connector: 'main', code: 'BRG_ERR_RUN_IN_PROGRESS', message: held.message }));
    expect(lines.filter((line) => Number(line['level']) >= 50)).toEqual([]);
    expect(skips).toEqual(['main']);
    expect(failures).toEqual([]);
  });

  it('answers with the unfinished run a start resumes first, saying so, not with the run of its own window', async () => {
    const runner = createSyncRunner(async (connector, request) => {
      request.onRunId?.('unfinished-run', true);
      request.onRunId?.('own-run');
      return { runId: 'own-run', connector } as unknown as SyncSummary;
    }, silentLogger());
    expect(await runner.start('main', { trigger: 'http', since: '2026-11-01T00:00:00Z' })).toEqual({ runId: 'unfinished-run', resumed: true });
  });

  it('reports a start failure when its own run is refused after the push it resumed first: the caller already has its 202', async () => {
    const { logger, lines } = captureLogger();
    const failures: Array<[string, string]> = [];
    const refused = new BridgeError('BRG_ERR_INPUT_INVALID', 'The window starts before what the delivery ledger remembers.');
    const runner = createSyncRunner(
      async (_connector, request) => {
        request.onRunId?.('unfinished-run', true);
        request.onResumedComplete?.('unfinished-run');
        throw refused;
      },
      logger,
      { onStartFailure: (connector, error) => failures.push([connector, error.code]) },
    );
    expect(await runner.start('main', { trigger: 'http', since: '2026-11-01T00:00:00Z' })).toEqual({ runId: 'unfinished-run', resumed: true });
    await settle();
    expect(failures).toEqual([['main', 'BRG_ERR_INPUT_INVALID']]);
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, msg: 'sync failed before it started', code: 'BRG_ERR_INPUT_INVALID' }));

    // The resumed push itself failing under a start without a window of its own (a tick, "Sync now") is no start
    // failure: the resumed run's record has it, and the next run pulls the usual window anyway. (A start given its own
    // window is one: see the test below.)
    const resumedFails = createSyncRunner(
      async (_connector, request) => {
        request.onRunId?.('unfinished-run', true);
        throw new BridgeError('BRG_ERR_PURVIEW_UNAVAILABLE', 'Block 0 was not acknowledged.');
      },
      logger,
      { onStartFailure: (connector, error) => failures.push([connector, error.code]) },
    );
    expect(await resumedFails.start('main', { trigger: 'schedule' })).toEqual({ runId: 'unfinished-run', resumed: true });
    await settle();
    expect(failures).toHaveLength(1);
  });

  it("logs a start-up 'resume' that found nothing left to resume (another replica finished it) as info, not a warning", async () => {
    const { logger, lines } = captureLogger();
    const runner = createSyncRunner(
      () => Promise.reject(new BridgeError('BRG_ERR_ABORTED', 'Nothing to resume: connector "main" has no unfinished push.')),
      logger,
    );
    await runner.start('main', { trigger: 'resume' }).catch(() => undefined);
    await settle();
    expect(lines.filter((line) => Number(line['level']) >= 40)).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, msg: 'nothing to resume', trigger: 'resume' }));
  });

  it('says the window asked for was not run when the push resumed first failed, or a stop came before its own run', async () => {
    const { logger, lines } = captureLogger();
    const notRun = () => lines.filter((line) => line['msg'] === 'the run asked for after the unfinished push did not start; ask for its window again');
    // The caller has its 202 `resumed: true` and nothing else would tell it: each is a start failure of the request, with
    // the error's code (/v1/status shows it, the metrics count it).
    const failures: Array<[string, string, string]> = [];
    const hooks = { onStartFailure: (connector: string, error: BridgeError) => failures.push([connector, error.code, error.message]) };
    const failing = createSyncRunner(
      async (_connector, request) => {
        request.onRunId?.('unfinished-run', true);
        throw new BridgeError('BRG_ERR_PURVIEW_UNAVAILABLE', 'Block 0 was not acknowledged.');
      },
      logger,
      hooks,
    );
    expect(await failing.start('main', { trigger: 'http', since: '2026-11-01T00:00:00Z', until: '2026-11-02T00:00:00Z' })).toEqual({
      runId: 'unfinished-run',
      resumed: true,
    });
    await settle();
    expect(notRun()).toEqual([
      expect.objectContaining({ connector: 'main', since: '2026-11-01T00:00:00Z', until: '2026-11-02T00:00:00Z', code: 'BRG_ERR_PURVIEW_UNAVAILABLE' }),
    ]);
    expect(failures).toEqual([
      [
        'main',
        'BRG_ERR_PURVIEW_UNAVAILABLE',
        'The run asked for (since 2026-11-01T00:00:00Z, until 2026-11-02T00:00:00Z) was not run: the unfinished push of run unfinished-run, resumed first, did not complete: Block 0 was not acknowledged. Ask for its window again.',
      ],
    ]);
    const stopped = createSyncRunner(
      async (_connector, request) => {
        request.onRunId?.('unfinished-run', true);
        request.onResumedComplete?.('unfinished-run');
        throw new BridgeError('BRG_ERR_ABORTED', 'Stopped on request.');
      },
      logger,
      hooks,
    );
    await stopped.start('main', { trigger: 'http', since: '2026-11-01T00:00:00Z' });
    await settle();
    expect(notRun()).toHaveLength(2);
    expect(failures[1]).toEqual([
      'main',
      'BRG_ERR_ABORTED',
      'The run asked for (since 2026-11-01T00:00:00Z) was not run: the unfinished push of run unfinished-run completed first, then this run did not start: Stopped on request. Ask for its window again.',
    ]);
    // Without a window of its own, the next run covers it: nothing to say. Nor when its own run began (its record tells).
    await failing.start('main', { trigger: 'schedule' });
    const own = createSyncRunner(
      async (_connector, request) => {
        request.onRunId?.('unfinished-run', true);
        request.onRunId?.('own-run');
        throw new BridgeError('BRG_ERR_PURVIEW_UNAVAILABLE', 'Block 0 was not acknowledged.');
      },
      logger,
      hooks,
    );
    await own.start('main', { trigger: 'http', since: '2026-11-01T00:00:00Z' });
    await settle();
    expect(notRun()).toHaveLength(2);
    expect(failures).toHaveLength(2);
  });

  it('shows a backfill dropped behind a failed resumed push in /v1/status, where the caller of its 202 looks', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00Z');
    const { store } = tempStore();
    // Last night's push, interrupted, is what a POST {since, until} resumes first.
    store.createRun({
      id: 'unfinished-run',
      connector: 'main',
      state: 'running',
      trigger: 'schedule',
      since: '2026-11-22T02:00:00.000Z',
      until: '2026-11-23T02:00:00.000Z',
      startedAt: '2026-11-23T02:00:00.000Z',
      counts: { ...ZERO_COUNTS },
      dryRun: false,
    });
    store.updateRun('unfinished-run', { state: 'pushing' });
    const starts = trackStartFailures(createMetrics(), clock);
    const runner = createSyncRunner(
      async (_connector, request) => {
        request.onRunId?.('unfinished-run', true);
        // The pipeline records the push's failure on the resumed run (it stays 'pushing'), and throws it.
        store.updateRun('unfinished-run', { error: { code: 'BRG_ERR_PURVIEW_UNAVAILABLE', message: 'Block 0 was not acknowledged.' } });
        throw new BridgeError('BRG_ERR_PURVIEW_UNAVAILABLE', 'Block 0 was not acknowledged.');
      },
      silentLogger(),
      starts.hooks,
    );
    const connector: StatusConnector = { name: 'main', cron: '0 2 * * *', timezone: 'UTC', scheduleEnabled: true, lateAfterMs: 48 * 3_600_000 };
    const status = () => statusReport([connector], store, clock.now(), { schedules: true, startFailure: starts.last });
    const app = await testApp({ store, status, runner });
    const answer = await app.inject({
      method: 'POST',
      url: '/v1/connectors/main/syncs',
      headers: AUTH,
      payload: { since: '2026-01-01T00:00:00Z', until: '2026-02-01T00:00:00Z' },
    });
    expect([answer.statusCode, answer.json()]).toEqual([202, { runId: 'unfinished-run', resumed: true }]);
    await settle();
    const seen = (await app.inject({ method: 'GET', url: '/v1/status', headers: AUTH })).json<StatusReport>().connectors[0];
    expect(seen).toMatchObject({
      health: 'failing',
      lastStartFailure: {
        code: 'BRG_ERR_PURVIEW_UNAVAILABLE',
        message: expect.stringMatching(
          /^The run asked for \(since 2026-01-01T00:00:00Z, until 2026-02-01T00:00:00Z\) was not run: .* Ask for its window again\.$/,
        ),
        at: '2026-11-23T10:00:00.000Z',
      },
    });
    expect(seen?.reason).toMatch(/^a window asked for was not run: BRG_ERR_PURVIEW_UNAVAILABLE: The run asked for/);
    expect(seen?.lastStartFailure?.window).toEqual({ since: '2026-01-01T00:00:00Z', until: '2026-02-01T00:00:00Z' });
    // The next scheduled run (the usual window) does not run it: the failure stands.
    const run = (id: string, since: string, until: string, startedAt: string) =>
      store.createRun({ id, connector: 'main', state: 'completed', trigger: 'schedule', since, until, startedAt, counts: { ...ZERO_COUNTS }, dryRun: false });
    await clock.advance(3_600_000);
    run('next-night', '2026-11-23T02:00:00.000Z', '2026-11-23T11:00:00.000Z', '2026-11-23T11:00:00.000Z');
    const after = (await app.inject({ method: 'GET', url: '/v1/status', headers: AUTH })).json<StatusReport>().connectors[0];
    expect(after?.lastStartFailure?.code).toBe('BRG_ERR_PURVIEW_UNAVAILABLE');
    // A run of that window, asked for again, does.
    run('asked-again', '2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z', '2026-11-23T11:05:00.000Z');
    const done = (await app.inject({ method: 'GET', url: '/v1/status', headers: AUTH })).json<StatusReport>().connectors[0];
    expect(done).not.toHaveProperty('lastStartFailure');
    await app.close();
  });
});

describe('a trigger while the service closes', () => {
  it('is answered by the draining runner with a typed 503 (BRG_ERR_ABORTED), not by fastify without a code', async () => {
    // The first run records itself a moment after its start: its trigger is still being answered when shutdown begins.
    const runner = createSyncRunner(async (connector, request) => {
      await new Promise((r) => setTimeout(r, 200));
      request.onRunId?.('r1');
      return { runId: 'r1', connector } as unknown as SyncSummary;
    }, silentLogger());
    const app = await testApp({ runner });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    // One kept-alive connection: the second trigger arrives after shutdown began, behind the first.
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    const trigger = `POST /v1/connectors/main/syncs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${AUTH.authorization}\r\nContent-Length: 0\r\n\r\n`;
    socket.write(trigger);
    await new Promise((r) => setTimeout(r, 50));
    // As the service closes: the runs drain first, then the app closes.
    const drained = runner.drain(5_000);
    const closed = app.close();
    socket.write(trigger);
    await until(() => (received.match(/HTTP\/1\.1 \d{3} /g) ?? []).length === 2);
    socket.destroy();
    await Promise.all([drained, closed]);
    const answers = received.split(/(?=HTTP\/1\.1 )/).map((answer) => [answer.split('\r\n')[0], answer.slice(answer.indexOf('\r\n\r\n') + 4)]);
    expect(answers[0]?.[0]).toBe('HTTP/1.1 202 Accepted');
    expect(answers[1]?.[0]).toBe('HTTP/1.1 503 Service Unavailable');
    expect(JSON.parse(answers[1]?.[1] ?? '')).toMatchObject({
      code: 'BRG_ERR_ABORTED',
      message: 'The service is shutting down; start the sync again once it is back.',
    });
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 5_000) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

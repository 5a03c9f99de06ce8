/** The service's run starter: a run that cannot even be built fails like any run, never as an exception in a timer. */
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createSyncRunner } from '../../src/server/runner.js';

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
    expect(await runner.start('main', { trigger: 'http' })).toBe('run-1');
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
});

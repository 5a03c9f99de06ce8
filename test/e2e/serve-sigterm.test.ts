/**
 * `bridge serve` under SIGTERM mid-push: it stops accepting, lets the block in flight finish, stops at that checkpoint and
 * exits 0 within the grace period (an open status stream of the operator page ends with it); the service started again
 * finishes the push at once, and every row arrives exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnBridge, spawnServe, triggerSync, until } from '../support/bridge-process.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const TOKEN = 'serve-sigterm-token-0123456789';
let h: SandboxHarness;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 31, events: 300, patients: 50, practitioners: 8 } });
});
afterAll(async () => h?.close());

const BLOCKS = { BRIDGE__connectors__0__purview__blockRows: '40' };
const bridge = (args: string[], env: Record<string, string> = {}) => spawnBridge(args, { ...BLOCKS, ...env });

describe('bridge serve and SIGTERM', () => {
  it('stops at a block checkpoint, exits 0, and the service started again finishes the push at once: every row once', async () => {
    const { start, end } = h.sandbox.dataset.options;
    h.sandbox.ingest.injectFaults(...Array.from({ length: 20 }, () => ({ kind: 'delay' as const, ms: 400 })));
    const { serve, url } = await spawnServe(h.sandbox.configPath, TOKEN, { ...BLOCKS, BRIDGE__server__shutdownGraceMs: '20000' });
    expect(await triggerSync(url, TOKEN, 'sandbox', { since: start, until: end })).toBe(202);
    // An operator page is open: its status stream must not hold the shutdown up.
    const stream = await fetch(`${url}/v1/status/stream`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const reader = (stream.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
    expect((await reader.read()).value).toMatch(/^event: status\ndata: \{/);
    await until('first block', () => (h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length >= 1 ? true : undefined));
    serve.kill('SIGTERM');
    const stopped = await serve.done;
    expect(stopped.code, stopped.stderr).toBe(0);
    for (let read = await reader.read(); !read.done; read = await reader.read()) expect(read.value).toMatch(/^event: status\n/);
    const afterStop = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length;
    expect(afterStop).toBeGreaterThanOrEqual(1);
    expect(h.withStore((s) => s.findUnfinishedRun('sandbox')?.state)).toBe('pushing');

    h.sandbox.ingest.injectFaults();
    // The service started again (its connector has no schedule of its own: triggers only) finishes that push at once,
    // with another block size, and pulls nothing new.
    const again = await spawnServe(h.sandbox.configPath, TOKEN, { BRIDGE__connectors__0__purview__blockRows: '25' }, { schedules: true });
    const run = await until('the interrupted push finished', () =>
      h.withStore((s) => s.listRuns({ connector: 'sandbox' })).find((r) => r.trigger === 'http' && r.state === 'completed'),
    );
    again.serve.kill('SIGTERM');
    const exited = await again.serve.done;
    expect(exited.code, exited.stderr).toBe(0);
    expect(h.withStore((s) => s.listRuns({ connector: 'sandbox' })).map((r) => r.trigger)).toEqual(['http']);
    const rows = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((b) => b.rows);
    expect(rows.length).toBe(run?.counts.rows);
    expect(new Set(rows).size).toBe(rows.length);
    expect(run?.counts.possiblyDuplicated).toBe(0);
  });
});

describe('bridge serve, a trigger and an unfinished push', () => {
  let r: SandboxHarness;
  beforeAll(async () => {
    r = await startHarness({ data: { seed: 33, events: 120, patients: 30, practitioners: 6 } });
  });
  afterAll(async () => r?.close());

  it('a bad window is refused before an unfinished push is resumed: the trigger answers 400, not 202 for another run', async () => {
    const stop = new AbortController();
    const detach = r.events.on('block_acked', () => stop.abort());
    await r.sync({ since: undefined, stopSignal: stop.signal, flags: { 'connectors.0.purview.blockRows': 10 } }).catch(() => undefined);
    detach();
    const unfinished = r.withStore((s) => s.findUnfinishedRun('sandbox'));
    const ids: string[] = [];
    const error = await r
      .sync({ since: undefined, until: new Date(Date.now() + 86_400_000).toISOString(), onRunId: (id) => ids.push(id) })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BRG_ERR_INPUT_INVALID', message: expect.stringContaining('later than now minus the settle delay') });
    expect(ids).toEqual([]);
    expect(r.withStore((s) => s.getRun(unfinished?.id ?? '')?.state)).toBe('pushing');
  });

  it('a trigger that first resumes an unfinished push answers with that run at once, and SIGTERM stops it at a block', async () => {
    // A push stopped after its first block: the run waits in 'pushing' for the next run to finish it.
    const stop = new AbortController();
    const detach = r.events.on('block_acked', () => stop.abort());
    await r.sync({ stopSignal: stop.signal, flags: { 'connectors.0.purview.blockRows': 10 } }).catch(() => undefined);
    detach();
    const unfinished = r.withStore((s) => s.findUnfinishedRun('sandbox'));
    expect(unfinished?.state).toBe('pushing');

    r.sandbox.ingest.injectFaults(...Array.from({ length: 20 }, () => ({ kind: 'delay' as const, ms: 400 })));
    const { serve, url } = await spawnServe(r.sandbox.configPath, TOKEN, {
      BRIDGE__connectors__0__purview__blockRows: '10',
      BRIDGE__server__shutdownGraceMs: '20000',
    });
    const answer = await fetch(`${url}/v1/connectors/sandbox/syncs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(answer.status).toBe(202);
    // The answer names the run being resumed, while its push is still going: not the next run, after the whole push.
    // It says so: a script polling that id for its own window would otherwise take the resumed run for it.
    expect(await answer.json()).toEqual({ runId: unfinished?.id, resumed: true });
    expect(r.withStore((s) => s.getRun(unfinished?.id ?? '')?.state)).toBe('pushing');
    serve.kill('SIGTERM');
    const stopped = await serve.done;
    expect(stopped.code, stopped.stderr).toBe(0);
    // It stopped at a block: the run still waits, resumable.
    expect(r.withStore((s) => s.getRun(unfinished?.id ?? '')?.state)).toBe('pushing');

    r.sandbox.ingest.injectFaults();
    const rerun = await bridge(['sync', '--config', r.sandbox.configPath, '--no-progress'], {}).done;
    expect(rerun.code, rerun.stderr).toBe(0);
    const rows = r.sandbox.ingest.accepted(r.sandbox.ids.jobId).flatMap((b) => b.rows);
    expect(new Set(rows).size).toBe(rows.length);
  });
});

/**
 * A one-shot `bridge sync` (cron, systemd timer, CronJob) writes the status metrics for node_exporter's textfile
 * collector and pushes them to a Pushgateway, after a failed run too (issue #17.3); its summary says where the
 * rejects are (issue #17.2).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncCommand } from '../../src/cli/commands/sync.js';
import { BridgeError } from '../../src/errors.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';
import { recordingContext } from './support.js';

let h: SandboxHarness;
let gateway: Server;
let gatewayUrl: string;
const pushes: Array<{ method: string; url: string; body: string; type: string }> = [];

beforeAll(async () => {
  h = await startHarness({ data: { seed: 23, events: 120, patients: 24, practitioners: 6 } });
  const nameless = [...h.sandbox.dataset.patients()].filter((_, i) => i % 6 === 0).map(({ name: _name, ...patient }) => patient);
  await h.sandbox.store?.load(nameless);
  gateway = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      pushes.push({ method: request.method ?? '', url: request.url ?? '', body, type: request.headers['content-type'] ?? '' });
      response.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await new Promise((resolve) => gateway?.close(resolve));
  await h?.close();
});

describe('bridge sync --metrics-file / --pushgateway', () => {
  it('writes and pushes lag, last success, duration and rows by outcome; the summary names the rejects file', async () => {
    const { start, end } = h.sandbox.dataset.options;
    const metricsFile = join(h.config.stateDir, '..', 'bridge.prom');
    const ctx = recordingContext();
    await syncCommand(ctx)
      .exitOverride()
      .parseAsync(['--config', h.sandbox.configPath, '--since', start, '--until', end, '--metrics-file', metricsFile, '--pushgateway', gatewayUrl], {
        from: 'user',
      });
    const run = h.withStore((s) => s.listRuns({ connector: 'sandbox', limit: 1 }))[0];
    expect(run?.state).toBe('completed');
    const text = readFileSync(metricsFile, 'utf8');
    expect(statSync(metricsFile).mode & 0o777).toBe(0o644);
    expect(text).toMatch(/^bridge_watermark_lag_seconds\{connector="sandbox"\} \d+$/m);
    expect(text).toContain(`bridge_last_success_timestamp_seconds{connector="sandbox"} ${Date.parse(run?.finishedAt ?? '') / 1000}`);
    expect(text).toMatch(/^bridge_run_duration_seconds\{connector="sandbox"\} [\d.]+$/m);
    expect(text).toContain(`bridge_last_run_rows{connector="sandbox",outcome="acknowledged"} ${run?.counts.rowsAcked}`);
    expect(text).toContain(`bridge_last_run_rows{connector="sandbox",outcome="rejected"} ${run?.counts.rejects}`);
    expect(text).toContain('bridge_last_run_failed{connector="sandbox"} 0');
    expect(pushes).toEqual([{ method: 'PUT', url: '/metrics/job/bridge/connector/sandbox', body: text, type: 'text/plain; version=0.0.4' }]);
    expect(existsSync(`${metricsFile}.${process.pid}.tmp`)).toBe(false);

    // Off a terminal: the run line, the end of the pull, no line per block; then the summary with the rejects file.
    expect(ctx.printed[0]).toMatch(/^run \S+ for sandbox: /);
    expect(ctx.printed.some((line) => /block \d+ acknowledged/.test(line))).toBe(false);
    expect(run?.counts.rejects).toBeGreaterThan(0);
    expect(ctx.printed).toContain(`  rejects file        ${run?.rejectsPath} (holds PHI, mode 0600; kept 14 day(s); bridge rejects ${run?.id})`);
  });

  it('after a failed run still writes the metrics (the last success stays old) and fails as the run did', async () => {
    const metricsFile = join(h.config.stateDir, '..', 'failed.prom');
    pushes.length = 0;
    const ctx = recordingContext({ env: { BRIDGE__connectors__0__purview__secret: JSON.stringify({ env: 'BRIDGE_TEST_NO_SUCH_SECRET' }) } });
    const error = await syncCommand(ctx)
      .exitOverride()
      .parseAsync(['--config', h.sandbox.configPath, '--metrics-file', metricsFile, '--pushgateway', gatewayUrl], { from: 'user' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_CONFIG_SECRET_MISSING');
    expect(readFileSync(metricsFile, 'utf8')).toMatch(/^bridge_last_success_timestamp_seconds\{connector="sandbox"\} \d+/m);
    expect(pushes).toHaveLength(1);
  });

  it('refuses a Pushgateway URL with credentials before the run, without printing them', async () => {
    const before = h.withStore((s) => s.listRuns({ connector: 'sandbox', limit: 10 })).length;
    const ctx = recordingContext();
    const error = await syncCommand(ctx)
      .exitOverride()
      .parseAsync(['--config', h.sandbox.configPath, '--pushgateway', gatewayUrl.replace('http://', 'http://metrics:S3cretPw@')], { from: 'user' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toMatchObject({ code: 'BRG_ERR_INPUT_INVALID', message: expect.stringContaining('carries credentials') });
    expect((error as Error).message).not.toContain('S3cretPw');
    expect(h.withStore((s) => s.listRuns({ connector: 'sandbox', limit: 10 }))).toHaveLength(before);
  });
});

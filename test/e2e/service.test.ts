/** The service over a real loopback listen against the sandbox: auth, validation, 409, 429, run status, metrics. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/index.js';
import { hashApiToken } from '../../src/server/auth.js';
import { type Service, startService } from '../../src/server/service.js';
import { generateKey } from '../../src/smart/keys.js';
import { spawnBridge } from '../support/bridge-process.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const TOKEN = 'test-api-token-0123456789';
let h: SandboxHarness;
let service: Service;

async function call(path: string, init: RequestInit & { token?: string | null } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? TOKEN}`);
  if (init.body) headers.set('content-type', 'application/json');
  return fetch(new URL(path, service.url), { ...init, headers });
}

async function waitForRun(id: string): Promise<Record<string, unknown>> {
  // Every 250 ms: the tests share one rate-limit budget (server.rateLimitMax 40 a minute), and the last one spends it.
  for (let i = 0; i < 120; i++) {
    const run = (await (await call(`/v1/runs/${id}`)).json()) as Record<string, unknown>;
    if (run['state'] === 'completed' || run['state'] === 'failed') return run;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('run did not finish');
}

beforeAll(async () => {
  h = await startHarness({ data: { seed: 3, events: 150, patients: 30, practitioners: 6 } });
  const config = loadConfig({
    base: h.sandbox.config,
    env: {},
    flags: { 'server.port': 0, 'server.apiTokenSha256': [hashApiToken(TOKEN)], 'server.rateLimitMax': 40, 'connectors.0.fhir.initialLookbackHours': 24 * 400 },
  });
  service = await startService({ config, env: {}, clock: systemClock, logger: h.logger, schedules: false });
});
afterAll(async () => {
  await service?.close();
  await h?.close();
});

describe('bridge serve', () => {
  it('answers 401 on /v1 without a valid API token, and serves health, readiness and the JWKS without one', async () => {
    expect((await call('/v1/runs', { token: null })).status).toBe(401);
    expect((await call('/v1/runs', { token: 'wrong' })).status).toBe(401);
    expect((await call('/healthz', { token: null })).status).toBe(200);
    expect((await call('/readyz', { token: null })).status).toBe(200);
    const jwks = await call('/.well-known/jwks.json', { token: null });
    expect(jwks.headers.get('cache-control')).toBe('public, max-age=3600');
    const body = (await jwks.json()) as { keys: Array<Record<string, unknown>> };
    expect(body.keys.length).toBeGreaterThan(0);
    for (const key of body.keys) for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(secret);
  });

  it('answers 400 naming the field for a bad body and 404 for an unknown connector', async () => {
    const bad = await call('/v1/connectors/sandbox/syncs', { method: 'POST', body: JSON.stringify({ since: 'last tuesday' }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('since');
    const extra = await call('/v1/connectors/sandbox/syncs', { method: 'POST', body: JSON.stringify({ sinse: '2026-11-01T00:00:00Z' }) });
    expect(extra.status).toBe(400);
    expect((await call('/v1/connectors/nope/syncs', { method: 'POST', body: '{}' })).status).toBe(404);
    // An end in the future would move the watermark past events not yet recorded.
    const future = await call('/v1/connectors/sandbox/syncs', {
      method: 'POST',
      body: JSON.stringify({ until: new Date(Date.now() + 86_400_000).toISOString() }),
    });
    expect(future.status).toBe(400);
    expect(await future.json()).toMatchObject({ code: 'BRG_ERR_INPUT_INVALID', message: expect.stringContaining('later than now minus the settle delay') });
  });

  it('exits when its port is taken, schedules or not: a supervisor restarts only a process that ended', async () => {
    const port = Number(new URL(service.url).port);
    const serve = spawnBridge(['serve', '--config', h.sandbox.configPath], {
      BRIDGE__server__port: String(port),
      BRIDGE__server__apiTokenSha256__0: hashApiToken(TOKEN),
      BRIDGE__connectors__0__schedule__cron: '* * * * *',
      BRIDGE__connectors__0__schedule__enabled: 'true',
    });
    const exited = await Promise.race([serve.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000))]);
    if (!exited) serve.kill('SIGKILL');
    expect(exited, 'bridge serve stayed alive on a port it could not listen on').toBeDefined();
    // The configuration's to fix (exit 2), naming the setting.
    expect(exited?.code, exited?.stderr).toBe(2);
    expect(exited?.stderr).toContain(`error BRG_ERR_CONFIG_INVALID: Cannot listen on 127.0.0.1:${port}: it is in use by another process`);
    expect(exited?.stderr).toContain('Set server.port');
  });

  it("publishes every connector's keys in the one JWK Set, whatever each connector's keysDir", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-second-keys-'));
    const { kid } = await generateKey(dir, 'ES384');
    const base = structuredClone(h.sandbox.config) as { connectors: Array<Record<string, unknown>>; server?: unknown };
    // Without the sandbox's API token: this service is one with none configured.
    delete base.server;
    const first = base.connectors[0] as { smart: Record<string, unknown>; purview: Record<string, unknown> };
    // Each to a Purview job of its own: two connectors of one server and one job would send every event twice.
    const purview = (jobId: string) => ({ ...first.purview, jobId });
    base.connectors.push({ ...structuredClone(first), name: 'second', smart: { ...first.smart, keysDir: dir }, purview: purview('second-job') });
    // A third whose keys are not generated yet: the others' keys must still be served.
    base.connectors.push({
      ...structuredClone(first),
      name: 'third',
      smart: { ...first.smart, keysDir: mkdtempSync(join(tmpdir(), 'bridge-no-keys-')) },
      purview: purview('third-job'),
    });
    const config = loadConfig({ base: base as typeof h.sandbox.config, env: {}, flags: { 'server.port': 0 } });
    const warned = () => h.logLines.filter((line) => line.includes('no API token is configured')).length;
    const before = warned();
    const two = await startService({ config, env: {}, clock: systemClock, logger: h.logger, schedules: false });
    try {
      // This one has no API token: it says at start-up that every /v1 request will be refused.
      expect(warned()).toBe(before + 1);
      const body = (await (await fetch(new URL('/.well-known/jwks.json', two.url))).json()) as { keys: Array<{ kid: string }> };
      const served = body.keys.map((key) => key.kid);
      expect(served).toContain(kid);
      const firstKeys = (await (await call('/.well-known/jwks.json', { token: null })).json()) as { keys: Array<{ kid: string }> };
      for (const key of firstKeys.keys) expect(served).toContain(key.kid);
      expect(new Set(served).size).toBe(served.length);
    } finally {
      await two.close();
    }
  });

  it('closes within seconds though a client never finishes sending its request (the stalled socket is cut)', async () => {
    const config = loadConfig({ base: h.sandbox.config, env: {}, flags: { 'server.port': 0, 'server.apiTokenSha256': [hashApiToken(TOKEN)] } });
    const other = await startService({ config, env: {}, clock: systemClock, logger: h.logger, schedules: false });
    const url = new URL(other.url);
    const socket = connect(Number(url.port), url.hostname);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // A valid token, a body announced at 1 MB, one byte of it sent.
    socket.write(
      `POST /v1/connectors/sandbox/syncs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`,
    );
    const closedBySocket = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(10_000);
    await closedBySocket;
  });

  it('refuses to start with a mapping file that does not compile, naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-bad-mapping-'));
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ "schema": "epic", "columns": [ }');
    const config = loadConfig({ base: h.sandbox.config, env: {}, flags: { 'server.port': 0, 'connectors.0.mapping.file': file } });
    const started = startService({ config, env: {}, clock: systemClock, logger: h.logger, schedules: true });
    await expect(started).rejects.toMatchObject({ code: expect.stringMatching(/^BRG_ERR_MAPPING/), message: expect.stringContaining('broken.json') });
  });

  it('starts a run (202), refuses a concurrent one (409), and reports it completed with the right counts', async () => {
    h.sandbox.ingest.injectFaults({ kind: 'delay', ms: 1500 });
    const { start, end } = h.sandbox.dataset.options;
    const first = await call('/v1/connectors/sandbox/syncs', { method: 'POST', body: JSON.stringify({ since: start, until: end }) });
    expect(first.status).toBe(202);
    const { runId } = (await first.json()) as { runId: string };
    const second = await call('/v1/connectors/sandbox/syncs', { method: 'POST', body: JSON.stringify({ since: start, until: end }) });
    expect(second.status).toBe(409);
    expect(((await second.json()) as { code: string }).code).toBe('BRG_ERR_RUN_IN_PROGRESS');
    const run = await waitForRun(runId);
    const accepted = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).reduce((n, b) => n + b.rows.length, 0);
    expect(run).toMatchObject({ state: 'completed', connector: 'sandbox', trigger: 'http' });
    expect((run['counts'] as Record<string, number>)['events']).toBe(150);
    expect((run['counts'] as Record<string, number>)['rowsAcked']).toBe(accepted);
    const list = (await (await call('/v1/runs?connector=sandbox')).json()) as { runs: Array<{ id: string }> };
    expect(list.runs.map((r) => r.id)).toContain(runId);
  });

  it("reports the connector's status and the run's rejects, and serves the operator page without a token", async () => {
    const answer = await call('/v1/status');
    const status = (await answer.json()) as { healthy: boolean; connectors: Array<Record<string, unknown>> };
    expect(answer.status, JSON.stringify(status)).toBe(200);
    const runs = (await (await call('/v1/runs?connector=sandbox&limit=1')).json()) as {
      runs: Array<{ id: string; rejectsAvailable: boolean; counts: { rejects: number } }>;
    };
    const last = runs.runs[0];
    expect(status.connectors[0]).toMatchObject({ name: 'sandbox', lastRun: { id: last?.id, state: 'completed' }, lastSuccess: { runId: last?.id } });
    // The backfill moved the watermark to the data set's end, weeks ago: late against the daily schedule, not failing.
    expect(status.connectors[0]?.['health']).toBe('late');
    expect(status.connectors[0]).not.toHaveProperty('nextRunAt'); // this service runs no schedules
    const rejects = await call(`/v1/runs/${last?.id}/rejects`);
    expect(rejects.status).toBe(last?.rejectsAvailable ? 200 : 404);
    const page = await call('/', { token: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).toContain('<script src="/page/app.js" defer></script>');
  });

  it('exposes Prometheus metrics for runs, rows, FHIR requests and token refreshes', async () => {
    const text = await (await call('/metrics', { token: null })).text();
    // Issue #17.3: lag, last success, run duration and rows by outcome, read from the state at scrape time.
    expect(text).toMatch(/bridge_watermark_lag_seconds\{connector="sandbox"\} \d+/);
    expect(text).toMatch(/bridge_last_success_timestamp_seconds\{connector="sandbox"\} \d+/);
    expect(text).toMatch(/bridge_run_duration_seconds\{connector="sandbox"\} [\d.]+/);
    expect(text).toMatch(/bridge_rows_total\{connector="sandbox",outcome="mapped"\} [1-9]/);
    expect(text).toMatch(/bridge_connector_healthy\{connector="sandbox"\} 0/);
    expect(text).toMatch(/bridge_runs_total\{connector="sandbox",outcome="completed"\} 1/);
    expect(text).toMatch(/bridge_events_pulled_total\{connector="sandbox"\} 150/);
    expect(text).toMatch(/bridge_fhir_requests_total\{resource_type="AuditEvent",status="200"\} \d+/);
    expect(text).toMatch(/bridge_token_refreshes_total\{side="smart"\} 1/);
    expect(text).toMatch(/bridge_block_latency_seconds_count\{connector="sandbox"\} [1-9]/);
  });

  it('publishes an OpenAPI document', async () => {
    const doc = (await (await call('/docs/json', { token: null })).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/connectors/{name}/syncs', '/v1/runs', '/v1/runs/{id}', '/v1/runs/{id}/rejects', '/v1/status', '/v1/status/stream', '/']),
    );
  });

  it('rate limits /v1 (429 with retry-after)', async () => {
    let limited: Response | undefined;
    for (let i = 0; i < 60 && !limited; i++) {
      const response = await call('/v1/runs?limit=1');
      if (response.status === 429) limited = response;
    }
    expect(limited?.status).toBe(429);
    expect(limited?.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

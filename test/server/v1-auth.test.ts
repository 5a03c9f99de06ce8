/** /v1 authentication and rate limit, through inject(): a wrong API token is refused and counted like any request. */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { buildApp } from '../../src/server/app.js';
import { hashApiToken } from '../../src/server/auth.js';
import { createMetrics } from '../../src/server/metrics.js';
import type { SyncRunner } from '../../src/server/runner.js';
import { openStateStore } from '../../src/sync/state/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';

const TOKEN = 'right-token-0123456789abcdef';

async function app(rateLimitMax: number) {
  const store = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-v1-')), systemClock);
  const runner: SyncRunner = { start: async () => 'run-1', isRunning: () => false, drain: async () => undefined };
  return buildApp({
    connectors: ['main'], runner, store, metrics: createMetrics(), jwks: () => ({ keys: [] }), jwksMaxAgeSec: 60,
    apiTokenHashes: [hashApiToken(TOKEN)], rateLimitMax, logger: silentLogger(), isReady: () => true,
  });
}

describe('/v1 auth and rate limit', () => {
  // Issue #14.11: guessing tokens must cost the guesser the same budget as real requests.
  it('counts requests with a wrong token toward the rate limit', async () => {
    const server = await app(3);
    const wrong = { authorization: 'Bearer wrong-token' };
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await server.inject({ method: 'GET', url: '/v1/runs', headers: wrong })).statusCode);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect((await server.inject({ method: 'GET', url: '/v1/runs', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(429);
    await server.close();
  });

  it('answers 401 with a Bearer challenge and no hint of the token', async () => {
    const server = await app(100);
    const response = await server.inject({ method: 'GET', url: '/v1/runs' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
    expect((await server.inject({ method: 'GET', url: '/v1/runs', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
    await server.close();
  });
});

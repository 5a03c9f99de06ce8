/** /v1 authentication and rate limit, through inject(): a wrong API token is refused and counted like any request. */
import { describe, expect, it } from 'vitest';
import { TOKEN, testApp } from './support.js';

const app = (rateLimitMax: number) => testApp({ rateLimitMax });

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

  it('guards every /v1 route, the status stream and the rejects included', async () => {
    const server = await app(100);
    for (const [method, url] of [
      ['GET', '/v1/status'],
      ['GET', '/v1/status/stream'],
      ['GET', '/v1/runs/x'],
      ['GET', '/v1/runs/x/rejects'],
      ['POST', '/v1/connectors/main/syncs'],
    ] as const) {
      expect((await server.inject({ method, url })).statusCode, `${method} ${url}`).toBe(401);
    }
    await server.close();
  });
});

/** /v1 authentication and rate limit, through inject(): a wrong API token is refused and counted like any request. */
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { linesLogger } from '../support/log-lines.js';
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
    // A valid token has a bucket of its own: behind a reverse proxy every caller has the proxy's address, and guessers
    // there must not lock the operators out. Its own requests are limited all the same.
    const right = { authorization: `Bearer ${TOKEN}` };
    const own: number[] = [];
    for (let i = 0; i < 4; i++) own.push((await server.inject({ method: 'GET', url: '/v1/runs', headers: right })).statusCode);
    expect(own).toEqual([200, 200, 200, 429]);
    await server.close();
  });

  it('refuses a request without a token before reading its body: a body that never finishes arriving gets its 401 at once', async () => {
    const server = await app(100);
    await server.listen({ port: 0, host: '127.0.0.1' });
    const { port } = server.server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString();
        if (text.includes('\r\n\r\n')) resolve(text);
      });
    });
    socket.write('POST /v1/connectors/main/syncs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{');
    const late = new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 5 s'), 5_000).unref());
    expect((await Promise.race([answer, late])).split('\r\n')[0]).toBe('HTTP/1.1 401 Unauthorized');
    socket.destroy();
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

  it('logs no query string: a token a client put in the URL (an EventSource sends no header) never reaches the access log', async () => {
    const lines: string[] = [];
    const server = await testApp({ logger: linesLogger(lines, 'info') });
    const answer = await server.inject({ method: 'GET', url: `/v1/status/stream?access_token=${TOKEN}&mrn=E1234` });
    expect(answer.statusCode).toBe(401);
    await server.close();
    const access = lines.filter((line) => line.includes('/v1/status/stream'));
    expect(access.length).toBeGreaterThan(0);
    expect(access.some((line) => line.includes('"url":"/v1/status/stream?…"'))).toBe(true);
    expect(lines.filter((line) => line.includes(TOKEN) || line.includes('E1234'))).toEqual([]);
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

/**
 * `bridge doctor` with smart.jku: the JWK Set URL is read as the EHR reads it and must serve the signing kid with the
 * public members of jwks.json; a rotated key waiting to sign is reported, and warned about once it is due.
 */
import type { JsonWebKey } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { findConnector } from '../../src/composition/index.js';
import { loadConfig } from '../../src/config/index.js';
import { type CheckResult, JWKS_URL_CHECK, runDoctor } from '../../src/doctor/index.js';
import { silentLogger } from '../../src/log.js';
import { generateKey, openKeyStore, rotateKey } from '../../src/smart/index.js';
import { removeTempDirs, type StubServer, sendJson, startStubServer, tempDir } from '../smart/support.js';

let host: StubServer;
/** What GET /jwks.json answers. */
let jwks: { status: number; body: unknown } = { status: 200, body: { keys: [] } };

beforeAll(async () => {
  host = await startStubServer((request, response) => {
    if (request.url === '/jwks.json') return sendJson(response, jwks.status, jwks.body, { 'cache-control': 'public, max-age=3600' });
    // The token endpoint refuses at once, so the doctor's token check ends quickly.
    if (request.url === '/token' && request.method === 'POST') return sendJson(response, 400, { error: 'invalid_client' });
    sendJson(response, 404, {});
  });
});
afterAll(async () => {
  await host.close();
  removeTempDirs();
});

async function doctor(keysDir: string, jku: string | null = `${host.origin}/jwks.json`): Promise<Record<string, CheckResult>> {
  const config = loadConfig({
    base: {
      connectors: [
        {
          name: 'main',
          fhir: { baseUrl: `${host.origin}/R4` },
          smart: { clientId: 'c', keysDir, tokenUrl: `${host.origin}/token`, ...(jku ? { jku } : {}) },
          purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } },
        },
      ],
    },
    env: {},
  });
  const results = await runDoctor({ config, env: {}, clock: systemClock, logger: silentLogger(), purviewConfigured: false }, findConnector(config, 'main'));
  return Object.fromEntries(results.map((r) => [r.name, r]));
}

async function keysWithOne(): Promise<{ dir: string; kid: string; published: JsonWebKey[] }> {
  const dir = join(tempDir(), 'keys');
  const { kid } = await generateKey(dir, 'ES384');
  return { dir, kid, published: openKeyStore(dir).publicJwks().keys };
}

describe('bridge doctor: the JWK Set URL (smart.jku)', () => {
  it('fails when the URL serves a set without the signing kid, or the kid with other public members', async () => {
    const { dir, kid, published } = await keysWithOne();
    const other = await keysWithOne();
    jwks = { status: 200, body: { keys: other.published } };
    const missing = (await doctor(dir))[JWKS_URL_CHECK];
    expect(missing).toMatchObject({ status: 'fail', fix: expect.stringContaining('Publish the key') });
    expect(missing?.detail).toBe(
      `BRG_ERR_KEY_NOT_PUBLISHED: ${host.origin}/jwks.json (smart.jku) does not serve the signing key: kid ${kid} is not in the served set. ` +
        `The EHR would refuse its signatures; publish ${join(dir, 'jwks.json')} there (or let its cache expire).`,
    );
    jwks = { status: 200, body: { keys: [{ ...other.published[0], kid }] } };
    expect((await doctor(dir))[JWKS_URL_CHECK]?.detail).toContain(`kid ${kid} is served with other public key members than jwks.json has`);

    jwks = { status: 200, body: { keys: published } };
    const results = await doctor(dir);
    expect(results[JWKS_URL_CHECK]).toEqual({ name: JWKS_URL_CHECK, status: 'pass', detail: `${host.origin}/jwks.json serves the signing key ${kid}` });
    expect(results['signing kid published in the JWK Set']?.status).toBe('pass');
  });

  it('warns when the URL cannot be read; runs no such check without smart.jku', async () => {
    const { dir } = await keysWithOne();
    jwks = { status: 503, body: {} };
    expect((await doctor(dir))[JWKS_URL_CHECK]).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/^could not read http:\/\/127\.0\.0\.1:\d+\/jwks\.json \(HTTP 503\); the EHR fetches it/),
    });
    expect((await doctor(dir, null))[JWKS_URL_CHECK]).toBeUndefined();
  });

  it('reports the key waiting to sign: not yet served is expected before it is due, a warning after', async () => {
    const { dir, kid, published } = await keysWithOne();
    jwks = { status: 200, body: { keys: published } }; // the set before the rotation, as a cache may still answer it
    const { kid: next, activeFromMs } = await rotateKey(dir, 'ES384', { nowMs: Date.now(), waitMs: 3_600_000 });
    const from = new Date(activeFromMs).toISOString();
    const before = await doctor(dir);
    expect(before['key files present with safe modes']?.detail).toBe(`2 key(s), active ${kid}, next ${next} signs from ${from}, private key mode 600`);
    expect(before[JWKS_URL_CHECK]).toMatchObject({
      status: 'pass',
      detail: `${host.origin}/jwks.json serves the signing key ${kid}; not yet the next key ${next} (kid ${next} is not in the served set), which signs from ${from} only once it is served there`,
    });

    const dueDir = (await keysWithOne()).dir;
    const due = await rotateKey(dueDir, 'ES384', { nowMs: Date.now() - 7_200_000, waitMs: 3_600_000 });
    jwks = {
      status: 200,
      body: {
        keys: openKeyStore(dueDir)
          .publicJwks()
          .keys.filter((k) => k.kid !== due.kid),
      },
    };
    expect((await doctor(dueDir))[JWKS_URL_CHECK]).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining(`only once it is served there: publish ${join(dueDir, 'jwks.json')} there`),
    });

    jwks = { status: 200, body: { keys: openKeyStore(dir).publicJwks().keys } };
    expect((await doctor(dir))[JWKS_URL_CHECK]).toMatchObject({
      status: 'pass',
      detail: `${host.origin}/jwks.json serves the signing key ${kid} and the next key ${next}, which signs from ${from}`,
    });
  });

  it('changes nothing: a due key that the URL serves is reported, not activated, by its token request', async () => {
    const { dir, kid } = await keysWithOne();
    const due = await rotateKey(dir, 'ES384', { nowMs: Date.now() - 7_200_000, waitMs: 3_600_000 });
    jwks = { status: 200, body: { keys: openKeyStore(dir).publicJwks().keys } };
    const results = await doctor(dir);
    expect(results['SMART access token obtained']).toMatchObject({ status: 'fail' }); // the stub's token endpoint refuses
    expect(results[JWKS_URL_CHECK]?.detail).toContain(`and the next key ${due.kid}`);
    const active = await openKeyStore(dir).activeKey();
    expect(active.kid).toBe(kid);
    expect(active.next?.kid).toBe(due.kid);
  });
});

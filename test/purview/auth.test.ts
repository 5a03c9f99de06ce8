/**
 * msal-node really running against the Entra ID emulator: secret and certificate, exactly one request per token (no
 * instance discovery, nothing outbound), the sandbox CA trusted for these requests only, one token reused until
 * invalidated, transient answers (503, 429 with Retry-After) retried, and failures mapped to BRG_ERR_PURVIEW_AUTH
 * without the secret.
 */
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createPurviewTokenSource, DEFAULT_RESOURCE, type PurviewAuthOptions } from '../../src/purview/index.js';
import { InstantClock } from '../support/manual-clock.js';
import { type Emulators, startEmulators } from './support.js';

let emu: Emulators;
beforeAll(async () => {
  emu = await startEmulators();
});
afterAll(() => emu?.close());
afterEach(() => vi.restoreAllMocks());

function options(app: { tenantId: string; appId: string }, credential: PurviewAuthOptions['credential']): PurviewAuthOptions {
  return {
    tenantId: app.tenantId,
    appId: app.appId,
    credential,
    authorityHost: emu.entra.authorityHost,
    caPem: emu.tls.certPem,
    clock: systemClock,
    logger: silentLogger(),
  };
}

/** An InstantClock whose reading also moves 25 ms each time it is read: time passes while requests run. */
class TickingClock extends InstantClock {
  private ticks = 0;
  override now(): number {
    this.ticks += 25;
    return super.now() + this.ticks;
  }
}

async function authError(promise: Promise<unknown>): Promise<BridgeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BridgeError);
  expect((error as BridgeError).code).toBe('BRG_ERR_PURVIEW_AUTH');
  return error as BridgeError;
}

describe('createPurviewTokenSource', () => {
  it('gets a token for the ingestion resource with a secret and with a certificate, one request each, nothing outbound', async () => {
    const fetchSpy = vi.spyOn(globalThis, 'fetch');
    const secretApp = emu.newApp();
    const pems = await generate([{ name: 'commonName', value: 'bridge-test' }], { keySize: 2048, algorithm: 'sha256' });
    const certApp = { tenantId: secretApp.tenantId, appId: crypto.randomUUID() };
    emu.entra.registerApp({ ...certApp, certificatePem: pems.cert });
    const thumbprintSha256 = new X509Certificate(pems.cert).fingerprint256.replace(/:/g, '');
    const requests = emu.entra.stats.requests;

    const viaSecret = await createPurviewTokenSource(options(secretApp, { kind: 'secret', secret: secretApp.secret })).getToken();
    const viaCert = await createPurviewTokenSource(options(certApp, { kind: 'certificate', privateKeyPem: pems.private, thumbprintSha256 })).getToken();

    expect(emu.entra.verifyAccessToken(viaSecret)).toEqual({ tenantId: secretApp.tenantId, appId: secretApp.appId, audience: DEFAULT_RESOURCE });
    expect(emu.entra.verifyAccessToken(viaCert)).toEqual({ tenantId: certApp.tenantId, appId: certApp.appId, audience: DEFAULT_RESOURCE });
    expect(emu.entra.stats.requests - requests).toBe(2);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it('reuses one token until invalidated, then fetches a new one; onRefresh counts real fetches', async () => {
    const app = emu.newApp();
    let refreshes = 0;
    const source = createPurviewTokenSource({ ...options(app, { kind: 'secret', secret: app.secret }), onRefresh: () => refreshes++ });
    const issued = emu.entra.stats.issued;
    const first = await source.getToken();
    expect(await source.getToken()).toBe(first);
    source.invalidate('some other token');
    expect(await source.getToken()).toBe(first);
    source.invalidate(first);
    const second = await source.getToken();
    expect(second).not.toBe(first);
    expect([emu.entra.stats.issued - issued, refreshes]).toEqual([2, 2]);
  });

  it('trusts the sandbox CA for its own requests only', async () => {
    const app = emu.newApp();
    await createPurviewTokenSource(options(app, { kind: 'secret', secret: app.secret })).getToken();
    const plain = await fetch(`${emu.entra.authorityHost}/${app.tenantId}/v2.0/.well-known/openid-configuration`).then(
      () => 'trusted',
      () => 'refused',
    );
    expect(plain).toBe('refused');
  });

  it('maps a wrong secret to BRG_ERR_PURVIEW_AUTH with the AADSTS code and without the secret', async () => {
    const app = emu.newApp();
    const wrong = 'wrong-secret-value-123';
    const error = await authError(createPurviewTokenSource(options(app, { kind: 'secret', secret: wrong })).getToken());
    expect(error.message).toBe(
      `Entra ID refused a token for app ${app.appId} in tenant ${app.tenantId} at ${emu.entra.authorityHost}: invalid_client: AADSTS7000215: Invalid client secret provided.`,
    );
    expect(JSON.stringify({ message: error.message, details: error.details })).not.toContain(wrong);
  });

  it('retries an unreachable Entra ID within its budget, then fails with BRG_ERR_PURVIEW_AUTH', async () => {
    const clock = new InstantClock();
    const source = createPurviewTokenSource({
      tenantId: 't',
      appId: 'a',
      credential: { kind: 'secret', secret: 's' },
      authorityHost: 'https://127.0.0.1:1',
      clock,
      logger: silentLogger(),
      retry: { maxAttempts: 3, maxTotalMs: 60_000, baseDelayMs: 100, maxDelayMs: 1_000 },
    });
    const error = await authError(source.getToken());
    expect(error.message).toBe(
      'Could not get a token from Entra ID for app a in tenant t at https://127.0.0.1:1: no answer (ECONNREFUSED). Check purview.cloud / purview.authorityHost and that the host is reachable.',
    );
    expect(clock.slept).toHaveLength(2);
  });

  it("a proxy's or firewall's HTML page in Entra's place (403, not JSON) is not retried and is named for what it is", async () => {
    let requests = 0;
    const proxy = createServer({ cert: emu.tls.certPem, key: emu.tls.keyPem }, (_request, response) => {
      requests += 1;
      response.writeHead(403, { 'content-type': 'text/html' }).end('<html><body>Access denied by policy</body></html>');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const clock = new InstantClock();
      const authorityHost = `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const source = createPurviewTokenSource({ ...options({ tenantId: 't', appId: 'a' }, { kind: 'secret', secret: 's' }), authorityHost, clock });
      const error = await authError(source.getToken());
      expect(error.message).toBe(
        `The token request for app a in tenant t at ${authorityHost} was answered HTTP 403 with a page that is not JSON: Entra ID always answers JSON, so something on the way (a proxy, a TLS-inspecting firewall) answered instead. Check that it lets the bridge reach ${authorityHost}.`,
      );
      expect(requests).toBe(1);
      expect(clock.slept).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('retries a transient Entra 503 (msal must not throttle it locally): a token on the second request', async () => {
    const app = emu.newApp();
    const clock = new InstantClock();
    const source = createPurviewTokenSource({ ...options(app, { kind: 'secret', secret: app.secret }), clock });
    const requests = emu.entra.stats.requests;
    emu.entra.injectFaults({ status: 503 });
    const token = await source.getToken();
    expect(emu.entra.verifyAccessToken(token)).toMatchObject({ appId: app.appId });
    expect(emu.entra.stats.requests - requests).toBe(2);
    expect(clock.slept).toHaveLength(1);
  });

  it("waits out a 429's Retry-After before asking again", async () => {
    const app = emu.newApp();
    const clock = new InstantClock();
    const source = createPurviewTokenSource({ ...options(app, { kind: 'secret', secret: app.secret }), clock });
    const requests = emu.entra.stats.requests;
    emu.entra.injectFaults({ status: 429, retryAfter: '7' });
    await source.getToken();
    expect(emu.entra.stats.requests - requests).toBe(2);
    expect(clock.slept).toEqual([7_000]);
  });

  // Entra's throttle sends Retry-After: 60. The clock moves at every reading, as a real one does while requests run, so
  // a budget that cannot hold the hint after any elapsed time shows here (an InstantClock never reads elapsed > 0).
  it.each([
    ['60', [60_000]],
    ['120', [120_000]],
  ])("waits out Entra's usual throttle (429, Retry-After %s) in full with the default budget, once", async (retryAfter, slept) => {
    const app = emu.newApp();
    const clock = new TickingClock();
    const source = createPurviewTokenSource({ ...options(app, { kind: 'secret', secret: app.secret }), clock });
    const requests = emu.entra.stats.requests;
    emu.entra.injectFaults({ status: 429, retryAfter });
    expect(emu.entra.verifyAccessToken(await source.getToken())).toMatchObject({ appId: app.appId });
    expect(emu.entra.stats.requests - requests).toBe(2);
    expect(clock.slept).toEqual(slept);
  });

  it('gives up when a second throttle of 120 s would not fit the budget', async () => {
    const app = emu.newApp();
    const clock = new TickingClock();
    const source = createPurviewTokenSource({ ...options(app, { kind: 'secret', secret: app.secret }), clock });
    const requests = emu.entra.stats.requests;
    emu.entra.injectFaults({ status: 429, retryAfter: '120' }, { status: 429, retryAfter: '120' });
    const error = await authError(source.getToken());
    expect(error.message).toContain("This is on Entra's side (a throttle or an outage)");
    expect(emu.entra.stats.requests - requests).toBe(2);
    expect(clock.slept).toEqual([120_000]);
    emu.entra.injectFaults();
  });

  it('an Entra that keeps answering 503 fails as Entra trouble, naming the AADSTS code, not as refused credentials', async () => {
    const app = emu.newApp();
    const clock = new InstantClock();
    const source = createPurviewTokenSource({
      ...options(app, { kind: 'secret', secret: app.secret }),
      clock,
      retry: { maxAttempts: 3, maxTotalMs: 60_000, baseDelayMs: 100, maxDelayMs: 1_000 },
    });
    const requests = emu.entra.stats.requests;
    emu.entra.injectFaults({ status: 503 }, { status: 503 }, { status: 503 });
    const error = await authError(source.getToken());
    expect(error.message).toBe(
      `Entra ID could not issue a token for app ${app.appId} in tenant ${app.tenantId} at ${emu.entra.authorityHost}: Entra ID answered HTTP 503 (AADSTS90033). ` +
        "This is on Entra's side (a throttle or an outage), not the credentials: run again later.",
    );
    expect(error.details).toMatchObject({ status: 503 });
    expect(emu.entra.stats.requests - requests).toBe(3);
    // Nothing of the failure is remembered by msal: the next request goes out and gets a token.
    expect(emu.entra.verifyAccessToken(await source.getToken())).toMatchObject({ appId: app.appId });
  });

  it('refuses an http authority before any request', () => {
    expect(() =>
      createPurviewTokenSource({ ...options({ tenantId: 't', appId: 'a' }, { kind: 'secret', secret: 's' }), authorityHost: 'http://127.0.0.1:1' }),
    ).toThrow('purview.authorityHost must be an https URL, got http://127.0.0.1:1.');
  });
});

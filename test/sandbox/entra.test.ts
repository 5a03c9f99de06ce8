import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createPurviewTokenSource, DEFAULT_RESOURCE, type EntraCredential } from '../../src/purview/index.js';
import { type EntraEmulator, startEntraEmulator } from '../../src/sandbox/entra.js';
import { createSandboxCertificate, type SandboxCertificate } from '../../src/sandbox/tls.js';
import { InstantClock } from '../support/manual-clock.js';

const tenantId = randomUUID();
const secretApp = { tenantId, appId: randomUUID(), secret: 'correct-horse-battery-staple' };
let entra: EntraEmulator;
let appCert: SandboxCertificate;
let certApp: { tenantId: string; appId: string };

beforeAll(async () => {
  const [tls, cert] = await Promise.all([createSandboxCertificate(), createSandboxCertificate()]);
  appCert = cert;
  entra = await startEntraEmulator({ tls, tokenLifetimeSec: 3599 });
  entra.registerApp(secretApp);
  certApp = { tenantId, appId: randomUUID() };
  entra.registerApp({ ...certApp, certificatePem: appCert.certPem });
});
afterAll(() => entra.close());

function tokenSource(appId: string, credential: EntraCredential, tenant = tenantId) {
  return createPurviewTokenSource({
    tenantId: tenant,
    appId,
    credential,
    authorityHost: entra.authorityHost,
    caPem: entra.caPem,
    clock: new InstantClock(Date.now()),
    logger: silentLogger(),
  });
}

function failedToFail(): never {
  throw new Error('expected the token request to fail');
}

function thumbprintSha256(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

describe('Entra ID emulator with msal-node', () => {
  it('issues a token for a client secret, for the ingestion resource, and serves it from the cache', async () => {
    const before = entra.stats.issued;
    const source = tokenSource(secretApp.appId, { kind: 'secret', secret: secretApp.secret });
    const token = await source.getToken();
    expect(await source.getToken()).toBe(token);
    expect(entra.stats.issued - before).toBe(1);
    expect(entra.verifyAccessToken(token)).toEqual({ tenantId, appId: secretApp.appId, audience: DEFAULT_RESOURCE });
  });

  it('issues a token for a certificate (PS256 assertion with x5t#S256)', async () => {
    const source = tokenSource(certApp.appId, { kind: 'certificate', privateKeyPem: appCert.keyPem, thumbprintSha256: thumbprintSha256(appCert.certPem) });
    const token = await source.getToken();
    expect(entra.verifyAccessToken(token)).toEqual({ tenantId, appId: certApp.appId, audience: DEFAULT_RESOURCE });
  });

  it('refuses an assertion signed by another key, naming AADSTS700027, without leaking the key', async () => {
    const other = await createSandboxCertificate();
    const source = tokenSource(certApp.appId, { kind: 'certificate', privateKeyPem: other.keyPem, thumbprintSha256: thumbprintSha256(appCert.certPem) });
    const error = await source.getToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_PURVIEW_AUTH');
    expect((error as BridgeError).message).toContain('AADSTS700027');
    expect((error as BridgeError).message).not.toContain('PRIVATE KEY');
  });

  it('refuses a wrong secret (AADSTS7000215) and an unknown tenant (AADSTS90002); the secret never reaches the message', async () => {
    const rejected = entra.stats.rejected;
    const wrong = await tokenSource(secretApp.appId, { kind: 'secret', secret: 'not-the-secret' })
      .getToken()
      .then(failedToFail, (e: unknown) => e as BridgeError);
    expect(wrong.code).toBe('BRG_ERR_PURVIEW_AUTH');
    expect(wrong.message).toContain('AADSTS7000215');
    expect(wrong.message).not.toContain('not-the-secret');
    const foreign = await tokenSource(secretApp.appId, { kind: 'secret', secret: secretApp.secret }, randomUUID())
      .getToken()
      .then(failedToFail, (e: unknown) => e as BridgeError);
    expect(foreign.message).toContain('AADSTS90002');
    expect(entra.stats.rejected - rejected).toBe(2);
  });

  it('routes on the pathname, answers the v2 token shape, and rejects a scope without /.default', async () => {
    const dispatcher = new Agent({ connect: { ca: entra.caPem } });
    const post = async (scope: string) => {
      const response = await request(`${entra.authorityHost}/${tenantId}/oauth2/v2.0/token?client-request-id=${randomUUID()}`, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: secretApp.appId, client_secret: secretApp.secret, grant_type: 'client_credentials', scope }).toString(),
      });
      return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
    };
    const ok = await post(`${DEFAULT_RESOURCE}/.default`);
    expect(ok.status).toBe(200);
    expect(Object.keys(ok.body).sort()).toEqual(['access_token', 'expires_in', 'ext_expires_in', 'token_type']);
    expect(ok.body).toMatchObject({ token_type: 'Bearer', expires_in: 3599 });
    const bad = await post(DEFAULT_RESOURCE);
    expect(bad).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
    // A resource the tenant does not have (a mistyped purview.resource) is refused at the token, as Entra does.
    const unknown = await post('https://microsoft.onmicrosoft.com/00000000-typo-4a0c-880a-cfa5a790c5b1/.default');
    expect(unknown).toMatchObject({ status: 400, body: { error: 'invalid_resource', error_codes: [500011] } });
    expect((await post(`${DEFAULT_RESOURCE.toUpperCase()}/.default`)).status).toBe(200);
    await dispatcher.close();
  });

  it("answers queued faults in order, in Entra's error shape with their Retry-After, then issues tokens again", async () => {
    const dispatcher = new Agent({ connect: { ca: entra.caPem } });
    const post = async () => {
      const response = await request(`${entra.authorityHost}/${tenantId}/oauth2/v2.0/token`, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          client_id: secretApp.appId,
          client_secret: secretApp.secret,
          grant_type: 'client_credentials',
          scope: `${DEFAULT_RESOURCE}/.default`,
        }).toString(),
      });
      return { status: response.statusCode, retryAfter: response.headers['retry-after'], body: (await response.body.json()) as Record<string, unknown> };
    };
    entra.injectFaults({ status: 503 }, { status: 429, retryAfter: '60' });
    expect(await post()).toMatchObject({ status: 503, retryAfter: undefined, body: { error: 'temporarily_unavailable', error_codes: [90033] } });
    expect(await post()).toMatchObject({ status: 429, retryAfter: '60', body: { error: 'temporarily_unavailable', error_codes: [90055] } });
    expect((await post()).status).toBe(200);
    entra.injectFaults({ status: 500 });
    entra.injectFaults();
    expect((await post()).status).toBe(200);
    await dispatcher.close();
  });

  it('stops verifying a token once its lifetime has passed on the emulator clock', async () => {
    const clock = new InstantClock(Date.parse('2026-11-01T00:00:00Z'));
    const tls = await createSandboxCertificate();
    const shortLived = await startEntraEmulator({ clock, tokenLifetimeSec: 60, tls });
    try {
      shortLived.registerApp(secretApp);
      const source = createPurviewTokenSource({
        tenantId,
        appId: secretApp.appId,
        credential: { kind: 'secret', secret: secretApp.secret },
        authorityHost: shortLived.authorityHost,
        caPem: shortLived.caPem,
        clock,
        logger: silentLogger(),
      });
      const token = await source.getToken();
      expect(shortLived.verifyAccessToken(token)?.appId).toBe(secretApp.appId);
      await clock.sleep(60_000);
      expect(shortLived.verifyAccessToken(token)).toBeUndefined();
    } finally {
      await shortLived.close();
    }
  });
});

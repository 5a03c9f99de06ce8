/**
 * Token lifecycle end to end against the Epic-like server: caching until 60 s before expiry (injected clock),
 * single-flight refresh, refresh after invalidate, discovery through the source, and key rotation served from a
 * JWK Set URL backed by the real key store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { type EpicAuthServer, startEpicAuthServer } from '../../src/sandbox/epic-auth.js';
import { createSmartTokenSource, generateKey, openKeyStore, retireKey, rotateKey, type SmartTokenOptions } from '../../src/smart/index.js';
import { ManualClock } from '../support/manual-clock.js';
import {
  captureLogger,
  decodeParts,
  formOf,
  jwksUrlFor,
  makeKey,
  removeTempDirs,
  type StubServer,
  sendJson,
  startStubServer,
  type TestKey,
  tempDir,
} from './support.js';

afterAll(removeTempDirs);

const SCOPE = 'system/AuditEvent.read system/Patient.read system/Practitioner.read';
let clock: ManualClock;
let server: EpicAuthServer;
let key: TestKey;
let cacheClientKeys: { url: string; close(): Promise<void> };

beforeAll(async () => {
  clock = new ManualClock('2026-11-01T12:00:00Z');
  server = await startEpicAuthServer({ clock });
  key = await makeKey('ES384');
  cacheClientKeys = await jwksUrlFor([key.publicJwk]);
  server.registerClient({ clientId: 'cache-client', jwksUrl: cacheClientKeys.url });
});

afterAll(async () => {
  await Promise.all([server.close(), cacheClientKeys.close()]);
});

function options(overrides: Partial<SmartTokenOptions> = {}): SmartTokenOptions {
  return {
    fhirBaseUrl: 'http://127.0.0.1:9/unused',
    tokenUrl: server.tokenUrl,
    clientId: 'cache-client',
    scope: SCOPE,
    key: key.signingKey,
    clock,
    logger: captureLogger().logger,
    ...overrides,
  };
}

describe('token cache behaviour through createSmartTokenSource', () => {
  it('reuses a 3600 s token until 60 s before expiry, then fetches a new one', async () => {
    let refreshes = 0;
    const tokens = createSmartTokenSource(options({ onRefresh: () => (refreshes += 1) }));
    const issued = server.stats.issued;
    const first = await tokens.getToken();
    await clock.advance(3_540_000 - 1_000); // 61 s before expiry
    expect(await tokens.getToken()).toBe(first);
    expect([server.stats.issued - issued, refreshes]).toEqual([1, 1]);
    await clock.advance(2_000); // 59 s before expiry
    const second = await tokens.getToken();
    expect(second).not.toBe(first);
    expect([server.stats.issued - issued, refreshes]).toEqual([2, 2]);
  });

  it('concurrent callers share one token request, also after invalidate', async () => {
    const tokens = createSmartTokenSource(options());
    const issued = server.stats.issued;
    const firstRound = await Promise.all(Array.from({ length: 8 }, () => tokens.getToken()));
    expect(new Set(firstRound).size).toBe(1);
    expect(server.stats.issued - issued).toBe(1);

    tokens.invalidate('some-other-token'); // a stale token that is no longer cached changes nothing
    expect(await tokens.getToken()).toBe(firstRound[0]);

    server.expireAllTokens(); // what a FHIR server's 401 would reveal mid-paging
    const stale = firstRound[0] ?? '';
    expect(server.verifyAccessToken(stale)).toBeUndefined();
    tokens.invalidate(stale);
    const secondRound = await Promise.all(Array.from({ length: 8 }, () => tokens.getToken()));
    expect(new Set(secondRound).size).toBe(1);
    expect(secondRound[0]).not.toBe(stale);
    expect(server.verifyAccessToken(secondRound[0] ?? '')?.clientId).toBe('cache-client');
    expect(server.stats.issued - issued).toBe(2);
  });

  it('discovers the token URL once, from an Epic-shaped smart-configuration, when none is configured', async () => {
    const fhir = await startStubServer((request, response) => {
      if (request.url === '/api/FHIR/R4/.well-known/smart-configuration') {
        return sendJson(response, 200, { token_endpoint: server.tokenUrl, token_endpoint_auth_methods_supported: ['private_key_jwt'] });
      }
      sendJson(response, 404, {});
    });
    const { tokenUrl: _omitted, ...rest } = options();
    const tokens = createSmartTokenSource({ ...rest, fhirBaseUrl: `${fhir.origin}/api/FHIR/R4` });
    const first = await tokens.getToken();
    tokens.invalidate(first);
    expect(await tokens.getToken()).not.toBe(first);
    await fhir.close();
    expect(fhir.requests.map((r) => [r.url, r.headers['epic-client-id']])).toEqual([['/api/FHIR/R4/.well-known/smart-configuration', 'cache-client']]);
  });
});

describe('key rotation with a JWK Set URL served from the key store', () => {
  let jwksHost: StubServer;
  const kidsSent: string[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    kidsSent.push(String(decodeParts(formOf(String(init?.body))['client_assertion'] ?? '').header['kid']));
    return fetch(input, init);
  };

  afterAll(async () => {
    await jwksHost.close();
  });

  it('signs with the new key while the old one is still published, then the server refuses the retired kid', async () => {
    const dir = tempDir();
    const store = openKeyStore(dir);
    const { kid: oldKid } = await generateKey(dir, 'ES384');
    // Like `bridge serve`: GET /.well-known/jwks.json answers the store's public set with a Cache-Control max-age.
    jwksHost = await startStubServer((_request, response) => sendJson(response, 200, store.publicJwks(), { 'cache-control': 'public, max-age=300' }));
    const jku = `${jwksHost.origin}/.well-known/jwks.json`;
    server.registerClient({ clientId: 'rotating', jwksUrl: jku });
    const base = options({ clientId: 'rotating', jku, fetch: recordingFetch });

    const current = createSmartTokenSource({ ...base, key: () => store.activeKey() });
    const pinnedOld = createSmartTokenSource({ ...base, key: await store.activeKey() });
    current.invalidate(await current.getToken());

    const { kid: newKid, previousKid } = await rotateKey(dir, 'ES384');
    expect(previousKid).toBe(oldKid);
    current.invalidate(await current.getToken()); // new kid: the server refetches the set at once
    await pinnedOld.getToken(); // old kid still published and cached
    expect(kidsSent).toEqual([oldKid, newKid, oldKid]);

    await clock.advance(300_000); // Epic's advice: wait 5 minutes before removing the old key
    await retireKey(dir, oldKid);
    expect(store.publicJwks().keys.map((k) => k.kid)).toEqual([newKid]);
    await clock.advance(1_000); // past the JWK Set's max-age, so the server sees the retired set
    pinnedOld.invalidate();
    const error: unknown = await pinnedOld.getToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_SMART_INVALID_CLIENT');
    expect((error as BridgeError).details['error_description']).toBe(`kid "${oldKid}" is not in the client's registered JWK Set`);
    expect(server.verifyAccessToken(await current.getToken())?.clientId).toBe('rotating');
    expect(jwksHost.requests.length).toBeGreaterThanOrEqual(2);
  });
});

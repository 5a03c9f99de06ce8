/**
 * Token lifecycle end to end against the Epic-like server: caching until 60 s before expiry (injected clock),
 * single-flight refresh, refresh after invalidate, discovery through the source, and two-phase key rotation served
 * from a JWK Set URL backed by the real key store behind a cache that honours max-age.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EpicAuthServer, startEpicAuthServer } from '../../src/sandbox/epic-auth.js';
import {
  createSmartTokenSource,
  describeKeys,
  generateKey,
  JWKS_READ_PERIOD_MS,
  type KeyStore,
  openKeyStore,
  retireKey,
  rotateKey,
  type SmartTokenOptions,
} from '../../src/smart/index.js';
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

describe('key rotation with a JWK Set URL served from the key store through a cache', () => {
  const HOUR = 3_600_000;
  const kidsSent: string[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    const assertion = formOf(String(init?.body ?? ''))['client_assertion'];
    if (assertion) kidsSent.push(String(decodeParts(assertion).header['kid']));
    return fetch(input, init);
  };
  const hosts: StubServer[] = [];
  afterAll(async () => {
    await Promise.all(hosts.map((host) => host.close()));
  });

  /**
   * Like `bridge serve` behind a shared cache (a reverse proxy or CDN): GET /.well-known/jwks.json answers the store's
   * set with `public, max-age=3600`, and the cache keeps each answer that long (by the test's clock), or for ever
   * (`keepForMs` Infinity: a copy of jwks.json that nobody re-uploads).
   */
  async function cachedJwksUrl(store: KeyStore, keepForMs = HOUR): Promise<string> {
    let cached: { body: unknown; until: number } | undefined;
    const host = await startStubServer((_request, response) => {
      if (!cached || cached.until <= clock.now()) cached = { body: store.publicJwks(), until: clock.now() + keepForMs };
      sendJson(response, 200, cached.body, { 'cache-control': 'public, max-age=3600' });
    });
    hosts.push(host);
    return `${host.origin}/.well-known/jwks.json`;
  }

  /** A client whose token source loads keys from a fresh keys directory, registered with a cached JWK Set URL. */
  async function rotatingClient(name: string, setup: { keepForMs?: number; jkuUnreachable?: boolean } = {}) {
    const dir = tempDir();
    const store = openKeyStore(dir);
    const { kid: oldKid } = await generateKey(dir, 'ES384');
    const jku = await cachedJwksUrl(store, setup.keepForMs);
    server.registerClient({ clientId: name, jwksUrl: jku });
    const { logger, raw, lines } = captureLogger();
    // This host may be unable to reach its own JWK Set URL (the token server still can).
    const refused = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    const fetchOf: typeof fetch = (input, init) => (setup.jkuUnreachable && String(input) === jku ? Promise.reject(refused) : recordingFetch(input, init));
    const tokens = createSmartTokenSource(options({ clientId: name, jku, fetch: fetchOf, key: () => store.activeKey(), logger }));
    return { dir, oldKid, tokens, raw, lines };
  }

  it('keeps signing with the old key while caches may serve the old set; the new key signs once max-age has passed', async () => {
    const { dir, oldKid, tokens, lines } = await rotatingClient('rotating');
    tokens.invalidate(await tokens.getToken());

    const { kid: newKid, previousKid } = await rotateKey(dir, 'ES384', { nowMs: clock.now(), waitMs: HOUR });
    expect(previousKid).toBe(oldKid);
    await clock.advance(60_000); // the cache still answers the set without the new key
    kidsSent.length = 0;
    tokens.invalidate(await tokens.getToken());
    expect(kidsSent).toEqual([oldKid]);

    await clock.advance(HOUR); // past the new key's activeFrom and the cache's max-age
    const fresh = await tokens.getToken();
    expect(server.verifyAccessToken(fresh)?.clientId).toBe('rotating');
    expect(kidsSent).toEqual([oldKid, newKid]);
    expect(describeKeys(dir)).toMatchObject({ activeKid: newKid });
    expect(describeKeys(dir).next).toBeUndefined();
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 30, kid: oldKid, nextKid: newKid, msg: 'signing key rotated: the next key signs from now on' }),
    );

    await clock.advance(300_000); // Epic's advice: wait 5 minutes before removing the old key
    await retireKey(dir, oldKid);
    tokens.invalidate(fresh);
    expect(server.verifyAccessToken(await tokens.getToken())?.clientId).toBe('rotating');
  });

  it.each([
    ['a copy of jwks.json nobody re-uploaded', { keepForMs: Number.POSITIVE_INFINITY }, (kid: string) => `kid ${kid} is not in the served set`],
    ['a JWK Set URL this host cannot reach', { jkuUnreachable: true }, () => 'could not read it: ECONNREFUSED'],
  ] as const)('with %s, keeps signing with the old key past the wait and logs why, without key material', async (name, setup, problem) => {
    const client = await rotatingClient(name.replace(/\W+/g, '-'), setup);
    client.tokens.invalidate(await client.tokens.getToken());
    const { kid: newKid } = await rotateKey(client.dir, 'ES384', { nowMs: clock.now(), waitMs: HOUR });
    await clock.advance(HOUR + JWKS_READ_PERIOD_MS + 1_000); // past activeFrom: max-age after bridge serve re-read jwks.json
    kidsSent.length = 0;
    expect(server.verifyAccessToken(await client.tokens.getToken())).toBeDefined();
    expect(kidsSent).toEqual([client.oldKid]);
    expect(describeKeys(client.dir)).toMatchObject({ activeKid: client.oldKid, next: { kid: newKid } });
    expect(client.lines).toContainEqual(
      expect.objectContaining({
        level: 40,
        kid: client.oldKid,
        nextKid: newKid,
        problem: problem(newKid),
        msg: 'the next signing key is due but the JWK Set URL does not serve it; still signing with the current key',
      }),
    );
    for (const line of client.raw) expect(line).not.toMatch(/eyJ|PRIVATE KEY|"d":|"x":|"y":/);
  });
});

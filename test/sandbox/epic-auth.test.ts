/**
 * The Epic-like token server, driven over loopback with assertions built directly with jose, so every rule is
 * exercised on its own: each bad assertion changes exactly one thing from a valid one.
 */
import type { JsonWebKey } from 'node:crypto';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { exportJWK, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EpicAuthServer, startEpicAuthServer } from '../../src/sandbox/epic-auth.js';
import { makeKey, type StubServer, sendJson, signRaw, startStubServer, type TestKey } from '../smart/support.js';
import { ManualClock } from '../support/manual-clock.js';

const START = '2026-11-01T08:00:00Z';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let clock: ManualClock;
let server: EpicAuthServer;
let jwksHost: StubServer;
let served: { keys: JsonWebKey[] };
let jwksCacheControl = 'max-age=60';
let rs: TestKey;
let es: TestKey;
let ecStatic: TestKey;
let p256: TestKey;
let stranger: TestKey;

const nowSec = (): number => Math.floor(clock.now() / 1000);

beforeAll(async () => {
  clock = new ManualClock(START);
  server = await startEpicAuthServer({ clock });
  [rs, es, ecStatic, p256, stranger] = await Promise.all([makeKey('RS384'), makeKey('ES384'), makeKey('ES384'), makeKey('ES256'), makeKey('RS384')]);
  served = { keys: [es.publicJwk, p256.publicJwk] };
  jwksHost = await startStubServer((_request, response) => sendJson(response, 200, served, { 'cache-control': jwksCacheControl }));
  server.registerClient({ clientId: 'rs-client', jwks: { keys: [rs.publicJwk, ecStatic.publicJwk, p256.publicJwk] } });
  server.registerClient({ clientId: 'es-client', jwksUrl: `${jwksHost.origin}/jwks.json` });
  server.registerClient({
    clientId: 'scoped-client',
    jwks: { keys: [rs.publicJwk] },
    scopes: ['system/AuditEvent.read', 'system/Patient.read'],
  });
});

afterAll(async () => {
  await Promise.all([server.close(), jwksHost.close()]);
});

/** Claims to change; `undefined` leaves a claim out. */
type ClaimOverrides = { [K in keyof JWTPayload]?: JWTPayload[K] | undefined };

function claims(clientId: string, overrides: ClaimOverrides = {}): JWTPayload {
  const now = nowSec();
  const all: ClaimOverrides = {
    iss: clientId,
    sub: clientId,
    aud: server.tokenUrl,
    jti: randomUUID(),
    iat: now - 30,
    nbf: now - 30,
    exp: now + 240,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(all).filter(([, value]) => value !== undefined)) as JWTPayload;
}

async function assertion(key: TestKey, clientId: string, overrides: ClaimOverrides = {}, header: Record<string, string> = {}): Promise<string> {
  return signRaw(key.privateKey, { alg: key.signingKey.alg, kid: key.publicJwk.kid, typ: 'JWT', ...header }, claims(clientId, overrides));
}

async function post(form: Record<string, string>, init: { url?: string; contentType?: string; method?: string } = {}) {
  const response = await fetch(init.url ?? server.tokenUrl, {
    method: init.method ?? 'POST',
    headers: { 'content-type': init.contentType ?? 'application/x-www-form-urlencoded' },
    ...(init.method === 'GET' ? {} : { body: new URLSearchParams(form).toString() }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

function tokenForm(jwt: string, extra: Record<string, string> = {}): Record<string, string> {
  return { grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: jwt, ...extra };
}

async function expectInvalidClient(jwt: string, description: RegExp): Promise<void> {
  const answer = await post(tokenForm(jwt));
  expect(answer.status).toBe(400);
  expect(answer.body['error']).toBe('invalid_client');
  expect(String(answer.body['error_description'])).toMatch(description);
}

describe('Epic-like token server: valid assertions', () => {
  it('issues an opaque bearer token for an RS384 assertion (static JWK Set), Epic-style', async () => {
    const answer = await post(tokenForm(await assertion(rs, 'rs-client'), { scope: 'system/AuditEvent.read system/Patient.read' }));
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      access_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      token_type: 'bearer',
      expires_in: 3600,
      scope: 'AuditEvent.read Patient.read',
    });
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('date')).toBe(new Date(clock.now()).toUTCString());
    expect(server.verifyAccessToken(String(answer.body['access_token']))).toEqual({ clientId: 'rs-client', scope: 'AuditEvent.read Patient.read' });
  });

  it('issues a token for an ES384 assertion verified through the JWK Set URL, with or without the matching jku', async () => {
    const jku = `${jwksHost.origin}/jwks.json`;
    const headers: Array<Record<string, string>> = [{}, { jku }];
    for (const header of headers) {
      const answer = await post(tokenForm(await assertion(es, 'es-client', {}, header)));
      expect(answer.status).toBe(200);
      expect(answer.body['token_type']).toBe('bearer');
    }
  });

  it('accepts a jti of exactly 151 characters and assertions without iat/nbf (they are optional)', async () => {
    expect((await post(tokenForm(await assertion(rs, 'rs-client', { jti: 'j'.repeat(151) })))).status).toBe(200);
    expect((await post(tokenForm(await assertion(rs, 'rs-client', { iat: undefined, nbf: undefined })))).status).toBe(200);
  });

  it('expires tokens by the server clock, on demand, and with a changed lifetime', async () => {
    const first = String((await post(tokenForm(await assertion(rs, 'rs-client')))).body['access_token']);
    await clock.advance(3_599_000);
    expect(server.verifyAccessToken(first)?.clientId).toBe('rs-client');
    await clock.advance(1_000);
    expect(server.verifyAccessToken(first)).toBeUndefined();

    const second = String((await post(tokenForm(await assertion(rs, 'rs-client')))).body['access_token']);
    server.expireAllTokens();
    expect(server.verifyAccessToken(second)).toBeUndefined();
    expect(server.verifyAccessToken('not-a-token')).toBeUndefined();

    server.setTokenLifetime(300);
    expect((await post(tokenForm(await assertion(rs, 'rs-client')))).body['expires_in']).toBe(300);
    server.setTokenLifetime(3600);
  });
});

describe('Epic-like token server: every assertion rule, one at a time', () => {
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    [
      'bad signature (right kid, other key)',
      async () => signRaw(stranger.privateKey, { alg: 'RS384', kid: rs.publicJwk.kid, typ: 'JWT' }, claims('rs-client')),
      /^signature is invalid$/,
    ],
    ['unknown kid', async () => assertion(stranger, 'rs-client'), /^kid ".+" is not in the client's registered JWK Set$/],
    ['wrong aud', async () => assertion(rs, 'rs-client', { aud: server.tokenUrl.replace('127.0.0.1', 'localhost') }), /^aud must be exactly the token URL /],
    ['aud as an array', async () => assertion(rs, 'rs-client', { aud: [server.tokenUrl] }), /^aud must be exactly/],
    [
      'exp more than 300 s ahead',
      async () => assertion(rs, 'rs-client', { iat: nowSec(), nbf: nowSec(), exp: nowSec() + 301 }),
      /^exp is more than 300 seconds in the future$/,
    ],
    ['numeric jti', async () => assertion(rs, 'rs-client', { jti: 12345 as unknown as string }), /^jti must be a string, got number$/],
    ['jti of 152 characters', async () => assertion(rs, 'rs-client', { jti: 'j'.repeat(152) }), /^jti must be 1-151 characters, got 152$/],
    ['iat one second in the future', async () => assertion(rs, 'rs-client', { iat: nowSec() + 1 }), /^iat is in the future$/],
    ['nbf one second in the future', async () => assertion(rs, 'rs-client', { nbf: nowSec() + 1 }), /^nbf is in the future$/],
    ['exp − iat over 300 s', async () => assertion(rs, 'rs-client', { iat: nowSec() - 61 }), /^exp - iat is more than 300 seconds$/],
    ['exp − nbf over 300 s', async () => assertion(rs, 'rs-client', { nbf: nowSec() - 61 }), /^exp - nbf is more than 300 seconds$/],
    [
      'RS alg with an EC key',
      async () => signRaw(rs.privateKey, { alg: 'RS384', kid: ecStatic.publicJwk.kid, typ: 'JWT' }, claims('rs-client')),
      /^alg RS384 is inconsistent with key ".+" \(kty EC, crv P-384\)$/,
    ],
    [
      'ES384 with a P-256 key',
      async () => signRaw(ecStatic.privateKey, { alg: 'ES384', kid: p256.publicJwk.kid, typ: 'JWT' }, claims('es-client')),
      /^alg ES384 is inconsistent with key ".+" \(kty EC, crv P-256\)$/,
    ],
    [
      // Epic: "Epic does not support manual upload of Elliptic Curve public keys".
      'an EC key from a directly uploaded key set',
      async () => signRaw(ecStatic.privateKey, { alg: 'ES384', kid: ecStatic.publicJwk.kid, typ: 'JWT' }, claims('rs-client')),
      /^header alg ES384 needs a JWK Set URL: Elliptic Curve keys are not accepted from a directly uploaded key set$/,
    ],
    ['expired assertion', async () => assertion(rs, 'rs-client', { iat: nowSec() - 100, nbf: nowSec() - 100, exp: nowSec() - 1 }), /^exp is not in the future/],
    [
      'exp exactly now (no leeway)',
      async () => assertion(rs, 'rs-client', { iat: nowSec() - 100, nbf: nowSec() - 100, exp: nowSec() }),
      /^exp is not in the future/,
    ],
    ['typ other than JWT', async () => assertion(rs, 'rs-client', {}, { typ: 'JOSE' }), /^header typ must be "JWT", got "JOSE"$/],
    [
      'HS256 alg',
      async () =>
        `${Buffer.from(JSON.stringify({ alg: 'HS256', kid: rs.publicJwk.kid })).toString('base64url')}.${Buffer.from(JSON.stringify(claims('rs-client'))).toString('base64url')}.c2ln`,
      /^header alg "HS256" is not one of/,
    ],
    ['no kid', async () => signRaw(rs.privateKey, { alg: 'RS384', typ: 'JWT' }, claims('rs-client')), /^header kid is missing$/],
    ['iss ≠ sub', async () => assertion(rs, 'rs-client', { sub: 'someone-else' }), /^sub must equal iss/],
    ['unregistered iss', async () => assertion(rs, 'nobody'), /^iss "nobody" is not a registered client_id$/],
    ['jku ≠ registered URL', async () => assertion(es, 'es-client', {}, { jku: 'https://attacker.example/jwks.json' }), /^header jku does not match/],
    ['jku with a static JWK Set', async () => assertion(rs, 'rs-client', {}, { jku: `${jwksHost.origin}/jwks.json` }), /^header jku does not match/],
    ['not a JWS at all', async () => 'not-a-jwt', /^client_assertion is not a compact JWS$/],
  ];

  it.each(cases)('rejects %s with invalid_client naming the rule', async (_name, build, description) => {
    const rejectedBefore = server.stats.rejected;
    await expectInvalidClient(await build(), description);
    expect(server.stats.rejected).toBe(rejectedBefore + 1);
    expect(server.stats.lastError).toMatch(/^invalid_client: /);
  });

  it('rejects a replayed jti until that assertion expires, then accepts it again', async () => {
    const jti = randomUUID();
    expect((await post(tokenForm(await assertion(rs, 'rs-client', { jti })))).status).toBe(200);
    await expectInvalidClient(await assertion(rs, 'rs-client', { jti }), /^jti was already used before its exp \(replay\)$/);
    await clock.advance(241_000);
    expect((await post(tokenForm(await assertion(rs, 'rs-client', { jti })))).status).toBe(200);
  });

  it('rejects the same assertion posted three times at once: a concurrent replay is a replay', async () => {
    const jwt = await assertion(rs, 'rs-client', { jti: randomUUID() });
    const statuses = await Promise.all([1, 2, 3].map(async () => (await post(tokenForm(jwt))).status));
    expect(statuses.sort()).toEqual([200, 400, 400]);
  });

  it('rejects a kid that matches two keys', async () => {
    const twin = await makeKey('RS384', rs.publicJwk.kid);
    server.registerClient({ clientId: 'twin-client', jwks: { keys: [rs.publicJwk, twin.publicJwk] } });
    await expectInvalidClient(await assertion(rs, 'twin-client'), /matches 2 keys in the JWK Set; it must be unique$/);
  });

  it("rejects a signature whose alg the key's own alg, use or key_ops forbid (RFC 7517 §4.2–4.4), as the bridge publishes them", async () => {
    const published = { ...rs.publicJwk, alg: 'RS384', use: 'sig' };
    server.registerClient({ clientId: 'pinned-client', jwks: { keys: [published] } });
    // A CryptoKey is bound to one hash; a KeyObject of the same key signs with any RS alg.
    const anyHash = createPrivateKey({ key: (await exportJWK(rs.privateKey)) as JsonWebKey, format: 'jwk' });
    const signed = (alg: string): Promise<string> =>
      new SignJWT(claims('pinned-client')).setProtectedHeader({ alg, kid: rs.publicJwk.kid as string, typ: 'JWT' }).sign(anyHash);
    expect((await post(tokenForm(await signed('RS384')))).status).toBe(200);
    await expectInvalidClient(await signed('RS256'), /^alg RS256 is not the alg RS384 registered for key ".+"$/);
    await expectInvalidClient(await signed('RS512'), /^alg RS512 is not the alg RS384 registered for key ".+"$/);
    server.registerClient({ clientId: 'enc-client', jwks: { keys: [{ ...rs.publicJwk, use: 'enc' }] } });
    await expectInvalidClient(await assertion(rs, 'enc-client'), /^key ".+" is not a signing key \(use enc\)$/);
    server.registerClient({ clientId: 'ops-client', jwks: { keys: [{ ...rs.publicJwk, key_ops: ['encrypt'] }] } });
    await expectInvalidClient(await assertion(rs, 'ops-client'), /^key ".+" does not allow verify \(key_ops\)$/);
  });

  it('rejects client_id that differs from the assertion iss', async () => {
    const answer = await post(tokenForm(await assertion(rs, 'rs-client'), { client_id: 'es-client' }));
    expect(answer.body).toEqual({ error: 'invalid_client', error_description: 'client_id does not match the assertion iss' });
  });
});

describe('Epic-like token server: request rules (Epic "OAuth 2.0 Errors")', () => {
  it.each([
    ['GET', 'invalid_request', { method: 'GET' }, {}, /accepts POST only, got GET/],
    [
      'JSON body',
      'invalid_request',
      { contentType: 'application/json' },
      {},
      /content-type must be application\/x-www-form-urlencoded, got "application\/json"/,
    ],
    ['query string on /token', 'invalid_request', { url: 'QUERY' }, {}, /must not carry a query string/],
    ['missing grant_type', 'invalid_request', {}, { grant_type: '' }, /^grant_type is missing$/],
    ['other grant_type', 'unsupported_grant_type', {}, { grant_type: 'authorization_code' }, /"authorization_code" is not supported/],
    ['wrong client_assertion_type', 'invalid_request', {}, { client_assertion_type: 'not_an_assertion_type' }, /client_assertion_type must be urn:ietf/],
    ['missing client_assertion', 'invalid_request', {}, { client_assertion: '' }, /^client_assertion is missing$/],
  ] as const)('%s → %s', async (_name, error, init, change, description) => {
    const form: Record<string, string> = tokenForm(await assertion(rs, 'rs-client'));
    for (const [name, value] of Object.entries(change)) {
      if (value === '') delete form[name];
      else form[name] = value;
    }
    const url = 'url' in init ? `${server.tokenUrl}?grant_type=client_credentials` : server.tokenUrl;
    const answer = await post(form, { ...init, url });
    expect(answer.status).toBe(400);
    expect(answer.body['error']).toBe(error);
    expect(String(answer.body['error_description'])).toMatch(description);
  });

  it('rejects a repeated parameter (RFC 6749 §3.2) and answers 404 elsewhere', async () => {
    const jwt = await assertion(rs, 'rs-client');
    const body = `${new URLSearchParams(tokenForm(jwt)).toString()}&grant_type=client_credentials`;
    const response = await fetch(server.tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(await response.json()).toEqual({ error: 'invalid_request', error_description: 'parameter grant_type is repeated (RFC 6749 §3.2)' });
    expect((await fetch(`${server.origin}/oauth2/token`, { method: 'POST' })).status).toBe(404);
  });
});

describe('Epic-like token server: scopes', () => {
  it('refuses scopes outside the registered ones with invalid_scope', async () => {
    const answer = await post(tokenForm(await assertion(rs, 'scoped-client'), { scope: 'system/AuditEvent.read system/Binary.read' }));
    expect(answer.body).toEqual({ error: 'invalid_scope', error_description: 'scope system/Binary.read is not registered for this client' });
  });

  it('terseErrors answers error_description null, as Epic does, with the same error code', async () => {
    const terse = await startEpicAuthServer({ clock, terseErrors: true });
    try {
      terse.registerClient({ clientId: 'scoped-client', jwks: { keys: [rs.publicJwk] }, scopes: ['system/Patient.read'] });
      const jwt = await signRaw(rs.privateKey, { alg: 'RS384', kid: rs.publicJwk.kid, typ: 'JWT' }, { ...claims('scoped-client'), aud: terse.tokenUrl });
      const answer = await post(tokenForm(jwt, { scope: 'system/AuditEvent.read' }), { url: terse.tokenUrl });
      expect([answer.status, answer.body]).toEqual([400, { error: 'invalid_scope', error_description: null }]);
      expect(terse.stats.lastError).toBe('invalid_scope: scope system/AuditEvent.read is not registered for this client');
    } finally {
      await terse.close();
    }
  });

  it('treats v2 .rs as the v1 .read it maps to, and grants the registered scopes when none are requested', async () => {
    expect((await post(tokenForm(await assertion(rs, 'scoped-client'), { scope: 'system/AuditEvent.rs' }))).body['scope']).toBe('AuditEvent.rs');
    expect((await post(tokenForm(await assertion(rs, 'scoped-client')))).body['scope']).toBe('AuditEvent.read Patient.read');
  });
});

describe('Epic-like token server: JWK Set URL caching (Epic: Cache-Control, refetch on unknown kid)', () => {
  it('fetches a new kid at once, keeps honouring a removed key until max-age passes, and reports an unreachable URL', async () => {
    const next = await makeKey('ES384');
    served = { keys: [es.publicJwk, next.publicJwk] };
    expect((await post(tokenForm(await assertion(es, 'es-client')))).status).toBe(200); // primes the cache with both keys
    served = { keys: [next.publicJwk] };
    expect((await post(tokenForm(await assertion(es, 'es-client')))).status).toBe(200); // still cached
    await clock.advance(61_000);
    await expectInvalidClient(await assertion(es, 'es-client'), /^kid ".+" is not in the client's registered JWK Set$/);
    expect((await post(tokenForm(await assertion(next, 'es-client')))).status).toBe(200);

    jwksCacheControl = 'no-store';
    const later = await makeKey('ES384');
    served = { keys: [next.publicJwk, later.publicJwk] };
    expect((await post(tokenForm(await assertion(later, 'es-client')))).status).toBe(200);
    await jwksHost.close();
    await expectInvalidClient(await assertion(later, 'es-client'), /^the registered JWK Set URL could not be fetched/);
  });
});

/**
 * createSmartTokenSource end to end against the Epic-like sandbox token server over loopback: success with both
 * algorithms, every rejection surfacing as the right typed error, clock-skew recovery, and transient retries.
 */
import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offsetClock } from '../../src/clock.js';
import { type EpicAuthServer, startEpicAuthServer } from '../../src/sandbox/epic-auth.js';
import { createSmartTokenSource, type SigningKey, type SmartTokenOptions } from '../../src/smart/index.js';
import { rejectionOf } from '../support/error-of.js';
import { InstantClock, ManualClock } from '../support/manual-clock.js';
import { captureLogger, decodeParts, formOf, jwksUrlFor, makeKey, sendJson, signRaw, startStubServer, type TestKey } from './support.js';

const SCOPE = 'system/AuditEvent.read system/Patient.read system/Practitioner.read';
let clock: ManualClock;
let server: EpicAuthServer;
let rs: TestKey;
let es: TestKey;
let ecOnly: TestKey;
let stranger: TestKey;
let bridgeKeys: { url: string; close(): Promise<void> };

beforeAll(async () => {
  // A quarter second past the full second, so the Date header (whole seconds) differs from the clock in a known way.
  clock = new ManualClock('2026-11-01T08:00:00.250Z');
  server = await startEpicAuthServer({ clock });
  [rs, es, ecOnly, stranger] = await Promise.all([makeKey('RS384'), makeKey('ES384'), makeKey('ES384'), makeKey('RS384')]);
  bridgeKeys = await jwksUrlFor([rs.publicJwk, es.publicJwk, ecOnly.publicJwk]);
  server.registerClient({ clientId: 'bridge-np', jwksUrl: bridgeKeys.url });
  server.registerClient({ clientId: 'scoped', jwks: { keys: [rs.publicJwk] }, scopes: ['system/AuditEvent.read'] });
});

afterAll(async () => {
  await Promise.all([server.close(), bridgeKeys.close()]);
});

function source(overrides: Partial<SmartTokenOptions> & { key: SigningKey | (() => Promise<SigningKey>) }) {
  const log = captureLogger();
  const tokens = createSmartTokenSource({
    fhirBaseUrl: 'http://127.0.0.1:9/unused',
    tokenUrl: server.tokenUrl,
    clientId: 'bridge-np',
    scope: SCOPE,
    clock,
    logger: log.logger,
    ...overrides,
  });
  return { tokens, log };
}

/** Posts what the source built, but with `client_assertion` swapped for a hand-made bad one: the server's real verdict comes back. */
function swapAssertion(build: () => Promise<string>): typeof fetch {
  return async (input, init) => {
    const form = new URLSearchParams(String(init?.body));
    form.set('client_assertion', await build());
    return fetch(input, { ...init, body: form.toString() });
  };
}

function claims(overrides: JWTPayload = {}): JWTPayload {
  const now = Math.floor(clock.now() / 1000);
  return { iss: 'bridge-np', sub: 'bridge-np', aud: server.tokenUrl, jti: randomUUID(), iat: now - 30, nbf: now - 30, exp: now + 240, ...overrides };
}

function signed(key: TestKey, overrides: JWTPayload = {}): Promise<string> {
  return signRaw(key.privateKey, { alg: key.signingKey.alg, kid: key.publicJwk.kid, typ: 'JWT' }, claims(overrides));
}

describe('createSmartTokenSource against the Epic-like server', () => {
  it.each(['RS384', 'ES384'] as const)("%s: gets a token the server recognises, reading Epic's prefix-less scope echo as granted", async (alg) => {
    const { tokens, log } = source({ key: alg === 'RS384' ? rs.signingKey : es.signingKey });
    const token = await tokens.getToken();
    expect(server.verifyAccessToken(token)).toEqual({ clientId: 'bridge-np', scope: 'AuditEvent.read Patient.read Practitioner.read' });
    expect(log.lines.filter((l) => Number(l['level']) >= 40)).toEqual([]);
    expect(log.lines).toContainEqual(
      expect.objectContaining({ msg: 'SMART access token issued', kid: alg === 'RS384' ? rs.publicJwk.kid : es.publicJwk.kid, alg, expiresInSec: 3600 }),
    );
  });

  const now = (): number => Math.floor(clock.now() / 1000);
  const rejected: Array<[string, () => Promise<string>, string]> = [
    ['bad signature', () => signRaw(stranger.privateKey, { alg: 'RS384', kid: rs.publicJwk.kid, typ: 'JWT' }, claims()), 'signature is invalid'],
    ['unknown kid', () => signed(stranger), `kid "${'KID'}" is not in the client's registered JWK Set`],
    ['wrong aud', () => signed(rs, { aud: 'https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token' }), 'aud must be exactly the token URL TOKEN_URL'],
    ['exp > 300 s ahead', () => signed(rs, { iat: now(), nbf: now(), exp: now() + 301 }), 'exp is more than 300 seconds in the future'],
    ['numeric jti', () => signed(rs, { jti: 42 as unknown as string }), 'jti must be a string, got number'],
    ['jti > 151 characters', () => signed(rs, { jti: 'j'.repeat(152) }), 'jti must be 1-151 characters, got 152'],
    ['iat in the future', () => signed(rs, { iat: now() + 5 }), 'iat is in the future'],
    [
      'RS alg with an EC key',
      () => signRaw(rs.privateKey, { alg: 'RS384', kid: ecOnly.publicJwk.kid, typ: 'JWT' }, claims()),
      'alg RS384 is inconsistent with key "KID" (kty EC, crv P-384)',
    ],
    ['expired assertion', () => signed(rs, { iat: now() - 400, nbf: now() - 400, exp: now() - 200 }), 'exp is not in the future (the assertion expired)'],
  ];

  it.each(rejected)("%s: the server refuses it and the source throws BRG_ERR_SMART_INVALID_CLIENT with the server's reason", async (_name, build, reason) => {
    const before = server.stats.rejected;
    const { tokens, log } = source({ key: rs.signingKey, fetch: swapAssertion(build) });
    const error = await rejectionOf(tokens.getToken());
    const expected = reason.replace('TOKEN_URL', server.tokenUrl).replace('KID', _name === 'unknown kid' ? stranger.publicJwk.kid : ecOnly.publicJwk.kid);
    expect(error.code).toBe('BRG_ERR_SMART_INVALID_CLIENT');
    expect(error.details).toEqual({ status: 400, error: 'invalid_client', error_description: expected, transient: false });
    expect(error.message).toBe(
      `${server.tokenUrl} answered HTTP 400 (invalid_client: ${expected}). Check that client id "bridge-np" is the one for this environment ` +
        `(Epic lists a production and a non-production id); that kid ${rs.publicJwk.kid} is in the JWK Set registered for it (new keys can take a while to sync); ` +
        "that the JWK Set URL is reachable over TLS without authentication; and that this host's clock is correct.",
    );
    expect(server.stats.rejected).toBe(before + 1); // invalid_client with synchronised clocks is never retried
    expect(server.stats.lastError).toBe(`invalid_client: ${expected}`);
    for (const text of [error.message, JSON.stringify(error.details), ...log.raw]) expect(text).not.toMatch(/eyJ[\w-]+\.eyJ/);
  });

  it('a reused jti (same IdSource value after invalidate) is refused as a replay', async () => {
    const { tokens } = source({ key: rs.signingKey, newJti: () => 'always-the-same-jti' });
    const first = await tokens.getToken();
    tokens.invalidate(first);
    const error = await rejectionOf(tokens.getToken());
    expect(error.code).toBe('BRG_ERR_SMART_INVALID_CLIENT');
    expect(error.details['error_description']).toBe('jti was already used before its exp (replay)');
  });

  it('a key the server does not know and an unregistered scope surface as typed errors without tampering', async () => {
    const unknownKey = await rejectionOf(source({ key: stranger.signingKey }).tokens.getToken());
    expect([unknownKey.code, unknownKey.details['error_description']]).toEqual([
      'BRG_ERR_SMART_INVALID_CLIENT',
      `kid "${stranger.publicJwk.kid}" is not in the client's registered JWK Set`,
    ]);

    const scope = await rejectionOf(source({ key: rs.signingKey, clientId: 'scoped' }).tokens.getToken());
    expect(scope.code).toBe('BRG_ERR_SMART_INVALID_SCOPE');
    expect(scope.message).toContain(
      `The requested scopes (smart.scope) are "${SCOPE}"; remove system/Patient.read system/Practitioner.read: the server's answer names them.`,
    );

    const query = await rejectionOf(source({ key: rs.signingKey, tokenUrl: `${server.tokenUrl}?x=1` }).tokens.getToken());
    expect([query.code, query.details['error_description']]).toEqual([
      'BRG_ERR_SMART_INVALID_REQUEST',
      'the token URL must not carry a query string; send parameters in the body',
    ]);
  });
});

describe('clock skew', () => {
  it('a client clock 2 minutes fast measures the skew from the Date header and retries once with a corrected clock', async () => {
    const { issued, rejected } = server.stats;
    const { tokens, log } = source({ key: es.signingKey, clock: offsetClock(120_000, clock) });
    const token = await tokens.getToken();
    expect(server.verifyAccessToken(token)?.clientId).toBe('bridge-np');
    expect([server.stats.issued - issued, server.stats.rejected - rejected]).toEqual([1, 1]);
    // iat = now − 30 is 90 s ahead of the server and exp = now + 240 is 360 s ahead; the server names the first rule it checks.
    expect(server.stats.lastError).toBe('invalid_client: exp is more than 300 seconds in the future');
    // Date header 08:00:00 + 0.5 s midpoint − client time 08:02:00.250 = −119.75 s
    expect(log.lines.filter((l) => l['level'] === 40)).toEqual([
      expect.objectContaining({
        skewMs: -119_750,
        tokenUrl: server.tokenUrl,
        msg: 'SMART token endpoint rejected the assertion and its clock differs from ours; retrying once with its time',
      }),
    ]);
    for (const line of log.raw) expect(line).not.toMatch(/eyJ/);

    tokens.invalidate(token); // the learnt offset is kept: the next refresh succeeds first time
    await tokens.getToken();
    expect([server.stats.issued - issued, server.stats.rejected - rejected]).toEqual([2, 1]);
  });

  it('a client clock 10 minutes slow (assertion already expired at the server) recovers the same way', async () => {
    const { rejected } = server.stats;
    const { tokens } = source({ key: rs.signingKey, clock: offsetClock(-600_000, clock) });
    expect(server.verifyAccessToken(await tokens.getToken())).toBeDefined();
    expect(server.stats.rejected - rejected).toBe(1);
  });

  // With clockSkewSec 0 or 1, iat is within a second or two of the server's time: an unknown kid is still no clock problem.
  it.each([0, 1])('clockSkewSec %i with synchronised clocks: an unknown key is refused once, not blamed on the clock', async (skewSec) => {
    const { rejected } = server.stats;
    const { tokens, log } = source({ key: stranger.signingKey, skewSec, lifetimeSec: 290 - skewSec });
    const error = await rejectionOf(tokens.getToken());
    expect(error.code).toBe('BRG_ERR_SMART_INVALID_CLIENT');
    expect(server.stats.rejected - rejected).toBe(1);
    expect(log.lines.filter((l) => String(l['msg']).includes('clock differs'))).toEqual([]);
  });

  it('retries at most once: a skewed client with an unknown key gets the typed error after two rejections', async () => {
    const { rejected } = server.stats;
    const error = await rejectionOf(source({ key: stranger.signingKey, clock: offsetClock(120_000, clock) }).tokens.getToken());
    expect(error.code).toBe('BRG_ERR_SMART_INVALID_CLIENT');
    expect(server.stats.rejected - rejected).toBe(2);
  });
});

describe('transient failures', () => {
  it('retries 503 and 429 (honouring Retry-After) with a new assertion each time, then succeeds', async () => {
    const answers: Array<[number, unknown, Record<string, string>]> = [
      [503, { error: 'temporarily_unavailable' }, {}],
      [429, {}, { 'retry-after': '7' }],
      [200, { access_token: 'opaque-token', token_type: 'Bearer', expires_in: 3600, scope: 'AuditEvent.read Patient.read Practitioner.read' }, {}],
    ];
    const stub = await startStubServer((_request, response) => {
      const [status, body, headers] = answers.shift() ?? [500, {}, {}];
      sendJson(response, status, body, headers);
    });
    const instant = new InstantClock();
    const { tokens, log } = source({ key: es.signingKey, tokenUrl: `${stub.origin}/token`, clock: instant, newJti: randomUUID });
    expect(await tokens.getToken()).toBe('opaque-token');
    await stub.close();

    const forms = stub.requests.map((r) => formOf(r.body));
    expect(forms.map((f) => [f['grant_type'], f['client_assertion_type'], f['scope']])).toEqual(
      Array(3).fill(['client_credentials', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', SCOPE]),
    );
    const jtis = forms.map((f) => decodeParts(f['client_assertion'] ?? '').claims['jti']);
    expect(new Set(jtis).size).toBe(3);
    expect(instant.slept[1]).toBe(7_000);
    expect(log.lines.filter((l) => l['msg'] === 'SMART token request failed; retrying with a new assertion').map((l) => l['reason'])).toEqual([
      'HTTP 503',
      'HTTP 429',
    ]);
  });

  it("waits out discovery's Retry-After (a 503 from the FHIR server's smart-configuration) before it asks again", async () => {
    let discoveries = 0;
    const stub = await startStubServer((request, response) => {
      if (request.url === '/fhir/.well-known/smart-configuration') {
        discoveries += 1;
        if (discoveries === 1) return sendJson(response, 503, {}, { 'retry-after': '9' });
        return sendJson(response, 200, { token_endpoint: `${stub.origin}/token`, token_endpoint_auth_methods_supported: ['private_key_jwt'] });
      }
      if (request.url === '/fhir/metadata') return sendJson(response, 503, {}, { 'retry-after': '4' });
      return sendJson(response, 200, { access_token: 'discovered', token_type: 'Bearer', expires_in: 3600, scope: SCOPE });
    });
    const instant = new InstantClock();
    const tokens = createSmartTokenSource({
      fhirBaseUrl: `${stub.origin}/fhir`,
      clientId: 'bridge-np',
      scope: SCOPE,
      key: es.signingKey,
      clock: instant,
      logger: captureLogger().logger,
    });
    expect(await tokens.getToken()).toBe('discovered');
    await stub.close();
    expect(discoveries).toBe(2);
    // The longer of the two probes' Retry-After: asking before it meets the same answer.
    expect(instant.slept).toEqual([9_000]);
  });

  it('retries a network failure, and maps unauthorized_client, invalid_grant and an unusable 200 to their codes', async () => {
    let calls = 0;
    const flaky: typeof fetch = async (input, init) => {
      calls += 1;
      if (calls === 1) throw new TypeError('fetch failed');
      return fetch(input, init);
    };
    const { tokens } = source({ key: rs.signingKey, fetch: flaky, clock: new InstantClock(clock.now()) });
    expect(server.verifyAccessToken(await tokens.getToken())).toBeDefined();
    expect(calls).toBe(2);

    const cases: Array<[number, unknown, string]> = [
      [400, { error: 'unauthorized_client', error_description: null }, 'BRG_ERR_SMART_UNAUTHORIZED_CLIENT'],
      [400, { error: 'invalid_grant' }, 'BRG_ERR_SMART_INVALID_CLIENT'],
      [400, { error: 'unsupported_grant_type' }, 'BRG_ERR_SMART_TOKEN'],
      [200, { access_token: 'x', token_type: 'mac', expires_in: 60 }, 'BRG_ERR_SMART_TOKEN'],
      // A token that cannot go into a header is refused without being quoted (Node's header error would quote it).
      [200, { access_token: 'eyJSECRET\nPART2', token_type: 'Bearer', expires_in: 60 }, 'BRG_ERR_SMART_TOKEN'],
      [200, { access_token: 'eyJSECRET PART2', token_type: 'Bearer', expires_in: 60 }, 'BRG_ERR_SMART_TOKEN'],
    ];
    for (const [status, body, code] of cases) {
      // The stub's Date agrees with the client clock, so no rejection here looks like clock skew.
      const stub = await startStubServer((_request, response) => sendJson(response, status, body, { date: new Date(clock.now()).toUTCString() }));
      const error = await rejectionOf(source({ key: rs.signingKey, tokenUrl: `${stub.origin}/token` }).tokens.getToken());
      await stub.close();
      expect(error.code).toBe(code);
      expect(error.message).not.toContain('SECRET');
      expect(stub.requests).toHaveLength(1);
    }
  });

  it('stops at once when the caller aborts', async () => {
    const { issued, rejected } = server.stats;
    const controller = new AbortController();
    controller.abort();
    const error: unknown = await source({ key: rs.signingKey })
      .tokens.getToken(controller.signal)
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe('AbortError');
    expect([server.stats.issued, server.stats.rejected]).toEqual([issued, rejected]);
  });
});

/** buildAssertion: exact header and claims, the Epic time rules, and a signature that verifies with the public key. */
import { importJWK, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { type AssertionInput, assertionClaims, buildAssertion } from '../../src/smart/index.js';
import { decodeParts, makeKey, type TestKey } from './support.js';

const TOKEN_URL = 'https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token';
let es: TestKey;
let rs: TestKey;

beforeAll(async () => {
  [es, rs] = await Promise.all([makeKey('ES384'), makeKey('RS384')]);
});

function input(overrides: Partial<AssertionInput> = {}): AssertionInput {
  return { key: es.signingKey, clientId: 'client-1', tokenUrl: TOKEN_URL, jti: 'jti-1', nowSec: 1_800_000_000.9, ...overrides };
}

describe('buildAssertion', () => {
  it('signs {alg, kid, typ: JWT} over iss = sub = client id, aud = token URL, iat = nbf = now − 30, exp = now + 240', async () => {
    const jwt = await buildAssertion(input());
    const { header, claims } = decodeParts(jwt);
    expect(header).toEqual({ alg: 'ES384', kid: es.publicJwk.kid, typ: 'JWT' });
    expect(claims).toEqual({ iss: 'client-1', sub: 'client-1', aud: TOKEN_URL, jti: 'jti-1', iat: 1_799_999_970, nbf: 1_799_999_970, exp: 1_800_000_240 });
    const verified = await jwtVerify(jwt, await importJWK(es.publicJwk, 'ES384'), { currentDate: new Date(1_800_000_000_000) });
    expect(verified.payload.jti).toBe('jti-1');
  });

  it('signs RS384 and carries jku when given; lifetime and skew are configurable', async () => {
    const jwt = await buildAssertion(input({ key: rs.signingKey, jku: 'https://bridge.example.org/.well-known/jwks.json', lifetimeSec: 120, skewSec: 0 }));
    const { header, claims } = decodeParts(jwt);
    expect(header).toEqual({ alg: 'RS384', kid: rs.publicJwk.kid, typ: 'JWT', jku: 'https://bridge.example.org/.well-known/jwks.json' });
    expect([claims['iat'], claims['nbf'], claims['exp']]).toEqual([1_800_000_000, 1_800_000_000, 1_800_000_120]);
    await expect(jwtVerify(jwt, await importJWK(rs.publicJwk, 'RS384'), { currentDate: new Date(1_800_000_000_000) })).resolves.toBeTruthy();
  });

  it("enforces exp − iat ≤ 300 (lifetime + skew) and Epic's jti length", () => {
    expect(assertionClaims(input({ lifetimeSec: 270, skewSec: 30 })).exp - assertionClaims(input({ lifetimeSec: 270, skewSec: 30 })).iat).toBe(300);
    const tooLong = (): unknown => assertionClaims(input({ lifetimeSec: 271, skewSec: 30 }));
    expect(tooLong).toThrow(BridgeError);
    expect(tooLong).toThrow(
      'smart.assertionLifetimeSec (271) + smart.clockSkewSec (30) must be whole seconds with a sum ≤ 300: Epic rejects exp − iat > 5 minutes.',
    );
    expect(() => assertionClaims(input({ jti: 'x'.repeat(152) }))).toThrow('The assertion jti must be 1-151 characters, got 152.');
    expect(() => assertionClaims(input({ jti: 'x'.repeat(151) }))).not.toThrow();
    expect(() => assertionClaims(input({ tokenUrl: '/oauth2/token' }))).toThrow('smart.tokenUrl must be an absolute URL, got "/oauth2/token".');
  });
});

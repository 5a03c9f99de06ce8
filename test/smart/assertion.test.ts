/** buildAssertion: exact header and claims, the Epic time rules, and a signature that verifies with the public key. */
import { importJWK, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { BridgeError } from '../../src/errors.js';
import { type AssertionInput, assertionClaims, buildAssertion } from '../../src/smart/index.js';
import { errorOf } from '../support/error-of.js';
import { MINIMAL_CONFIG } from '../support/minimal-config.js';
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

describe("exp − now keeps a margin under Epic's 5 minutes (Epic checks exp by its own clock, with no leeway)", () => {
  const load = (assertionLifetimeSec: number, clockSkewSec: number) =>
    loadConfig({
      base: MINIMAL_CONFIG,
      env: {},
      flags: { 'connectors.0.smart.assertionLifetimeSec': assertionLifetimeSec, 'connectors.0.smart.clockSkewSec': clockSkewSec },
    });

  it('the config refuses a lifetime of 300 s with a skew of 0 s, naming both keys; 290/0 and 270/30 load', () => {
    for (const [lifetime, skew] of [
      [300, 0],
      [295, 5],
      [291, 0],
    ] as const) {
      const error = errorOf(() => load(lifetime, skew));
      expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
      expect(error.message).toContain('connectors.0.smart.assertionLifetimeSec');
      expect(error.message).toContain('smart.clockSkewSec');
      expect(error.message).toContain('at most 290');
    }
    expect(load(290, 0).connectors[0]?.smart).toMatchObject({ assertionLifetimeSec: 290, clockSkewSec: 0 });
    expect(load(270, 30).connectors[0]?.smart).toMatchObject({ assertionLifetimeSec: 270, clockSkewSec: 30 });
  });

  it('the assertion builder refuses exp − now above 290 s whatever the skew', () => {
    expect(() => assertionClaims(input({ lifetimeSec: 300, skewSec: 0 }))).toThrow(
      'smart.assertionLifetimeSec (300) with smart.clockSkewSec (0) must be ≤ 290: Epic rejects exp more than 5 minutes ahead of its own clock, with no leeway, so 10 s are kept for a clock running ahead.',
    );
    const claims = assertionClaims(input({ lifetimeSec: 290, skewSec: 0 }));
    expect(claims.exp - Math.floor(input().nowSec)).toBe(290);
  });
});

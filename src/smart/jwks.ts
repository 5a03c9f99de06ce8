/**
 * Public JWK helpers: which algorithms we sign with, how a private key's public half is published, and whether a
 * key fits an algorithm. The published set must never carry private members (RFC 7517 §9.3), so members are
 * copied from an allow-list rather than deleted from a deny-list.
 * See: https://build.fhir.org/ig/HL7/smart-app-launch/client-confidential-asymmetric.html
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint } from 'jose';

/** SMART STU 2.2: "The client SHALL support both RS384 and ES384". */
export type SigningAlg = 'RS384' | 'ES384';

/** Published JWKs always carry a kid (SMART: "Every JWK SHALL have kty and kid"). */
export type PublishedJwk = JsonWebKey & { kty: string; kid: string };

export const SIGNING_ALGS: readonly SigningAlg[] = ['RS384', 'ES384'];

/** The only members a published key may have; d, p, q, dp, dq, qi and oth can never slip through. */
const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'key_ops', 'n', 'e', 'crv', 'x', 'y'] as const;

export function isSigningAlg(value: unknown): value is SigningAlg {
  return value === 'RS384' || value === 'ES384';
}

/** Copies only public members of a JWK. */
export function toPublicJwk(jwk: JsonWebKey): JsonWebKey {
  const entries = PUBLIC_MEMBERS.flatMap((member) => (jwk[member] === undefined ? [] : [[member, jwk[member]] as const]));
  // Every copied member keeps the type it had in `jwk`, so the result is still a JsonWebKey.
  return Object.fromEntries(entries) as JsonWebKey;
}

/** The public JWK of a private key, with kid = RFC 7638 thumbprint (SHA-256, base64url), alg and use=sig. */
export async function publicJwkOf(privateKey: KeyObject, alg: SigningAlg): Promise<PublishedJwk> {
  const bare = toPublicJwk(createPublicKey(privateKey).export({ format: 'jwk' }));
  const kty = bare.kty ?? '';
  // RFC 7638 §3.2: only the required members take part; calculateJwkThumbprint selects them by kty.
  const kid = await calculateJwkThumbprint({ ...bare, kty }, 'sha256');
  return { ...bare, kty, kid, alg, use: 'sig' };
}

/**
 * Why `key` cannot sign with `alg`, or undefined when it can. Epic: a P-384 key "can only be used with the
 * 'ES384' algorithm"; RSA keys under 2048 bits are refused by current crypto policy.
 */
export function keyMismatch(key: KeyObject, alg: SigningAlg): string | undefined {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (alg === 'RS384') {
    if (type !== 'rsa') return `alg RS384 needs an RSA key, found ${type ?? 'a non-asymmetric key'}`;
    if ((details.modulusLength ?? 0) < 2048) return `RSA key is ${details.modulusLength ?? '?'} bits; at least 2048 are needed`;
    return undefined;
  }
  if (type !== 'ec') return `alg ES384 needs an EC P-384 key, found ${type ?? 'a non-asymmetric key'}`;
  if (details.namedCurve !== 'secp384r1') return `alg ES384 needs curve P-384, found ${details.namedCurve ?? 'unknown'}`;
  return undefined;
}

/** The alg a published JWK is meant for: its own `alg`, else inferred from kty/crv. */
export function algOfJwk(jwk: JsonWebKey): SigningAlg | undefined {
  if (jwk.alg !== undefined) return isSigningAlg(jwk.alg) ? jwk.alg : undefined;
  if (jwk.kty === 'RSA') return 'RS384';
  if (jwk.kty === 'EC' && jwk.crv === 'P-384') return 'ES384';
  return undefined;
}

/** True when two public JWKs describe the same key material. */
export function samePublicKey(a: JsonWebKey, b: JsonWebKey): boolean {
  if (a.kty !== b.kty) return false;
  if (a.kty === 'RSA') return a.n === b.n && a.e === b.e;
  return a.crv === b.crv && a.x === b.x && a.y === b.y;
}

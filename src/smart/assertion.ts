/**
 * The client authentication JWT (SMART "client-confidential-asymmetric", RFC 7523 §3). Pure apart from signing:
 * the claims come from the inputs only, so tests and the skew correction can reason about exactly what was sent.
 *
 * Epic rules applied here (fhir.epic.com/Documentation?docId=oauth2, "Creating a JWT"): exp no more than 5 minutes
 * ahead (by Epic's clock, so exp − now stays EXP_MARGIN_SEC under it); iat and nbf not in the future; exp − iat and exp − nbf ≤ 300 s; jti a string of at most 151 characters.
 * iat = nbf = now − skew absorbs a client clock running slightly fast; exp = now + lifetime.
 */
import { SignJWT } from 'jose';
import { BridgeError } from '../errors.js';
import type { SigningKey } from './keys.js';

export const DEFAULT_ASSERTION_LIFETIME_SEC = 240;
export const DEFAULT_ASSERTION_SKEW_SEC = 30;
/** Epic: "the exp - iat difference cannot be greater than 5 minutes". */
export const MAX_ASSERTION_SPAN_SEC = 300;
/**
 * exp − now is kept this far under 5 minutes: Epic checks exp against its own clock with no leeway, so a client clock
 * 1 s ahead would break an assertion of exactly 300 s.
 */
export const EXP_MARGIN_SEC = 10;
/** Epic: jti "must be no longer than 151 characters". */
export const MAX_JTI_LENGTH = 151;

export interface AssertionInput {
  readonly key: SigningKey;
  /** The registered client id: iss and sub. */
  readonly clientId: string;
  /** The token endpoint the JWT is posted to; aud must equal it exactly. */
  readonly tokenUrl: string;
  /** Unique per assertion, never reused, including retries. */
  readonly jti: string;
  /** The client's notion of now, in epoch seconds (fractions are floored). */
  readonly nowSec: number;
  /** exp − now. Default 240 s. */
  readonly lifetimeSec?: number;
  /** iat and nbf are set this far before now to absorb clock skew. Default 30 s. */
  readonly skewSec?: number;
  /** JWK Set URL for the header; must equal the URL registered with the EHR. Omitted by default. */
  readonly jku?: string;
}

export interface AssertionClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly jti: string;
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
}

/** The claims `buildAssertion` signs, with every rule checked; throws BridgeError on bad input. */
export function assertionClaims(input: AssertionInput): AssertionClaims {
  const lifetime = input.lifetimeSec ?? DEFAULT_ASSERTION_LIFETIME_SEC;
  const skew = input.skewSec ?? DEFAULT_ASSERTION_SKEW_SEC;
  if (!Number.isInteger(lifetime) || lifetime < 1 || !Number.isInteger(skew) || skew < 0 || lifetime + skew > MAX_ASSERTION_SPAN_SEC) {
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      `smart.assertionLifetimeSec (${lifetime}) + smart.clockSkewSec (${skew}) must be whole seconds with a sum ≤ ${MAX_ASSERTION_SPAN_SEC}: Epic rejects exp − iat > 5 minutes.`,
    );
  }
  if (lifetime > MAX_ASSERTION_SPAN_SEC - EXP_MARGIN_SEC) {
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      `smart.assertionLifetimeSec (${lifetime}) with smart.clockSkewSec (${skew}) must be ≤ ${MAX_ASSERTION_SPAN_SEC - EXP_MARGIN_SEC}: Epic rejects exp more than 5 minutes ahead of its own clock, with no leeway, so ${EXP_MARGIN_SEC} s are kept for a clock running ahead.`,
    );
  }
  if (input.clientId.length === 0) throw new BridgeError('BRG_ERR_CONFIG_INVALID', 'smart.clientId is empty.');
  if (!URL.canParse(input.tokenUrl)) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `smart.tokenUrl must be an absolute URL, got "${input.tokenUrl}".`);
  }
  if (input.jti.length === 0 || input.jti.length > MAX_JTI_LENGTH) {
    throw new BridgeError('BRG_ERR_INTERNAL', `The assertion jti must be 1-${MAX_JTI_LENGTH} characters, got ${input.jti.length}.`);
  }
  const now = Math.floor(input.nowSec);
  const issuedAt = now - skew;
  return { iss: input.clientId, sub: input.clientId, aud: input.tokenUrl, jti: input.jti, iat: issuedAt, nbf: issuedAt, exp: now + lifetime };
}

/** Signs the client assertion: header {alg, kid, typ: 'JWT'[, jku]} over `assertionClaims(input)`. */
export async function buildAssertion(input: AssertionInput): Promise<string> {
  const claims = assertionClaims(input);
  const header = { alg: input.key.alg, kid: input.key.kid, typ: 'JWT', ...(input.jku === undefined ? {} : { jku: input.jku }) };
  return new SignJWT({ ...claims }).setProtectedHeader(header).sign(input.key.privateKey);
}

/**
 * The strict client-assertion check of the Epic-like token server: SMART STU 2.2 client-confidential-asymmetric
 * plus Epic's own JWT rules, with no leeway (fhir.epic.com/Documentation?docId=oauth2, "Creating a JWT"):
 * exp in the future and ≤ now+300; iat and nbf not in the future; nbf ≤ exp; exp−iat and exp−nbf ≤ 300;
 * jti a string ≤ 151 characters not seen before its exp. Each failure names the rule (Epic itself says null).
 */
import { decodeJwt, decodeProtectedHeader, errors, importJWK, type JWTPayload, jwtVerify, type ProtectedHeaderParameters } from 'jose';
import { invalidClient, type JwksResolver, type RegisteredClient } from './epic-auth-jwks.js';

/** Epic: RS256/RS384/RS512 for all confidential clients, ES256/ES384 for JWK Set URL clients. */
export const ACCEPTED_ALGS: readonly string[] = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384'];
const MAX_SPAN_SEC = 300;
const MAX_JTI_LENGTH = 151;

/** Remembers jti values per client until their assertion's exp (SMART: per iss, within the max JWT lifetime). */
export class JtiLedger {
  private readonly seen = new Map<string, Map<string, number>>();

  has(clientId: string, jti: string, nowSec: number): boolean {
    const ledger = this.seen.get(clientId);
    if (!ledger) return false;
    for (const [old, exp] of ledger) if (exp <= nowSec) ledger.delete(old);
    return ledger.has(jti);
  }

  remember(clientId: string, jti: string, exp: number): void {
    const ledger = this.seen.get(clientId) ?? new Map<string, number>();
    ledger.set(jti, exp);
    this.seen.set(clientId, ledger);
  }

  forget(clientId: string, jti: string): void {
    this.seen.get(clientId)?.delete(jti);
  }
}

export interface AssertionCheck {
  readonly tokenUrl: string;
  /** The server clock, epoch seconds. */
  readonly nowSec: number;
  readonly clients: ReadonlyMap<string, RegisteredClient>;
  readonly keys: JwksResolver;
  readonly jtis: JtiLedger;
}

/** Verifies a client assertion; returns the client it authenticates or throws invalid_client naming the rule. */
export async function verifyClientAssertion(jwt: string, check: AssertionCheck): Promise<RegisteredClient> {
  const header = decodeHeader(jwt);
  const alg = String(header.alg);
  if (!ACCEPTED_ALGS.includes(alg)) throw invalidClient(`header alg "${alg}" is not one of ${ACCEPTED_ALGS.join(', ')}`);
  if (header.typ !== undefined && header.typ !== 'JWT') throw invalidClient(`header typ must be "JWT", got "${String(header.typ)}"`);
  if (typeof header.kid !== 'string' || header.kid.length === 0) throw invalidClient('header kid is missing');
  const claims = decodeClaims(jwt);
  if (typeof claims.iss !== 'string') throw invalidClient('iss is missing');
  const client = check.clients.get(claims.iss);
  if (!client) throw invalidClient(`iss "${claims.iss}" is not a registered client_id`);
  if (header.jku !== undefined && header.jku !== client.jwksUrl) throw invalidClient('header jku does not match the JWK Set URL registered for this client');
  // Epic: "Epic does not support manual upload of Elliptic Curve public keys" (docs/epic-smart.md §2.2).
  if (alg.startsWith('ES') && client.jwksUrl === undefined) {
    throw invalidClient(`header alg ${alg} needs a JWK Set URL: Elliptic Curve keys are not accepted from a directly uploaded key set`);
  }

  const { jti, exp } = checkClaims(claims, check, client.clientId);
  // Taken before the first await: the same assertion posted twice at once is a replay too. Given back when the
  // assertion turns out not to be the client's (a signature that fails burns no jti).
  check.jtis.remember(client.clientId, jti, exp);
  try {
    let resolved = await check.keys.resolve(client, header.kid, alg);
    let valid = await signatureValid(jwt, resolved.jwk, alg, check.nowSec);
    if (!valid && resolved.fromCache) {
      // Epic refetches a JWK Set URL when the cached keys "did not verify your JWT".
      resolved = await check.keys.resolve(client, header.kid, alg, { fresh: true });
      valid = await signatureValid(jwt, resolved.jwk, alg, check.nowSec);
    }
    if (!valid) throw invalidClient('signature is invalid');
  } catch (error) {
    check.jtis.forget(client.clientId, jti);
    throw error;
  }
  return client;
}

function decodeHeader(jwt: string): ProtectedHeaderParameters {
  try {
    return decodeProtectedHeader(jwt);
  } catch {
    throw invalidClient('client_assertion is not a compact JWS');
  }
}

function decodeClaims(jwt: string): JWTPayload {
  try {
    return decodeJwt(jwt);
  } catch {
    throw invalidClient('client_assertion payload is not a JSON object');
  }
}

function checkClaims(claims: JWTPayload, check: AssertionCheck, clientId: string): { jti: string; exp: number } {
  const now = check.nowSec;
  if (claims.sub !== clientId) throw invalidClient('sub must equal iss (the client_id)');
  if (typeof claims.aud !== 'string' || claims.aud !== check.tokenUrl) throw invalidClient(`aud must be exactly the token URL ${check.tokenUrl}`);
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isInteger(exp)) throw invalidClient('exp must be an integer (epoch seconds)');
  if (exp <= now) throw invalidClient('exp is not in the future (the assertion expired)');
  if (exp > now + MAX_SPAN_SEC) throw invalidClient('exp is more than 300 seconds in the future');
  checkOptionalTime(claims.iat, 'iat', exp, now);
  checkOptionalTime(claims.nbf, 'nbf', exp, now);
  const jti: unknown = claims.jti;
  if (typeof jti !== 'string') throw invalidClient(`jti must be a string, got ${typeof jti === 'undefined' ? 'none' : typeof jti}`);
  if (jti.length === 0 || jti.length > MAX_JTI_LENGTH) throw invalidClient(`jti must be 1-${MAX_JTI_LENGTH} characters, got ${jti.length}`);
  if (check.jtis.has(clientId, jti, now)) throw invalidClient('jti was already used before its exp (replay)');
  return { jti, exp };
}

/** iat and nbf are optional; when present: not in the future, not after exp, at most 300 s before exp. */
function checkOptionalTime(value: unknown, name: 'iat' | 'nbf', exp: number, now: number): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidClient(`${name} must be a number (epoch seconds)`);
  if (value > now) throw invalidClient(`${name} is in the future`);
  if (value > exp) throw invalidClient(`${name} is after exp`);
  if (exp - value > MAX_SPAN_SEC) throw invalidClient(`exp - ${name} is more than 300 seconds`);
}

async function signatureValid(jwt: string, jwk: Parameters<typeof importJWK>[0], alg: string, nowSec: number): Promise<boolean> {
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK(jwk, alg);
  } catch (error) {
    throw invalidClient(`the registered key cannot be used with ${alg} (${(error as Error).message})`);
  }
  try {
    // The claim rules above are stricter than jose's; jwtVerify here settles the signature at the server's time.
    await jwtVerify(jwt, key, { algorithms: [alg], currentDate: new Date(nowSec * 1000) });
    return true;
  } catch (error) {
    if (error instanceof errors.JWSSignatureVerificationFailed) return false;
    throw invalidClient(`jwtVerify failed: ${(error as Error).message}`);
  }
}

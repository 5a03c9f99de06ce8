/**
 * Key resolution for the Epic-like token server: the registered JWK Set, or the registered JWK Set URL fetched and
 * cached the way Epic documents it ("default and maximum cache time is 29 hours", overridable by Cache-Control;
 * refetched "only if the cached keys are expired or did not verify your JWT").
 * Selection follows SMART: the single key whose kid matches and whose kty fits the alg, else the assertion fails.
 * See: https://build.fhir.org/ig/HL7/smart-app-launch/client-confidential-asymmetric.html#signature-verification
 */
import type { JsonWebKey } from 'node:crypto';
import type { Clock } from '../clock.js';

/** Why the server refuses; becomes the RFC 6749 §5.2 error body. */
export class TokenEndpointError extends Error {
  override readonly name = 'TokenEndpointError';
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(`${error}: ${description}`);
  }
}

export function invalidClient(description: string): TokenEndpointError {
  return new TokenEndpointError('invalid_client', description);
}

export interface RegisteredClient {
  readonly clientId: string;
  readonly jwks?: { keys: JsonWebKey[] };
  readonly jwksUrl?: string;
  readonly scopes?: string[];
}

export interface ResolvedKey {
  readonly jwk: JsonWebKey;
  /** True when the key came from a cached copy of the JWK Set URL (a failed signature then earns one refetch). */
  readonly fromCache: boolean;
}

export interface JwksResolver {
  resolve(client: RegisteredClient, kid: string, alg: string, options?: { fresh?: boolean }): Promise<ResolvedKey>;
}

/** Epic: "Epic's default and maximum cache time is 29 hours". */
export const MAX_JWKS_CACHE_MS = 29 * 3_600_000;
const JWKS_FETCH_TIMEOUT_MS = 5_000;

/** kty (and crv) each JWS alg needs (RFC 7518 §3.1). */
const KEY_SHAPE: Readonly<Record<string, { kty: string; crv?: string }>> = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
};

export function createJwksResolver(options: { clock: Clock; fetch?: typeof fetch }): JwksResolver {
  const cache = new Map<string, { keys: JsonWebKey[]; expiresAtMs: number }>();
  const doFetch = options.fetch ?? fetch;

  const keysFromUrl = async (url: string, kid: string, fresh: boolean): Promise<{ keys: JsonWebKey[]; fromCache: boolean }> => {
    const cached = cache.get(url);
    const usable = !fresh && cached !== undefined && cached.expiresAtMs > options.clock.now();
    if (usable && cached.keys.some((k) => k.kid === kid)) return { keys: cached.keys, fromCache: true };
    const fetched = await fetchJwks(doFetch, url);
    const ttl = cacheLifetimeMs(fetched.cacheControl);
    if (ttl > 0) cache.set(url, { keys: fetched.keys, expiresAtMs: options.clock.now() + ttl });
    else cache.delete(url);
    return { keys: fetched.keys, fromCache: false };
  };

  return {
    async resolve(client, kid, alg, resolveOptions = {}) {
      const source =
        client.jwksUrl === undefined
          ? { keys: client.jwks?.keys ?? [], fromCache: false }
          : await keysFromUrl(client.jwksUrl, kid, resolveOptions.fresh === true);
      return { jwk: selectKey(source.keys, kid, alg), fromCache: source.fromCache };
    },
  };
}

function selectKey(keys: readonly JsonWebKey[], kid: string, alg: string): JsonWebKey {
  const matches = keys.filter((k) => k.kid === kid);
  if (matches.length === 0) throw invalidClient(`kid "${kid}" is not in the client's registered JWK Set`);
  if (matches.length > 1) throw invalidClient(`kid "${kid}" matches ${matches.length} keys in the JWK Set; it must be unique`);
  const jwk = matches[0] as JsonWebKey;
  const shape = KEY_SHAPE[alg];
  if (shape === undefined || jwk.kty !== shape.kty || (shape.crv !== undefined && jwk.crv !== shape.crv)) {
    throw invalidClient(`alg ${alg} is inconsistent with key "${kid}" (kty ${String(jwk.kty)}${jwk.crv ? `, crv ${jwk.crv}` : ''})`);
  }
  // RFC 7517 §4.2–4.4: a key's own alg, use and key_ops limit what it may verify. An RS384 key must not accept an RS256
  // or RS512 signature, nor an encryption key any signature.
  if (jwk.alg !== undefined && jwk.alg !== alg) throw invalidClient(`alg ${alg} is not the alg ${jwk.alg} registered for key "${kid}"`);
  if (jwk.use !== undefined && jwk.use !== 'sig') throw invalidClient(`key "${kid}" is not a signing key (use ${jwk.use})`);
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) throw invalidClient(`key "${kid}" does not allow verify (key_ops)`);
  return jwk;
}

async function fetchJwks(doFetch: typeof fetch, url: string): Promise<{ keys: JsonWebKey[]; cacheControl: string | null }> {
  let response: Response;
  try {
    response = await doFetch(url, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS) });
  } catch (error) {
    throw invalidClient(`the registered JWK Set URL could not be fetched (${(error as Error).message})`);
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw invalidClient(`the registered JWK Set URL answered HTTP ${response.status}`);
  }
  const body: unknown = await response.json().catch(() => undefined);
  const keys = (body as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys)) throw invalidClient('the registered JWK Set URL did not return a JWK Set');
  return { keys: keys as JsonWebKey[], cacheControl: response.headers.get('cache-control') };
}

/** How long a fetched set may be reused: Cache-Control max-age (no-store/no-cache → 0), capped at 29 h, default 29 h. */
export function cacheLifetimeMs(cacheControl: string | null): number {
  if (cacheControl === null) return MAX_JWKS_CACHE_MS;
  const directives = cacheControl
    .toLowerCase()
    .split(',')
    .map((d) => d.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  const maxAge = directives.map((d) => /^max-age=(\d+)$/.exec(d)?.[1]).find((v) => v !== undefined);
  return maxAge === undefined ? MAX_JWKS_CACHE_MS : Math.min(Number(maxAge) * 1000, MAX_JWKS_CACHE_MS);
}

/**
 * What the JWK Set URL (smart.jku) serves, as the EHR would see it: a plain GET through the configured network, so a
 * cache in front of the URL answers from its cache, as it would answer Epic. A rotated key starts signing only once
 * it is served there with the same public members (Epic: publish the new key, then sign with it), and `bridge doctor`
 * checks the active key the same way.
 * See: https://fhir.epic.com/Documentation?docId=oauth2 ("Key rotation", "JWK Set URL requirements")
 */
import type { JsonWebKey } from 'node:crypto';
import type { Logger } from '../log.js';
import { samePublicKey } from './jwks.js';
import type { SigningKey } from './keys.js';

/** A JWK Set URL is small and must be "responsive" (Epic): a check gives up after this long. */
export const JWKS_URL_TIMEOUT_MS = 5_000;

export interface JwksUrlOptions {
  /** Through the network section's proxy and CA (fetchVia in src/net). */
  readonly fetch: typeof fetch;
  /** Default JWKS_URL_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal | undefined;
}

export type JwksUrlAnswer = { readonly keys: readonly JsonWebKey[] } | { readonly unreachable: string };

/** The keys served at `url`, or why none could be read (an HTTP status, a network error code; never a body). */
export async function readJwksUrl(url: string, options: JwksUrlOptions): Promise<JwksUrlAnswer> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? JWKS_URL_TIMEOUT_MS);
  let response: Response;
  try {
    response = await options.fetch(url, {
      headers: { accept: 'application/json' },
      signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    return { unreachable: timeout.aborted ? `no answer within ${(options.timeoutMs ?? JWKS_URL_TIMEOUT_MS) / 1000} s` : errorCode(error) };
  }
  if (!response.ok) {
    await response.body?.cancel();
    return { unreachable: `HTTP ${response.status}` };
  }
  const body: unknown = await response.json().catch(() => undefined);
  const keys = (body as { keys?: unknown } | null | undefined)?.keys;
  return Array.isArray(keys) ? { keys: keys as JsonWebKey[] } : { unreachable: 'the answer is not a JWK Set (a JSON object with a "keys" array)' };
}

/** Why `keys` would not verify signatures of `published` (kid and public members), or undefined when they would. */
export function servedProblem(keys: readonly JsonWebKey[], published: JsonWebKey & { kid: string }): string | undefined {
  const matching = keys.filter((key) => (key as { kid?: unknown }).kid === published.kid);
  if (matching.length === 0) return `kid ${published.kid} is not in the served set`;
  // SMART: "If no keys match, or more than one key matches, the verification fails."
  if (matching.length > 1) return `kid ${published.kid} appears ${matching.length} times in the served set`;
  return samePublicKey(matching[0] as JsonWebKey, published) ? undefined : `kid ${published.kid} is served with other public key members than jwks.json has`;
}

/** Why `url` does not serve `published`, or undefined when it does. */
export async function jwksUrlProblem(url: string, published: JsonWebKey & { kid: string }, options: JwksUrlOptions): Promise<string | undefined> {
  const answer = await readJwksUrl(url, options);
  return 'unreachable' in answer ? `could not read it: ${answer.unreachable}` : servedProblem(answer.keys, published);
}

export interface ActivationContext {
  readonly nowMs: number;
  /** smart.jku: when set, the next key signs only once this URL serves it. */
  readonly jku?: string | undefined;
  readonly fetch: typeof fetch;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
}

/**
 * The key to sign with now: `key`, or its rotated successor once `activeFromMs` has passed and every JWK Set URL that
 * must serve it does: this connector's smart.jku and those `rotate` recorded for the other connectors sharing the keys
 * directory (the switch rewrites active-kid for all of them, so it waits for the slowest URL). Anything that stops the switch (URL not serving it or unreachable, the new key failing a check)
 * is logged and the current key keeps signing, so a rotation never costs a token.
 */
export async function keyToSignWith(key: SigningKey, context: ActivationContext): Promise<SigningKey> {
  const next = key.next;
  if (next === undefined || context.nowMs < next.activeFromMs) return key;
  const fields = { kid: key.kid, nextKid: next.kid, ...(context.jku ? { jku: context.jku } : {}) };
  for (const jku of new Set([...(context.jku ? [context.jku] : []), ...(next.jkus ?? [])])) {
    const problem = await jwksUrlProblem(jku, next.publicJwk, { fetch: context.fetch, signal: context.signal });
    if (problem !== undefined) {
      context.logger.warn({ ...fields, jku, problem }, 'the next signing key is due but the JWK Set URL does not serve it; still signing with the current key');
      return key;
    }
  }
  try {
    const activated = await next.activate();
    context.logger.info(fields, 'signing key rotated: the next key signs from now on');
    return activated;
  } catch (error) {
    // A read-only copy of the keys (a Kubernetes Secret, a mounted volume) cannot record the switch: the rotation is
    // finished where the keys are managed (`bridge keys activate`), and the copy replaced.
    const readOnly = ['EROFS', 'EACCES', 'EPERM'].includes(errorCode(error));
    context.logger.warn(
      { ...fields, problem: readOnly ? `the keys directory is not writable here (${errorCode(error)})` : (error as Error).message },
      readOnly
        ? 'the next signing key is due; run `bridge keys activate` where the keys are managed and update this copy. Still signing with the current key'
        : 'the next signing key could not be activated; still signing with the current key',
    );
    return key;
  }
}

/** The first error code in a cause chain (ECONNREFUSED, ENOTFOUND, …): names no URL, header or body. */
function errorCode(error: unknown): string {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code)) return code;
  }
  return error instanceof Error ? error.name : 'network error';
}

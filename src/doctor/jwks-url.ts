/**
 * The doctor's JWK Set URL check: what the EHR will find at smart.jku, read as the EHR reads it (a cache in front of
 * the URL answers from its cache), through the network section's proxy and CA.
 */
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { openKeyStore, type PublishedJwk, readJwksUrl, servedProblem } from '../smart/index.js';

export interface JwksUrlCheckContext {
  /** Through the network section's proxy and CA. */
  readonly fetch: typeof fetch;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** A pass detail, or a status with its detail (a failure is thrown). */
type JwksUrlOutcome = string | { readonly status: 'pass' | 'warn'; readonly detail: string };

export const JWKS_URL_CHECK = 'JWK Set URL serves the signing keys';

/**
 * What the EHR will find at smart.jku (read as it reads it, so a cache in front answers from its cache): the active
 * kid with the public members of jwks.json, and whether the key waiting to sign is there yet (it signs only once it is).
 */
export async function jwksUrlCheck(context: JwksUrlCheckContext, jku: string, keysDir: string): Promise<JwksUrlOutcome> {
  const store = openKeyStore(keysDir, { logger: context.logger });
  const key = await store.activeKey();
  // activeKey() has checked that jwks.json publishes this kid.
  const active = store.publicJwks().keys.find((k) => k.kid === key.kid) as PublishedJwk;
  const answer = await readJwksUrl(jku, { fetch: context.fetch });
  if ('unreachable' in answer) {
    return {
      status: 'warn',
      detail: `could not read ${jku} (${answer.unreachable}); the EHR fetches it to verify a kid it has not cached, and a rotated key waits until it is served there. Check the URL, the network or network.proxy`,
    };
  }
  const problem = servedProblem(answer.keys, active);
  if (problem) {
    throw new BridgeError(
      'BRG_ERR_KEY_NOT_PUBLISHED',
      `${jku} (smart.jku) does not serve the signing key: ${problem}. The EHR would refuse its signatures; publish ${join(keysDir, 'jwks.json')} there (or let its cache expire).`,
      { details: { kid: key.kid } },
    );
  }
  const served = `${jku} serves the signing key ${key.kid}`;
  if (!key.next) return served;
  const from = new Date(key.next.activeFromMs).toISOString();
  const nextProblem = servedProblem(answer.keys, key.next.publicJwk);
  if (nextProblem === undefined) return `${served} and the next key ${key.next.kid}, which signs from ${from}`;
  const due = context.clock.now() >= key.next.activeFromMs;
  return {
    status: due ? 'warn' : 'pass',
    detail: `${served}; not yet the next key ${key.next.kid} (${nextProblem}), which signs from ${from} only once it is served there${due ? `: publish ${join(keysDir, 'jwks.json')} there` : ''}`,
  };
}

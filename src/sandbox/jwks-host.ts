/**
 * Stands in for the hospital's JWK Set URL. Epic takes Elliptic Curve keys only from a JWK Set URL (never uploaded
 * directly), so the sandbox registers its client with one: this server answers `GET /.well-known/jwks.json` with the
 * public key set the bridge publishes in its keys directory (`jwks.json`, read on every request, so a rotation shows at
 * once), with a short max-age, as `bridge serve` would. Loopback only.
 */

import type { JsonWebKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface JwksHost {
  /** The JWK Set URL to register. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startJwksHost(jwksFile: string): Promise<JwksHost> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== '/.well-known/jwks.json') {
      response.writeHead(404).end();
      return;
    }
    readFile(jwksFile, 'utf8')
      .then(
        (text) => {
          // Only the public members, as bridge serve publishes them: a private `d` pasted into jwks.json stays home.
          const keys = (JSON.parse(text) as { keys?: unknown }).keys;
          const body = JSON.stringify({ keys: Array.isArray(keys) ? keys.map((key) => publicMembers(key as JsonWebKey)) : [] });
          response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=60' }).end(body);
        },
        () => response.writeHead(404).end(),
      )
      .catch(() => response.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * RFC 7518 §6.2.1 and §6.3.1: the public members of an EC or RSA key, and the JWK's own parameters (RFC 7517 §4). The
 * product's own list (smart/jwks.ts) is not imported: emulators stand apart from the code they check.
 */
const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'key_ops', 'n', 'e', 'crv', 'x', 'y'] as const;

function publicMembers(jwk: JsonWebKey): JsonWebKey {
  return Object.fromEntries(PUBLIC_MEMBERS.flatMap((member) => (jwk[member] === undefined ? [] : [[member, jwk[member]]])));
}

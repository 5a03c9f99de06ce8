/**
 * The switch to a rotated key at a token request, where the keys directory is a read-only copy (a Kubernetes Secret
 * copied into a read-only mount): the switch cannot be recorded, so the current key keeps signing and the log says
 * where to finish the rotation, instead of an opaque file error at every token request.
 */
import { generateKeyPairSync } from 'node:crypto';
import { expect, it } from 'vitest';
import { keyToSignWith } from '../../src/smart/jwks-url.js';
import type { SigningKey } from '../../src/smart/keys.js';
import { linesLogger } from '../support/log-lines.js';

function key(kid: string, next?: SigningKey['next']): SigningKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return { alg: 'ES384', kid, privateKey, ...(next ? { next } : {}) };
}

it('keeps signing with the current key when the switch cannot be written, and says to activate where the keys are managed', async () => {
  const lines: string[] = [];
  const current = key('old-kid', {
    kid: 'new-kid',
    publicJwk: { kty: 'EC', kid: 'new-kid', alg: 'ES384', crv: 'P-384', x: 'x', y: 'y' } as never,
    activeFromMs: 1_000,
    activate: async () => {
      throw Object.assign(new Error("EROFS: read-only file system, open '/app/keys/active-kid.tmp'"), { code: 'EROFS' });
    },
  });
  const used = await keyToSignWith(current, { nowMs: 2_000, fetch, logger: linesLogger(lines) });
  expect(used.kid).toBe('old-kid');
  const warning = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line['nextKid'] === 'new-kid');
  expect(warning?.['msg']).toContain('run `bridge keys activate` where the keys are managed and update this copy');
  expect(warning?.['problem']).toBe('the keys directory is not writable here (EROFS)');
  // No path of the mount in the log line.
  expect(JSON.stringify(warning)).not.toContain('/app/keys');
});

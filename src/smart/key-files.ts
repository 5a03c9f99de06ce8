/**
 * The key directory on disk: `<kid>.pem` private keys (PKCS8, 0600), `jwks.json` (the public set the EHR fetches
 * through the JWK Set URL), `active-kid` (the kid that signs) and, between `bridge keys rotate` and the activation,
 * `next-key.json` (the published kid that signs next, and from when). Files that other processes read while we write
 * (jwks.json is served by `bridge serve`) are replaced atomically with a rename.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, type Stats } from 'node:fs';
import { chmod, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BridgeError } from '../errors.js';
import type { PublishedJwk } from './jwks.js';

export const JWKS_FILE = 'jwks.json';
export const ACTIVE_KID_FILE = 'active-kid';
export const NEXT_KEY_FILE = 'next-key.json';

export type { PublishedJwk };

export interface PublishedSet {
  readonly keys: PublishedJwk[];
}

/** Kids become file names, so only the base64url alphabet of an RFC 7638 thumbprint is accepted. */
const SAFE_KID = /^[A-Za-z0-9_-]{1,128}$/;

export function assertSafeKid(kid: string, where: string): void {
  if (!SAFE_KID.test(kid)) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${where}: "${kid.slice(0, 40)}" is not a valid kid (expected 1-128 characters of A-Z a-z 0-9 - _).`);
  }
}

export function privateKeyPath(dir: string, kid: string): string {
  assertSafeKid(kid, 'kid');
  return join(dir, `${kid}.pem`);
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BridgeError('BRG_ERR_KEY_INVALID', `Cannot read ${path}: ${(error as Error).message}.`, { cause: error });
  }
}

/** The active kid, or undefined when the directory has no pointer yet. */
export function readActiveKid(dir: string): string | undefined {
  const path = join(dir, ACTIVE_KID_FILE);
  const text = readIfExists(path);
  if (text === undefined) return undefined;
  const kid = text.trim();
  if (!SAFE_KID.test(kid)) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${path} does not hold a valid kid; regenerate with \`bridge keys generate --force\` or write the kid of an existing <kid>.pem into it.`,
    );
  }
  return kid;
}

/** The published set, or undefined when jwks.json does not exist. Malformed content is a BRG_ERR_KEY_INVALID naming the file. */
export function readPublishedSet(dir: string): PublishedSet | undefined {
  const path = join(dir, JWKS_FILE);
  const text = readIfExists(path);
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // V8's message quotes the input around the fault, and this file can hold a private `d` pasted by mistake: only the
    // position is kept. No cause either: a logged cause carries that message.
    const position = /\bposition (\d+)/.exec((error as Error).message)?.[1];
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${path} is not valid JSON${position === undefined ? '' : ` (at position ${position})`}; restore it or run \`bridge keys generate --force\`.`,
    );
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) {
    throw new BridgeError('BRG_ERR_KEY_INVALID', `${path} must be a JWK Set: an object with a "keys" array.`);
  }
  keys.forEach((key: unknown, index) => {
    const candidate = key as { kty?: unknown; kid?: unknown } | null;
    if (typeof candidate?.kty !== 'string' || typeof candidate.kid !== 'string') {
      throw new BridgeError('BRG_ERR_KEY_INVALID', `${path}: keys[${index}] needs string "kty" and "kid" members.`);
    }
  });
  return { keys: keys as PublishedJwk[] };
}

/** Writes `content` to a temp file in the same directory with `mode`, then renames it over `path`. */
export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${randomUUID()}.tmp`;
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(temp, mode); // the umask may have narrowed or (with an odd umask) the mode must be exact
  await rename(temp, path);
}

export async function writePublishedSet(dir: string, keys: readonly PublishedJwk[]): Promise<void> {
  await writeFileAtomic(join(dir, JWKS_FILE), `${JSON.stringify({ keys }, null, 2)}\n`, 0o644);
}

export async function writeActiveKid(dir: string, kid: string): Promise<void> {
  await writeFileAtomic(join(dir, ACTIVE_KID_FILE), `${kid}\n`, 0o644);
}

/** Creates `<kid>.pem` with mode 0600; never overwrites an existing file. */
export async function writePrivateKey(dir: string, kid: string, pem: string): Promise<void> {
  const path = privateKeyPath(dir, kid);
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(pem, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(path, 0o600);
}

/** A rotated key that is published but does not sign yet. No key material: kid and times only. */
export interface NextKeyRecord {
  readonly kid: string;
  /** When `bridge keys rotate` published it (epoch ms). */
  readonly publishedAtMs: number;
  /** From when it may sign (epoch ms): published + the JWK Set's cache max-age. */
  readonly activeFromMs: number;
  /**
   * JWK Set URLs that must serve it before it signs at a token request: smart.jku of every connector of the config
   * `rotate` read that shares this keys directory (the switch is one active-kid for all of them). Absent: none.
   */
  readonly jkus?: readonly string[];
}

/** The pending rotation, or undefined when there is none. Malformed content is a BRG_ERR_KEY_INVALID naming the file. */
export function readNextKey(dir: string): NextKeyRecord | undefined {
  const path = join(dir, NEXT_KEY_FILE);
  const text = readIfExists(path);
  if (text === undefined) return undefined;
  const parsed = parseOrUndefined(text) as { kid?: unknown; publishedAt?: unknown; activeFrom?: unknown; jkus?: unknown } | null | undefined;
  const publishedAtMs = typeof parsed?.publishedAt === 'string' ? Date.parse(parsed.publishedAt) : Number.NaN;
  const activeFromMs = typeof parsed?.activeFrom === 'string' ? Date.parse(parsed.activeFrom) : Number.NaN;
  const jkus = parsed?.jkus;
  const jkusValid = jkus === undefined || (Array.isArray(jkus) && jkus.every((url) => typeof url === 'string'));
  if (typeof parsed?.kid !== 'string' || !SAFE_KID.test(parsed.kid) || Number.isNaN(publishedAtMs) || Number.isNaN(activeFromMs) || !jkusValid) {
    throw new BridgeError(
      'BRG_ERR_KEY_INVALID',
      `${path} must be {"kid": "<published kid>", "publishedAt": "<ISO time>", "activeFrom": "<ISO time>"[, "jkus": ["<URL>", …]]}; delete it to cancel the pending rotation.`,
    );
  }
  return { kid: parsed.kid, publishedAtMs, activeFromMs, ...(Array.isArray(jkus) && jkus.length > 0 ? { jkus: jkus as string[] } : {}) };
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export async function writeNextKey(dir: string, next: NextKeyRecord): Promise<void> {
  const record = {
    kid: next.kid,
    publishedAt: new Date(next.publishedAtMs).toISOString(),
    activeFrom: new Date(next.activeFromMs).toISOString(),
    ...(next.jkus?.length ? { jkus: next.jkus } : {}),
  };
  await writeFileAtomic(join(dir, NEXT_KEY_FILE), `${JSON.stringify(record, null, 2)}\n`, 0o644);
}

export async function removeNextKey(dir: string): Promise<void> {
  await rm(join(dir, NEXT_KEY_FILE), { force: true });
}

export async function removePrivateKey(dir: string, kid: string): Promise<void> {
  await rm(privateKeyPath(dir, kid), { force: true });
}

export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

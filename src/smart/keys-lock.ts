/**
 * One change of a keys directory at a time. A rotation reads jwks.json, adds a key and writes it back: two at once (two
 * operators, a token request activating while `retire` runs) lose a key, or leave next-key.json naming a kid jwks.json no
 * longer publishes. Every change takes `.keys.lock` (created exclusively, holding the pid and time); a lock older than
 * STALE_MS belongs to a process that died mid-change and is taken over.
 */
import { randomUUID } from 'node:crypto';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BridgeError } from '../errors.js';

export const KEYS_LOCK_FILE = '.keys.lock';
/** No change of a keys directory takes this long: an older lock is a dead process's. */
const STALE_MS = 120_000;
/** How long a change waits for another one to finish. */
const WAIT_MS = 10_000;
const POLL_MS = 50;

export async function withKeysLock<T>(dir: string, change: () => Promise<T>): Promise<T> {
  const path = join(dir, KEYS_LOCK_FILE);
  const token = `${process.pid} ${new Date().toISOString()} ${randomUUID()}`;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(token);
      await handle.close();
      break;
    } catch (error) {
      // No directory: nothing to protect, and the change itself says what is missing.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return change();
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? Date.now());
      if (age > STALE_MS) {
        await takeOver(path);
        continue;
      }
      if (Date.now() > deadline) {
        const holder = (await readFile(path, 'utf8').catch(() => '')).split(' ')[0] || 'unknown';
        throw new BridgeError(
          'BRG_ERR_INPUT_INVALID',
          `Another change of ${dir} is under way (process ${holder} holds ${KEYS_LOCK_FILE}); run the command again once it has finished, or remove the lock if that process is gone.`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  try {
    return await change();
  } finally {
    // Only our own lock: one taken over as stale by another process is theirs now.
    if ((await readFile(path, 'utf8').catch(() => '')) === token) await rm(path, { force: true });
  }
}

/**
 * Removes a stale lock so that a waiting process can take it. Takeovers are serialised by a second exclusive file, and
 * the lock is looked at again inside: a lock that went stale and was already replaced by a fresh one is left alone.
 */
async function takeOver(path: string): Promise<void> {
  const guard = `${path}.takeover`;
  try {
    await (await open(guard, 'wx', 0o600)).close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // A takeover under way; one whose process died is itself stale.
    const age = Date.now() - ((await stat(guard).catch(() => undefined))?.mtimeMs ?? Date.now());
    if (age > STALE_MS) await rm(guard, { force: true });
    return;
  }
  try {
    const age = Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? Date.now());
    if (age > STALE_MS) await rm(path, { force: true });
  } finally {
    await rm(guard, { force: true });
  }
}

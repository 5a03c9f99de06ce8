/**
 * `bridge push` works on a normalised copy of the file under `<stateDir>/push/`, removed when the push ends. A push
 * killed with -9 leaves its copy behind, and the copy holds the file's PHI: the next push on this host removes the
 * copies of pushes whose process is gone. The copy's name carries its process (pid, PID namespace and host) for that;
 * a copy of a push on another host, or in another container, sharing the state directory is left alone for a day (its
 * process cannot be seen from here).
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isOlderThan } from '../sync/run-files.js';
import type { LeaseHolder } from '../sync/state/index.js';

type Owner = Pick<LeaseHolder, 'host' | 'pid' | 'pidNamespace'>;

/**
 * `<pid>[~<pid namespace>]@<host>.<uuid>.txt` (the namespace: `<inode>[-<boot id>]`, src/composition/process.ts);
 * names without one come from a host where /proc could not be read, or from a build before the namespace was named.
 */
const COPY_NAME = /^(\d+)(?:~(\d+(?:-[0-9a-f-]{36})?))?@(.+)\.[0-9a-f-]{36}\.txt$/;
/** A copy named before names carried their process (0.1.0). */
const UNOWNED_COPY_NAME = /^[0-9a-f-]{36}\.txt$/;
/**
 * A copy whose process cannot be seen from here (another host or container, a pid like ours, a name from 0.1.0) is
 * removed once a day old: a push that long is rare, and its copy's loss only fails it (a rerun resumes through the
 * ledger). A container's push is often pid 1 on a new hostname each run. A live push on this host is never touched.
 */
const UNSEEN_GRACE_MS = 24 * 3600 * 1000;

export function pushCopyPath(dir: string, owner: Owner): string {
  const namespace = owner.pidNamespace === undefined ? '' : `~${owner.pidNamespace}`;
  return join(dir, `${owner.pid}${namespace}@${owner.host}.${randomUUID()}.txt`);
}

/**
 * What this host can tell of a copy's process: gone (a process of this host that no longer exists), alive (one that
 * does, not this one), or unknown (another host or container, or a pid like ours, maybe reused).
 */
export type CopyOwnerState = 'gone' | 'alive' | 'unknown';

/** Removes the copies whose push is gone, and those of unknown pushes once a day old. */
export function sweepPushCopies(dir: string, stateOf: (owner: Owner) => CopyOwnerState, nowMs: number): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const match = COPY_NAME.exec(name);
    const state = match !== null ? stateOf(ownerOf(match)) : UNOWNED_COPY_NAME.test(name) ? 'unknown' : undefined;
    const gone = state === 'gone' || (state === 'unknown' && isOlderThan(join(dir, name), nowMs - UNSEEN_GRACE_MS));
    if (!gone) continue;
    rmSync(join(dir, name), { force: true });
  }
}

function ownerOf(match: RegExpExecArray): Owner {
  const [, pid, namespace, host] = match;
  return { pid: Number(pid), host: host as string, ...(namespace === undefined ? {} : { pidNamespace: namespace }) };
}

/**
 * Files holding a secret or a private key should be readable by the bridge's user alone. One readable by others is
 * warned about, never refused: the bridge still runs, and the log says which file and what to run.
 *
 * Group bits are tolerated when the file's group is the bridge's own (effective) group: that is how a non-root
 * container reads a Kubernetes Secret volume (defaultMode 0440, group = the pod's fsGroup, which the shipped manifests
 * make the pod's runAsGroup too), and how a host install lets a service read a root-owned `0640 root:bridge` file.
 * systemd credentials (`LoadCredential=`) are 0400, owned by the unit's user. Other bits, or group bits of another
 * group (one other users belong to), are warned about. Windows reports 0666 whatever the ACL says: nothing is checked there.
 */
import { accessSync, statSync } from 'node:fs';
import type { Logger } from '../log.js';

/** What of a file's stat decides who else may read it. */
export interface FileAccess {
  readonly mode: number;
  readonly gid: number;
}

/** Who besides the bridge's user may read or write the file: `others`, `group` (a group not the bridge's own), or nobody. */
export function exposureOf(
  file: FileAccess,
  ownGid: number | undefined = process.getegid?.(),
  platform: NodeJS.Platform = process.platform,
): 'others' | 'group' | undefined {
  if (platform === 'win32') return undefined;
  if ((file.mode & 0o007) !== 0) return 'others';
  if ((file.mode & 0o070) !== 0 && file.gid !== ownGid) return 'group';
  return undefined;
}

/**
 * Logs one warning when the secret or key file at `path` is readable by others (exposureOf): the setting, the file and
 * its mode, and `chmod 600`. Never the content. Nothing when the file cannot be stat'ed (its read reports that).
 * @param what - the setting that names the file, e.g. `purview.secret`.
 */
export function warnIfFileExposed(path: string, what: string, logger: Pick<Logger, 'warn'> | undefined): void {
  if (logger === undefined) return;
  const exposed = fileExposure(path, what);
  if (exposed) logger.warn({ setting: what, file: path, mode: exposed.mode }, exposed.message);
}

/**
 * The secret or key file at `path` readable by others (exposureOf): its mode and the one-line message that says so and
 * what to run; undefined when it is not, or cannot be stat'ed (its read reports that). Never the content.
 */
export function fileExposure(path: string, what: string): { readonly mode: string; readonly message: string } | undefined {
  let info: FileAccess;
  try {
    info = statSync(path);
  } catch {
    return undefined;
  }
  const exposure = exposureOf(info);
  if (exposure === undefined) return undefined;
  const mode = (info.mode & 0o777).toString(8).padStart(3, '0');
  const who = exposure === 'others' ? 'other users' : `the members of its group (gid ${info.gid}, not this process's)`;
  return {
    mode,
    message: `${what}: ${path} has mode ${mode}, so ${who} have access to it; run \`chmod 600 ${path}\` with the file owned by the bridge's user (or mode 640 with the bridge's own group)`,
  };
}

/** This process may access `path` so (fs.constants.R_OK, W_OK): checked as the user it runs as, nothing opened. */
export function canAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/**
 * The drop folder's filesystem side: which files are ready (matching the pattern, not modified for the settle time,
 * oldest first), whether the archive can take them (checked at the start of a run, before anything is read), and the
 * moves to `archiveDir/done/` and `archiveDir/rejected/`. A move is one rename on one filesystem — atomic, so a file
 * is in the drop folder or in the archive, never half in both — and both directories are fsynced after it.
 */
import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, extname, join } from 'node:path';
import { BridgeError } from '../errors.js';

export interface DropFolder {
  readonly dir: string;
  /** Glob of the file names taken: `*`, `?` and `[…]` (a leading dot is matched only by a leading dot). */
  readonly pattern: string;
  readonly archiveDir: string;
  /** A file changed (its data written, or its times set) more recently than this is still being written. */
  readonly settleMs: number;
  /**
   * When a file last changed, for the settle check: by default the later of its mtime and ctime. Injected by tests
   * that set file times by hand (they cannot set a ctime), as the clock is.
   */
  readonly changedAt?: (file: DropFile) => number;
}

/** The later of a file's mtime and ctime: a copy that set an old mtime still moves the ctime with every write. */
export function lastChangeMs(file: DropFile): number {
  return Math.max(file.mtimeMs, file.ctimeMs);
}

/** A file found ready, with what identifies this version of it (a change before it is archived is noticed). */
export interface DropFile {
  readonly name: string;
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  /**
   * When its data or metadata last changed (ctime): no copy tool can set it. robocopy gives a file it is still
   * copying the time 1980-01-01 and `cp -p` or `rsync -t` the source's time, so mtime alone says nothing of a copy
   * still under way.
   */
  readonly ctimeMs: number;
  readonly ino: number;
}

export type ArchiveKind = 'done' | 'rejected';

export function archivePath(folder: DropFolder, kind: ArchiveKind): string {
  return join(folder.archiveDir, kind);
}

/**
 * Before a run takes any file: the drop folder is there, `done/` and `rejected/` exist, and a file can be renamed
 * from the drop folder into each (same filesystem, both writable). Throws BRG_ERR_DROP_FOLDER saying which and why.
 */
export function checkFolder(folder: DropFolder, probeId: string, options: { readOnly?: boolean } = {}): void {
  let stats: Stats;
  try {
    stats = statSync(folder.dir);
  } catch (cause) {
    throw folderError(folder, `the drop folder source.dir ${folder.dir} cannot be read (${errno(cause)}); create it or correct the path.`, cause);
  }
  if (!stats.isDirectory()) throw folderError(folder, `source.dir ${folder.dir} is not a directory.`);
  if (options.readOnly) return; // a dry run moves nothing
  for (const kind of ['done', 'rejected'] as const) {
    try {
      mkdirSync(archivePath(folder, kind), { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw folderError(
        folder,
        `source.archiveDir ${folder.archiveDir} cannot be written (${errno(cause)}): no file was taken, so none is left half-archived. Make it writable for the bridge.`,
        cause,
      );
    }
    if (statSync(archivePath(folder, kind)).dev !== stats.dev) throw otherFilesystem(folder);
  }
  const probe = join(folder.dir, `.bridge-probe-${probeId}`);
  let at = probe;
  try {
    writeFileSync(probe, '', { flag: 'wx', mode: 0o600 });
  } catch (cause) {
    throw folderError(
      folder,
      `the drop folder ${folder.dir} cannot be written (${errno(cause)}): a file could not be moved out of it once sent. Give the bridge write access to it.`,
      cause,
    );
  }
  try {
    for (const kind of ['done', 'rejected'] as const) {
      const next = join(archivePath(folder, kind), basename(probe));
      renameSync(at, next);
      at = next;
    }
  } catch (cause) {
    if (errno(cause) === 'EXDEV') throw otherFilesystem(folder, cause);
    throw folderError(
      folder,
      `a file cannot be moved from ${folder.dir} into ${folder.archiveDir} (${errno(cause)}): no file was taken. Make the archive writable for the bridge.`,
      cause,
    );
  } finally {
    rmSync(at, { force: true });
  }
}

/** The files ready now, oldest first (then by name), and how many matching files are still settling. */
export function listReady(folder: DropFolder, nowMs: number): { ready: DropFile[]; settling: number } {
  const matches = globMatcher(folder.pattern);
  const ready: DropFile[] = [];
  let settling = 0;
  for (const name of readdirSync(folder.dir)) {
    if (!matches(name)) continue;
    const file = statFile(join(folder.dir, name));
    if (!file) continue; // gone since the listing, or not a regular file
    if ((folder.changedAt ?? lastChangeMs)(file) > nowMs - folder.settleMs) settling += 1;
    else ready.push(file);
  }
  ready.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { ready, settling };
}

/** The file as it is now, or undefined when it is gone (or not a regular file). */
export function statFile(path: string): DropFile | undefined {
  try {
    const s = statSync(path);
    return s.isFile() ? { name: basename(path), path, size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino } : undefined;
  } catch {
    return undefined;
  }
}

export function sameVersion(a: DropFile, b: DropFile | undefined): boolean {
  return b !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** archiveFile's error code when a new file took the name between the check and the move (see there). */
export const REPLACED = 'EREPLACED';

/**
 * Renames the file into `done/` or `rejected/`, under its own name or, when that is taken (the same name dropped
 * again), `<stem>.<tag><ext>`; returns where it went. `why` is written beside it first, as `<target>.why.txt`.
 */
export function archiveFile(folder: DropFolder, file: DropFile, kind: ArchiveKind, tag: string, why?: string): string {
  const target = freeName(archivePath(folder, kind), file.name, tag);
  if (why !== undefined) writeFileSync(`${target}.why.txt`, why, { mode: 0o600 });
  renameSync(file.path, target);
  // done/ says "sent": an export that writes a fixed name by renaming a new file over it (or that wrote to it again) may
  // have done so since the file was checked, and what was moved is then not what was sent. It goes back for the next
  // run. Size and modification time, which a rename keeps, not the inode, which some file systems (FAT, some network
  // mounts) do not keep stable. A refused file goes to rejected/ whatever it has become: nothing of it is sent.
  const moved = statSync(target);
  if (kind === 'done' && (moved.size !== file.size || moved.mtimeMs !== file.mtimeMs)) {
    renameSync(target, file.path);
    if (why !== undefined) rmSync(`${target}.why.txt`, { force: true });
    throw Object.assign(new Error(`${file.name} was replaced by a new file just before it was archived; the new one stays`), { code: REPLACED });
  }
  syncDir(folder.dir);
  syncDir(archivePath(folder, kind));
  return target;
}

/** Data lines of a file (non-empty lines after the first), for the reject count of a refused file. Streams. */
export async function countDataLines(path: string): Promise<number> {
  let lines = 0;
  let content = false;
  let previous = 0;
  try {
    for await (const raw of createReadStream(path, { highWaterMark: 1 << 20 })) {
      const chunk = raw as Buffer;
      for (let i = 0; i < chunk.length; i++) {
        const byte = chunk[i] as number;
        if (byte === 0x0a || byte === 0x0d) {
          if (content) lines += 1;
          content = false;
        } else if (!(byte === 0x00 && (previous === 0x0a || previous === 0x0d))) content = true; // UTF-16's high byte of a line end
        previous = byte;
      }
    }
  } catch {
    return 0;
  }
  if (content) lines += 1;
  return Math.max(0, lines - 1);
}

/** `*` any run of characters, `?` one, `[…]` a class (`[!…]` negated); a leading dot only by a leading dot. */
export function globMatcher(pattern: string): (name: string) => boolean {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') source += '.*';
    else if (c === '?') source += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) source += '\\[';
      else {
        const body = pattern.slice(i + 1, end);
        source += `[${body.startsWith('!') ? `^${escapeClass(body.slice(1))}` : escapeClass(body)}]`;
        i = end;
      }
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  const regex = new RegExp(`^${source}$`, 's');
  const dotted = pattern.startsWith('.');
  return (name) => (dotted || !name.startsWith('.')) && regex.test(name);
}

function escapeClass(body: string): string {
  return body.replace(/[\\\]^]/g, '\\$&');
}

function freeName(dir: string, name: string, tag: string): string {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let n = 0; ; n++) {
    const candidate = join(dir, n === 0 ? name : `${stem}.${tag}${n > 1 ? `-${n}` : ''}${ext}`);
    if (!existsSync(candidate) && !existsSync(`${candidate}.why.txt`)) return candidate;
  }
}

/** Makes a rename durable; some filesystems (network shares) cannot fsync a directory, which is then left to them. */
function syncDir(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // best effort: the rename itself is already atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function otherFilesystem(folder: DropFolder, cause?: unknown): BridgeError {
  return folderError(
    folder,
    `source.archiveDir ${folder.archiveDir} is on another filesystem than source.dir ${folder.dir}: moving a file there would be a copy and a delete, not one atomic rename, so a crash could leave it in both places. Put the archive on the same filesystem (e.g. a folder beside the drop folder on the same share). No file was taken.`,
    cause,
  );
}

function folderError(folder: DropFolder, message: string, cause?: unknown): BridgeError {
  return new BridgeError('BRG_ERR_DROP_FOLDER', message, {
    ...(cause === undefined ? {} : { cause }),
    details: { dir: folder.dir, archiveDir: folder.archiveDir, ...(cause ? { errno: errno(cause) } : {}) },
  });
}

export function errno(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'error';
}

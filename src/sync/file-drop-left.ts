/**
 * Files whose rows went to Purview but that could not be moved out of the drop folder (the export still holds them
 * open on Windows, a permission, a full disk for the `.why.txt`). The ledger knows a file by its content, so if such a
 * file grows before the next run, that run would take it for a new file and send every row again, unflagged. Each is
 * remembered in the connector's source state (by name and inode, with its size when read and the rows sent): a file
 * that matches one and has changed is refused as changed-after-send again instead of being read; one that has not is
 * taken as usual (its rows are already delivered) and forgotten once archived.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DropFile } from './file-drop-folder.js';
import type { SyncDeps } from './pipeline.js';

export interface SentAndLeft {
  readonly name: string;
  readonly ino: number;
  /** Its size and modification time when it was read and sent (the time is absent from entries saved before it was kept). */
  readonly size: number;
  readonly mtimeMs?: number;
  /** Rows of it Purview acknowledged (its first rows, in order). */
  readonly sentRows: number;
  readonly sha256: string;
}

const STATE_NAME = 'flat-file-sent-left';

export function sentAndLeft(deps: SyncDeps): SentAndLeft[] {
  const text = deps.store.getSourceState(deps.connector, STATE_NAME);
  if (text === undefined) return [];
  const parsed = JSON.parse(text) as unknown;
  return Array.isArray(parsed) ? (parsed as SentAndLeft[]) : [];
}

/** The entry for this very file (same name and inode), if its rows were sent and it stayed. */
export function sentAndLeftFor(deps: SyncDeps, file: DropFile): SentAndLeft | undefined {
  return sentAndLeft(deps).find((entry) => entry.name === file.name && entry.ino === file.ino);
}

export function rememberSentAndLeft(deps: SyncDeps, entry: SentAndLeft): void {
  save(deps, [...sentAndLeft(deps).filter((e) => e.name !== entry.name), entry]);
}

export function forgetSentAndLeft(deps: SyncDeps, name: string): void {
  const list = sentAndLeft(deps);
  if (list.some((e) => e.name === name))
    save(
      deps,
      list.filter((e) => e.name !== name),
    );
}

/** Drops the entries whose file left the folder (moved by hand) or was replaced by another file of the same name. */
export function pruneSentAndLeft(deps: SyncDeps, dir: string): void {
  const list = sentAndLeft(deps);
  const kept = list.filter((entry) => {
    const path = join(dir, entry.name);
    return existsSync(path) && statSync(path).ino === entry.ino;
  });
  if (kept.length !== list.length) save(deps, kept);
}

function save(deps: SyncDeps, list: readonly SentAndLeft[]): void {
  deps.store.setSourceState(deps.connector, STATE_NAME, list.length === 0 ? undefined : JSON.stringify(list));
}

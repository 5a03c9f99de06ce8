/**
 * Files delivered and moved to `done/` (or refused, nothing of them sent, and moved to `rejected/`) whose export was not
 * finished. "Finished" is only "not modified for
 * settleSeconds": an export that stalls longer than that mid-file (a slow query) has its first rows read, sent and
 * archived, and then goes on writing through its open descriptor — into `done/`, since a rename keeps the file. What
 * it writes then never reaches Purview, and the last row read may have been cut short. Nothing at read time tells such
 * a file from a finished one (a file may well end without a line end), so each delivered file is remembered (where it
 * went, its size when it was read) for WATCH_MS, and a later run that finds it larger says so once, loudly: the run
 * fails naming the file, the rows Purview has, and what to drop. Nothing is sent or moved.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { readStateList } from './file-drop-state.js';
import type { SyncDeps } from './pipeline.js';

export interface DeliveredFile {
  /** Its name in the drop folder, and where it was archived. */
  readonly name: string;
  readonly archivedTo: string;
  readonly ino: number;
  /** Its size when it was read and sent. */
  readonly size: number;
  /** Rows of it delivered. */
  readonly rows: number;
  /** Its last line ended with a line end when it was read (else the last row may have been cut). */
  readonly lineEnd: boolean;
  /**
   * SHA-256 of the bytes just before `size` (TAIL_BYTES at most) when it was read: a larger file whose bytes there
   * differ is another file put in its place (a file system may give it the old inode number), not the same one grown.
   */
  readonly tail?: string;
  readonly deliveredAtMs: number;
  /**
   * It was refused and moved to rejected/ with nothing of it sent (rows 0), not delivered to done/: an export that wrote
   * its header, then paused longer than the settle time, has its file refused as header-only (or empty, or cut mid-row),
   * and what it writes next goes into rejected/.
   */
  readonly refused?: boolean;
}

const STATE_NAME = 'flat-file-delivered';
/** How long a delivered file is watched: beyond a weekly schedule's next run. */
const WATCH_MS = 7 * 86_400_000;
const MAX_WATCHED = 1000;

function watched(deps: SyncDeps): DeliveredFile[] {
  return readStateList(deps, STATE_NAME, isDeliveredFile);
}

/** An entry as watchDelivered wrote it; anything else (a hand-edited or foreign value) is dropped, not trusted. */
function isDeliveredFile(value: unknown): value is DeliveredFile {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['name'] === 'string' &&
    typeof v['archivedTo'] === 'string' &&
    typeof v['ino'] === 'number' &&
    typeof v['size'] === 'number' &&
    typeof v['rows'] === 'number' &&
    typeof v['lineEnd'] === 'boolean' &&
    (v['tail'] === undefined || typeof v['tail'] === 'string') &&
    typeof v['deliveredAtMs'] === 'number' &&
    (v['refused'] === undefined || typeof v['refused'] === 'boolean')
  );
}

function save(deps: SyncDeps, list: readonly DeliveredFile[]): void {
  deps.store.setSourceState(deps.connector, STATE_NAME, list.length === 0 ? undefined : JSON.stringify(list.slice(-MAX_WATCHED)));
}

/** Remembers a file just archived to done/. */
export function watchDelivered(deps: SyncDeps, entry: DeliveredFile): void {
  save(deps, [...watched(deps).filter((e) => e.archivedTo !== entry.archivedTo), entry]);
}

/**
 * The delivered files that grew since they were read (`size`: what each holds now); those watched long enough, moved
 * away or replaced are forgotten. The caller forgets the grown ones once it has said so (forgetDelivered): a run that
 * dies first leaves them to the next.
 */
export function grownSinceDelivered(deps: SyncDeps, nowMs: number): Array<{ readonly file: DeliveredFile; readonly size: number }> {
  const list = watched(deps);
  if (list.length === 0) return [];
  const grown: Array<{ file: DeliveredFile; size: number }> = [];
  const kept = list.filter((file) => {
    if (nowMs - file.deliveredAtMs > WATCH_MS) return false;
    let now: { ino: number; size: number };
    try {
      now = statSync(file.archivedTo);
    } catch {
      return false; // moved or removed from done/ by hand
    }
    if (now.ino !== file.ino) return false;
    if (now.size <= file.size) return true;
    if (file.tail !== undefined && tailOf(file.archivedTo, file.size).tail !== file.tail) return false; // replaced
    grown.push({ file, size: now.size });
    return true;
  });
  if (kept.length !== list.length) save(deps, kept);
  return grown;
}

export function forgetDelivered(deps: SyncDeps, archivedTo: readonly string[]): void {
  const list = watched(deps);
  const kept = list.filter((e) => !archivedTo.includes(e.archivedTo));
  if (kept.length !== list.length) save(deps, kept);
}

/** How many bytes before a delivered file's size are kept as its digest (DeliveredFile.tail). */
const TAIL_BYTES = 4096;

/**
 * The TAIL_BYTES (at most) before `size` in the file at `path`, read once: their SHA-256 (hex), and whether they end with
 * a line end (LF or CR, in UTF-8, a single-byte encoding or UTF-16).
 */
export function tailOf(path: string, size: number): { readonly tail: string; readonly lineEnd: boolean } {
  const length = Math.min(TAIL_BYTES, size);
  const bytes = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, bytes, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  const last = bytes[length - 1];
  const before = bytes[length - 2];
  const lineEnd = length === 0 || last === 0x0a || last === 0x0d || (last === 0x00 && (before === 0x0a || before === 0x0d));
  return { tail: createHash('sha256').update(bytes).digest('hex'), lineEnd };
}

/** What a later run says of a delivered file that grew. */
export function grownMessage(grown: { readonly file: DeliveredFile; readonly size: number }, settleMs: number): string {
  const { file, size } = grown;
  if (file.refused) {
    return `${file.archivedTo} grew after it was refused and moved to rejected/ (${file.size} bytes when it was read, ${size} now): the export was still writing it after ${Math.round(settleMs / 1000)} s without a change (source.settleSeconds). Nothing of it was sent. Once the export has finished, move it back into the drop folder (its .why.txt can go), and raise source.settleSeconds above the export's longest pause.`;
  }
  const cut = file.lineEnd
    ? `Once the export has finished, drop the rows after its first ${file.rows} as a new file, with the header line`
    : `Its last row then (row ${file.rows}) had no line end: it was likely cut short, and Purview holds it as it was cut. Once the export has finished, drop its rows from row ${file.rows} on as a new file, with the header line (Purview then holds row ${file.rows} twice, once cut)`;
  return `${file.archivedTo} grew after it was delivered (${file.size} bytes when it was read, ${size} now): the export was still writing it after ${Math.round(settleMs / 1000)} s without a change (source.settleSeconds). Purview has its first ${file.rows} row(s) as they were read; nothing written since was sent. ${cut}; and raise source.settleSeconds above the export's longest pause.`;
}

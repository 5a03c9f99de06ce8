/**
 * Files whose rows went, or may have gone, to Purview and that are still in the drop folder: a push that stopped
 * part-way (kill -9, an outage, a stop), or a file that could not be moved out after its push (the export still holds
 * it open on Windows, a permission, a full disk for the `.why.txt`). The ledger knows a file by its content, so if such
 * a file grows before the next run, that run would take it for a new file and send every row again, unflagged. Each is
 * remembered in the connector's source state (by name and inode, with its size when read), from before its first
 * block is claimed until it is archived: a file that matches one and has changed is refused as changed-after-send,
 * with the rows the ledger holds for its earlier content, instead of being read (or read as new when none of that
 * content reached Purview); one that has not changed is taken as usual (the ledger skips what is delivered). One that
 * has not changed (same size and time) but reads as other content was read under another setting (`encoding`): read
 * as new, every row would go again, so it is refused as settings-changed-after-send (file-drop-steps.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { holdsContent, type NormalizedFile, prefixSha256s } from '../connector-file/index.js';
import { rowsSentOf as ledgerRowsSentOf } from '../purview/index.js';
import type { DropFile } from './file-drop-folder.js';
import { readStateList } from './file-drop-state.js';
import type { SyncDeps } from './pipeline.js';

export interface SentAndLeft {
  readonly name: string;
  readonly ino: number;
  /** Its size and modification time when it was read and sent (the time is absent from entries saved before it was kept). */
  readonly size: number;
  readonly mtimeMs?: number;
  /** Rows of it Purview acknowledged (its first rows, in order), as far as known when it was remembered; the ledger knows better. */
  readonly sentRows: number;
  readonly sha256: string;
  /** The `source.encoding` it was read with (absent from entries saved before it was kept). */
  readonly encoding?: string;
  /** The drop folder it was in (absent from entries saved before it was kept). */
  readonly dir?: string;
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

/**
 * Drops the entries whose file left the folder (moved by hand) or was replaced by another file of the same name. One
 * still in the folder it was read from, when `source.dir` names another now, is kept: its unsent rows are not forgotten.
 */
export function pruneSentAndLeft(deps: SyncDeps, dir: string): void {
  const list = sentAndLeft(deps);
  const kept = list.filter((entry) => placeOf(entry, dir) !== undefined);
  if (kept.length !== list.length) save(deps, kept);
}

/** Where a remembered file is: in `dir`, in the folder it was read from (when source.dir names another now), or neither. */
function placeOf(entry: SentAndLeft, dir: string): 'here' | 'before' | undefined {
  if (isThere(join(dir, entry.name), entry)) return 'here';
  return entry.dir !== undefined && entry.dir !== dir && isThere(join(entry.dir, entry.name), entry) ? 'before' : undefined;
}

function isThere(path: string, entry: SentAndLeft): boolean {
  return existsSync(path) && statSync(path).ino === entry.ino;
}

/**
 * Files rows of which went out that this run will not take: the pattern no longer matches them (source.pattern changed),
 * or they are in the folder they were read from and source.dir names another. Their other rows would be left behind for
 * good, the watermark passing them: the caller says so and fails the run, as for a file that stays. One whose push
 * stopped before any block went out (killed between remembering it and its first send) left nothing in Purview and
 * nothing behind: it is forgotten here, and read as new if the settings take it again.
 */
export function sentAndNotTaken(
  deps: SyncDeps,
  dir: string,
  matches: (name: string) => boolean,
): Array<{ readonly entry: SentAndLeft; readonly where: 'pattern' | 'folder'; readonly sent: { readonly acked: number; readonly unknown: number } }> {
  const out: Array<{ entry: SentAndLeft; where: 'pattern' | 'folder'; sent: { acked: number; unknown: number } }> = [];
  const list = sentAndLeft(deps);
  const unsent = new Set<SentAndLeft>();
  for (const entry of list) {
    const where = notTakenBecause(entry, dir, matches);
    if (where === undefined) continue;
    const sent = rowsSentOf(deps, entry.sha256);
    if (sent.acked + sent.unknown + entry.sentRows === 0) unsent.add(entry);
    else out.push({ entry, where, sent });
  }
  if (unsent.size > 0)
    save(
      deps,
      list.filter((entry) => !unsent.has(entry)),
    );
  return out;
}

/** Why this run does not take a remembered file: the pattern, or the folder; undefined when it takes it (or it is gone). */
function notTakenBecause(entry: SentAndLeft, dir: string, matches: (name: string) => boolean): 'pattern' | 'folder' | undefined {
  const place = placeOf(entry, dir);
  if (place === 'here') return matches(entry.name) ? undefined : 'pattern';
  return place === 'before' ? 'folder' : undefined;
}

/**
 * The content each file had when its push began, by name and inode (the newest MAX_SENT_CONTENTS; one per name): kept
 * after the file is archived or gone. An export that rewrites a partly sent file under its name (a temporary file renamed
 * over it: another inode), renames it and writes on (the same inode under another name), or drops a delivered day again
 * with rows added, makes a file whose content is new to the ledger: its first rows are an earlier content's, and they
 * would go again, unflagged. Such a file is refused (file-drop-steps.ts) when its first `rows` rows hash to a content
 * of its name or inode that Purview holds rows of, the check `bridge push` makes of a path. The rows are compared under
 * the header as sent, not as each file spells it, and a comma file's cells as a CSV reader reads them: a re-export that
 * quotes its column names, writes them in another case, or quotes every cell, has another identity, and the same rows.
 */
export interface SentContent {
  readonly name: string;
  readonly ino: number;
  /** The content as the ledger knows it (NormalizedFile.sha256), and its row count. */
  readonly sha256: string;
  readonly rows: number;
  /**
   * The content as read (NormalizedFile.sentSha256), when it differs from `sha256` (the file spelled its header otherwise,
   * or quoted a comma cell that needs no quotes). Absent when equal, and from entries saved before it was kept: `sha256`
   * then is the content under the header the file gave, which is the content as read unless the file spelled or quoted
   * otherwise.
   */
  readonly sentSha256?: string;
}

const CONTENTS_STATE = 'flat-file-sent-contents';
const MAX_SENT_CONTENTS = 2000;

export function sentContents(deps: SyncDeps): SentContent[] {
  return readStateList(deps, CONTENTS_STATE, isSentContent);
}

function isSentContent(value: unknown): value is SentContent {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['name'] === 'string' &&
    typeof v['ino'] === 'number' &&
    typeof v['sha256'] === 'string' &&
    typeof v['rows'] === 'number' &&
    (v['sentSha256'] === undefined || typeof v['sentSha256'] === 'string')
  );
}

export function rememberSentContent(deps: SyncDeps, entry: SentContent): void {
  // One per name: the same content under another name keeps its own entry (a grown rewrite of either is caught).
  const list = sentContents(deps).filter((e) => e.name !== entry.name);
  list.push(entry);
  deps.store.setSourceState(deps.connector, CONTENTS_STATE, JSON.stringify(list.slice(-MAX_SENT_CONTENTS)));
}

/**
 * The earlier content (of this file's name or inode) that this content begins with, rows added after it, and what of it
 * Purview holds; undefined when there is none. Newest first; reads the normalised copy's first rows once per candidate.
 */
export async function grownFromSent(
  deps: SyncDeps,
  file: DropFile,
  content: NormalizedFile,
): Promise<{ readonly earlier: SentContent; readonly sent: { readonly acked: number; readonly unknown: number } } | undefined> {
  // An inode of 0 (a file system that gives none) names no file: matched by name only.
  const candidates = sentContents(deps).filter(
    (e) => (e.name === file.name || (file.ino !== 0 && e.ino === file.ino)) && e.sha256 !== content.sha256 && e.rows > 0 && e.rows <= content.rows,
  );
  const prefixes = new Map<number, { readonly asGiven: string; readonly asSent: string }>();
  for (const earlier of candidates.reverse()) {
    const sent = rowsSentOf(deps, earlier.sha256);
    if (sent.acked + sent.unknown === 0) continue;
    let prefix = prefixes.get(earlier.rows);
    if (prefix === undefined) {
      prefix = await prefixSha256s(content, earlier.rows);
      prefixes.set(earlier.rows, prefix);
    }
    if (holdsContent(prefix, earlier)) return { earlier, sent };
  }
  return undefined;
}

function save(deps: SyncDeps, list: readonly SentAndLeft[]): void {
  deps.store.setSourceState(deps.connector, STATE_NAME, list.length === 0 ? undefined : JSON.stringify(list));
}

/** Rows of the file with this content that Purview holds (acknowledged) or may hold (sent without a recorded answer). */
export function rowsSentOf(deps: SyncDeps, sha256: string): { readonly acked: number; readonly unknown: number } {
  return ledgerRowsSentOf(deps.store, deps.target.destination, sha256);
}

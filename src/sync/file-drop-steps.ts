/**
 * The two steps a dropped file goes through in a run (file-drop.ts): the check (normalise, optionally enrich, or
 * refuse and move to `rejected/`), then the push and the move to `done/`. Every outcome is recorded with what an
 * operator needs — file, line, column, counts — and never a cell.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type NormalizedFile, normalizeFlatFile, SCHEMA_COLUMNS } from '../connector-file/index.js';
import { type BridgeError, toBridgeError } from '../errors.js';
import { PurviewError, type PushReport, pushRowFile } from '../purview/index.js';
import { warnOnFailure } from './completion.js';
import { forwardPushEvent } from './events.js';
import type { FileDropDeps, FileDropTally, FileOutcome } from './file-drop.js';
import { archiveFile, countDataLines, type DropFile, errno, REPLACED, sameVersion, statFile } from './file-drop-folder.js';
import {
  forgetSentAndLeft,
  grownFromSent,
  rememberSentAndLeft,
  rememberSentContent,
  rowsSentOf,
  type SentAndLeft,
  type SentContent,
  sentAndLeftFor,
} from './file-drop-left.js';
import { dropSpoolDir } from './file-drop-state.js';
import { tailOf, watchDelivered } from './file-drop-watch.js';
import { type EnrichReport, type FileEnricher, mergeEnrichReports } from './file-enrich.js';
import { fileLeaseName, holdLease } from './lease.js';
import type { SyncDeps, SyncRequest } from './pipeline.js';
import { removeFiles } from './run-files.js';
import type { RunCounts, RunRecord } from './state/index.js';

/** One run's state, shared by its steps. */
export interface DropContext {
  readonly deps: SyncDeps;
  readonly drop: FileDropDeps;
  readonly run: RunRecord;
  readonly request: SyncRequest;
  readonly counts: RunCounts;
  readonly outcomes: FileOutcome[];
  readonly rejectReasons: Record<string, number>;
  /** Run-wide indexes of blocks flagged possibly duplicated (each file's blocks follow the previous file's). */
  readonly possiblyDuplicated: number[];
  blockOffset: number;
  /** Files in a row whose first block Purview refused (a job refusing every file stops the run at the second). */
  wholeFileRefusals: number;
  /** Spool files of this run still on disk (they hold PHI): removed when the run ends, however it ends. */
  readonly spools: Set<string>;
  readonly tally: FileDropTally;
  readonly rejectsPath: string;
  rejectsWritten: boolean;
  enrich: EnrichReport | undefined;
  /** Modification time of the newest file archived as delivered: the watermark. */
  newestDeliveredMs: number | undefined;
  record(outcome: FileOutcome): void;
  writeReject(entry: Record<string, unknown>): void;
}

export interface Checked {
  readonly file: DropFile;
  readonly normalized: NormalizedFile;
}

interface Fault {
  readonly reason: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
  /** Rows of the file Purview acknowledged before it was refused (a file that changed after it was sent). */
  readonly sentRows?: number;
  /** Rows of it sent without an answer and not acknowledged since (after the acknowledged ones): Purview may hold them. */
  readonly maybeSentRows?: number;
  /** The encoding its rows were read with when they were sent, when another is set now (settings-changed-after-send). */
  readonly formerEncoding?: string;
}

/** The file normalised (and enriched) into a spool, ready to push; or undefined when it was refused, or is not there to take. */
export async function checkFile(ctx: DropContext, file: DropFile, index: number): Promise<Checked | undefined> {
  const { deps, drop, request } = ctx;
  const left = sentAndLeftFor(deps, file);
  // What of its content as an earlier run read it Purview holds (acknowledged) or may hold (sent without an answer).
  const sent = left === undefined ? undefined : rowsSentOf(deps, left.sha256);
  const touched = left !== undefined && (left.size !== file.size || (left.mtimeMs !== undefined && left.mtimeMs !== file.mtimeMs));
  // Its push stopped before any block went out: nothing of it is in Purview, and it is read as the new file it is.
  if (touched && sent !== undefined && sent.acked + sent.unknown === 0 && !request.dryRunOut) forgetSentAndLeft(deps, file.name);
  // Rows of it went out in an earlier run, which stopped or could not move it aside, and its size or time changed since:
  // read as it is now, it is refused if its content changed (below); the same content touched or dropped again is not.
  const changedSinceSent = touched && sent !== undefined && sent.acked + sent.unknown > 0 ? { left, sent } : undefined;
  // Rows of it went out in an earlier run and it is the same file, untouched: content that reads differently now can
  // only come from a setting that changes how it is read (`encoding`). Read as new, every row would go out again.
  const readBeforeSent = !touched && left !== undefined && sent !== undefined && sent.acked + sent.unknown + left.sentRows > 0 ? { left, sent } : undefined;
  const spool = join(dropSpoolDir(deps.stateDir), `${ctx.run.id}.${index}.txt`);
  ctx.spools.add(spool);
  let normalized: NormalizedFile;
  try {
    normalized = await normalizeFlatFile(file.path, spool, drop.schema, {
      encoding: drop.encoding,
      exactHeader: true,
      namePositions: true,
      maxLineBytesSetting: 'connectors[].source.maxLineBytes',
      ...(drop.maxLineBytes ? { maxLineBytes: drop.maxLineBytes } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    });
  } catch (error) {
    dropSpool(ctx, spool);
    if (request.signal?.aborted) throw error;
    const typed = toBridgeError(error);
    // Changed since rows of it went out, and its content refused by the check: what it was is what Purview may have.
    if (changedSinceSent && typed.code === 'BRG_ERR_INPUT_INVALID' && typeof typed.details['reason'] === 'string') {
      return refusedAsChanged(ctx, file, changedSinceSent);
    }
    // Unchanged since an earlier run sent part of it: refused now (a setting changed), the rows sent then are counted.
    return refused(ctx, file, typed, sent);
  }
  if (!sameVersion(file, statFile(file.path))) {
    dropSpool(ctx, spool);
    // Written to while it was read: despite the settle time it is not finished. Nothing of it was sent.
    if (!existsSync(file.path))
      ctx.record({ file: file.name, outcome: 'vanished', rows: 0, message: `${file.name} disappeared while it was read; nothing of it was sent.` });
    else
      ctx.record({
        file: file.name,
        outcome: 'changed',
        rows: 0,
        message: `${file.name} was modified while it was read; it waits for the next run. Nothing of it was sent.`,
      });
    return undefined;
  }
  if (changedSinceSent && normalized.sha256 !== changedSinceSent.left.sha256) {
    // New content: read as a new file, those rows would go out a second time. Refused (moved aside, if that works).
    dropSpool(ctx, spool);
    return refusedAsChanged(ctx, file, changedSinceSent);
  }
  if (readBeforeSent && normalized.sha256 !== readBeforeSent.left.sha256) {
    dropSpool(ctx, spool);
    return refusedAsReadDifferently(ctx, file, normalized, readBeforeSent);
  }
  // New content that begins with an earlier content of its name or inode, Purview holding rows of that (file-drop-left.ts
  // SentContent): read as new, those rows would go again, unflagged.
  const grown = await grownFromSent(deps, file, normalized);
  if (grown) {
    dropSpool(ctx, spool);
    return refusedAsGrown(ctx, file, normalized, grown);
  }
  if (normalized.rows === 0) {
    dropSpool(ctx, spool);
    return reject(ctx, file, {
      reason: 'header-only',
      line: 2,
      message: `${file.path} has a header and no rows: nothing to send. A day's export without one access is unlikely; check the export job.`,
    });
  }
  if (drop.enrich) {
    const out = join(dropSpoolDir(deps.stateDir), `${ctx.run.id}.${index}.enriched.txt`);
    ctx.spools.add(out);
    let enriched: Awaited<ReturnType<FileEnricher['enrich']>>;
    try {
      enriched = await drop.enrich().enrich(normalized, out, request.signal);
    } catch (error) {
      // The EHR could not fill this file's cells (a search it refused, an outage): this file waits, and the files
      // already checked, and the next ones, still go out. The state failing is the run's problem, not this file's.
      dropSpool(ctx, spool);
      dropSpool(ctx, out);
      const failure = toBridgeError(error);
      // Only an answer about this file's lookups (a search refused, a type not offered) is the file's; an outage, the
      // SMART sign-in, a key or the state would fail every file the same way, and stop the run with their own code.
      if (request.signal?.aborted || !PER_FILE_ENRICH_FAILURES.has(failure.code)) throw failure;
      ctx.record({
        file: file.name,
        outcome: 'left',
        rows: 0,
        code: failure.code,
        reason: 'enrich-failed',
        message: `${file.name} could not be enriched from the EHR (${failure.code}: ${failure.message}); it stays in the drop folder for the next run. Nothing of it was sent.`,
      });
      return undefined;
    }
    dropSpool(ctx, spool);
    normalized = enriched.file;
    ctx.enrich = mergeEnrichReports(ctx.enrich, enriched.report);
  }
  ctx.counts.events += normalized.rows;
  ctx.counts.rows += normalized.rows;
  deps.events.emit('page', { runId: ctx.run.id, events: normalized.rows, duplicates: 0, skipped: 0, rows: normalized.rows, rejects: 0 });
  if (request.dryRunOut) ctx.record({ file: file.name, outcome: 'checked', rows: normalized.rows, sha256: normalized.sha256 });
  return { file, normalized };
}

/** Pushes a checked file through the ledger, then moves it to done/ — only the version that was read and sent. */
export async function pushFile(ctx: DropContext, item: Checked): Promise<void> {
  const { deps, request, run } = ctx;
  const { file, normalized } = item;
  const destination = deps.target.destination;
  const now = statFile(file.path);
  if (now !== undefined && now.ino === file.ino && !sameVersion(file, now)) {
    // Written to in place since it was checked (a backlog's push can come hours later): what was checked may be only
    // part of it. Nothing is sent; the next run reads it whole.
    dropSpool(ctx, normalized.spoolPath);
    ctx.counts.events -= normalized.rows;
    ctx.counts.rows -= normalized.rows;
    ctx.record({
      file: file.name,
      outcome: 'changed',
      rows: 0,
      message: `${file.name} was modified after it was checked; it waits for the next run. Nothing of it was sent.`,
    });
    return;
  }
  // Remembered before its first block is claimed, until it is archived: a push that stops part-way leaves a file whose
  // growth must not make it new content (file-drop-left.ts).
  if (!request.dryRunOut) {
    rememberSentAndLeft(deps, sentAndLeft(ctx, file, normalized, 0));
    rememberSentContent(deps, {
      name: file.name,
      ino: file.ino,
      sha256: normalized.sha256,
      rows: normalized.rows,
      ...(normalized.sentSha256 !== normalized.sha256 ? { sentSha256: normalized.sentSha256 } : {}),
    });
  }
  // The same lease as `bridge push` of the same file to the same job: the two never send it at once.
  const lease = holdLease(
    deps.store,
    fileLeaseName(destination, normalized.sha256),
    deps.lease,
    deps.clock,
    deps.newId,
    `A push of ${file.name} to this connector's job`,
  );
  let report: PushReport | undefined;
  let refusal: PurviewError | undefined;
  // What this push acknowledged before a refusal ends it (the report is only made for a push that finishes).
  const acked = { blocks: 0, flagged: [] as number[], flaggedRows: 0 };
  try {
    const offset = ctx.blockOffset;
    report = await pushRowFile({
      ...deps.purview(),
      file: normalized,
      destination,
      ledger: deps.store,
      lease: lease.ref,
      clock: deps.clock,
      logger: deps.logger,
      runId: run.id,
      signal: request.signal ? AbortSignal.any([request.signal, lease.lost]) : lease.lost,
      ...(request.stopSignal ? { stopAfterBlock: request.stopSignal } : {}),
      onEvent: (event) => {
        if (event.type === 'block_acked') {
          acked.blocks += 1;
          if (event.possiblyDuplicated) {
            acked.flagged.push(event.index);
            acked.flaggedRows += event.possiblyDuplicatedRows;
          }
        }
        forwardPushEvent(deps.events, run.id, event, offset);
      },
    });
  } catch (error) {
    // A refusal of the file's first block, right after another file was refused the same way, is the job refusing
    // every file (a column mapping that does not match, say): the run stops, as it would for credentials. So does a
    // block too large (413): the block size is the fault, and the file stays in the folder for a run with a smaller one.
    if (!isFileRefusal(error)) throw error;
    if (acked.blocks === 0 && ctx.wholeFileRefusals > 0) {
      throw new PurviewError(
        error.code,
        `${file.name} stays in the drop folder: Purview refused its first block, right after it refused another file whole (that one is in rejected/). Two files in a row point at the job rather than the files: check the Purview connector's schema and column mapping. If this file alone is bad, move it aside by hand and the next run goes on. Purview's answer: ${error.message}`,
        { status: error.status, reason: error.reason, cause: error, ...(error.blockIndex === undefined ? {} : { blockIndex: error.blockIndex }) },
      );
    }
    refusal = error;
    setWholeFileRefusals(ctx, acked.blocks === 0 ? ctx.wholeFileRefusals + 1 : 0);
  } finally {
    lease.release();
    dropSpool(ctx, normalized.spoolPath);
  }
  if (report === undefined) {
    // Purview refused a block for what it holds (a 400): this file only. The others go on, or the oldest file
    // would stop every later run the same way and the connector would never move again.
    const { acked: acknowledged, unknown } = rowsSentOf(deps, normalized.sha256);
    const c = ctx.counts;
    c.blocks += acked.blocks + 1;
    c.blocksAcked += acked.blocks;
    c.rowsAcked += acknowledged;
    c.possiblyDuplicated += acked.flagged.length;
    c.rowsPossiblyDuplicated += acked.flaggedRows;
    ctx.possiblyDuplicated.push(...acked.flagged.map((index) => index + ctx.blockOffset));
    ctx.blockOffset += acked.blocks + 1;
    // The rows not delivered were counted as rows when the file was checked: they are rejects (reject counts them, and
    // their events once more, which they are not).
    const undelivered = normalized.rows - acknowledged;
    const message = `Purview refused part of ${file.name}: ${(refusal as PurviewError).message}`;
    const rejectsBefore = c.rejects;
    await reject(ctx, file, { reason: 'purview-rejected', message, sentRows: acknowledged, ...(unknown > 0 ? { maybeSentRows: unknown } : {}) }, undelivered);
    c.rows -= undelivered;
    // Counted as rejects (and their events once more) when the file could be moved aside.
    if (c.rejects > rejectsBefore) c.events -= undelivered;
    if (acknowledged > 0) leftAfterSend(ctx, file, normalized, acknowledged);
    return;
  }
  // Only a file Purview took breaks a run of refusals; one already delivered never reached it.
  if (report.rowsSent > 0) setWholeFileRefusals(ctx, 0);
  const c = ctx.counts;
  c.blocks += report.blocks;
  c.blocksAcked += report.blocks;
  c.rowsAcked += report.rowsAcked;
  c.rowsAlreadyDelivered += report.rowsAlreadyDelivered;
  c.possiblyDuplicated += report.possiblyDuplicated.length;
  c.rowsPossiblyDuplicated += report.rowsPossiblyDuplicated;
  ctx.possiblyDuplicated.push(...report.possiblyDuplicated.map((index) => index + ctx.blockOffset));
  ctx.blockOffset += report.blocks;
  const outcome = report.rowsSent === 0 ? 'already-delivered' : 'delivered';
  const base = {
    file: file.name,
    rows: normalized.rows,
    sha256: normalized.sha256,
    rowsSent: report.rowsSent,
    rowsAlreadyDelivered: report.rowsAlreadyDelivered,
    ...(report.rowsPossiblyDuplicated ? { rowsPossiblyDuplicated: report.rowsPossiblyDuplicated } : {}),
  } as const;
  const after = statFile(file.path);
  if (!after) {
    ctx.record({ ...base, outcome, message: `${file.name}: every row is acknowledged; the file disappeared from the drop folder before it was archived.` });
    delivered(ctx, file);
    return;
  }
  if (after.ino !== file.ino) {
    // A new file was renamed over the name: this one's rows are delivered, and the new one is the next run's.
    ctx.record({ ...base, outcome, message: `${file.name}: every row is acknowledged; a new file of that name replaced it, and is taken by the next run.` });
    delivered(ctx, file);
    return;
  }
  if (!sameVersion(file, after)) {
    // Appended to after it was read: what was read is delivered, what was added is not. Moving it to done/ would lose
    // the addition; sending it again would double the rest. The operator decides.
    const message = `${file.path} changed after it was read and sent: the ${normalized.rows} row(s) it had then are acknowledged (content sha256 ${normalized.sha256}); what changed since was not sent. Drop only the rows that were not delivered as a new file.`;
    await reject(ctx, file, { reason: 'changed-after-send', message, sentRows: normalized.rows }, 0);
    leftAfterSend(ctx, file, normalized, normalized.rows);
    return;
  }
  try {
    const archivedTo = archiveFile(ctx.drop.folder, file, 'done', run.id.slice(0, 8));
    ctx.record({ ...base, outcome, archivedTo });
    delivered(ctx, file);
    // Watched for a while: an export still writing it (it paused longer than the settle time) writes on into done/.
    warnOnFailure(deps.logger, run.id, 'a delivered file could not be watched for growth', () =>
      watchDelivered(deps, {
        name: file.name,
        archivedTo,
        ino: file.ino,
        size: file.size,
        rows: normalized.rows,
        ...tailOf(archivedTo, file.size),
        deliveredAtMs: deps.clock.now(),
      }),
    );
    // Archived and delivered: a state that cannot forget it now does at the next run's prune (the file has left).
    warnOnFailure(deps.logger, run.id, 'an archived file could not be forgotten yet; the next run does it', () => forgetSentAndLeft(deps, file.name));
  } catch (cause) {
    // Still in the folder, its rows sent: remembered, so that a file written to again in place is not read as new
    // content and sent whole (a new file under the name is not matched, and is the next run's).
    leftAfterSend(ctx, file, normalized, normalized.rows);
    if (errno(cause) === REPLACED) {
      ctx.record({
        ...base,
        outcome,
        message: `${file.name}: every row is acknowledged; the file changed as it was archived, and stays for the next run.`,
      });
      delivered(ctx, file);
      return;
    }
    ctx.record({
      ...base,
      outcome: 'left',
      code: 'BRG_ERR_DROP_ARCHIVE',
      reason: 'archive-failed',
      message: `${file.name}: every row is acknowledged, but it could not be moved to done/ (${errno(cause)}); the next run archives it without sending a row again.`,
    });
  }
}

const PER_FILE_ENRICH_FAILURES: ReadonlySet<string> = new Set(['BRG_ERR_FHIR_HTTP', 'BRG_ERR_FHIR_NOT_SUPPORTED']);

/** A file whose rows were sent is still in the drop folder (its move failed): remembered until it leaves. */
function leftAfterSend(ctx: DropContext, file: DropFile, normalized: NormalizedFile, sentRows: number): void {
  if (ctx.request.dryRunOut || !existsSync(file.path)) return;
  rememberSentAndLeft(ctx.deps, sentAndLeft(ctx, file, normalized, sentRows));
}

/** The file as remembered while rows of it are out: its version, the rows sent, its content and how it was read. */
function sentAndLeft(ctx: DropContext, file: DropFile, normalized: NormalizedFile, sentRows: number): SentAndLeft {
  return {
    name: file.name,
    ino: file.ino,
    size: file.size,
    mtimeMs: file.mtimeMs,
    sentRows,
    sha256: normalized.sha256,
    encoding: ctx.drop.encoding,
    dir: ctx.drop.folder.dir,
  };
}

/**
 * Purview refused a block for its content (400), not for the job, the credentials or the block size (413: too large
 * whatever the file; moving the file aside would not help and the next file would meet the same), which every file shares.
 */
function isFileRefusal(error: unknown): error is PurviewError {
  return error instanceof PurviewError && error.code === 'BRG_ERR_PURVIEW_REJECTED' && error.status === 400;
}

const REFUSALS_STATE = 'flat-file-whole-refusals';

/**
 * Files in a row whose first block Purview refused, across runs, for the connector's present job (destination): with
 * one file a day, a job that refuses every file would otherwise move each day's good file to rejected/, one per run,
 * the streak starting again at every run. Another job (the usual fix for a wrong one) starts a streak of its own.
 */
export function wholeFileRefusalsOf(deps: SyncDeps): number {
  const text = deps.store.getSourceState(deps.connector, REFUSALS_STATE);
  if (text === undefined) return 0;
  try {
    const saved = JSON.parse(text) as { destination?: unknown; count?: unknown };
    return saved.destination === deps.target.destination && typeof saved.count === 'number' ? saved.count : 0;
  } catch {
    return 0;
  }
}

function setWholeFileRefusals(ctx: DropContext, count: number): void {
  if (count === ctx.wholeFileRefusals) return;
  ctx.wholeFileRefusals = count;
  const { deps } = ctx;
  if (!ctx.request.dryRunOut)
    deps.store.setSourceState(deps.connector, REFUSALS_STATE, count === 0 ? undefined : JSON.stringify({ destination: deps.target.destination, count }));
}

function delivered(ctx: DropContext, file: DropFile): void {
  ctx.newestDeliveredMs = Math.max(ctx.newestDeliveredMs ?? file.mtimeMs, file.mtimeMs);
}

/**
 * What an earlier run sent of a remembered file: the rows Purview acknowledged (the ledger's count, or the remembered
 * one when that is more), those sent without an answer beyond them, and the words for the latter.
 */
function sentBefore(earlier: { left: SentAndLeft; sent: { acked: number; unknown: number } }): { acked: number; unknown: number; maybe: string } {
  const { left, sent } = earlier;
  const acked = Math.max(sent.acked, left.sentRows);
  const unknown = Math.max(0, sent.unknown - (acked - sent.acked));
  return { acked, unknown, maybe: unknown > 0 ? `, and ${unknown} more were sent without an answer (they may be there too)` : '' };
}

/** A remembered file whose content is no longer what an earlier run sent part of: refused as changed-after-send. */
async function refusedAsChanged(
  ctx: DropContext,
  file: DropFile,
  earlier: { left: SentAndLeft; sent: { acked: number; unknown: number } },
): Promise<undefined> {
  const { left } = earlier;
  const { acked, unknown, maybe } = sentBefore(earlier);
  const message = `${file.path} changed after an earlier run read it (content sha256 ${left.sha256}): Purview acknowledged ${acked} of its row(s) then${maybe}; what changed since was not sent. Drop only the rows that were not delivered as a new file.`;
  await reject(ctx, file, { reason: 'changed-after-send', message, sentRows: acked, ...(unknown > 0 ? { maybeSentRows: unknown } : {}) }, 0);
  if (!existsSync(file.path) && !ctx.request.dryRunOut) forgetSentAndLeft(ctx.deps, file.name);
  return undefined;
}

/**
 * A file whose first rows are an earlier content of its name or inode (a partly sent file rewritten or renamed and grown, a
 * delivered day dropped again with rows added): refused as changed-after-send, with what Purview holds of that content.
 */
async function refusedAsGrown(
  ctx: DropContext,
  file: DropFile,
  normalized: NormalizedFile,
  grown: { readonly earlier: SentContent; readonly sent: { readonly acked: number; readonly unknown: number } },
): Promise<undefined> {
  const { earlier, sent } = grown;
  const maybe = sent.unknown > 0 ? `, and ${sent.unknown} more were sent without an answer (they may be there too)` : '';
  const was = earlier.name === file.name ? 'an earlier file of this name' : `${earlier.name} (the same file, renamed)`;
  // The same rows under a header spelled otherwise (quoted, another case), or a comma file's cells quoted otherwise, are
  // another content to the ledger, and no new row.
  const message =
    normalized.rows === earlier.rows
      ? `${file.path} holds the rows of ${was} that went to Purview (its ${earlier.rows} row(s), content sha256 ${earlier.sha256}), under a header spelled otherwise or with cells quoted otherwise: Purview acknowledged ${sent.acked} of them${maybe}. Read as a new file, they would be sent again; nothing of it was sent. ${sent.acked === earlier.rows ? 'Nothing is missing in Purview: remove the file from rejected/.' : `Drop a new file with the header line and only the rows Purview does not have (those after the first ${sent.acked}).`}`
      : `${file.path} begins with the content of ${was} that went to Purview (its ${earlier.rows} row(s), content sha256 ${earlier.sha256}), with ${normalized.rows - earlier.rows} row(s) added after them: Purview acknowledged ${sent.acked} of those ${earlier.rows}${maybe}. Read as a new file, all its rows would be sent, those again; nothing of it was sent. Drop a new file with the header line and only the rows Purview does not have (those after the first ${sent.acked}, if the export only appended).`;
  await reject(
    ctx,
    file,
    { reason: 'changed-after-send', message, sentRows: sent.acked, ...(sent.unknown > 0 ? { maybeSentRows: sent.unknown } : {}) },
    Math.max(0, normalized.rows - sent.acked),
  );
  return undefined;
}

/**
 * A remembered file, unchanged since an earlier run sent part of it (same size and time), whose content reads differently
 * now: a setting that changes how it is read changed (`encoding`). Read as the new content it seems, every row would go
 * out again, unflagged; it is refused as settings-changed-after-send, with what Purview has and both ways to finish it.
 */
async function refusedAsReadDifferently(
  ctx: DropContext,
  file: DropFile,
  normalized: NormalizedFile,
  earlier: { left: SentAndLeft; sent: { acked: number; unknown: number } },
): Promise<undefined> {
  const { left } = earlier;
  const { acked, unknown, maybe } = sentBefore(earlier);
  const now = ctx.drop.encoding;
  const setting =
    left.encoding === undefined
      ? `a setting that changes how it is read changed since (connectors[].source.encoding is ${now} now)`
      : left.encoding !== now
        ? `connectors[].source.encoding changed since (${left.encoding} then, ${now} now)`
        : 'a setting that changes how it is read changed since (connectors[].source.encoding is the same; the schema, or the bridge version)';
  const message = `${file.path} is unchanged since an earlier run sent part of it (same size and time), but reads as other content now (sha256 ${normalized.sha256}, ${left.sha256} then): ${setting}. Purview acknowledged ${acked} of its row(s) as read then${maybe}; read as new content, every row would go again, so nothing of it was sent.`;
  await reject(
    ctx,
    file,
    {
      reason: 'settings-changed-after-send',
      message,
      sentRows: acked,
      ...(unknown > 0 ? { maybeSentRows: unknown } : {}),
      ...(left.encoding !== undefined && left.encoding !== now ? { formerEncoding: left.encoding } : {}),
    },
    Math.max(0, normalized.rows - acked),
  );
  if (!existsSync(file.path) && !ctx.request.dryRunOut) forgetSentAndLeft(ctx.deps, file.name);
  return undefined;
}

/**
 * The normaliser refused the file, or could not read it. `sent`: its first rows Purview acknowledged in an earlier run,
 * and those sent then without an answer.
 */
async function refused(ctx: DropContext, file: DropFile, error: BridgeError, sent = { acked: 0, unknown: 0 }): Promise<undefined> {
  const sentRows = sent.acked;
  if (error.code !== 'BRG_ERR_INPUT_INVALID') throw error; // a wrong encoding name, a full disk: the run stops, the file stays
  const reason = error.details['reason'];
  if (typeof reason !== 'string') {
    const cause = error.cause as NodeJS.ErrnoException | undefined;
    if (cause?.path !== file.path) throw error; // the spool could not be written: not the file's fault
    if (!existsSync(file.path)) {
      ctx.record({ file: file.name, outcome: 'vanished', rows: 0, message: `${file.name} disappeared before it was read; nothing of it was sent.` });
      return undefined;
    }
    ctx.record({
      file: file.name,
      outcome: 'left',
      rows: 0,
      code: error.code,
      reason: 'unreadable',
      message: `${file.name} cannot be read (${errno(cause)}); it stays in the drop folder.`,
    });
    return undefined;
  }
  const line = error.details['line'];
  const column = error.details['column'];
  const fault: Fault = {
    reason,
    message: error.message,
    ...(typeof line === 'number' ? { line } : {}),
    ...(typeof column === 'number' ? { column } : {}),
    ...(sentRows + sent.unknown > 0 ? { sentRows } : {}),
    ...(sent.unknown > 0 ? { maybeSentRows: sent.unknown } : {}),
  };
  return reject(ctx, file, fault, sentRows > 0 ? Math.max(0, (await countDataLines(file.path)) - sentRows) : undefined);
}

/** What an export still writing its file looks like when it pauses longer than the settle time (cut mid-row, or mid-cell). */
const UNFINISHED_EXPORT: ReadonlySet<string> = new Set(['empty', 'header-only', 'field-count', 'open-quote']);

/** Moves a refused file to rejected/ with its `.why.txt`, and counts its lines as rejected rows (none was sent). */
async function reject(ctx: DropContext, file: DropFile, fault: Fault, rejectedRows?: number): Promise<undefined> {
  const { deps, run } = ctx;
  const rows = rejectedRows ?? (await countDataLines(file.path));
  const why = whyText(ctx, file, fault, rows);
  let archivedTo: string | undefined;
  if (!ctx.request.dryRunOut) {
    // A refused file may have waited out a whole push: an export that renamed its next file over the name meanwhile
    // must not see that new, unsent file put in rejected/. (Compared in place, where the inode is stable everywhere.)
    const current = statFile(file.path);
    if (current !== undefined && current.ino !== file.ino) {
      ctx.record({
        file: file.name,
        outcome: 'vanished',
        rows: 0,
        message: `${file.name} was refused (${fault.reason}); a new file of that name replaced it before it could be moved to rejected/, and is taken by the next run.`,
      });
      return undefined;
    }
    try {
      archivedTo = archiveFile(ctx.drop.folder, file, 'rejected', run.id.slice(0, 8), why);
      const movedTo = archivedTo;
      // Nothing of it sent, and refused as an unfinished export is (empty, header only, cut mid-row): watched for growth.
      if ((fault.sentRows ?? 0) + (fault.maybeSentRows ?? 0) === 0 && UNFINISHED_EXPORT.has(fault.reason))
        warnOnFailure(deps.logger, run.id, 'a refused file could not be watched for growth', () =>
          watchDelivered(deps, {
            name: file.name,
            archivedTo: movedTo,
            ino: file.ino,
            size: file.size,
            rows: 0,
            ...tailOf(movedTo, file.size),
            deliveredAtMs: deps.clock.now(),
            refused: true,
          }),
        );
    } catch (cause) {
      if (!existsSync(file.path))
        ctx.record({
          file: file.name,
          outcome: 'vanished',
          rows: 0,
          message: `${file.name} was refused (${fault.reason}) and disappeared before it could be moved to rejected/.`,
        });
      else
        ctx.record({
          file: file.name,
          outcome: 'left',
          rows,
          code: 'BRG_ERR_DROP_ARCHIVE',
          reason: fault.reason,
          message: `${file.name} was refused (${fault.reason}: ${fault.message}), and could not be moved to rejected/ (${errno(cause)}); it stays in the drop folder`,
        });
      return undefined;
    }
  }
  const key = `file-${fault.reason}`;
  ctx.rejectReasons[key] = (ctx.rejectReasons[key] ?? 0) + rows;
  ctx.counts.events += rows;
  ctx.counts.rejects += rows;
  // A refused file counts its rows; one refused before any row could be counted (e.g. at its header) counts once.
  deps.events.emit('reject', { runId: run.id, eventId: `file:${file.name}`, reason: key, ...(rows > 0 ? { rows } : {}) });
  deps.events.emit('page', { runId: run.id, events: rows, duplicates: 0, skipped: 0, rows: 0, rejects: rows });
  const where = { ...(fault.line !== undefined ? { line: fault.line } : {}), ...(fault.column !== undefined ? { column: fault.column } : {}) };
  const whyPath = archivedTo ? `${archivedTo}.why.txt` : undefined;
  ctx.writeReject({
    file: file.name,
    reason: fault.reason,
    ...where,
    rows,
    message: fault.message,
    ...(archivedTo ? { movedTo: archivedTo, why: whyPath } : {}),
  });
  ctx.record({
    file: file.name,
    outcome: 'rejected',
    rows,
    reason: fault.reason,
    ...where,
    message: fault.message,
    ...(archivedTo ? { archivedTo, why: whyPath } : {}),
  });
  return undefined;
}

/** The `.why.txt` beside a refused file: what is wrong, where, what was (not) sent, and what to do. */
function whyText(ctx: DropContext, file: DropFile, fault: Fault, rows: number): string {
  const schema = ctx.drop.schema;
  const columns = SCHEMA_COLUMNS[schema].map((c) => c.name);
  const hints: Record<string, string> = {
    'wrong-header': `The first line must be the ${schema} schema's ${columns.length} column names, in this order (tab- or pipe-separated${schema === 'healthcare' ? ', or comma-separated' : ''}):\n  ${columns.join('\n  ')}`,
    'not-utf8': 'If the export is not UTF-8, set connectors[].source.encoding to its encoding (e.g. windows-1252); otherwise re-export it as UTF-8.',
    'looks-utf8': 'The export writes UTF-8: set connectors[].source.encoding to utf-8 (or leave it out), then drop the file again.',
    'field-count': 'Every row must have as many fields as the header: a shifted row would put values under the wrong columns in Purview.',
    'header-again': 'The file holds its header twice: split it at the line named, into one file per export, and drop each.',
    'open-quote':
      "A quoted cell of a comma file must close on its line: Purview reads one row per line, so a line break inside a cell cuts the row in two. Re-export the file with the cells' line breaks replaced (by spaces), or, if the export was cut short, drop it again once it has finished.",
    'control-character':
      'No column of an access log holds a control character (a NUL byte): the export is damaged. Re-export it, or remove the character, and drop it again.',
    'changed-after-send': 'Compare the file with what the export wrote.',
    'purview-rejected': "Purview's words, if any, are above. A 400 usually means a row or the header is not what the connector's schema takes.",
  };
  const where = fault.line !== undefined ? `line ${fault.line}${fault.column !== undefined ? `, column ${fault.column}` : ''}` : 'the file as a whole';
  return [
    `${file.name} was refused by the bridge (connector ${ctx.deps.connector}, run ${ctx.run.id}, ${new Date(ctx.deps.clock.now()).toISOString()}).`,
    `Reason: ${fault.reason}`,
    `Where: ${where}`,
    fault.message,
    fault.reason === 'changed-after-send' ? '' : sentLine(fault, rows),
    hints[fault.reason] ?? '',
    retryAdvice(fault),
    '',
  ]
    .filter((line, i, all) => line !== '' || i === all.length - 1)
    .join('\n');
}

/** What of the file went out: `rows` are those not acknowledged. */
function sentLine(fault: Fault, rows: number): string {
  const acked = fault.sentRows ?? 0;
  const maybe = fault.maybeSentRows ?? 0;
  if (acked + maybe === 0) return `Rows in the file (non-empty lines after the first): ${rows}. None of them was sent.`;
  const unknown = maybe > 0 ? `; the ${acked > 0 ? 'next' : 'first'} ${maybe} were sent without an answer, so Purview may hold them` : '';
  const known = acked > 0 ? `Purview acknowledged the first ${acked}` : 'Purview acknowledged none of them';
  return `Rows in the file (non-empty lines after the first): ${rows + acked}. ${known}${unknown}; the other ${rows - maybe} were not delivered.`;
}

/** What to do with a refused file: drop it again, or drop only the rows Purview does not have (a changed file is new content). */
function retryAdvice(fault: Fault): string {
  const acked = fault.sentRows;
  const maybe = fault.maybeSentRows ?? 0;
  if (acked === undefined)
    return 'To retry: fix or re-export the file and drop it in the folder again. Rows Purview already acknowledged are never sent twice.';
  // Rows sent without an answer: the bridge re-sends them flagged within the same file, but a new file's rows are new to
  // it. Left out, they may be missing; put in, Purview may hold them twice. Only Purview can tell.
  const unknown =
    maybe > 0
      ? ` The ${maybe} row(s) ${acked > 0 ? `after the first ${acked} acknowledged` : 'at its start'} were sent without an answer: Purview may hold them. Leave them out if Purview shows them; put in, they are sent unflagged, and Purview holds them twice if it took them before.`
      : '';
  if (fault.reason === 'settings-changed-after-send') {
    const back = fault.formerEncoding === undefined ? 'put back the setting that changed' : `set connectors[].source.encoding back to ${fault.formerEncoding}`;
    const rest = acked > 0 ? `only the rows after its first ${acked}` : 'its rows';
    return `To finish it as it was read then: ${back} and move this file, unchanged, back into the drop folder; only the rows Purview has not acknowledged are sent. To keep the new setting instead: drop a new file with the header line and ${rest}. Do not drop this file again as it is under the new setting: read differently, it is new content, and the rows of it in Purview already would be sent twice.${unknown}`;
  }
  if (acked === 0) return `To retry: fix the file and drop it in the folder again.${unknown}`;
  if (fault.reason !== 'purview-rejected')
    return `Do not drop this file again as it is: the ${acked} row(s) Purview acknowledged of it when it was read (its first ${acked} non-empty lines after the header, if the export only appended) are in Purview already, and the bridge knows a file by its content, so a changed file is a new one and they would be sent twice. Drop a new file with the header line and only the rows that were not among them.${unknown}`;
  return `Do not drop this file again as it is, nor fixed: the bridge knows a file by its content, so a changed file is a new one and its first ${acked} row(s), in Purview already, would be sent twice. Drop a new file with the header line and only the rows after them, fixed.${unknown}`;
}

/** In a `finally`: a spool that cannot be removed (held open) is left to the run's end and the next run's sweep. */
function dropSpool(ctx: DropContext, path: string): void {
  warnOnFailure(ctx.deps.logger, ctx.run.id, "a file's spool could not be removed yet; the run goes on", () => {
    removeFiles(path);
    ctx.spools.delete(path);
  });
}

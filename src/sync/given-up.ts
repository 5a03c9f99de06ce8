/**
 * Events the operator gave up after Purview refused their block as invalid (`bridge state give-up`) are rejected rows
 * of the run that meets them: each of their rows goes to the run's rejects file with reason `purview-refused`, after
 * the mapping's rejects, so `bridge rejects <run>` shows what Purview would not take. Every push of a run meets them
 * again (the ledger keeps them given up): a push keeps the rows an earlier push of the same run wrote (a resume after
 * a kill, or after a failure) and writes only the others, so the file lists each row once (a line a kill tore is cut
 * and written again), and the run's live reject count (the `reject` event, a metric) takes each event once, however
 * often its push resumed or failed.
 */
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { BridgeError } from '../errors.js';
import type { SpoolEvent } from '../purview/event-spool.js';
import { parseEventClaimKey } from '../purview/ledger.js';

export const GIVEN_UP_REASON = 'purview-refused';

/** Every line this module writes starts so; a mapping reject's line never does (its first key is eventId). */
const LINE_PREFIX = Buffer.from(`{"reason":"${GIVEN_UP_REASON}"`);
const FLUSH_CHARS = 64 * 1024;
const CHUNK_BYTES = 64 * 1024;

export class GivenUpRecorder {
  /** Rows and events given up in this push. */
  rows = 0;
  events = 0;
  private buffer = '';
  private readonly rejects: number;
  private spool: number | undefined;
  /** Rows an earlier push of this run wrote, by claim key (`id|versionId`) of their event. */
  private readonly earlier: ReadonlyMap<string, number>;

  /** Opens the rejects file to append, after the lines earlier pushes of the run wrote whole (a torn last line cut). */
  constructor(
    rejectsPath: string,
    private readonly spoolPath: string,
  ) {
    this.rejects = openSync(rejectsPath, 'a+', 0o600);
    try {
      const start = givenUpStart(this.rejects);
      const earlier = start === undefined ? undefined : earlierRows(this.rejects, start);
      this.earlier = earlier?.rows ?? new Map();
      if (earlier) ftruncateSync(this.rejects, earlier.end);
    } catch (error) {
      closeSync(this.rejects);
      throw error;
    }
  }

  /**
   * Writes the event's rows an earlier push of this run did not (all of them, or those after a kill cut it short); true
   * when no earlier push had written any (the event is new to the run's counts).
   */
  add(event: SpoolEvent): boolean {
    const written = this.earlier.get(event.key) ?? 0;
    if (written >= event.rows) return false;
    this.spool ??= openSync(this.spoolPath, 'r');
    const bytes = Buffer.alloc(event.end - event.start);
    const read = readSync(this.spool, bytes, 0, bytes.length, event.start);
    if (read !== bytes.length) {
      throw new BridgeError('BRG_ERR_STATE', `The spool ${this.spoolPath} ends inside event ${event.key}'s rows: it was cut after it was written.`);
    }
    const { id, versionId } = parseEventClaimKey(event.key);
    const rows = bytes
      .toString('utf8')
      .split('\r\n')
      .filter((row) => row !== '');
    for (const row of rows.slice(written)) {
      this.buffer += `${JSON.stringify({ reason: GIVEN_UP_REASON, eventId: id, ...(versionId ? { versionId } : {}), row })}\n`;
      this.rows += 1;
    }
    this.events += 1;
    if (this.buffer.length >= FLUSH_CHARS) this.flush();
    return written === 0;
  }

  close(): void {
    try {
      this.flush();
    } finally {
      closeSync(this.rejects);
      if (this.spool !== undefined) closeSync(this.spool);
    }
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    writeSync(this.rejects, this.buffer);
    this.buffer = '';
  }
}

/**
 * The rows the given-up lines from `start` on hold, per event, and where they end: before a line a kill cut (no newline,
 * or not JSON), which is cut.
 */
function earlierRows(fd: number, start: number): { rows: Map<string, number>; end: number } {
  const rows = new Map<string, number>();
  const chunk = Buffer.alloc(CHUNK_BYTES);
  let position = start;
  let end = start;
  let pending = Buffer.alloc(0);
  for (;;) {
    const read = readSync(fd, chunk, 0, chunk.length, position);
    if (read === 0) break;
    position += read;
    let text = Buffer.concat([pending, chunk.subarray(0, read)]);
    for (let newline = text.indexOf(0x0a); newline !== -1; newline = text.indexOf(0x0a)) {
      const key = keyOf(text.subarray(0, newline).toString('utf8'));
      if (key === undefined) return { rows, end };
      rows.set(key, (rows.get(key) ?? 0) + 1);
      end += newline + 1;
      text = text.subarray(newline + 1);
    }
    pending = Buffer.from(text);
  }
  return { rows, end };
}

function keyOf(line: string): string | undefined {
  try {
    const { eventId, versionId } = JSON.parse(line) as { eventId?: unknown; versionId?: unknown };
    return typeof eventId === 'string' ? `${eventId}|${typeof versionId === 'string' ? versionId : ''}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the given-up lines begin: the first line starting with LINE_PREFIX, or a last line without its newline (a
 * write cut by a kill). Read in chunks: a rejects file can be large.
 */
function givenUpStart(fd: number): number | undefined {
  const chunk = Buffer.alloc(CHUNK_BYTES);
  let position = 0;
  let lineStart = 0;
  /** The current line's first bytes, up to LINE_PREFIX's length. */
  let head = Buffer.alloc(0);
  for (;;) {
    const read = readSync(fd, chunk, 0, chunk.length, position);
    if (read === 0) break;
    let index = 0;
    while (index < read) {
      const newline = chunk.indexOf(0x0a, index);
      const lineEnd = newline === -1 || newline >= read ? read : newline;
      if (head.length < LINE_PREFIX.length) {
        head = Buffer.concat([head, chunk.subarray(index, Math.min(lineEnd, index + LINE_PREFIX.length - head.length))]);
      }
      if (lineEnd === read) break;
      if (head.equals(LINE_PREFIX)) return lineStart;
      lineStart = position + newline + 1;
      head = Buffer.alloc(0);
      index = newline + 1;
    }
    position += read;
  }
  return lineStart < position ? lineStart : undefined;
}

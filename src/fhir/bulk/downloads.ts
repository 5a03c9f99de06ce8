/**
 * An export's files, downloaded one at a time in the reader's order and read while they arrive: the reader follows
 * each file's bytes on disk as the download writes them, so parsing a file overlaps fetching it (one big file is
 * common; waiting for it whole cost a third more time in the bench). A file is checkpointed once it is complete on
 * disk (fsync, then renamed), so a run that dies downloads only the rest next time. A download that fails before its
 * reader took a byte of it is retried from scratch under the shared policy, also while the reader waits for it; once
 * the reader has bytes of it, a failure ends the run instead (what was parsed cannot be taken back), and the next run
 * downloads it again.
 */
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { abortError } from '../../clock.js';
import { BridgeError } from '../../errors.js';
import type { NdjsonLines } from '../../mapping/load.js';
import type { LocalFile, ManifestFile } from './checkpoint.js';
import { exportFileLines, fileLabel, isComplete, isGzipStart, onDisk, requestExportFile } from './files.js';
import type { BulkHttp } from './http.js';

const CHUNK = 1 << 20;

export interface DownloadPlan {
  readonly output: readonly ManifestFile[];
  readonly requiresAccessToken: boolean;
  /** Files complete on disk, by index (from the checkpoint). */
  readonly complete: Readonly<Record<string, LocalFile>>;
  pathOf(index: number): string;
  /** Called once a file is complete on disk (the checkpoint). */
  onComplete(index: number, local: LocalFile): void;
}

interface FileState {
  readonly path: string;
  /** Bytes on disk so far (of the current attempt; 0 again once an attempt failed). */
  written: number;
  /** Known once the response headers came (or the file was complete); unknown again once an attempt failed. */
  gzip: boolean | undefined;
  done: boolean;
  error: unknown;
  /** Failed attempts so far: bytes read from an earlier one's part file are not this file's. */
  failures: number;
  /** The reader was handed bytes of this file: a failed download can no longer be retried. */
  following: boolean;
  changed: Promise<void>;
  notify: () => void;
}

export class Downloads {
  private readonly states = new Map<number, FileState>();
  private readonly controller = new AbortController();
  private readonly loop: Promise<void>;

  constructor(
    private readonly http: BulkHttp,
    private readonly plan: DownloadPlan,
    order: readonly number[],
    signal?: AbortSignal,
  ) {
    for (const i of order) this.states.set(i, newState(plan.pathOf(i)));
    const stop = signal ? AbortSignal.any([signal, this.controller.signal]) : this.controller.signal;
    this.loop = this.run(order, stop);
  }

  /** The lines of file `index`, as they arrive. */
  async *lines(index: number): AsyncGenerator<NdjsonLines> {
    const state = this.states.get(index);
    const file = this.plan.output[index];
    if (!state || !file) throw new RangeError(`file ${index} is not being downloaded`);
    const label = fileLabel(file, index, this.plan.output.length);
    const handedOver = { gzip: false };
    const bytes = followBytes(state, this.controller.signal, handedOver);
    // The first bytes decide how the file is read: compressed or not is the attempt's they came from (one that failed
    // before may have answered otherwise). An empty file hands over nothing and has no lines, whatever its encoding said:
    // some servers send an empty body under Content-Encoding gzip (not a gzip stream of nothing), as clients take it.
    const first = await bytes.next();
    const gzip = !first.done && handedOver.gzip;
    const source = first.done ? bytes : prepend(first.value, bytes);
    const compressed = gzip ? Readable.from(source) : undefined;
    const inflated = compressed ? createGunzip({ chunkSize: CHUNK }) : undefined;
    if (compressed && inflated) {
      // pipe() forwards data, not errors: the reader must meet a failed download or an abort.
      compressed.on('error', (error) => inflated.destroy(error));
      compressed.pipe(inflated);
    }
    try {
      yield* exportFileLines(inflated ?? source, label);
    } finally {
      compressed?.destroy();
      inflated?.destroy();
    }
  }

  /** Stops downloading (the reader is done or failed) and waits for the loop to let go of its files. */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private async run(order: readonly number[], signal: AbortSignal): Promise<void> {
    for (const [n, i] of order.entries()) {
      const state = this.states.get(i) as FileState;
      const known = this.plan.complete[String(i)];
      try {
        if (known && isComplete(state.path, known)) {
          Object.assign(state, { written: known.bytes, gzip: known.gzip, done: true });
          state.notify();
          continue;
        }
        const local = await this.download(i, state, signal);
        this.plan.onComplete(i, local);
      } catch (error) {
        // This file and every later one fail with the same error: the reader meets it at the first it reads.
        for (const j of order.slice(n)) {
          const later = this.states.get(j) as FileState;
          later.error = error;
          later.notify();
        }
        return;
      }
    }
  }

  private async download(index: number, state: FileState, signal: AbortSignal): Promise<LocalFile> {
    const file = this.plan.output[index] as ManifestFile;
    const label = fileLabel(file, index, this.plan.output.length);
    const part = `${state.path}.part`;
    let last: unknown;
    return this.http.withRetries(
      `FHIR export download of ${label}`,
      async (attempt) => {
        // Bytes of a failed attempt may already be parsed: the file cannot start over under its reader.
        if (attempt > 1 && state.following) throw this.http.toError(last, `FHIR export download of ${label}`, attempt - 1, signal);
        try {
          return await this.attempt(file, label, state, part, this.plan.requiresAccessToken, signal);
        } catch (error) {
          last = error;
          throw error;
        }
      },
      signal,
    );
  }

  private async attempt(
    file: ManifestFile,
    label: string,
    state: FileState,
    part: string,
    requiresAccessToken: boolean,
    signal: AbortSignal,
  ): Promise<LocalFile> {
    const { reply, gzip: labelled } = await requestExportFile(this.http, file, label, requiresAccessToken, signal);
    // Labelled by Content-Encoding, or a `.ndjson.gz` a blob store serves as application/gzip (its first bytes say so):
    // decided here, before the first byte is handed over, so the reader (followBytes) and the checkpoint agree.
    let gzip = labelled;
    let handle: FileHandle | undefined = await onDisk(part, () => open(part, 'w', 0o600)).catch((error: unknown) => {
      reply.body.destroy();
      throw error;
    });
    try {
      state.written = 0;
      state.gzip = gzip;
      state.notify();
      for await (const chunk of reply.body as AsyncIterable<Buffer>) {
        if (state.written === 0 && !gzip && isGzipStart(chunk)) {
          gzip = true;
          state.gzip = true;
        }
        const into = handle;
        await onDisk(part, async () => {
          for (let at = 0; at < chunk.length; ) at += (await into.write(chunk, at)).bytesWritten;
        });
        state.written += chunk.length;
        state.notify();
      }
      // On disk before the checkpoint says the file is complete.
      const done = handle;
      await onDisk(part, async () => {
        await done.sync();
        await done.close();
      });
      handle = undefined;
      await onDisk(state.path, () => rename(part, state.path));
    } catch (error) {
      // Before the part file goes: a reader that has no byte of this attempt waits for the next instead of opening it.
      Object.assign(state, { written: 0, gzip: undefined, failures: state.failures + 1 });
      state.notify();
      throw error;
    } finally {
      await handle?.close();
      await rm(part, { force: true });
    }
    state.done = true;
    state.notify();
    return { bytes: state.written, gzip };
  }
}

function newState(path: string): FileState {
  let wake: () => void = () => undefined;
  const state: FileState = {
    path,
    written: 0,
    gzip: undefined,
    done: false,
    error: undefined,
    failures: 0,
    following: false,
    changed: new Promise<void>((resolve) => (wake = resolve)),
    notify: () => {
      const waiting = wake;
      state.changed = new Promise<void>((resolve) => (wake = resolve));
      waiting();
    },
  };
  return state;
}

/**
 * The file's bytes in order as the download writes them; ends when the file is whole. Handing over the first chunk
 * makes the file followed (`handedOver.gzip` then says how it came); until then, bytes of an attempt that failed are
 * dropped and the next attempt is read from its start. After the first chunk of a plain file, every chunk is read
 * into one buffer (each valid until the next is asked for: no new external memory per chunk, which V8 pays for with
 * full GCs); zlib queues its input, so a compressed file gets a fresh buffer per chunk.
 */
async function* followBytes(state: FileState, signal: AbortSignal, handedOver: { gzip: boolean }): AsyncGenerator<Buffer> {
  let handle: FileHandle | undefined;
  let shared: Buffer | undefined;
  try {
    for (let offset = 0, opened = state.failures; ; ) {
      if (state.error !== undefined) throw state.error;
      if (signal.aborted) throw abortError(signal);
      if (offset < state.written) {
        const buffer = shared ?? Buffer.allocUnsafe(CHUNK);
        const length = Math.min(CHUNK, state.written - offset);
        let bytesRead = 0;
        try {
          if (!handle) opened = state.failures;
          // The part file while it grows; the same inode keeps being read after its rename.
          handle ??= await openGrowing(state);
          ({ bytesRead } = await handle.read(buffer, 0, length, offset));
        } catch (error) {
          if (state.following || opened === state.failures || (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
        if (!state.following && opened !== state.failures) {
          // The attempt these bytes came from failed before any was handed over: its part file is gone, start over.
          await handle?.close();
          handle = undefined;
          offset = 0;
          continue;
        }
        if (bytesRead === 0) throw new BridgeError('BRG_ERR_INTERNAL', 'An export file shrank while it was read.');
        offset += bytesRead;
        if (!state.following) {
          state.following = true;
          handedOver.gzip = state.gzip === true;
          if (!handedOver.gzip) shared = Buffer.allocUnsafe(CHUNK);
        }
        yield buffer.subarray(0, bytesRead);
      } else if (state.done) {
        return;
      } else {
        await state.changed;
      }
    }
  } finally {
    await handle?.close();
  }
}

/** `first`, then the rest; the rest is closed (its file handle too) even when the reader stops after `first`. */
async function* prepend(first: Buffer, rest: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield first;
    yield* rest;
  } finally {
    await rest.return(undefined);
  }
}

/** The download's part file, or the file itself once renamed (the rename may come between the check and the open). */
async function openGrowing(state: FileState): Promise<FileHandle> {
  if (state.done) return open(state.path, 'r');
  try {
    return await open(`${state.path}.part`, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return open(state.path, 'r');
  }
}

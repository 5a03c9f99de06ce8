/**
 * One connector's Bulk Data export across runs: kick-off or resume, poll, manifest, downloads, each step checkpointed
 * in the state store (checkpoint.ts) before the next begins, so a run that dies resumes polling the same status URL or
 * downloading only the files not yet on disk, never exporting again. Downloads run one at a time ahead of the reader
 * (lookups first, then AuditEvents) and read as they arrive (downloads.ts). When the export is read, or
 * abandoned, its status URL gets a DELETE and its local files go.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeError } from '../../errors.js';
import { issueCodes } from '../outcome.js';
import {
  type CheckpointStore,
  type ExportCheckpoint,
  type ExportManifest,
  type ExportRequest,
  type LocalFile,
  loadCheckpoint,
  type ManifestFile,
  recordFile,
  sameRequest,
  saveCheckpoint,
} from './checkpoint.js';
import { Downloads } from './downloads.js';
import { downloadFile, fileLabel, localLines, parseLine } from './files.js';
import type { BulkHttp } from './http.js';
import { deleteExport, exportError, kickOff, pollStatus } from './job.js';
import { lookupIndexName } from './lookup-index.js';
import { readManifest } from './manifest.js';

/** What the export does, for logs, progress lines and tests. No PHI: counts, times, cleaned server text. */
export type BulkExportEvent =
  | { readonly type: 'kick-off'; readonly since?: string | undefined }
  | { readonly type: 'resumed'; readonly phase: 'polling' | 'downloading'; readonly filesComplete: number; readonly files: number }
  | { readonly type: 'progress'; readonly progress: string }
  | { readonly type: 'manifest'; readonly files: number; readonly transactionTime: string; readonly deleted: number }
  | { readonly type: 'downloaded'; readonly file: string; readonly bytes: number }
  | { readonly type: 'export-errors'; readonly outcomes: number; readonly codes: Readonly<Record<string, number>> }
  | { readonly type: 'restart'; readonly reason: string }
  /**
   * Not the watermark as `_since`: it came from an export of another scope (server, level or Group). `since`: as far
   * back as the delivery ledger remembers, when it forgot anything; else no `_since` at all.
   */
  | { readonly type: 'full-export'; readonly reason: string; readonly since?: string | undefined }
  | { readonly type: 'finished'; readonly deleted: boolean };

export interface BulkExportJobOptions {
  readonly http: BulkHttp;
  readonly store: CheckpointStore;
  /** This connector's folder for export downloads (stateDir/bulk/<connector>). */
  readonly dir: string;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  readonly newId: () => string;
  readonly onEvent?: ((event: BulkExportEvent) => void) | undefined;
}

export type ReadyExport = ExportCheckpoint & { readonly manifest: ExportManifest };

/** A server that keeps forgetting its exports while we poll must not be asked forever. */
const MAX_GONE = 3;
/** Distinct issue codes counted in an export's error report; more are left out of the tally (not of the count). */
const MAX_REPORTED_CODES = 20;

export class BulkExportJob {
  /** The id of the export `ready` returned and not yet finished or abandoned. */
  private live: string | undefined;

  constructor(readonly options: BulkExportJobOptions) {}

  /** An export with its manifest for `request`: the checkpointed one when it answers the same request, else a new one. */
  async ready(request: ExportRequest, signal?: AbortSignal): Promise<ReadyExport> {
    const { http, store } = this.options;
    let checkpoint = loadCheckpoint(store);
    if (checkpoint && !sameRequest(checkpoint.request, request)) {
      http.options.logger.info(
        { since: checkpoint.request.since ?? null },
        'an unfinished export was for another request (FHIR server, level, Group, window or types changed); abandoning it',
      );
      await this.abandon(checkpoint, signal);
      checkpoint = undefined;
    }
    this.sweep(checkpoint?.id);
    for (let gone = 0; ; gone++) {
      if (!checkpoint) {
        const statusUrl = await kickOff(http, request, signal);
        checkpoint = { version: 1, id: this.options.newId(), request, statusUrl, kickedOffAt: new Date(http.options.clock.now()).toISOString(), files: {} };
        saveCheckpoint(store, checkpoint);
        this.emit({ type: 'kick-off', since: request.since });
      } else if (!checkpoint.manifest) {
        this.emit({ type: 'resumed', phase: 'polling', filesComplete: 0, files: 0 });
      }
      if (checkpoint.manifest) {
        const files = checkpoint.manifest.output.length;
        this.emit({ type: 'resumed', phase: 'downloading', filesComplete: Object.keys(checkpoint.files).length, files });
        this.live = checkpoint.id;
        return checkpoint as ReadyExport;
      }
      const current: ExportCheckpoint = checkpoint;
      const result = await this.abandoningOnFailure(current, signal, () =>
        pollStatus(http, current.statusUrl, {
          pollMinMs: this.options.pollMinMs,
          deadlineMs: Date.parse(current.kickedOffAt) + this.options.pollMaxMs,
          signal,
          onProgress: (progress) => this.emit({ type: 'progress', progress }),
        }),
      );
      if (result.kind === 'gone') {
        if (gone + 1 >= MAX_GONE)
          throw exportError(
            `The FHIR server forgot ${MAX_GONE} exports in a row while they were polled (HTTP ${result.status} on the status URL); try again later`,
            result.status,
          );
        http.options.logger.warn({ status: result.status }, 'the FHIR server no longer knows the export being polled; starting a new one');
        this.emit({ type: 'restart', reason: `status URL answered HTTP ${result.status}` });
        await this.abandon(current, signal);
        checkpoint = undefined;
        continue;
      }
      const manifest = await this.abandoningOnFailure(current, signal, () =>
        readManifest(http, result.page, current.statusUrl, request.types, http.options.logger, signal),
      );
      if (request.since !== undefined && Date.parse(manifest.transactionTime) < Date.parse(request.since)) {
        http.options.logger.warn(
          { since: request.since, transactionTime: manifest.transactionTime },
          "the FHIR server's export ends before the _since it was asked for: its clock went back; the next export asks from where its clock now puts the last one",
        );
      }
      checkpoint = { ...current, manifest };
      saveCheckpoint(store, checkpoint);
      this.emit({ type: 'manifest', files: manifest.output.length, transactionTime: manifest.transactionTime, deleted: manifest.deleted });
      if (manifest.deleted > 0)
        http.options.logger.info({ deletedFiles: manifest.deleted }, 'the export lists files of deleted resources (not read); Purview keeps rows already sent');
      this.live = checkpoint.id;
      return checkpoint as ReadyExport;
    }
  }

  /** Local path of output file `index` (the name is ours; the URL is the server's). */
  pathOf(checkpoint: ExportCheckpoint, index: number | string): string {
    return join(this.options.dir, checkpoint.id, `${index}.ndjson`);
  }

  /** Starts downloading, in `order`, every file not yet complete on disk; one at a time, followed by the reader. */
  downloads(checkpoint: ReadyExport, order: readonly number[], signal?: AbortSignal): Downloads {
    mkdirSync(join(this.options.dir, checkpoint.id), { recursive: true, mode: 0o700 });
    const { output, requiresAccessToken } = checkpoint.manifest;
    return new Downloads(
      this.options.http,
      {
        output,
        requiresAccessToken,
        complete: checkpoint.files,
        pathOf: (index) => this.pathOf(checkpoint, index),
        onComplete: (index, local) => {
          this.complete(checkpoint, index, local);
          this.emit({ type: 'downloaded', file: fileLabel(output[index] as ManifestFile, index, output.length), bytes: local.bytes });
        },
      },
      order,
      signal,
    );
  }

  /**
   * Reads the error files once per export and reports them (counts per issue code: never their text, whose diagnostics
   * may name the patient a resource belongs to, scrubbed or not); returns how many OperationOutcomes they held, also
   * when they were reported by an earlier run.
   */
  async reportErrors(checkpoint: ReadyExport, signal?: AbortSignal): Promise<number> {
    const { http, store } = this.options;
    if (checkpoint.manifest.error.length === 0) return 0;
    if (checkpoint.errorsReported) return checkpoint.errorOutcomes ?? 0;
    let outcomes = 0;
    const codes: Record<string, number> = {};
    for (const [i, file] of checkpoint.manifest.error.entries()) {
      const label = fileLabel(file, i, checkpoint.manifest.error.length).replace(/^\S+ file/, 'error file');
      const path = this.pathOf(checkpoint, `error-${i}`);
      mkdirSync(join(this.options.dir, checkpoint.id), { recursive: true, mode: 0o700 });
      const local = await downloadFile(http, file, label, path, checkpoint.manifest.requiresAccessToken, signal);
      for await (const lines of localLines(path, local, label)) {
        for (let k = 0; k < lines.length; k++) {
          const text = lines.text(k);
          if (text.trim() === '') continue;
          const outcome = parseLine<unknown>(text, 'OperationOutcome', label, lines.first + k);
          outcomes += 1;
          for (const code of new Set(issueCodes(outcome))) {
            if (code in codes || Object.keys(codes).length < MAX_REPORTED_CODES) codes[code] = (codes[code] ?? 0) + 1;
          }
        }
      }
      rmSync(path, { force: true });
    }
    http.options.logger.warn(
      { outcomes, files: checkpoint.manifest.error.length, codes },
      'the FHIR server reported errors for this export (its error files); those resources were not exported',
    );
    this.emit({ type: 'export-errors', outcomes, codes });
    const current = loadCheckpoint(store);
    if (current?.id === checkpoint.id) saveCheckpoint(store, { ...current, errorsReported: true, errorOutcomes: outcomes });
    return outcomes;
  }

  /**
   * Records a complete download (so a resumed run skips it), unless its export was given up meanwhile (a download that
   * ends after the restart must not mark a file of the next export).
   */
  complete(checkpoint: ReadyExport, index: number, local: LocalFile): void {
    if (checkpoint.id === this.live) recordFile(this.options.store, checkpoint.id, index, local);
  }

  /** Every file was read: the server may drop the export, and so do we. */
  async finish(checkpoint: ExportCheckpoint, signal?: AbortSignal): Promise<void> {
    const deleted = await deleteExport(this.options.http, checkpoint.statusUrl, signal);
    this.forget(checkpoint);
    rmSync(join(this.options.dir, checkpoint.id), { recursive: true, force: true });
    this.emit({ type: 'finished', deleted });
  }

  /** Gives an export up: DELETE (best effort), forget the checkpoint, remove its files. */
  async abandon(checkpoint: ExportCheckpoint, signal?: AbortSignal): Promise<void> {
    await deleteExport(this.options.http, checkpoint.statusUrl, signal);
    this.forget(checkpoint);
    rmSync(join(this.options.dir, checkpoint.id), { recursive: true, force: true });
  }

  private forget(checkpoint: ExportCheckpoint): void {
    if (this.live === checkpoint.id) this.live = undefined;
    saveCheckpoint(this.options.store, undefined);
  }

  emit(event: BulkExportEvent): void {
    const { logger } = this.options.http.options;
    if (event.type === 'kick-off') logger.info({ since: event.since ?? null }, 'FHIR $export kicked off');
    if (event.type === 'resumed')
      logger.info({ phase: event.phase, filesComplete: event.filesComplete, files: event.files }, 'resuming the unfinished FHIR $export of an earlier run');
    if (event.type === 'manifest') logger.info({ files: event.files, transactionTime: event.transactionTime }, 'FHIR $export complete; downloading its files');
    if (event.type === 'finished') logger.info({ deleted: event.deleted }, 'FHIR $export read; its status URL was deleted');
    if (event.type === 'full-export')
      logger.warn(
        { reason: event.reason, since: event.since ?? null },
        event.since === undefined
          ? 'exporting everything (no _since): the watermark came from an export of another scope'
          : 'exporting back to what the delivery ledger remembers: the watermark came from an export of another scope',
      );
    this.options.onEvent?.(event);
  }

  /** A failed export (BRG_ERR_FHIR_EXPORT) is abandoned so the next run starts afresh; a transient failure keeps it. */
  private async abandoningOnFailure<T>(checkpoint: ExportCheckpoint, signal: AbortSignal | undefined, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (error) {
      if (error instanceof BridgeError && error.code === 'BRG_ERR_FHIR_EXPORT' && !signal?.aborted) await this.abandon(checkpoint, signal);
      throw error;
    }
  }

  /** Folders of exports no checkpoint names any more (an abandoned export's, a crash's) hold PHI: removed. */
  private sweep(keep: string | undefined): void {
    let names: string[] = [];
    try {
      names = readdirSync(this.options.dir);
    } catch {
      return;
    }
    const kept = new Set(keep === undefined ? [] : [keep, lookupIndexName(keep)]);
    for (const name of names) if (!kept.has(name)) rmSync(join(this.options.dir, name), { recursive: true, force: true });
  }
}

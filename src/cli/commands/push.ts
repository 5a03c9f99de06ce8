/**
 * `bridge push`: Microsoft's sample_script.ps1 for a flat-file export (tenantId, appId, appSecret, jobId, filePath),
 * without its data-loss bug (docs/purview-protocol.md §4.4) and with the same resume: blocks are checkpointed by the
 * content hash of the normalised file, so rerunning the same command after a failure sends only what Purview has not
 * acknowledged. The input is sniffed (tab, pipe, comma), a BOM and LF/CR line ends are accepted and normalised into a
 * private spool under the state directory, and the header is checked against the schema before anything is sent.
 * The secret is never a command-line value: an environment variable (PURVIEW_APP_SECRET by default) or a file.
 */
import { mkdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { type Clock, systemClock } from '../../clock.js';
import { leasePolicy } from '../../composition/index.js';
import { INSECURE_ENDPOINT, isSecureOrLocal } from '../../config/endpoints.js';
import { readSecret, warnIfFileExposed } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { uuidSource } from '../../ids.js';
import { createLogger, type Logger } from '../../log.js';
import { resolveNetwork } from '../../net/index.js';
import {
  CLOUDS,
  type CloudName,
  type ConnectorSchemaName,
  createPurviewTokenSource,
  DEFAULT_BLOCK_ROWS,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_RESOURCE,
  destinationKey,
  type EntraCredential,
  emptyReport,
  fileRowsText,
  holdsContent,
  type NormalizedFile,
  normalizeFlatFile,
  type PushEvent,
  prefixSha256s,
  pushRowFile,
  type RowFilePushReport,
  rowsSentOf,
  type SentContentHash,
} from '../../purview/index.js';
import { fileLeaseName, holdLease } from '../../sync/lease.js';
import type { StateStore } from '../../sync/state/index.js';
import { pushCopyPath, sweepPushCopies } from '../push-copies.js';
import { pushReporter } from '../reporters/push-progress.js';
import { processStats } from '../reporters/summary.js';
import { abortAfterGrace } from '../stop-grace.js';

export interface PushCommandDeps {
  readonly print: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** The state store under the state directory (delivery ledger and leases); closed after the push. */
  readonly openStore: (stateDir: string) => StateStore;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** Default: a warn-level logger on stderr. */
  readonly logger?: Logger;
  /** Aborts the push at once. */
  readonly signal?: AbortSignal;
  /** Graceful stop after the block in flight. */
  readonly stopSignal?: AbortSignal;
  /** A terminal here gets a progress bar; otherwise (or without it) periodic lines go through `print`. */
  readonly stdout?: NodeJS.WriteStream;
}

interface PushFlags {
  tenantId: string;
  appId: string;
  appSecretEnv?: string;
  appSecretFile?: string;
  appSecret?: string;
  cert?: string;
  certThumbprint?: string;
  jobId: string;
  file: string;
  cloud: CloudName;
  blockRows: number;
  schema: ConnectorSchemaName;
  stateDir: string;
  authorityHost?: string;
  ingestionBase?: string;
  resource?: string;
  caFile?: string;
  maxLineBytes: number;
  leaseTtlSeconds: number;
  stopGraceSeconds: number;
  progress: boolean;
  json?: boolean;
  resendEdited?: boolean;
}

export const DEFAULT_SECRET_ENV = 'PURVIEW_APP_SECRET';

export function pushCommand(deps: PushCommandDeps): Command {
  return new Command('push')
    .description(
      "Push a flat-file connector export (tab, pipe or comma separated) to Purview in sequential, resumable blocks, like Microsoft's sample_script.ps1.",
    )
    .requiredOption('--tenant-id <id>', 'Entra tenant id')
    .requiredOption('--app-id <id>', 'Entra app (client) id that owns the connector job')
    .option('--app-secret-env <name>', `environment variable holding the app secret (default ${DEFAULT_SECRET_ENV})`)
    .option('--app-secret-file <file>', 'file holding the app secret')
    .addOption(new Option('--app-secret <value>', 'refused: secrets are never command-line values').hideHelp())
    .option('--cert <file>', "PEM private key of the app's certificate credential (instead of a secret)")
    .option('--cert-thumbprint <hex>', 'SHA-256 thumbprint of that certificate, as Entra shows it')
    .requiredOption('--job-id <id>', 'connector job id from the Purview portal')
    .requiredOption('--file <path>', 'the export to push (header line first)')
    .addOption(new Option('--cloud <cloud>', 'Microsoft cloud').choices(Object.keys(CLOUDS)).default('commercial'))
    .addOption(new Option('--block-rows <n>', 'rows per block').argParser(positiveInt).default(DEFAULT_BLOCK_ROWS))
    .addOption(new Option('--schema <schema>', 'connector schema whose mandatory columns the header must name').choices(['epic', 'healthcare']).default('epic'))
    .option(
      '--state-dir <dir>',
      'where the block ledger and the normalised spool live; relative to the current directory: give the same one every run (a rerun with another sends everything again)',
      'state',
    )
    .addOption(new Option('--authority-host <url>', "override the cloud's Entra ID host (e.g. the sandbox)").argParser((v) => endpoint(v, '--authority-host')))
    .addOption(new Option('--ingestion-base <url>', "override the cloud's ingestion host (e.g. the sandbox)").argParser((v) => endpoint(v, '--ingestion-base')))
    .option('--resource <uri>', `token resource (default ${DEFAULT_RESOURCE})`)
    .option('--ca-file <file>', 'extra CA (PEM) to trust for these requests only (the sandbox)')
    .addOption(
      new Option('--max-line-bytes <n>', 'refuse a line longer than this')
        .argParser((v) => wholeNumber(v, '--max-line-bytes', 1024, 1 << 30))
        .default(DEFAULT_MAX_LINE_BYTES),
    )
    .addOption(
      new Option('--lease-ttl-seconds <n>', 'how long another machine waits for this push if it dies')
        .argParser((v) => wholeNumber(v, '--lease-ttl-seconds', 10, 3600))
        .default(120),
    )
    .addOption(
      new Option('--stop-grace-seconds <n>', 'after SIGTERM/SIGINT, how long the block in flight may take before it is aborted')
        .argParser((v) => wholeNumber(v, '--stop-grace-seconds', 0, 3600))
        .default(30),
    )
    .addOption(new Option('--no-progress', 'plain periodic lines even on a terminal'))
    .option('--json', 'print only the push summary, as one JSON object (as `bridge sync --json` does)')
    .option('--resend-edited', 'send a file whole though an earlier content of it (by this path, or one to the same file) has rows in Purview')
    .action((flags: PushFlags) => runPush(deps, flags));
}

async function runPush(deps: PushCommandDeps, flags: PushFlags): Promise<void> {
  // One logger for the whole push: a secret or key file others can read is warned about there, as `bridge sync` warns.
  const logged = { ...deps, logger: deps.logger ?? createLogger({ level: 'warn' }) };
  const credential = resolveCredential(flags, deps.env, logged.logger);
  const caPem = flags.caFile ? readFlagFile(flags.caFile, '--ca-file') : undefined;
  const spoolDir = join(flags.stateDir, 'push');
  mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
  const clock = deps.clock ?? systemClock;
  const owner = leasePolicy(flags.leaseTtlSeconds * 1000, 'bridge push');
  sweepPushCopies(
    spoolDir,
    (copy) => {
      const own = owner.identity;
      if (copy.host !== own.host || copy.pidNamespace !== own.pidNamespace || copy.pid === own.pid) return 'unknown';
      return owner.isStale({ ...own, ...copy, id: '', since: '' }) ? 'gone' : 'alive';
    },
    clock.now(),
  );
  const spoolPath = pushCopyPath(spoolDir, owner.identity);
  const startedMs = clock.now();
  try {
    // Line and column: an operator fixing a file by hand needs both.
    const input = await normalizeFlatFile(flags.file, spoolPath, flags.schema, { maxLineBytes: flags.maxLineBytes, namePositions: true });
    const notes = [input.hadBom ? 'BOM removed' : '', input.blankLines ? `${input.blankLines} empty line(s) dropped` : ''].filter(Boolean);
    if (!flags.json)
      deps.print(
        `${basename(flags.file)}: ${input.rows} row(s), ${input.delimiter}-separated, every mandatory ${flags.schema} column present, every row ${input.columns.length} fields${notes.length ? `; ${notes.join(', ')}` : ''}`,
      );
    if (input.rows === 0) {
      if (flags.json)
        deps.print(JSON.stringify(jsonSummary(flags, input, { ...emptyReport(), possiblyDuplicatedRanges: [] }, (clock.now() - startedMs) / 1000)));
      else deps.print('nothing to push: the file has a header and no rows');
      return;
    }
    const mode = flags.json ? 'quiet' : flags.progress && deps.stdout?.isTTY ? 'bar' : 'lines';
    const reporter = pushReporter({
      mode,
      rows: input.rows,
      blockRows: flags.blockRows,
      print: deps.print,
      clock,
      ...(deps.stdout ? { stream: deps.stdout } : {}),
    });
    let report: RowFilePushReport;
    try {
      report = await pushWithLedger(logged, flags, input, credential, caPem, (event) => reporter.onEvent(event));
    } finally {
      reporter.finish();
    }
    if (flags.json) deps.print(JSON.stringify(jsonSummary(flags, input, report, (clock.now() - startedMs) / 1000)));
    else for (const line of summaryLines(report, flags.jobId)) deps.print(line);
  } finally {
    rmSync(spoolPath, { force: true });
  }
}

/**
 * The ledger keys the file's rows by the destination (the job) and the file's content: pushing
 * it again to the same job sends only what was not acknowledged, with any block size; to another job, all of it. One
 * push of the same file to the same job at a time, across processes.
 */
async function pushWithLedger(
  deps: PushCommandDeps & { readonly logger: Logger },
  flags: PushFlags,
  file: NormalizedFile,
  credential: EntraCredential,
  caPem: string | undefined,
  onEvent: (event: PushEvent) => void,
): Promise<RowFilePushReport> {
  const clock = deps.clock ?? systemClock;
  const { logger } = deps;
  const preset = CLOUDS[flags.cloud];
  const ingestionBase = flags.ingestionBase ?? preset.ingestionBase;
  const destination = destinationKey({ ingestionBase, jobId: flags.jobId });
  // HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment, as for every other command.
  const network = resolveNetwork(undefined, deps.env);
  const tokenSource = createPurviewTokenSource({
    tenantId: flags.tenantId,
    appId: flags.appId,
    credential,
    authorityHost: flags.authorityHost ?? preset.authorityHost,
    resource: flags.resource ?? DEFAULT_RESOURCE,
    ...(caPem ? { caPem } : {}),
    network,
    clock,
    logger,
  });
  const store = deps.openStore(flags.stateDir);
  try {
    await refuseEditedFile(store, flags, destination, file);
    const lease = holdLease(
      store,
      fileLeaseName(destination, file.sha256),
      leasePolicy(flags.leaseTtlSeconds * 1000, 'bridge push'),
      clock,
      uuidSource,
      `A push of ${basename(flags.file)} to job ${flags.jobId}`,
    );
    // After the first signal, the block in flight has --stop-grace-seconds to be answered (src/cli/stop-grace.ts): a
    // supervisor's SIGKILL would otherwise end the push holding its lease, refusing a rerun elsewhere until it expires.
    const grace =
      deps.signal && deps.stopSignal
        ? abortAfterGrace({ signal: deps.signal, stopSignal: deps.stopSignal, clock }, flags.stopGraceSeconds * 1000, () =>
            logger.warn(
              { jobId: flags.jobId, graceMs: flags.stopGraceSeconds * 1000 },
              'stopping: the block in flight was not answered within --stop-grace-seconds; aborting it',
            ),
          )
        : undefined;
    try {
      const signal = grace ? AbortSignal.any([grace.signal, lease.lost]) : deps.signal ? AbortSignal.any([deps.signal, lease.lost]) : lease.lost;
      return await pushRowFile({
        file,
        blockRows: flags.blockRows,
        ingestionBase,
        jobId: flags.jobId,
        destination,
        tokenSource,
        ledger: store,
        lease: lease.ref,
        clock,
        logger,
        ...(caPem ? { caPem } : {}),
        network,
        signal,
        ...(deps.stopSignal ? { stopAfterBlock: deps.stopSignal } : {}),
        onEvent,
      });
    } finally {
      grace?.dispose();
      lease.release();
    }
  } finally {
    store.close();
  }
}

/** Where `bridge push` remembers the content each path last had, per destination (not a connector's state). */
const PUSHED_FILES = 'file:push';

/**
 * The ledger knows a file by its content: a file pushed in part, then edited (a row fixed after a 400) and pushed again,
 * is new content, sent whole, and the rows Purview acknowledged from it go again, unflagged. The content a path had
 * (and its row count) is remembered per destination; a new content is refused while the earlier one went out only in
 * part, or when it is the earlier content with rows added after it (an export that grows), unless --resend-edited says
 * to send it whole. A path whose earlier content went out whole takes the next export (a daily file written under one
 * name) as it is. A file is remembered under each of its names (pathNamesOf): reached another way, it is the same file.
 */
async function refuseEditedFile(store: StateStore, flags: PushFlags, destination: string, file: NormalizedFile): Promise<void> {
  const names = pathNamesOf(flags.file).map((path) => `${destination}|${path}`);
  const befores = names.map((name) => pushedBefore(store.getSourceState(PUSHED_FILES, name)));
  if (flags.resendEdited !== true) {
    // Both names usually remember one content: it is checked (and the file's prefix read) once.
    const earlier = new Map<string, SentContentHash>();
    for (const before of befores) if (before !== undefined && before.sha256 !== file.sha256 && !earlier.has(before.sha256)) earlier.set(before.sha256, before);
    for (const before of earlier.values()) await refuseAgainst(store, flags, destination, file, before);
  }
  const sent = file.sentSha256 === file.sha256 ? {} : { sentSha256: file.sentSha256 };
  names.forEach((name, i) => {
    if (befores[i]?.sha256 !== file.sha256) store.setSourceState(PUSHED_FILES, name, JSON.stringify({ sha256: file.sha256, rows: file.rows, ...sent }));
  });
}

/**
 * The names a file is remembered under: the path as given (absolute), and the file it names, links followed (on Windows
 * also the name's case as on disk, and a mapped drive's UNC path). Keyed by the path as given alone, an edited file
 * pushed through a symbolic link, or by its own path after a push through one, was a file never pushed: sent whole, the
 * rows acknowledged from it sent again, unflagged. The path as given stays one of the names: a link moved to another
 * file since (a `current` that names today's export) still answers for what went out through it.
 */
function pathNamesOf(file: string): string[] {
  const given = resolve(file);
  try {
    const real = realpathSync.native(file);
    // A pipe or a device (`--file /dev/stdin`) has no name that lasts beyond this run.
    return real !== given && statSync(real).isFile() ? [given, real] : [given];
  } catch {
    return [given];
  }
}

/** Refuses `file` when it would send again rows of `before`, the content one of its names had (refuseEditedFile). */
async function refuseAgainst(store: StateStore, flags: PushFlags, destination: string, file: NormalizedFile, before: SentContentHash): Promise<void> {
  const { acked, unknown } = rowsSentOf(store, destination, before.sha256);
  if (acked + unknown > 0 && acked < before.rows) {
    const maybe = unknown > 0 ? ` (${unknown} more may be: sent without an answer)` : '';
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${basename(flags.file)} was pushed to job ${flags.jobId} before with other content, not all of it: ${acked} of its ${before.rows} rows are in Purview${maybe}. Edited, it is a new file: all its rows would be sent, any it shares with what went out again. Push the earlier content again to finish it, or push the rows not sent yet from a file of another name (this name is held by the earlier content until it is finished); or pass --resend-edited to send this one whole (Purview then holds twice the rows it shares with what went out).`,
      { details: { acknowledged: acked, unknown } },
    );
  }
  // The same rows under a header spelled otherwise (quoted names, another case), or a comma file's cells quoted otherwise
  // (a re-export that quotes every cell), are another content, and no new row.
  if (acked + unknown > 0 && file.rows === before.rows && holdsContent(await prefixSha256s(file, before.rows), before)) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${basename(flags.file)} holds the rows pushed to job ${flags.jobId} before (${before.rows} rows, all in Purview) under a header spelled otherwise or with cells quoted otherwise: pushed, they would all be sent again. Nothing was sent and nothing is missing; or pass --resend-edited to send it whole (Purview then holds those rows twice).`,
      { details: { acknowledged: acked, unknown } },
    );
  }
  if (acked + unknown > 0 && file.rows > before.rows && holdsContent(await prefixSha256s(file, before.rows), before)) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${basename(flags.file)} is the content pushed to job ${flags.jobId} before (${before.rows} rows, all in Purview) with ${file.rows - before.rows} row(s) added after them. Grown, it is a new file: all its rows would be sent, those ${before.rows} again. Push a file holding the header line and only the rows after the first ${before.rows}; or pass --resend-edited to send this one whole (Purview then holds those rows twice).`,
      { details: { acknowledged: acked, unknown, addedRows: file.rows - before.rows } },
    );
  }
}

function pushedBefore(text: string | undefined): SentContentHash | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as { sha256?: unknown; rows?: unknown; sentSha256?: unknown };
    if (typeof value.sha256 !== 'string' || typeof value.rows !== 'number') return undefined;
    return { sha256: value.sha256, rows: value.rows, ...(typeof value.sentSha256 === 'string' ? { sentSha256: value.sentSha256 } : {}) };
  } catch {
    return undefined;
  }
}

/** Exactly one credential: a secret from a file or an environment variable, or a certificate with its thumbprint. */
function resolveCredential(flags: PushFlags, env: NodeJS.ProcessEnv, logger: Pick<Logger, 'warn'>): EntraCredential {
  if (flags.appSecret !== undefined) {
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      `--app-secret (sample_script.ps1's -appSecret) is refused: a secret on the command line ends up in shell history and process lists. Put it in the ${DEFAULT_SECRET_ENV} environment variable (or --app-secret-env NAME), or in a file (--app-secret-file).`,
    );
  }
  const given = [flags.appSecretEnv && '--app-secret-env', flags.appSecretFile && '--app-secret-file', flags.cert && '--cert'].filter(Boolean);
  if (given.length > 1) throw new BridgeError('BRG_ERR_CONFIG_INVALID', `Give one credential, not ${given.join(' and ')}.`);
  if ((flags.cert === undefined) !== (flags.certThumbprint === undefined)) {
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      '--cert and --cert-thumbprint go together: the PEM private key and the SHA-256 thumbprint Entra shows for the certificate.',
    );
  }
  if (flags.cert && flags.certThumbprint) {
    const thumbprint = flags.certThumbprint.replace(/:/g, '');
    if (!/^[0-9a-fA-F]{64}$/.test(thumbprint))
      throw new BridgeError('BRG_ERR_CONFIG_INVALID', '--cert-thumbprint must be the 64-hex-digit SHA-256 thumbprint of the certificate.');
    const privateKeyPem = readFlagFile(flags.cert, '--cert');
    warnIfFileExposed(flags.cert, '--cert', logger);
    return { kind: 'certificate', privateKeyPem, thumbprintSha256: thumbprint };
  }
  const ref = flags.appSecretFile ? { file: flags.appSecretFile } : { env: flags.appSecretEnv ?? DEFAULT_SECRET_ENV };
  return { kind: 'secret', secret: readSecret(ref, env, 'the Purview app secret', logger) };
}

/** `--json`: the push's outcome as one object (counts and ids only), like `bridge sync --json`. */
function jsonSummary(flags: PushFlags, file: NormalizedFile, report: RowFilePushReport, durationSeconds: number): Record<string, unknown> {
  return {
    file: basename(flags.file),
    jobId: flags.jobId,
    schema: flags.schema,
    delimiter: file.delimiter,
    rows: file.rows,
    blockRows: flags.blockRows,
    blocks: report.blocks,
    rowsSent: report.rowsSent,
    rowsAlreadyDelivered: report.rowsAlreadyDelivered,
    rowsAcked: report.rowsAcked,
    duplicateRows: report.duplicateRows,
    possiblyDuplicatedBlocks: report.possiblyDuplicated,
    rowsPossiblyDuplicated: report.rowsPossiblyDuplicated,
    // Data rows counted from 1, as `bridge runs --possibly-duplicated` lists a run's: block numbers name no rows.
    possiblyDuplicatedRows: report.possiblyDuplicatedRanges.map((range) => ({ firstRow: range.first + 1, lastRow: range.end })),
    durationSeconds,
    process: processStats(),
  };
}

/** Ranges of rows the summary line names; --json lists them all. */
const SHOWN_RANGES = 10;

function summaryLines(report: RowFilePushReport, jobId: string): string[] {
  const lines = [
    `pushed to job ${jobId}: ${report.rowsAcked} row(s) acknowledged (${report.rowsSent} sent now in ${report.blocks} block(s), ${report.rowsAlreadyDelivered} acknowledged earlier)`,
  ];
  if (report.possiblyDuplicated.length > 0) {
    // Where they are in the file: a rerun plans its blocks around the rows acknowledged, so block 0 of a resumed push
    // may hold the file's last rows.
    const more = report.possiblyDuplicatedRanges.length > SHOWN_RANGES ? '; --json lists them all' : '';
    lines.push(
      `possibly duplicated: ${report.rowsPossiblyDuplicated} row(s), ${fileRowsText(report.possiblyDuplicatedRanges, SHOWN_RANGES)} of the file, in block(s) ${report.possiblyDuplicated.join(', ')} of this push (sent before without a recorded acknowledgement; Purview may hold them twice${more})`,
    );
  }
  return lines;
}

function readFlagFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `${flag}: cannot read ${path}.`, { cause, details: { path } });
  }
}

function positiveInt(value: string): number {
  // Microsoft's connector documentation describes 100K-row blocks; larger ones are a size the service was never shown to take.
  return wholeNumber(value, '--block-rows', 1, 100_000);
}

/** An endpoint override: http(s), and https unless it is this machine (config/endpoints.ts). */
function endpoint(value: string, flag: string): string {
  if (!/^https?:\/\//i.test(value) || !URL.canParse(value)) throw new BridgeError('BRG_ERR_CONFIG_INVALID', `${flag} must be an https:// URL, got "${value}".`);
  if (!isSecureOrLocal(value)) throw new BridgeError('BRG_ERR_CONFIG_INVALID', `${flag} must be ${INSECURE_ENDPOINT}; got "${value}".`);
  return value;
}

function wholeNumber(value: string, flag: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `${flag} must be a whole number from ${min} to ${max}, got "${value}".`);
  }
  return n;
}

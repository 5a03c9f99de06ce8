/**
 * What a flat-file run leaves to the next one, and the dry run's output. A run that died (kill -9, power) left its
 * files in the drop folder — they are taken again, and the ledger skips what Purview acknowledged — so its record is
 * only closed, and its spools (PHI) removed.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeError } from '../errors.js';
import { warnOnFailure } from './completion.js';
import type { Checked } from './file-drop-steps.js';
import type { SyncDeps } from './pipeline.js';

/**
 * Closes every run of the connector a crash left in 'running' or 'pushing' (under the lease, none is in flight); refuses
 * while one is a FHIR or Bulk run stopped mid-push, whose spool is the only copy of its rows.
 */
export function closeInterrupted(deps: SyncDeps): void {
  for (let guard = 0; guard < 1000; guard++) {
    const run = deps.store.findUnfinishedRun(deps.connector);
    if (!run) return;
    if (run.state === 'pushing' && run.spoolPath !== undefined) {
      // A FHIR or Bulk run (only those keep a spool) stopped mid-push before the source became a drop folder: its rows
      // are nowhere else. Closed here, they would never reach Purview, and the drop folder's watermark would move on.
      throw new BridgeError(
        'BRG_ERR_CONNECTOR_STATE',
        `Connector "${deps.connector}" has an unfinished push (run ${run.id}, ${run.since} to ${run.until}) from before its source became a drop folder. ` +
          'Set its source back to what it was and run `bridge sync` once to finish that push (it needs only Purview), then switch to the drop folder.',
        { details: { runId: run.id } },
      );
    }
    deps.store.updateRun(run.id, {
      state: 'failed',
      finishedAt: new Date(deps.clock.now()).toISOString(),
      error: {
        code: 'BRG_ERR_ABORTED',
        message:
          'Interrupted before it finished. The files it had not archived are still in the drop folder and are taken by the next run; rows Purview acknowledged are not sent twice.',
      },
    });
    deps.logger.info({ runId: run.id, connector: deps.connector }, 'closed an interrupted run; its files are taken again');
  }
}

/**
 * Where a run's normalised copies of the files live while they are checked and pushed: `drop-spool/<run>.<n>.txt`,
 * beside the pipeline's `spool/` (whose sweep keys files by run id, and would take a long push's copy for an unknown
 * run's after an hour).
 */
export function dropSpoolDir(stateDir: string): string {
  const dir = join(stateDir, DROP_SPOOL);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

const DROP_SPOOL = 'drop-spool';

/** Removes the copies (PHI) of this connector's earlier runs, which are all over by now (the caller holds the lease). */
export function dropRunFiles(deps: SyncDeps): void {
  const dir = dropSpoolDir(deps.stateDir);
  for (const name of readdirSync(dir)) {
    const run = deps.store.getRun(name.split('.')[0] as string);
    if (run === undefined || run.connector !== deps.connector) continue;
    // One still held open (Windows) is tried again by the next run.
    warnOnFailure(deps.logger, run.id, "an earlier run's spool could not be removed; the next run tries again", () => rmSync(join(dir, name), { force: true }));
  }
}

/** `--dry-run --out F`: the checked (and enriched) rows of every file, under one header, as they would be sent. */
export async function writeDryRun(checked: readonly Checked[], out: string): Promise<void> {
  const first = checked[0]?.normalized;
  const other = checked.find((c) => !c.normalized.header.equals(first?.header ?? c.normalized.header));
  if (first && other) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${other.file.name} writes its header line differently from ${checked[0]?.file.name} (another delimiter, or the column names spelt otherwise); a dry run writes one connector file. Check them one at a time.`,
    );
  }
  const stream = createWriteStream(out, { mode: 0o600 });
  try {
    if (first) stream.write(first.header);
    for (const { normalized } of checked) {
      for await (const chunk of createReadStream(normalized.spoolPath, { start: normalized.header.length })) {
        if (!stream.write(chunk as Buffer)) await once(stream, 'drain');
      }
    }
    stream.end();
    await once(stream, 'finish');
  } catch (error) {
    stream.destroy();
    throw error;
  }
}

/**
 * A list the connector's source state keeps under `name` (JSON), the entries `isEntry` takes: one hand-edited, of an
 * older shape or unreadable is dropped, not trusted.
 */
export function readStateList<T>(deps: Pick<SyncDeps, 'store' | 'connector'>, name: string, isEntry: (value: unknown) => value is T): T[] {
  const text = deps.store.getSourceState(deps.connector, name);
  if (text === undefined) return [];
  try {
    const parsed = JSON.parse(text) as unknown;
    return Array.isArray(parsed) ? parsed.filter(isEntry) : [];
  } catch {
    return [];
  }
}

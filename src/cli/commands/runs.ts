/**
 * `bridge runs`: the run history from the state directory, newest first; the same records as GET /v1/runs. Counts,
 * reason codes and opaque ids only.
 */
import { Command, Option } from 'commander';
import { loadConfig } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { parseEventClaimKey } from '../../purview/ledger.js';
import { type RunView, runView } from '../../server/run-view.js';
import { formatDuration } from '../../server/status.js';
import { openExistingStateStore, type StateStore } from '../../sync/state/index.js';
import type { CliContext } from '../context.js';
import { findRun } from '../find-run.js';

export function runsCommand(ctx: CliContext): Command {
  return new Command('runs')
    .description('Recent runs, newest first: state, trigger, window, events, rows, rejects by reason, blocks, possibly duplicated blocks, duration.')
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .option('--connector <name>', 'only this connector')
    .addOption(new Option('--limit <k>', 'how many runs').argParser(limitOf).default(20))
    .option('--json', 'print {"runs": [...]} as GET /v1/runs does')
    .option('--possibly-duplicated <run>', 'list what this run sent in blocks flagged possibly duplicated: AuditEvent ids and versions, or file row ranges')
    .action((flags: { config?: string; connector?: string; limit: number; json?: boolean; possiblyDuplicated?: string }) => {
      const config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env });
      const store = openExistingStateStore(config.stateDir, ctx.clock, { upgrade: false });
      try {
        if (flags.possiblyDuplicated !== undefined) {
          printPossiblyDuplicated(ctx, store, flags.possiblyDuplicated, flags.json === true);
          return;
        }
        const policy = { retentionDays: config.retention.rejectsDays, retainFiles: config.retainFiles };
        const runs = store
          .listRuns({ ...(flags.connector ? { connector: flags.connector } : {}), limit: flags.limit })
          .map((run) => runView(run, policy, store.deliveredOf(run.id)));
        // A connector no longer in the config still has its history; a name neither has is a typo, not "no runs yet".
        if (flags.connector !== undefined && runs.length === 0 && !config.connectors.some((c) => c.name === flags.connector)) {
          throw new BridgeError(
            'BRG_ERR_INPUT_INVALID',
            `No connector named "${flags.connector}" in the config, and no runs of one in the state directory; the config's connectors: ${config.connectors.map((c) => c.name).join(', ')}.`,
          );
        }
        if (flags.json) ctx.print(JSON.stringify({ runs }));
        else for (const line of runsTable(runs)) ctx.print(line);
      } finally {
        store.close();
      }
    });
}

const COLUMNS = ['run', 'started', 'connector', 'state', 'trigger', 'window', 'events', 'rows', 'rejects', 'acked', 'blocks', 'dup', 'duration'] as const;
const NUMERIC = new Set<string>(['events', 'rows', 'rejects', 'acked', 'blocks', 'dup']);

/** An aligned table; the run id is cut to 8 characters (`bridge rejects` takes such a prefix). Reject reasons go under their run. */
export function runsTable(runs: readonly RunView[]): string[] {
  if (runs.length === 0) return ['no runs yet'];
  // UTC, and said so: an operator elsewhere would read a bare time as local.
  const minute = (iso: string): string => `${iso.slice(0, 16).replace('T', ' ')}Z`;
  const rows = runs.map((r) => ({
    run: r.id.slice(0, 8),
    started: minute(r.startedAt),
    connector: r.connector,
    state: r.state,
    trigger: `${r.trigger}${r.backfill ? '+backfill' : ''}${r.dryRun ? '+dry-run' : ''}`,
    window: `${minute(r.since)} → ${minute(r.until)}`,
    events: String(r.counts.events),
    rows: String(r.counts.rows),
    rejects: String(r.counts.rejects),
    // Rows Purview holds of the run: sent and acknowledged, or found delivered before (so far, for a run not completed).
    acked: String(r.counts.rowsAcked),
    blocks: String(r.counts.blocksAcked),
    dup: String(r.counts.possiblyDuplicated),
    // A run not finished is in flight, or was killed: `bridge status` tells which.
    duration: r.finishedAt ? formatDuration((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000) : '…',
  }));
  const width = Object.fromEntries(COLUMNS.map((c) => [c, Math.max(c.length, ...rows.map((row) => row[c].length))]));
  const line = (cells: Record<(typeof COLUMNS)[number], string>): string =>
    COLUMNS.map((c) => (NUMERIC.has(c) ? cells[c].padStart(width[c] ?? 0) : cells[c].padEnd(width[c] ?? 0)))
      .join('  ')
      .trimEnd();
  const lines = [line(Object.fromEntries(COLUMNS.map((c) => [c, c])) as Record<(typeof COLUMNS)[number], string>)];
  runs.forEach((run, i) => {
    lines.push(line(rows[i] as Record<(typeof COLUMNS)[number], string>));
    const reasons = Object.entries(run.details?.rejectReasons ?? {}).sort(([, a], [, b]) => b - a);
    if (reasons.length) lines.push(`    rejects: ${reasons.map(([reason, n]) => `${reason} ${n}`).join(', ')}${run.rejectsAvailable ? '' : ' (file removed)'}`);
    if (run.details?.unexported) lines.push(`    not exported: ${run.details.unexported} resource(s) the FHIR server reported it could not export`);
    if (run.error) lines.push(`    ${run.error.code}: ${run.error.message}`);
  });
  return lines;
}

function limitOf(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 500) throw new BridgeError('BRG_ERR_INPUT_INVALID', `--limit must be a whole number from 1 to 500, got "${value}".`);
  return n;
}

/**
 * What Purview may hold twice after a run: one line per AuditEvent (`AuditEvent/<id> version <v>`) or file row range
 * (`<source> rows <first>–<last>`, 1-based data rows; the source names the file by its content hash), from the ledger.
 * Opaque ids and counts only, no PHI.
 */
function printPossiblyDuplicated(ctx: CliContext, store: StateStore, id: string, json: boolean): void {
  const run = findRun(store, id);
  let n = 0;
  // --json: one JSON object, `{"run": …, "items": [...]}`, written an item a line as the ledger yields them (a run can
  // have many), so the list is never held whole.
  if (json) ctx.print(`{"run":${JSON.stringify(run.id)},"items":[`);
  for (const item of store.possiblyDuplicatedOf(run.id)) {
    n += 1;
    let entry: Record<string, string | number>;
    let text: string;
    if (item.kind === 'event') {
      const { id: eventId, versionId } = parseEventClaimKey(item.key);
      entry = { kind: 'event', id: eventId, ...(versionId ? { versionId } : {}) };
      text = `AuditEvent/${eventId}${versionId ? ` version ${versionId}` : ''}`;
    } else {
      entry = { kind: 'rows', source: item.source, firstRow: item.first + 1, lastRow: item.end };
      text = `${item.source} rows ${item.first + 1}–${item.end}`;
    }
    ctx.print(json ? `${n > 1 ? ',' : ''}${JSON.stringify(entry)}` : text);
  }
  if (json) ctx.print(']}');
  else if (n === 0 && run.counts.possiblyDuplicated > 0)
    // The run record keeps its counts; the ledger forgets blocks after its retention, with what they carried.
    ctx.print(
      `run ${run.id}: ${run.counts.possiblyDuplicated} block(s) flagged possibly duplicated, but the delivery ledger no longer holds what they carried (it forgets blocks older than state.ledgerRetentionDays)`,
    );
  else if (n === 0) ctx.print(`run ${run.id}: nothing sent in a block flagged possibly duplicated`);
}

/**
 * How far back a sync window may reach: the delivery ledger de-duplicates only what it still remembers, so a window
 * starting before its horizon could send rows Purview already has, unflagged. Checked before anything is pulled.
 */
import { BridgeError } from '../errors.js';
import type { SyncDeps } from './pipeline.js';
import { FLAG_LABELS, type SyncWindow, type WindowLabels } from './window.js';

type HorizonDeps = Pick<SyncDeps, 'connector' | 'ledgerRetentionMs' | 'window'>;

/**
 * Before the ledger's horizon nothing is remembered, so a window reaching there could send rows Purview already has,
 * unflagged. The horizon is the later of what today's retention will prune and what earlier runs already pruned with
 * the retention of their time (stored with each prune: raising the setting does not bring forgotten claims back).
 */
export function refuseBeyondLedger(
  deps: HorizonDeps,
  window: SyncWindow,
  watermark: string | undefined,
  backfill: boolean,
  labels: WindowLabels = FLAG_LABELS,
): void {
  refuseOverlapBeyondRetention(deps);
  const since = Date.parse(window.since);
  // The stored prune horizon, read once by the pipeline into the window (the bulk source reads it there too).
  const pruned = window.forgottenBefore === undefined ? undefined : Date.parse(window.forgottenBefore);
  const retained = watermark === undefined ? undefined : Date.parse(watermark) - deps.ledgerRetentionMs;
  if ((pruned === undefined || since >= pruned) && (retained === undefined || since >= retained)) return;
  const horizon = Math.max(pruned ?? Number.NEGATIVE_INFINITY, retained ?? Number.NEGATIVE_INFINITY);
  const at = new Date(horizon).toISOString();
  const why =
    horizon === pruned
      ? `the delivery ledger already forgot what Purview acknowledged before ${at} (an earlier run pruned it with the state.ledgerRetentionDays of its time; raising the setting now does not bring it back)`
      : `the delivery ledger keeps acknowledgements for ${Math.round(deps.ledgerRetentionMs / 86_400_000)} day(s) before the watermark (state.ledgerRetentionDays)`;
  if (backfill) {
    const fix =
      horizon === pruned
        ? `Start the backfill at ${at} or later.`
        : 'Start the backfill later, or raise state.ledgerRetentionDays before the rows you may need to backfill are pushed.';
    const message = `${labels.since} ${window.since} reaches before ${at}: ${why}, so rows pushed before then could be sent twice. ${fix}`;
    throw new BridgeError('BRG_ERR_INPUT_INVALID', message, { details: { since: window.since, horizon: at } });
  }
  // An incremental run reaches before it only through its overlap (raised after a prune with a short retention).
  throw new BridgeError(
    'BRG_ERR_CONFIG_INVALID',
    `This run's window starts at ${window.since} (the watermark minus fhir.overlapMinutes), before ${at}: ${why}, so rows of the overlap pushed before then could be sent twice. ` +
      `Lower fhir.overlapMinutes so the window starts at ${at} or later.`,
    { details: { since: window.since, horizon: at } },
  );
}

/** Every run re-reads its overlap: longer than the ledger's retention, its oldest part is de-duplicated by nothing. */
function refuseOverlapBeyondRetention(deps: HorizonDeps): void {
  if (deps.window.overlapMs <= deps.ledgerRetentionMs) return;
  throw new BridgeError(
    'BRG_ERR_CONFIG_INVALID',
    `fhir.overlapMinutes (${deps.window.overlapMs / 60_000} min) of connector "${deps.connector}" is longer than state.ledgerRetentionDays ` +
      `(${deps.ledgerRetentionMs / 86_400_000} day(s)): each run re-reads the overlap, and the delivery ledger forgets acknowledgements older than its retention, so rows could be sent twice. ` +
      'Lower fhir.overlapMinutes or raise state.ledgerRetentionDays.',
    { details: { overlapMinutes: deps.window.overlapMs / 60_000, ledgerRetentionDays: deps.ledgerRetentionMs / 86_400_000 } },
  );
}

/**
 * Which source a connector's watermark is a point in (the FHIR search source's base URL). The watermark says "every
 * event of this server up to here is pushed or rejected"; read against another server it would skip that server's
 * events before it, and a fresh start from the initial lookback could skip this server's events after an address change.
 * Neither can be told apart from the state, so an incremental run is refused, saying what to do; one run with --since
 * (a backfill, which moves the watermark once it reaches it) records the new source, in the transaction that moves the
 * watermark (state/sqlite.ts completeRun): the run's record names the source it was pulled from (RunDetails.pulledFrom).
 */
import { BridgeError } from '../errors.js';
import type { SyncDeps } from './pipeline.js';

const STATE_NAME = 'watermark-source';

type SourceDeps = Pick<SyncDeps, 'store' | 'connector' | 'watermarkSource' | 'sourceEndsWindows' | 'window'>;

/** The source the connector's watermark was recorded reading, if any (a Bulk export source compares it itself). */
export function recordedWatermarkSource(store: Pick<SyncDeps['store'], 'getSourceState'>, connector: string): string | undefined {
  return store.getSourceState(connector, STATE_NAME);
}

/**
 * Refuses an incremental run whose connector's watermark was recorded reading another source. Not for a source that
 * ends its own windows (a Bulk export): it exports back to what the delivery ledger remembers instead (bulk-source.ts).
 */
export function refuseWatermarkOfAnotherSource(deps: SourceDeps, watermark: string | undefined): void {
  if (watermark === undefined || deps.watermarkSource === undefined || deps.sourceEndsWindows) return;
  const recorded = recordedWatermarkSource(deps.store, deps.connector);
  if (recorded === undefined || recorded === deps.watermarkSource) return;
  // From where the next incremental run would read (the watermark less the overlap), not the watermark: an event the
  // server stamped inside the last overlap but made readable after the last run is what the overlap is there for.
  const resume = new Date(Date.parse(watermark) - deps.window.overlapMs).toISOString();
  throw new BridgeError(
    'BRG_ERR_CONFIG_INVALID',
    `Connector "${deps.connector}" has a watermark (${watermark}) recorded reading ${recorded}; it now reads ${deps.watermarkSource} (fhir.baseUrl changed, or its state was renamed from another connector). ` +
      `If it is the same server at another address, run \`bridge sync --since ${resume}\` once (the watermark less fhir.overlapMinutes); if it is another server, run \`bridge sync --since <the first instant to read from it>\` once. ` +
      'Rows Purview acknowledged are not sent twice, and later runs go on from there.',
    { details: { recorded, current: deps.watermarkSource } },
  );
}

/** The source state that says the watermark is a point in `source`: recorded as a run that pulled from it completes. */
export function watermarkSourceState(source: string): { readonly name: string; readonly value: string } {
  return { name: STATE_NAME, value: source };
}

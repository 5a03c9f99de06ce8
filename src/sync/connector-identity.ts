/**
 * A connector's name keys its watermark, its seen events and its delivery-ledger claims. A connector renamed in the
 * config would start afresh under the new name: it would pull its initial look-back again, and the ledger, looking
 * under the new name, would let every event through that Purview already holds from the old one. So a connector that
 * has never completed a run refuses to start while its Purview job has deliveries under a name the config no longer
 * has, until the operator says what became of that name (`bridge state rename` or `bridge state retire`); and a
 * connector retired under its own name is refused too (a process still running an old config).
 */
import { BridgeError } from '../errors.js';
import type { SyncDeps } from './pipeline.js';

type IdentityDeps = Pick<SyncDeps, 'connector' | 'store' | 'target' | 'knownConnectors'>;

const RETIRED = 'retired:';

/** The name `bridge state retire` keeps a connector's history under: no connector of a config can have it. */
export function retiredName(connector: string, atMs: number): string {
  return `${RETIRED}${connector}:${new Date(atMs).toISOString()}`;
}

/** A retired connector's name (retiredName), of `connector` when given. */
export function isRetired(name: string, connector?: string): boolean {
  return name.startsWith(connector === undefined ? RETIRED : `${RETIRED}${connector}:`);
}

/** Checked before anything is pulled, and only while the connector has no watermark (one query, once). */
export function refuseOrphanedDeliveries(deps: IdentityDeps, watermark: string | undefined): void {
  if (watermark !== undefined) return;
  const known = new Set([deps.connector, ...(deps.knownConnectors ?? [])]);
  const delivered = deps.store.connectorsDeliveredTo(deps.target.destination);
  const retired = delivered.find((name) => isRetired(name, deps.connector));
  if (retired !== undefined) {
    throw new BridgeError(
      'BRG_ERR_CONNECTOR_STATE',
      `Connector "${deps.connector}" was retired (its history is "${retired}", by \`bridge state retire\`), but this process still runs it: it would send its whole look-back again. ` +
        `If this process has an old config, restart it with the current one. To bring "${deps.connector}" back where it stopped, run \`bridge state rename ${retired} ${deps.connector}\`; for a new connector, choose another name.`,
      { details: { connector: deps.connector, retired } },
    );
  }
  const orphans = delivered.filter((name) => !known.has(name) && !isRetired(name));
  const old = orphans[0];
  if (old === undefined) return;
  const names = orphans.map((name) => `"${name}"`).join(', ');
  throw new BridgeError(
    'BRG_ERR_CONNECTOR_STATE',
    `Connector "${deps.connector}" has never completed a run, but its Purview job already holds rows the bridge sent as connector ${names}, which this config no longer has. ` +
      `If "${old}" was renamed to "${deps.connector}", run \`bridge state rename ${old} ${deps.connector}\` first: its watermark and delivery ledger move over, and nothing Purview holds is sent again. ` +
      `If "${old}" is gone for good, run \`bridge state retire ${old}\`: "${deps.connector}" then starts afresh and sends every event it reads, including any "${old}" sent.`,
    { details: { connector: deps.connector, others: orphans.join(',') } },
  );
}

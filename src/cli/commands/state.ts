/**
 * `bridge state rename <old> <new>` and `bridge state retire <old>`: what became of a connector name that left the
 * config. Its watermark, runs, seen events, source state and delivery-ledger claims are keyed by the name; a renamed
 * connector whose state did not move would send its whole look-back again. The sync refuses to start a connector
 * without a watermark while such a name has deliveries to its Purview job (src/sync/connector-identity.ts).
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { Command } from 'commander';
import { bulkDownloadsDir, destinationOf, holderIsGone, leasePolicy } from '../../composition/index.js';
import { type Config, loadConfig } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { uuidSource } from '../../ids.js';
import { retiredName } from '../../sync/connector-identity.js';
import { connectorLeaseName, type HeldLease, holdLease } from '../../sync/lease.js';
import { type ConnectorMove, openExistingStateStore, type StateStore, upgradeStateStore } from '../../sync/state/index.js';
import type { CliContext } from '../context.js';
import { refusedCommands } from './state-refused.js';

export function stateCommand(ctx: CliContext): Command {
  const config = (flags: { config?: string }): Config => loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env });
  const rename = new Command('rename')
    .description(
      "Carry a renamed connector's state over: watermark, runs, seen events, Bulk export checkpoint and delivery ledger move from <old> to <new>, so the renamed connector goes on where <old> stopped and sends nothing Purview holds again. <new> must be in the config and push to the Purview job <old> pushed to; <old> must not be in the config.",
    )
    .argument('<old>', 'the name the state knows')
    .argument('<new>', "the connector's name in the config now")
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .action((from: string, to: string, flags: { config?: string }) => {
      const loaded = config(flags);
      refuseConfigured(loaded, from, `remove "${from}" from the config first (two connectors must not share one history)`);
      const connector = loaded.connectors.find((c) => c.name === to);
      if (!connector) {
        throw new BridgeError(
          'BRG_ERR_CONNECTOR_STATE',
          `Connector "${to}" is not in the config; add it (renamed from "${from}") before moving "${from}"'s state to it.`,
          { details: { from, to } },
        );
      }
      const moved = move(ctx, loaded, from, to, [from, to], { destination: destinationOf(connector), files: () => moveDownloads(loaded, from, to) });
      ctx.print(
        `Connector "${from}" is now "${to}": ${describe(moved)} moved. The next run of "${to}" goes on from ${moved.watermark ?? `where "${from}" stopped`}.`,
      );
    });
  const retire = new Command('retire')
    .description(
      'Say a connector is gone for good: its state is kept (for `bridge runs`) under "retired:<old>:<time>", and a new connector on the same Purview job may start afresh. That new connector sends every event it reads again, including those <old> sent.',
    )
    .argument('<old>', 'the name the state knows')
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .action((from: string, flags: { config?: string }) => {
      const loaded = config(flags);
      refuseConfigured(loaded, from, `a connector in the config is not retired; remove "${from}" from the config first`);
      const retired = retiredName(from, ctx.clock.now());
      const moved = move(ctx, loaded, from, retired, [from], {
        files: () => rmSync(bulkDownloadsDir(loaded.stateDir, from), { recursive: true, force: true }),
      });
      ctx.print(`Connector "${from}" is retired as "${retired}": ${describe(moved)} kept under that name.`);
    });
  const upgrade = new Command('upgrade')
    .description(
      "Bring the state database to this bridge's schema, once the bridges of the older version that use it are stopped (refused while a run holds a connector). The commands that only read it (status, runs, rejects, state refused) never do; sync, serve, push and the state commands that write do it on their own, refused the same way.",
    )
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .action((flags: { config?: string }) => {
      const { stateDir } = config(flags);
      const { from, to } = upgradeStateStore(stateDir, { nowMs: ctx.clock.now(), isStale: holderIsGone });
      ctx.print(
        from === to
          ? `The state database in ${stateDir} is at schema v${to}, this bridge's: nothing to do.`
          : `The state database in ${stateDir} is upgraded from schema v${from} to v${to}. Bridges older than this version can no longer use it.`,
      );
    });
  const state = new Command('state')
    .description(
      "Move or retire a connector's state when it was renamed or removed from the config; show or give up a block Purview refuses as invalid; upgrade the state database's schema.",
    )
    .addCommand(rename)
    .addCommand(retire)
    .addCommand(upgrade);
  for (const command of refusedCommands(ctx, config)) state.addCommand(command);
  return state;
}

function refuseConfigured(config: Config, name: string, what: string): void {
  if (config.connectors.some((c) => c.name === name)) {
    throw new BridgeError('BRG_ERR_CONNECTOR_STATE', `Connector "${name}" is still in the config: ${what}.`, { details: { connector: name } });
  }
}

/**
 * Under the leases of every name involved: no run of either may be in flight, here or on another machine. The state
 * database must exist: a mistyped stateDir names no connector's history, and an empty database made there would only
 * say the connector has none.
 */
/** A connector's name, or one `bridge state retire` gave (connector-identity.ts retiredName). */
const CONNECTOR_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const RETIRED_NAME = /^retired:[a-z0-9][a-z0-9-]{0,62}:\d{4}-\d{2}-\d{2}T[\d:.]+Z$/;

/**
 * Only a connector's state moves: the ledger also keys a flat file's rows (`file:<sha256>`) and `bridge push`'s memory of
 * each path (`file:push`), and moved away those would let a file go again whole, unflagged.
 */
function refuseOtherNames(from: string): void {
  if (CONNECTOR_NAME.test(from) || RETIRED_NAME.test(from)) return;
  throw new BridgeError(
    'BRG_ERR_INPUT_INVALID',
    `"${from}" is no connector's name (lowercase letters, digits and dashes, or a retired:<name>:<time> one): only a connector's state moves. A file's deliveries are kept by its content and cannot be renamed or retired.`,
    { details: { name: from } },
  );
}

function move(
  ctx: CliContext,
  config: Config,
  from: string,
  to: string,
  names: readonly string[],
  options: { destination?: string; files: () => void },
): ConnectorMove {
  refuseOtherNames(from);
  const store = openExistingStateStore(config.stateDir, ctx.clock, { upgrade: true, isStale: holderIsGone });
  const held: HeldLease[] = [];
  try {
    const policy = leasePolicy(config.state.leaseTtlSeconds * 1000, 'bridge state');
    for (const name of names) held.push(holdLease(store, connectorLeaseName(name), policy, ctx.clock, uuidSource, `A sync of connector "${name}"`));
    return store.moveConnector(
      from,
      to,
      held.map((lease) => lease.ref),
      options,
    );
  } finally {
    for (const lease of held) lease.release();
    closeQuietly(store);
  }
}

function closeQuietly(store: StateStore): void {
  try {
    store.close();
  } catch {
    // Closing after a failed statement: the error that matters is already on its way.
  }
}

/**
 * The downloads follow the export checkpoint, inside the move's transaction and under both leases: a failure leaves
 * both where they were. Whatever is under the new name is not its own (the move checked it has no checkpoint): a dry
 * run's leftovers. A kill after the rename but before the commit leaves the files under the new name, where a resumed
 * export of the old name fetches them again and the new name's first export sweeps them.
 */
function moveDownloads(config: Config, from: string, to: string): void {
  const old = bulkDownloadsDir(config.stateDir, from);
  if (!existsSync(old)) return;
  const next = bulkDownloadsDir(config.stateDir, to);
  rmSync(next, { recursive: true, force: true });
  renameSync(old, next);
}

function describe(moved: ConnectorMove): string {
  const parts = [
    moved.watermark ? `watermark ${moved.watermark}` : 'no watermark',
    `${moved.runs} run(s)`,
    `${moved.seenEvents} seen event(s)`,
    moved.ledger ? 'its delivery ledger' : 'no delivery ledger',
  ];
  return parts.join(', ');
}

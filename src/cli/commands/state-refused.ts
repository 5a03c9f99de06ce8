/**
 * `bridge state refused <connector>` and `bridge state give-up <connector> --reason <text>`: the way out of a block
 * Purview refuses as invalid every time (a 400 for something in its rows), which otherwise stops the connector at that
 * block on every run. `refused` shows the block; `give-up` records its events as given up in the delivery ledger, so
 * every later run (on any machine) writes their rows to its rejects file with reason `purview-refused` instead of
 * sending them, and the watermark moves on. Fixing the mapping and running again is the better fix when it applies;
 * a lower `purview.blockRows` on the next run narrows the refused block to fewer events before giving them up.
 */
import { Command } from 'commander';
import { destinationOf, findConnector, holderIsGone, leasePolicy } from '../../composition/index.js';
import type { Config, ConnectorConfig } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { uuidSource } from '../../ids.js';
import type { DeliveryTarget, RefusedBlock } from '../../purview/ledger.js';
import { GIVEN_UP_REASON } from '../../sync/given-up.js';
import { connectorLeaseName, holdLease } from '../../sync/lease.js';
import { openExistingStateStore, type StateStore } from '../../sync/state/index.js';
import type { CliContext } from '../context.js';

const MAX_NOTE_CHARS = 500;
/**
 * Purview refuses a whole block for one bad row: with 100,000-row blocks, giving up the first refusal would give up
 * 99,999 good events. Above this many the operator narrows first (a lower purview.blockRows), or says --all.
 */
const MAX_EVENTS_UNLESS_ALL = 1_000;

export function refuseLarge(name: string, block: RefusedBlock, all: boolean): void {
  if (all || block.events <= MAX_EVENTS_UNLESS_ALL) return;
  throw new BridgeError(
    'BRG_ERR_INPUT_INVALID',
    `Block ${block.blockId} of connector "${name}" holds ${block.events} events; Purview refuses a whole block for one bad row, so most of them are likely fine. Narrow it first: run the connector once with fewer rows per block (e.g. BRIDGE__connectors__<position>__purview__blockRows=100 bridge sync --connector ${name}), then give up the smaller block it stops at; or give up all ${block.events} with --all.`,
    { details: { connector: name, events: block.events } },
  );
}

/** @param config - `bridge state`'s own loader of --config (else $BRIDGE_CONFIG). */
export function refusedCommands(ctx: CliContext, config: (flags: { config?: string }) => Config): Command[] {
  const refused = new Command('refused')
    .description(
      'Show the block Purview refused as invalid (HTTP 400) that stops the connector: its run, when, how many events still wait on it, and whether it was given up.',
    )
    .argument('<connector>', "the connector's name in the config")
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .action((name: string, flags: { config?: string }) => {
      const loaded = config(flags);
      const target = targetOf(loaded, name);
      withStore(ctx, loaded, { upgrade: false }, (store) => {
        const block = store.refusedBlock(target);
        if (!block) {
          ctx.print(`Connector "${name}" has no block Purview refused as invalid (400) waiting: nothing to give up.`);
          return;
        }
        ctx.print(describe(name, block, store));
        if (block.givenUpMs === undefined) {
          ctx.print(
            `Fix the mapping and run again if the refusal names a column; or run again with a lower purview.blockRows to narrow the block, then \`bridge state give-up ${name} --reason "<ticket or why>"\`.`,
          );
        }
      });
    });
  const giveUp = new Command('give-up')
    .description(
      `Give up the events of the block Purview refused as invalid (HTTP 400) that stops the connector: every later run records their rows as rejected (reason ${GIVEN_UP_REASON}, in its rejects file) instead of sending them, and goes on. They are not sent to this Purview job again.`,
    )
    .argument('<connector>', "the connector's name in the config")
    .requiredOption('--reason <text>', 'why, for the record (a ticket number): one line, at most 500 characters; shown by `bridge state refused`')
    .option(
      '--all',
      `give up the block even when it holds more than ${MAX_EVENTS_UNLESS_ALL.toLocaleString('en-US')} events (narrow it first: see \`bridge state refused\`)`,
    )
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .action((name: string, flags: { config?: string; reason: string; all?: boolean }) => {
      const note = checkedNote(flags.reason);
      const loaded = config(flags);
      const target = targetOf(loaded, name);
      withStore(ctx, loaded, { upgrade: true }, (store) => {
        // No run of the connector may be in flight (here or elsewhere): it may be claiming these events for a new block.
        const lease = holdLease(
          store,
          connectorLeaseName(name),
          leasePolicy(loaded.state.leaseTtlSeconds * 1000, 'bridge state give-up'),
          ctx.clock,
          uuidSource,
          `A sync of connector "${name}"`,
        );
        try {
          // Read first (a scan of the connector's claims), then given up in a short write that checks it is still so.
          const block = store.refusedBlock(target);
          // Nothing waiting is no failure (a runbook may run this twice): it says so, and what stops the connector.
          if (!block || block.givenUpMs !== undefined) return ctx.print(nothingToGiveUp(name, block));
          refuseLarge(name, block, flags.all === true);
          if (!store.giveUpRefused(target, lease.ref, note, block.blockId)) {
            return ctx.print(`Nothing given up: connector "${name}"'s refused block changed meanwhile; \`bridge state refused ${name}\` shows it now.`);
          }
          ctx.print(
            `Gave up ${block.events} event(s) of block ${block.blockId}${block.runId ? ` (run ${block.runId.slice(0, 8)})` : ''}, refused by Purview with ${block.status}. The next run of "${name}" records their rows as rejected (reason ${GIVEN_UP_REASON}; \`bridge rejects <run>\` lists them) and goes on; they are not sent to this Purview job again.`,
          );
        } finally {
          lease.release();
        }
      });
    });
  return [refused, giveUp];
}

function targetOf(config: Config, name: string): Pick<DeliveryTarget, 'destination' | 'source'> {
  const connector: ConnectorConfig = findConnector(config, name);
  if (connector.source.type === 'flat-file') {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `Connector "${name}" reads a drop folder: a file Purview refuses is moved aside whole (see its run), never held as a refused block. Fix the file and drop it again.`,
    );
  }
  return { destination: destinationOf(connector), source: connector.name };
}

/**
 * A state directory no run has used is an error (a typo in stateDir), never a new empty database. Showing leaves an
 * older schema as it is; giving up writes, so it upgrades it (openExistingStateStore).
 */
function withStore(ctx: CliContext, config: Config, options: { upgrade: boolean }, use: (store: StateStore) => void): void {
  const store = openExistingStateStore(config.stateDir, ctx.clock, { ...options, isStale: holderIsGone });
  try {
    use(store);
  } finally {
    store.close();
  }
}

function describe(name: string, block: RefusedBlock, store: StateStore): string {
  const run = block.runId ? store.getRun(block.runId) : undefined;
  const lines = [
    `Connector "${name}": block ${block.blockId}${block.runId ? ` of run ${block.runId.slice(0, 8)}` : ''} was refused by Purview with ${block.status} at ${new Date(block.refusedMs).toISOString()}; ${block.events} event(s) (${block.rows} row(s) when sent) wait on it.`,
  ];
  if (run?.error?.code === 'BRG_ERR_PURVIEW_REJECTED') lines.push(`  The run said: ${run.error.message}`);
  if (block.givenUpMs !== undefined) {
    lines.push(`  Given up at ${new Date(block.givenUpMs).toISOString()}: ${block.note ?? ''}. Runs record these events as rejected (${GIVEN_UP_REASON}).`);
  }
  return lines.join('\n');
}

function nothingToGiveUp(name: string, latest: RefusedBlock | undefined): string {
  const already = latest?.givenUpMs === undefined ? '' : ` (block ${latest.blockId} was given up at ${new Date(latest.givenUpMs).toISOString()})`;
  return `Nothing given up: connector "${name}" has no block Purview refused as invalid (400) waiting${already}. \`bridge state refused ${name}\` shows what stops it; a block refused before this version, or by a failed connection, is not one: run the connector once more to see whether Purview refuses it again.`;
}

/** One line of text: kept in the state and shown to operators, never logged. */
function checkedNote(note: string): string {
  const trimmed = note.trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a note with control characters (a pasted file) is refused.
  if (trimmed === '' || trimmed.length > MAX_NOTE_CHARS || /[\u0000-\u001f\u007f]/.test(trimmed)) {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `--reason must be one line of 1 to ${MAX_NOTE_CHARS} characters (a ticket number, or why).`);
  }
  return trimmed;
}

/** Commands whose bodies live with their domains (keys, map, push) or the service (serve, doctor). */
import type { Command } from 'commander';
import { openStateStore } from '../../sync/state/index.js';
import type { CliContext } from '../context.js';
import { keysCommand } from './keys.js';
import { mapCommand } from './map.js';
import { pushCommand } from './push.js';
import { serveCommand, tokenCommand } from './serve.js';
import { doctorCommand } from './doctor.js';

export function extraCommands(ctx: CliContext): Command[] {
  return [
    keysCommand({ keysDir: () => ctx.env['BRIDGE_KEYS_DIR'] ?? 'keys', print: ctx.print }),
    mapCommand({ print: ctx.print }),
    pushCommand({
      print: ctx.print, env: ctx.env, clock: ctx.clock, signal: ctx.signal, stopSignal: ctx.stopSignal,
      openStore: (stateDir) => openStateStore(stateDir, ctx.clock),
    }),
    serveCommand(ctx),
    doctorCommand(ctx),
    tokenCommand(ctx, process.stdin),
  ];
}

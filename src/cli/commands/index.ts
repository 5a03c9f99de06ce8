/** Commands whose bodies live with their domains (keys, map, push) or the service (serve, doctor). */
import type { Command } from 'commander';
import { openStateStore } from '../../sync/state/index.js';
import type { CliContext } from '../context.js';
import { keysCommand } from './keys.js';
import { mapCommand } from './map.js';
import { pushCommand } from './push.js';
import { serveCommand, tokenCommand } from './serve.js';
import { doctorCommand } from './doctor.js';
import { rejectsCommand } from './rejects.js';
import { runsCommand } from './runs.js';
import { statusCommand } from './status.js';

export function extraCommands(ctx: CliContext): Command[] {
  return [
    keysCommand({ env: ctx.env, print: ctx.print, now: () => ctx.clock.now() }),
    mapCommand({ print: ctx.print }),
    pushCommand({
      print: ctx.print, env: ctx.env, clock: ctx.clock, signal: ctx.signal, stopSignal: ctx.stopSignal, stdout: ctx.stdout,
      openStore: (stateDir) => openStateStore(stateDir, ctx.clock),
    }),
    serveCommand(ctx),
    doctorCommand(ctx),
    tokenCommand(ctx, process.stdin),
    statusCommand(ctx),
    runsCommand(ctx),
    rejectsCommand(ctx),
  ];
}

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Command } from 'commander';
import { loadConfig } from '../../config/index.js';
import { createLogger } from '../../log.js';
import type { CliContext } from '../context.js';

export function serveCommand(ctx: CliContext): Command {
  return new Command('serve')
    .description('Run the service: HTTP trigger and run status under /v1, scheduled syncs, /healthz, /readyz, /metrics, /.well-known/jwks.json.')
    .option('-c, --config <file>', 'config file (YAML or JSON); default $BRIDGE_CONFIG')
    .option('--no-schedules', 'serve the HTTP API only; do not run cron schedules, nor finish at start-up a push the last shutdown interrupted')
    .action(async (flags: { config?: string; schedules: boolean }) => {
      const config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), env: ctx.env });
      const logger = createLogger({ level: config.logLevel });
      const { startService } = await import('../../server/service.js'); // fastify and its plugins load only for serve
      const service = await startService({ config, env: ctx.env, clock: ctx.clock, logger, schedules: flags.schedules });
      ctx.print(`listening on ${service.url}`);
      // A signal that came while the service was starting has already fired: an abort event is not replayed.
      if (!ctx.stopSignal.aborted) await once(ctx.stopSignal, 'abort');
      logger.info('shutting down: no new requests; waiting for the in-flight run to reach a checkpoint');
      // A second signal ends the wait for the run: it is aborted where it stands (the ledger keeps what was acknowledged).
      await service.close(ctx.signal);
    });
}

/** `bridge token hash`: reads an API token from stdin and prints its SHA-256 for server.apiTokenSha256. */
export function tokenCommand(ctx: CliContext, stdin: NodeJS.ReadableStream): Command {
  return new Command('token').description('API token helpers').addCommand(
    new Command('hash').description('read an API token from standard input, print its SHA-256 for server.apiTokenSha256').action(async () => {
      let input = '';
      for await (const chunk of stdin) input += String(chunk);
      ctx.print(createHash('sha256').update(input.trim(), 'utf8').digest('hex'));
    }),
  );
}

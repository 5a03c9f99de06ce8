/**
 * `bridge serve`: the fastify app, the run manager and the schedules over one state store. Returns a handle whose
 * close() stops accepting, lets the in-flight run finish (or stop at a block checkpoint) within the grace period.
 */
import type { JsonWebKey } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../clock.js';
import { buildSyncDeps, findConnector, leasePolicy, loadConnectorMapping, openWritableStateStore } from '../composition/index.js';
import { type Config, type ConnectorConfig, canAccess, readSecret } from '../config/index.js';
import { BridgeError } from '../errors.js';
import { uuidSource } from '../ids.js';
import type { Logger } from '../log.js';
import { JWKS_READ_PERIOD_MS, openKeyStore } from '../smart/index.js';
import { SyncEvents } from '../sync/events.js';
import { connectorLeaseName } from '../sync/lease.js';
import { hasResumablePush, runSync } from '../sync/pipeline.js';
import { attachRunLog } from '../sync/run-log.js';
import { buildApp } from './app.js';
import { hashApiToken } from './auth.js';
import { cachedFor } from './cached.js';
import { createLeaseWaits } from './lease-wait.js';
import { createMetrics } from './metrics.js';
import { trackProgress } from './progress.js';
import { type ConnectorSync, createSyncRunner } from './runner.js';
import { runSchedule } from './scheduler.js';
import { trackStartFailures } from './start-failures.js';
import { statusConnectors, statusReport } from './status.js';

export interface ServiceOptions {
  readonly config: Config;
  readonly env: NodeJS.ProcessEnv;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Run the cron schedules (default true). */
  readonly schedules?: boolean;
}

export interface Service {
  readonly url: string;
  readonly app: FastifyInstance;
  /** @param abortNow - when it aborts (a second SIGTERM), the runs stop now rather than at their next checkpoint. */
  close(abortNow?: AbortSignal): Promise<void>;
}

/** After the runs drained and idle connections closed, how long open requests get before their sockets are cut. */
const STRAGGLER_GRACE_MS = 2_000;

export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, clock, logger } = options;
  // Every connector's mapping compiles before the service says it is ready: a broken mapping file stops start-up with
  // its error, not the first scheduled run hours later.
  for (const c of config.connectors) loadConnectorMapping(c);
  const store = openWritableStateStore(config.stateDir, clock);
  const events = new Map(config.connectors.map((c) => [c.name, new SyncEvents()]));
  const trackers = new Map(config.connectors.map((c) => [c.name, trackProgress(events.get(c.name) as SyncEvents, c.purview.blockRows, clock)]));
  const schedulesOn = options.schedules !== false;
  const connectors = statusConnectors(config, clock.now());
  const staleHolder = leasePolicy(config.state.leaseTtlSeconds * 1000, 'bridge serve').isStale;
  const status = () =>
    statusReport(connectors, store, clock.now(), {
      schedules: schedulesOn,
      // Only while the runner still has the run: one whose end was never announced (its failure could not be written
      // to a locked state database) must not show as in flight, frozen, until the connector's next run.
      progress: (name) => (runner.isRunning(name) ? trackers.get(name)?.current() : undefined),
      startFailure: (name) => startFailures.last(name),
      isStale: staleHolder,
    });
  const metrics = createMetrics({ status: () => status().connectors });
  // Before anything can call status(), which reads it.
  const startFailures = trackStartFailures(metrics, clock);
  const detaches = config.connectors.flatMap((c) => {
    const connectorEvents = events.get(c.name) as SyncEvents;
    return [metrics.observe(connectorEvents, c.name), attachRunLog(connectorEvents, join(config.stateDir, 'runs'), clock)];
  });
  for (const tracker of trackers.values()) detaches.push(() => tracker.detach());
  const sync: ConnectorSync = (name, request) => {
    const context = {
      config,
      env: options.env,
      clock,
      logger,
      events: events.get(name) as SyncEvents,
      store,
      newId: uuidSource,
      onFhirRequest: metrics.fhirRequest,
      command: `bridge serve (${request.trigger})`,
    };
    return runSync(buildSyncDeps(context, findConnector(config, name)), request);
  };
  const runner = createSyncRunner(sync, logger, startFailures.hooks);
  let ready = true;
  const tokenHashes = apiTokenHashes(config, options.env, logger);
  const app = await buildApp({
    connectors: config.connectors.map((c) => c.name),
    runner,
    store,
    metrics,
    logger,
    status,
    watchStatus: (listener) => {
      const stops = [...trackers.values()].map((tracker) => tracker.onChange(listener));
      return () => {
        for (const stop of stops) stop();
      };
    },
    rejects: { retentionDays: config.retention.rejectsDays, retainFiles: config.retainFiles },
    // The keys folder is read at most this often for the public JWK Set; a rotated key waits for it (src/smart/rotation.ts).
    jwks: cachedFor(JWKS_READ_PERIOD_MS, clock, () => publishedKeys(config, logger)),
    jwksMaxAgeSec: config.server.jwksMaxAgeSec,
    apiTokenHashes: tokenHashes,
    rateLimitMax: config.server.rateLimitMax,
    isReady: () => ready,
  });
  let url: string;
  try {
    url = await app.listen({ host: config.server.host, port: config.server.port });
  } catch (error) {
    // A port in use: nothing may stay behind to keep the process alive (a supervisor restarts it only once it exits).
    await app.close();
    for (const detach of detaches) detach();
    store.close();
    throw listenError(error, config.server.host, config.server.port);
  }
  if (tokenHashes.length === 0) {
    logger.warn(
      {},
      'no API token is configured (server.apiTokenSha256 or server.apiTokens): every /v1 request, the operator page included, is refused with 401; only /healthz, /readyz, /metrics and the JWK Set answer',
    );
  }
  // Schedules only once the API listens: a service that cannot listen must not go on syncing on its own.
  const schedules = new AbortController();
  // One abort listener per connector's schedule and one per lease wait: a site with many connectors is no listener leak.
  setMaxListeners(2 * config.connectors.length + 10, schedules.signal);
  const leaseWaits = createLeaseWaits({
    readLease: (name) => store.readLease(connectorLeaseName(name)),
    clock,
    signal: schedules.signal,
    logger,
  });
  if (schedulesOn) {
    // A push the last shutdown interrupted (a redeploy during the nightly run) is finished now, not at the next tick a
    // day later, with the connector showing "failing" until then. Nothing new is pulled (trigger 'resume').
    for (const c of config.connectors.filter((k) => k.source.type !== 'flat-file' && hasResumablePush(store, k.name))) {
      if (!c.schedule.enabled && !hasPurviewSecret(c, options.env)) {
        // A connector another unit syncs (a systemd timer, a CronJob) whose secret this process is not given: the push
        // is that unit's to finish. Tried here, it would only fail and show the connector failing until then.
        logger.info(
          { connector: c.name },
          'not finishing the interrupted push at start-up: this service has no Purview secret for the connector, and no schedule of it',
        );
        continue;
      }
      logger.info({ connector: c.name }, 'finishing the push the last shutdown interrupted');
      // Refused while a killed predecessor's lease runs out (or another process finishes it): tried again then.
      leaseWaits.start(
        c.name,
        'resume',
        () => runner.start(c.name, { trigger: 'resume' }),
        () => hasResumablePush(store, c.name),
      );
    }
    for (const c of config.connectors.filter((k) => k.schedule.enabled)) {
      const hooks = {
        isRunning: (name: string) => runner.isRunning(name),
        // A tick during the start-up resume or a backfill of a past window runs once it ends, not a day later (scheduler.ts).
        endOfRunShortOfNow: (name: string) => runner.endOfRunShortOfNow(name),
        // The runner logs a failure and reports one that left no run record (startFailures); nothing is left to do here.
        // A tick another process holds back (a backfill from the command line, a replica) runs once it lets go; one that
        // comes while the start-up resume waits so runs after that resume has ended.
        fire: (name: string) =>
          leaseWaits.start(name, 'schedule', async () => {
            await runner.endOfRunShortOfNow(name)?.catch(() => undefined);
            return runner.start(name, { trigger: 'schedule' });
          }),
        onSkip: (name: string) => metrics.scheduleSkipped(name, 'in_flight'),
      };
      void runSchedule(
        { connector: c.name, cron: c.schedule.cron, ...(c.schedule.timezone ? { timezone: c.schedule.timezone } : {}) },
        hooks,
        clock,
        logger,
        schedules.signal,
      );
    }
  }
  return {
    url,
    app,
    async close(abortNow) {
      ready = false;
      schedules.abort();
      // Runs stop first, at their block in flight: an HTTP request waiting on a run must not hold the shutdown while
      // the grace period (and the supervisor's patience) runs out.
      const drained = runner.drain(config.server.shutdownGraceMs, abortNow);
      const closed = app.close();
      // Awaited below; a failure must not go unhandled while the runs drain.
      closed.catch(() => undefined);
      await drained;
      // A connection that went idle after close began (a trigger answered during the drain) would wait out keep-alive.
      app.server.closeIdleConnections();
      // Whatever is still open a moment later (a request still arriving, a stalled reader) is cut: the runs are over, and
      // the supervisor's patience is not ours to spend.
      const stragglers = setTimeout(() => app.server.closeAllConnections(), STRAGGLER_GRACE_MS);
      await closed.finally(() => clearTimeout(stragglers));
      for (const detach of detaches) detach();
      store.close();
    },
  };
}

/**
 * Every connector's published public keys, one entry per kid: connectors may sign with keys of their own directory, and
 * the EHR reads one JWK Set URL for all of them.
 */
function publishedKeys(config: Config, logger: Logger): { keys: JsonWebKey[] } {
  const dirs = [...new Set(config.connectors.flatMap((c) => (c.smart ? [c.smart.keysDir] : [])))];
  const byKid = new Map<string, JsonWebKey>();
  let firstError: unknown;
  for (const dir of dirs.length > 0 ? dirs : ['keys']) {
    let keys: JsonWebKey[];
    try {
      keys = openKeyStore(dir, { logger }).publicJwks().keys;
    } catch (error) {
      // One connector's keys not generated yet must not take the others' keys off the JWK Set the EHR reads.
      firstError ??= error;
      logger.warn(
        { keysDir: dir, code: error instanceof BridgeError ? error.code : 'BRG_ERR_INTERNAL' },
        'a keys directory has no published keys; the JWK Set leaves it out',
      );
      continue;
    }
    for (const key of keys) {
      const kid = (key as { kid?: string }).kid ?? JSON.stringify(key);
      if (!byKid.has(kid)) byKid.set(kid, key);
    }
  }
  if (byKid.size === 0 && firstError !== undefined) throw firstError;
  return { keys: [...byKid.values()] };
}

/** The listen failure as the operator's error: a port in use or not allowed is the configuration's (exit 2), named. */
export function listenError(error: unknown, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === 'EADDRINUSE'
      ? 'is in use by another process (another bridge serve?)'
      : code === 'EACCES'
        ? 'needs privileges this user lacks (ports below 1024)'
        : code === 'EADDRNOTAVAIL'
          ? 'is not an address of this machine'
          : code === 'ENOTFOUND' || code === 'EAI_NONAME'
            ? 'names a host that does not resolve (a typo in server.host?)'
            : undefined;
  // A config error (exit 2), not a bug: a service manager that restarts on failure must not loop on it.
  if (why === undefined) return error;
  return new BridgeError(
    'BRG_ERR_CONFIG_INVALID',
    `Cannot listen on ${host}:${port}: it ${why} (${code}). Set server.port or server.host (or BRIDGE__server__port, BRIDGE__server__host).`,
    {
      cause: error,
      details: { host, port },
    },
  );
}

/** The API tokens' hashes; a tokens file others can read is warned about (readSecret). */
export function apiTokenHashes(config: Config, env: NodeJS.ProcessEnv, logger: Logger): string[] {
  const hashes = config.server.apiTokenSha256.map((hex) => hex.toLowerCase());
  if (config.server.apiTokens) {
    const lines = readSecret(config.server.apiTokens, env, 'server.apiTokens', logger)
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean);
    // A client sends one token with no white space in it (`Bearer <token>`): a line holding two tokens, or one with a
    // space, would be hashed whole and match no request, every /v1 call then refused without a word.
    const spaced = lines.findIndex((line) => /\s/.test(line));
    if (spaced !== -1) {
      throw new BridgeError(
        'BRG_ERR_CONFIG_INVALID',
        `server.apiTokens: token ${spaced + 1} holds white space, which no bearer token can: put one token per line (the token itself is not shown).`,
        { details: { token: spaced + 1 } },
      );
    }
    hashes.push(...lines.map(hashApiToken));
  }
  return hashes;
}

/**
 * Whether this process is given the connector's Purview secret or certificate key: its variable is set, or its file is
 * there to read. Nothing is read: a secret is read where it is used.
 */
function hasPurviewSecret(connector: ConnectorConfig, env: NodeJS.ProcessEnv): boolean {
  const { secret, certificate } = connector.purview;
  const readable = (path: string): boolean => canAccess(path, constants.R_OK);
  if (certificate) return readable(certificate.keyFile);
  if (secret === undefined) return false;
  return 'env' in secret ? Boolean(env[secret.env]) : readable(secret.file);
}

/**
 * Wires one connector's config into the pipeline's dependencies. Credentials are read when a stage first needs
 * them, so `--dry-run` works without Purview secrets and a resume-only run without EHR keys.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Clock } from '../clock.js';
import { readSecret, type Config, type ConnectorConfig } from '../config/index.js';
import { BridgeError } from '../errors.js';
import type { IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import { createFhirClient, createReferenceResolver } from '../fhir/index.js';
import { builtinMappingPath, loadMapping, type CompiledMapping, type MappingOverrides } from '../mapping/index.js';
import { createDispatcher, fetchVia, resolveNetwork } from '../net/index.js';
import { CLOUDS, DEFAULT_RESOURCE, createPurviewTokenSource, destinationKey, type EntraCredential } from '../purview/index.js';
import { createSmartTokenSource, openKeyStore } from '../smart/index.js';
import type { SyncEvents } from './events.js';
import type { LeasePolicy } from './lease.js';
import type { PushTarget, SyncDeps } from './pipeline.js';
import type { StateStore } from './state/index.js';

export interface RuntimeContext {
  readonly config: Config;
  readonly env: NodeJS.ProcessEnv;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: SyncEvents;
  readonly store: StateStore;
  readonly newId: IdSource;
  /** Metrics hooks (the service counts FHIR requests and retries). */
  readonly onFhirRequest?: (info: { resourceType: string; status: number; retries: number }) => void;
  /** Who runs syncs, as other processes see it when they meet the connector's lease (e.g. "bridge sync"). */
  readonly command?: string;
}

/** What building credentials needs: no state store, no ids (so `bridge doctor` can build them too). */
export type CredentialContext = Pick<RuntimeContext, 'env' | 'clock' | 'logger' | 'events'>;

export function findConnector(config: Config, name: string | undefined): ConnectorConfig {
  const connector = name ? config.connectors.find((c) => c.name === name) : config.connectors[0];
  if (!connector) {
    const known = config.connectors.map((c) => c.name).join(', ');
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `No connector named "${name}" in the config; known: ${known}.`);
  }
  return connector;
}

export function loadConnectorMapping(connector: ConnectorConfig): CompiledMapping {
  const m = connector.mapping;
  const overrides: MappingOverrides = {
    ...(m.delimiter ? { delimiter: m.delimiter } : {}),
    ...(m.strict !== undefined ? { strict: m.strict } : {}),
    ...(m.timeFormat ? { timeFormat: m.timeFormat } : {}),
    ...(m.options ? { options: { ...m.options } } : {}),
  };
  return loadMapping(m.file ?? builtinMappingPath(m.schema), overrides);
}

export function buildSyncDeps(context: RuntimeContext, connector: ConnectorConfig): SyncDeps {
  const { config, clock, logger, events } = context;
  const f = connector.fhir;
  return {
    connector: connector.name,
    store: context.store,
    clock,
    logger: logger.child({ connector: connector.name }),
    newId: context.newId,
    events,
    target: { destination: destinationOf(connector), source: connector.name },
    stateDir: config.stateDir,
    retainFiles: config.retainFiles,
    rejectsRetentionMs: config.retention.rejectsDays * 86_400_000,
    lease: leasePolicy(config.state.leaseTtlSeconds * 1000, context.command ?? 'bridge'),
    ledgerRetentionMs: config.state.ledgerRetentionDays * 86_400_000,
    window: { overlapMs: f.overlapMinutes * 60_000, settleMs: f.settleMinutes * 60_000, initialLookbackMs: f.initialLookbackHours * 3_600_000 },
    pull: { pageSize: f.pageSize, dateParam: f.dateParam, maxResultsPerSlice: f.maxResultsPerSlice },
    prefetchEvents: f.prefetchEvents,
    mapping: loadConnectorMapping(connector),
    fhir: memo(() => buildFhir(context, connector)),
    purview: memo(() => buildPushTarget(context, connector)),
  };
}

/** The delivery ledger's key for the connector's Purview job (no credentials needed: dry runs use it too). */
export function destinationOf(connector: ConnectorConfig): string {
  const p = connector.purview;
  return destinationKey({ ingestionBase: p.ingestionBase ?? CLOUDS[p.cloud].ingestionBase, tenantId: p.tenantId, jobId: p.jobId });
}

/** This process, as a lease holder; a holder on this host whose process is gone is stale at once. */
export function leasePolicy(ttlMs: number, command: string): LeasePolicy {
  const host = hostname();
  return {
    ttlMs,
    identity: { host, pid: process.pid, command },
    isStale: (holder) => holder.host === host && holder.pid !== process.pid && !processAlive(holder.pid),
    every: (ms, renew) => {
      const timer = setInterval(renew, ms);
      timer.unref(); // the heartbeat alone never keeps the process alive
      return () => clearInterval(timer);
    },
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `config` gives the network section (proxy, CA); without it (or without that section) HTTPS_PROXY etc. from `env` apply. */
export function buildSmartTokenSource(context: CredentialContext & { readonly config?: Pick<Config, 'network'> }, connector: ConnectorConfig) {
  const s = connector.smart;
  const keyStore = openKeyStore(s.keysDir, { logger: context.logger });
  // Discovery and token requests share one pool: the proxy and CA bundle of the network section.
  const network = resolveNetwork(context.config?.network, context.env);
  return createSmartTokenSource({
    fetch: fetchVia(createDispatcher(network)),
    fhirBaseUrl: connector.fhir.baseUrl,
    ...(s.tokenUrl ? { tokenUrl: s.tokenUrl } : {}),
    clientId: s.clientId,
    scope: s.scope,
    key: () => keyStore.activeKey(),
    ...(s.jku ? { jku: s.jku } : {}),
    clock: context.clock,
    logger: context.logger,
    lifetimeSec: s.assertionLifetimeSec,
    skewSec: s.clockSkewSec,
    onRefresh: () => context.events.emit('token', { side: 'smart' }),
  });
}

function buildFhir(context: RuntimeContext, connector: ConnectorConfig) {
  const f = connector.fhir;
  const client = createFhirClient({
    baseUrl: f.baseUrl,
    tokenSource: buildSmartTokenSource(context, connector),
    clock: context.clock,
    logger: context.logger,
    concurrency: f.concurrency,
    requestsPerSecond: f.requestsPerSecond,
    timeoutMs: f.timeoutMs,
    maxResponseBytes: f.maxResponseBytes,
    network: resolveNetwork(context.config.network, context.env),
    ...(context.onFhirRequest ? { onRequest: context.onFhirRequest } : {}),
  });
  const resolver = createReferenceResolver(client, {
    batchSize: f.referenceBatchSize, cacheSize: f.referenceCacheSize, cacheTtlMs: f.referenceCacheTtlMs, clock: context.clock,
  });
  return { client, resolver };
}

export function buildPurviewCredential(connector: ConnectorConfig, env: NodeJS.ProcessEnv): EntraCredential {
  const p = connector.purview;
  if (p.certificate) {
    return { kind: 'certificate', privateKeyPem: readFileOrFail(p.certificate.keyFile, 'purview.certificate.keyFile'), thumbprintSha256: p.certificate.thumbprintSha256 };
  }
  if (!p.secret) throw new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', 'purview: set secret ({env} or {file}) or certificate.');
  return { kind: 'secret', secret: readSecret(p.secret, env, 'purview.secret') };
}

export function buildPushTarget(context: CredentialContext & { readonly config?: Pick<Config, 'network'> }, connector: ConnectorConfig): PushTarget {
  const p = connector.purview;
  const preset = CLOUDS[p.cloud];
  const caPem = p.caFile ? readFileOrFail(p.caFile, 'purview.caFile') : undefined;
  // Entra and ingestion: the network section's proxy and CA bundle, plus purview.caFile (the sandbox).
  const network = resolveNetwork(context.config?.network, context.env);
  const tokenSource = createPurviewTokenSource({
    network,
    tenantId: p.tenantId,
    appId: p.appId,
    credential: buildPurviewCredential(connector, context.env),
    authorityHost: p.authorityHost ?? preset.authorityHost,
    resource: p.resource ?? DEFAULT_RESOURCE,
    ...(caPem ? { caPem } : {}),
    clock: context.clock,
    logger: context.logger,
    onRefresh: () => context.events.emit('token', { side: 'purview' }),
  });
  // `network` reaches the upload once PushOptions (src/purview/push.ts) carries it into createHttpsAgent(caPem, network).
  const target = {
    ingestionBase: p.ingestionBase ?? preset.ingestionBase,
    jobId: p.jobId,
    tokenSource,
    blockRows: p.blockRows,
    timeoutMs: p.timeoutMs,
    ...(caPem ? { caPem } : {}),
    network,
  };
  return target;
}

function readFileOrFail(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `${key}: cannot read ${path}.`, { cause, details: { key, path } });
  }
}

function memo<T>(build: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: build() }).v;
}

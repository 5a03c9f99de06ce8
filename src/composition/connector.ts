/**
 * The composition root of a connector: its config wired into the sync pipeline's dependencies — the event source
 * (FHIR search), the mapping, the push target, the state store's ledger and lease, the clock and logger. The CLI, the
 * service, the doctor and `bridge push` build what they need here. Credentials are read when a stage first needs them,
 * so `--dry-run` works without Purview secrets and a resume-only run without EHR keys.
 */
import type { Clock } from '../clock.js';
import { fhirSettings, type Config, type ConnectorConfig } from '../config/index.js';
import { BridgeError } from '../errors.js';
import { createFhirClient, createReferenceResolver, createSearchSource, type FhirClient, type ReferenceResolver } from '../fhir/index.js';
import type { IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import { builtinMappingPath, loadMapping, type CompiledMapping, type MappingOverrides } from '../mapping/index.js';
import { resolveNetwork } from '../net/index.js';
import { CLOUDS, destinationKey } from '../purview/index.js';
import type { EventSource } from '../sync/event-source.js';
import type { SyncEvents } from '../sync/events.js';
import type { SyncDeps } from '../sync/pipeline.js';
import type { StateStore } from '../sync/state/index.js';
import { buildPushTarget, buildSmartTokenSource, type CredentialContext } from './credentials.js';
import { leasePolicy } from './process.js';

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
  // A flat-file source without FHIR has no window to read: the FHIR defaults stand in (not used).
  const f = connector.fhir ?? { overlapMinutes: 0, settleMinutes: 0, initialLookbackHours: 24, prefetchEvents: 2000 };
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
    prefetchEvents: f.prefetchEvents,
    mapping: loadConnectorMapping(connector),
    source: memo(() => buildEventSource(context, connector)),
    purview: memo(() => buildPushTarget(context, connector)),
  };
}

/** The delivery ledger's key for the connector's Purview job (no credentials needed: dry runs use it too). */
export function destinationOf(connector: ConnectorConfig): string {
  const p = connector.purview;
  return destinationKey({ ingestionBase: p.ingestionBase ?? CLOUDS[p.cloud].ingestionBase, tenantId: p.tenantId, jobId: p.jobId });
}

/** FHIR search over the connector's server, with the client and resolver below. */
function buildEventSource(context: RuntimeContext, connector: ConnectorConfig): EventSource {
  const f = fhirSettings(connector);
  const { client, resolver } = buildFhirClient(context, connector);
  return createSearchSource(client, resolver, { pageSize: f.pageSize, dateParam: f.dateParam, maxResultsPerSlice: f.maxResultsPerSlice });
}

/** The connector's FHIR client (token, queue, retries, size cap, proxy) and its reference resolver: a sync's and the doctor's. */
export function buildFhirClient(
  context: CredentialContext & Pick<RuntimeContext, 'config' | 'onFhirRequest'>, connector: ConnectorConfig,
): { client: FhirClient; resolver: ReferenceResolver } {
  const f = fhirSettings(connector);
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

function memo<T>(build: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: build() }).v;
}

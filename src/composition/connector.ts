/**
 * The composition root of a connector: its config wired into the sync pipeline's dependencies — the event source
 * (FHIR search), the mapping, the push target, the state store's ledger and lease, the clock and logger. The CLI, the
 * service, the doctor and `bridge push` build what they need here. Credentials are read when a stage first needs them,
 * so `--dry-run` works without Purview secrets and a resume-only run without EHR keys.
 */

import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { type Config, type ConnectorConfig, fhirSettings, mappingOptionOrigin } from '../config/index.js';
import { type ConnectorSchema, encodingName } from '../connector-file/index.js';
import { BridgeError } from '../errors.js';
import {
  BulkHttp,
  createBulkExportSource,
  createFhirClient,
  createReferenceResolver,
  createSearchSource,
  type FhirClient,
  type ReferenceResolver,
} from '../fhir/index.js';
import { DEFAULT_RETRY } from '../http.js';
import type { IdSource } from '../ids.js';
import type { Logger } from '../log.js';
import {
  builtinMappingPath,
  type CompiledMapping,
  departmentFollows,
  loadMapping,
  localZoneOf,
  type MappingOverrides,
  splitsCxIdentifiers,
} from '../mapping/index.js';
import { createDispatcher, resolveNetwork } from '../net/index.js';
import { CLOUDS, destinationKey } from '../purview/index.js';
import { normaliseBase } from '../reference-keys.js';
import type { EventSource } from '../sync/event-source.js';
import type { SyncEvents } from '../sync/events.js';
import type { FileDropDeps } from '../sync/file-drop.js';
import type { DropFolder } from '../sync/file-drop-folder.js';
import { createFileEnricher, type FileEnricher } from '../sync/file-enrich.js';
import type { SyncDeps } from '../sync/pipeline.js';
import type { StateStore } from '../sync/state/index.js';
import { recordedWatermarkSource } from '../sync/watermark-source.js';
import type { TokenSource } from '../token-cache.js';
import { buildPushTarget, buildSmartTokenSource, type CredentialContext } from './credentials.js';
import { leasePolicy } from './process.js';
import { unknownUserStore } from './unknown-users.js';

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
    ...(m.options ? { options: { ...m.options }, optionOrigin: optionOriginOf(connector) } : {}),
    // Absolute references name our resources only with the connector's own base (a flat file's events carry none).
    ...(connector.fhir ? { fhirBase: connector.fhir.baseUrl } : {}),
  };
  const mapping = loadMapping(m.file ?? builtinMappingPath(m.schema), overrides);
  // The drop folder, its enrichment and the doctor go by mapping.schema; the rows by the file's own. Told apart, every
  // block would carry the other schema's header and the job would refuse each one, run after run.
  if (mapping.schema !== m.schema) {
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      `Connector "${connector.name}": mapping.file ${m.file} maps to the ${mapping.schema} schema, but mapping.schema is ${m.schema} (epic when it is not set). Set mapping.schema to the schema of the Purview job (${mapping.schema} for this file), or name a mapping file of the ${m.schema} schema.`,
      { details: { file: m.file ?? '', schema: m.schema, fileSchema: mapping.schema } },
    );
  }
  return mapping;
}

/**
 * Where the configuration set a connector's mapping option, for the mapping compiler to name what it refuses (the
 * config file and key, or the environment variable), rather than the mapping file the option overrides.
 */
function optionOriginOf(connector: ConnectorConfig): (name: string) => string {
  const options = connector.mapping.options;
  return (name) => mappingOptionOrigin(options, name) ?? `mapping.options.${name} of connector "${connector.name}" in the configuration`;
}

export function buildSyncDeps(context: RuntimeContext, connector: ConnectorConfig): SyncDeps {
  const { config, clock, logger, events } = context;
  // A flat-file source without FHIR has no window to read: the FHIR defaults stand in (not used).
  const f = connector.fhir ?? { overlapMinutes: 0, settleMinutes: 0, initialLookbackHours: 24, prefetchEvents: 2000 };
  return {
    connector: connector.name,
    knownConnectors: config.connectors.map((c) => c.name),
    store: context.store,
    clock,
    logger: logger.child({ connector: connector.name }),
    newId: context.newId,
    events,
    target: { destination: destinationOf(connector), source: connector.name },
    stateDir: config.stateDir,
    retainFiles: config.retainFiles,
    rejectsRetentionMs: config.retention.rejectsDays * 86_400_000,
    runLogRetentionMs: config.retention.runLogDays * 86_400_000,
    lease: leasePolicy(config.state.leaseTtlSeconds * 1000, context.command ?? 'bridge'),
    ledgerRetentionMs: config.state.ledgerRetentionDays * 86_400_000,
    window: { overlapMs: f.overlapMinutes * 60_000, settleMs: f.settleMinutes * 60_000, initialLookbackMs: f.initialLookbackHours * 3_600_000 },
    prefetchEvents: f.prefetchEvents,
    mapping: loadConnectorMapping(connector),
    source: memo(() => buildEventSource(context, connector)),
    purview: memo(() => buildPushTarget(context, connector)),
    ...(connector.source.type === 'flat-file' ? { fileDrop: buildFileDrop(context, connector, connector.source) } : {}),
    ...(connector.source.type === 'bulk-export' ? { sourceEndsWindows: true } : {}),
    // Either FHIR source records which server its watermark is a point in (a Bulk export compares it itself).
    ...(connector.source.type !== 'flat-file' && connector.fhir ? { watermarkSource: normaliseBase(connector.fhir.baseUrl) ?? connector.fhir.baseUrl } : {}),
  };
}

type FlatFileSource = Extract<ConnectorConfig['source'], { type: 'flat-file' }>;

/** A flat-file source's folder as the run reads it (and `bridge doctor` checks it). */
export function dropFolderOf(source: FlatFileSource): DropFolder {
  return { dir: source.dir, pattern: source.pattern, archiveDir: source.archiveDir, settleMs: source.settleSeconds * 1000 };
}

/** The drop folder of a flat-file source; its FHIR enrichment is built on first use (it reads the SMART key). */
function buildFileDrop(context: RuntimeContext, connector: ConnectorConfig, source: FlatFileSource): FileDropDeps {
  if (!encodingName(source.encoding)) {
    throw new BridgeError(
      'BRG_ERR_CONFIG_INVALID',
      `Connector "${connector.name}": source.encoding "${source.encoding}" is not a text encoding Node knows; use e.g. utf-8, windows-1252, latin1, utf-16le.`,
    );
  }
  const schema = source.schema ?? connector.mapping.schema;
  return {
    folder: dropFolderOf(source),
    schema,
    encoding: source.encoding,
    maxLineBytes: source.maxLineBytes,
    ...(source.enrich.fhir ? { enrich: memo(() => buildFileEnricher(context, connector, schema, source.enrich)) } : {}),
  };
}

function timeZoneOf(zone: string | undefined): { timeZone?: string } {
  return zone === undefined ? {} : { timeZone: zone };
}

/**
 * Enrichment maps the found Patient/Practitioner with the connector's mapping (non-strict: a probe row is never refused
 * for an empty optional cell); identifier systems default to the first of the mapping options' mrnSystems / userIdSystems.
 */
function buildFileEnricher(context: RuntimeContext, connector: ConnectorConfig, schema: ConnectorSchema, enrich: FlatFileSource['enrich']): FileEnricher {
  const { resolver } = buildFhirClient(context, connector);
  const options = connector.mapping.options;
  const mapping =
    schema === connector.mapping.schema
      ? loadConnectorMapping({ ...connector, mapping: { ...connector.mapping, strict: false } })
      : loadMapping(builtinMappingPath(schema), {
          strict: false,
          fhirBase: fhirSettings(connector).baseUrl,
          ...(options ? { options: { ...options }, optionOrigin: optionOriginOf(connector) } : {}),
        });
  const first = (value: unknown): string | undefined => (Array.isArray(value) && typeof value[0] === 'string' ? value[0] : undefined);
  const mrnSystem = enrich.mrnSystem ?? first(options?.['mrnSystems']);
  const userSystem = enrich.userSystem ?? first(options?.['userIdSystems']);
  return createFileEnricher({
    resolver,
    mapping,
    batchRows: fhirSettings(connector).prefetchEvents,
    clock: context.clock,
    ...(mrnSystem ? { mrnSystem } : {}),
    ...(userSystem ? { userSystem } : {}),
    ...timeZoneOf(enrich.timeZone ?? localZoneOf(mapping)),
  });
}

/** Where a connector's Bulk export keeps its downloads (PHI, until the export is read): `bridge state` moves them too. */
export function bulkDownloadsDir(stateDir: string, connector: string): string {
  return join(stateDir, 'bulk', connector);
}

/** The delivery ledger's key for the connector's Purview job (no credentials needed: dry runs use it too). */
export function destinationOf(connector: ConnectorConfig): string {
  const p = connector.purview;
  return destinationKey({ ingestionBase: p.ingestionBase ?? CLOUDS[p.cloud].ingestionBase, jobId: p.jobId });
}

/**
 * FHIR search over the connector's server, with the client and resolver below; or a Bulk Data export, whose checkpoint
 * lives in the state store and whose downloads under stateDir/bulk/<connector>, with that resolver for references the
 * export lacks. The export's requests share the search client's SMART token (one cached token per run) and use a
 * dispatcher with the connector's proxy and CA but no response size cap: its files are far larger than one search page.
 */
function buildEventSource(context: RuntimeContext, connector: ConnectorConfig): EventSource {
  const f = fhirSettings(connector);
  const tokenSource = buildSmartTokenSource(context, connector);
  const { client, resolver } = buildFhirClient(context, connector, tokenSource);
  if (connector.source.type === 'bulk-export') {
    const source = connector.source;
    const http = new BulkHttp({
      baseUrl: f.baseUrl,
      tokenSource,
      dispatcher: createDispatcher(resolveNetwork(context.config.network, context.env)),
      clock: context.clock,
      logger: context.logger.child({ connector: connector.name, source: 'bulk-export' }),
      timeoutMs: f.timeoutMs,
      retry: DEFAULT_RETRY,
      maxJsonBytes: f.maxResponseBytes,
    });
    return createBulkExportSource({
      http,
      fallback: resolver,
      follow: departmentFollows(loadConnectorMapping(connector)),
      parseCxIdentifiers: splitsCxIdentifiers(loadConnectorMapping(connector)),
      newId: context.newId,
      store: {
        get: () => context.store.getSourceState(connector.name, 'bulk-export'),
        set: (value) => context.store.setSourceState(connector.name, 'bulk-export', value),
        getPart: (name) => context.store.getSourceState(connector.name, `bulk-export:${name}`),
        setPart: (name, value) => context.store.setSourceState(connector.name, `bulk-export:${name}`, value),
      },
      dir: bulkDownloadsDir(context.config.stateDir, connector.name),
      settings: source,
      overlapMs: f.overlapMinutes * 60_000,
      cacheSize: f.referenceCacheSize,
      pageSize: f.pageSize,
      watermarkSource: () => recordedWatermarkSource(context.store, connector.name),
    });
  }
  const logger = context.logger.child({ connector: connector.name });
  return createSearchSource(client, resolver, {
    pageSize: f.pageSize,
    dateParam: f.dateParam,
    maxResultsPerSlice: f.maxResultsPerSlice,
    checkTotal: f.checkSearchTotal,
    onNoTotal: () =>
      logger.warn(
        {},
        "the FHIR server's AuditEvent search gives no Bundle.total: windows are neither split nor checked against it, so a page the server skips between offsets goes unseen; ask the EHR team whether the search can return it (_total=accurate)",
      ),
  });
}

/** The connector's FHIR client (token, queue, retries, size cap, proxy) and its reference resolver: a sync's and the doctor's. */
export function buildFhirClient(
  context: CredentialContext & Pick<RuntimeContext, 'config' | 'onFhirRequest'> & { readonly store?: StateStore },
  connector: ConnectorConfig,
  tokenSource: TokenSource = buildSmartTokenSource(context, connector),
): { client: FhirClient; resolver: ReferenceResolver } {
  const f = fhirSettings(connector);
  const client = createFhirClient({
    baseUrl: f.baseUrl,
    tokenSource,
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
    batchSize: f.referenceBatchSize,
    cacheSize: f.referenceCacheSize,
    cacheTtlMs: f.referenceCacheTtlMs,
    unknownUserTtlMs: f.unknownUserCacheTtlMs,
    // A sync's resolver keeps them across runs; the doctor's (no state) for its own life.
    ...(context.store ? { unknownUsers: unknownUserStore(context.store, connector.name, f.baseUrl) } : {}),
    baseUrl: f.baseUrl,
    clock: context.clock,
    logger: context.logger,
    follow: departmentFollows(loadConnectorMapping(connector)),
    parseCxIdentifiers: splitsCxIdentifiers(loadConnectorMapping(connector)),
  });
  return { client, resolver };
}

function memo<T>(build: () => T): () => T {
  let value: { v: T } | undefined;
  return () => {
    value ??= { v: build() };
    return value.v;
  };
}

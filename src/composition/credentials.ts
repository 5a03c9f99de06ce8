/**
 * Credentials and clients built from config: the SMART token source (EHR side), the Entra token source and push
 * target (Purview side). Secrets are read here, at the moment a stage first needs them, never from the command line.
 */
import { readFileSync } from 'node:fs';
import type { Clock } from '../clock.js';
import { type Config, type ConnectorConfig, errnoOf, fhirSettings, readSecret, smartSettings, warnIfFileExposed } from '../config/index.js';
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { createDispatcher, fetchVia, resolveNetwork } from '../net/index.js';
import { CLOUDS, createPurviewTokenSource, DEFAULT_RESOURCE, type EntraCredential } from '../purview/index.js';
import { createSmartTokenSource, openKeyStore } from '../smart/index.js';
import type { SyncEvents } from '../sync/events.js';
import type { PushTarget } from '../sync/pipeline.js';

/** What building credentials needs: no state store, no ids (so `bridge doctor` can build them too). */
export interface CredentialContext {
  readonly env: NodeJS.ProcessEnv;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: SyncEvents;
  /** A due rotated signing key is not activated: `bridge doctor` checks and changes nothing. Default false. */
  readonly checkOnly?: boolean;
}

/** `config` gives the network section (proxy, CA); without it (or without that section) HTTPS_PROXY etc. from `env` apply. */
export function buildSmartTokenSource(context: CredentialContext & { readonly config?: Pick<Config, 'network'> }, connector: ConnectorConfig) {
  const s = smartSettings(connector);
  const keyStore = openKeyStore(s.keysDir, { logger: context.logger });
  // Discovery and token requests share one pool: the proxy and CA bundle of the network section.
  const network = resolveNetwork(context.config?.network, context.env);
  return createSmartTokenSource({
    fetch: fetchVia(createDispatcher(network)),
    fhirBaseUrl: fhirSettings(connector).baseUrl,
    ...(s.tokenUrl ? { tokenUrl: s.tokenUrl } : {}),
    clientId: s.clientId,
    scope: s.scope,
    key: () => keyStore.activeKey(),
    ...(s.jku ? { jku: s.jku } : {}),
    ...(context.checkOnly ? { activateDueKey: false } : {}),
    clock: context.clock,
    logger: context.logger,
    lifetimeSec: s.assertionLifetimeSec,
    skewSec: s.clockSkewSec,
    onRefresh: () => context.events.emit('token', { side: 'smart' }),
  });
}

/** @param logger - where a secret file or private key readable by others is warned about (never refused). */
export function buildPurviewCredential(connector: ConnectorConfig, env: NodeJS.ProcessEnv, logger?: Pick<Logger, 'warn'>): EntraCredential {
  const p = connector.purview;
  if (p.certificate) {
    const privateKeyPem = readFileOrFail(p.certificate.keyFile, 'purview.certificate.keyFile', true);
    // Read, so the path is a file's (not a key pasted where it belongs): it may be named.
    warnIfFileExposed(p.certificate.keyFile, 'purview.certificate.keyFile', logger);
    return { kind: 'certificate', privateKeyPem, thumbprintSha256: p.certificate.thumbprintSha256 };
  }
  if (!p.secret) throw new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', 'purview: set secret ({env} or {file}) or certificate.');
  return { kind: 'secret', secret: readSecret(p.secret, env, 'purview.secret', logger) };
}

export function buildPushTarget(context: CredentialContext & { readonly config?: Pick<Config, 'network'> }, connector: ConnectorConfig): PushTarget {
  const p = connector.purview;
  const preset = CLOUDS[p.cloud];
  const caPem = p.caFile ? readFileOrFail(p.caFile, 'purview.caFile') : undefined;
  // Entra and ingestion: the network section's proxy and CA bundle, plus purview.caFile (the sandbox). Every connector
  // has this side, so it is where a proxy credentials file others can read is warned about, once a run.
  const network = resolveNetwork(context.config?.network, context.env, { logger: context.logger });
  const tokenSource = createPurviewTokenSource({
    network,
    tenantId: p.tenantId,
    appId: p.appId,
    credential: buildPurviewCredential(connector, context.env, context.logger),
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

/** @param secret - the file holds a private key: its path is not echoed (the key itself may have been pasted there). */
function readFileOrFail(path: string, key: string, secret = false): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    if (secret) throw new BridgeError('BRG_ERR_CONFIG_INVALID', `${key}: cannot read the file it names (${errnoOf(cause)}).`, { cause, details: { key } });
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `${key}: cannot read ${path}.`, { cause, details: { key, path } });
  }
}

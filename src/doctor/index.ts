/**
 * `bridge doctor`: a checklist an integration engineer runs before the first sync. Each check passes, warns, fails
 * with the fix, or is skipped because a check it depends on failed. For the search source, one maps a sample of recent
 * events and prints every column's fill rate (fill-sample.ts); for a drop folder, one checks the folder without writing.
 * Nothing here prints a token, secret or PHI.
 */
import { constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import type { Clock } from '../clock.js';
import { buildFhirClient, buildPushTarget, buildSmartTokenSource, dropFolderOf, loadConnectorMapping } from '../composition/index.js';
import { type Config, type ConnectorConfig, canAccess, type FhirSettings, fileExposure, PROFILES, type SmartSettings } from '../config/index.js';
import { BridgeError, ERROR_CODES, toBridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { type CompiledMapping, departmentLookups } from '../mapping/index.js';
import { createDispatcher, fetchVia, proxyRefusalIn, proxyRefusedError, proxyTunnelIn, resolveNetwork, routeOf } from '../net/index.js';
import { createHttpsAgent } from '../purview/https-pool.js';
import { CLOUDS } from '../purview/index.js';
import { describeKeys, discoverTokenUrl, openKeyStore, scopesNotGranted } from '../smart/index.js';
import { SyncEvents } from '../sync/events.js';
import { checkFolder, type DropFolder } from '../sync/file-drop-folder.js';
import { type FillSampleOptions, formatFillTable, sampleFill } from './fill-sample.js';
import { JWKS_URL_CHECK, jwksUrlCheck } from './jwks-url.js';

export { DEFAULT_FILL_SAMPLE, type FillSample, type FillSampleOptions, formatFillTable, sampleFill } from './fill-sample.js';
export { JWKS_URL_CHECK } from './jwks-url.js';

/** warn: the check ran and found something to fix that does not stop a sync (e.g. a column mostly empty). */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  readonly fix?: string;
  /** Extra lines printed under the check (the fill table). */
  readonly lines?: readonly string[];
}

/** What a check body may return: a pass detail, or a status with detail and lines. */
type CheckOutcome = string | { readonly status: 'pass' | 'warn'; readonly detail: string; readonly lines?: readonly string[] };

export const FILL_CHECK = 'column fill of recent AuditEvents';
export const MAPPING_CHECK = 'mapping file and site options valid';

export interface DoctorContext {
  readonly config: Config;
  readonly env: NodeJS.ProcessEnv;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly fetch?: typeof fetch;
  /** Largest tolerated difference between our clock and the token server's Date header. Default 60 s. */
  readonly maxSkewMs?: number;
  /** Which recent AuditEvents the fill check maps (default: the last 200 of the last 24 h). */
  readonly sample?: FillSampleOptions;
  /** False when no config file was given (`--profile … --client-id …`): the Purview checks are skipped. */
  readonly purviewConfigured?: boolean;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function runDoctor(context: DoctorContext, connector: ConnectorConfig): Promise<CheckResult[]> {
  const results: CheckResult[] = [{ name: 'config valid', status: 'pass', detail: `connector "${connector.name}" validated` }];
  const check = async (name: string, needs: readonly string[], body: () => Promise<CheckOutcome> | CheckOutcome): Promise<void> => {
    const blocked = needs.find((n) => results.find((r) => r.name === n)?.status !== 'pass');
    if (blocked) {
      results.push({ name, status: 'skip', detail: `needs "${blocked}"` });
      return;
    }
    try {
      const outcome = await body();
      results.push(typeof outcome === 'string' ? { name, status: 'pass', detail: outcome } : { name, ...outcome });
    } catch (error) {
      const e = toBridgeError(error);
      results.push({ name, status: 'fail', detail: `${e.code}: ${e.message}`, fix: ERROR_CODES[e.code].fix });
    }
  };
  // Every credential the doctor builds signs with the active key: a due rotation is reported (jwks-url.ts), not made.
  const runtime = { ...context, events: new SyncEvents(), checkOnly: true };
  if (connector.fhir && connector.smart) await fhirChecks(check, runtime, connector, connector.fhir, connector.smart);
  else results.push({ name: 'FHIR server', status: 'skip', detail: `the ${connector.source.type} source reads no FHIR server` });
  if (context.purviewConfigured === false) results.push({ name: 'Purview', status: 'skip', detail: 'no config file: the Purview side is not configured' });
  else await purviewChecks(check, runtime, connector);
  await check(MAPPING_CHECK, [], () => {
    const mapping = loadConnectorMapping(connector);
    return `${mapping.schema} schema, ${mapping.columns.length} columns, from ${mapping.source}`;
  });
  if (connector.smart && connector.source.type !== 'flat-file') {
    // (A drop folder's enrichment looks up patients and users by identifier, never a department.)
    const smart = connector.smart;
    await check(DEPARTMENT_CHECK, [MAPPING_CHECK], () => departmentScope(loadConnectorMapping(connector), smart.scope));
  }
  if (connector.fhir && connector.source.type === 'fhir-search') await fillCheck(check, runtime, connector, connector.fhir);
  if (connector.source.type === 'flat-file') {
    const folder = dropFolderOf(connector.source);
    // As a run checks it, but changing nothing: the doctor may run as another user (root through `docker exec`), and a
    // done/ it created would then be that user's.
    await check(DROP_FOLDER_CHECK, [], () => dropFolderCheck(folder));
  }
  return results;
}

export const DROP_FOLDER_CHECK = 'drop folder usable';

/** The folder is there and writable, and so is the archive, or the place where the first run makes it. */
function dropFolderCheck(folder: DropFolder): CheckOutcome {
  checkFolder(folder, 'doctor', { readOnly: true });
  const writable = (path: string): boolean => canAccess(path, constants.W_OK);
  if (!writable(folder.dir)) throw dropFolderError(`the drop folder ${folder.dir} is not writable for this user: a file sent could not be moved out of it`);
  const archive = existsSync(folder.archiveDir) ? folder.archiveDir : dirname(folder.archiveDir);
  const kinds = ['done', 'rejected'].map((kind) => join(folder.archiveDir, kind));
  const missing = kinds.filter((path) => !existsSync(path));
  for (const path of [archive, ...kinds.filter((path) => existsSync(path))]) {
    if (!writable(path)) throw dropFolderError(`${path} is not writable for this user: sent files are moved into ${folder.archiveDir}`);
  }
  const made = missing.length > 0 ? `; the first run makes ${missing.join(' and ')}` : '';
  return `${folder.dir} is readable and writable, and so is ${folder.archiveDir}${made} (checked as this user, without writing)`;
}

function dropFolderError(message: string): BridgeError {
  return new BridgeError('BRG_ERR_DROP_FOLDER', `${message}. Run the doctor as the user the bridge runs as, and give that user write access.`);
}

export const DEPARTMENT_CHECK = 'department lookups in smart.scope';

/** Each schema's department column (docs/mapping.md §5.6). */
const DEPARTMENT_COLUMNS = { epic: 'CLARITY_DEP.DEPARTMENT_NAME', healthcare: 'Patient Department' } as const;

/**
 * The department column reads the Encounters and Locations events name; without their scopes Epic answers those lookups
 * 403, and the bridge leaves the column empty (with a warning in each run's log). Said here, before the first sync.
 */
function departmentScope(mapping: CompiledMapping, scope: string): CheckOutcome {
  const lookups = [...departmentLookups(mapping)];
  if (lookups.length === 0) return 'the department column reads no Encounter or Location';
  const missing = lookups.filter((type) => scopesNotGranted(`system/${type}.read`, scope).length > 0);
  if (missing.length === 0) return `${lookups.join(' and ')} reads are requested`;
  const name = DEPARTMENT_COLUMNS[mapping.schema];
  const column = mapping.columns.find((entry) => entry.name === name)?.label ?? name;
  return {
    status: 'warn',
    detail:
      `smart.scope asks for no ${missing.join(' or ')} read: events that name one get no department (${column} stays empty, with a warning in the run's log). ` +
      `Add ${missing.map((type) => `system/${type}.read`).join(' and ')} to smart.scope and the APIs to the app record, or leave them out of options.departmentSources.`,
  };
}

type Check = (name: string, needs: readonly string[], body: () => Promise<CheckOutcome> | CheckOutcome) => Promise<void>;

/** The Purview side: job id, Entra token, and the ingestion host reachable (TLS, through the proxy when set). */
async function purviewChecks(check: Check, runtime: DoctorRuntime, connector: ConnectorConfig): Promise<void> {
  await check('Purview job id well-formed', [], () => {
    if (!GUID.test(connector.purview.jobId)) {
      throw new BridgeError(
        'BRG_ERR_CONFIG_INVALID',
        `purview.jobId "${connector.purview.jobId}" is not a GUID; copy it from the connector page in the Purview portal.`,
      );
    }
    return 'GUID';
  });
  await check('Purview access token obtained', [], async () => {
    await buildPushTarget(runtime, connector).tokenSource.getToken();
    // A secret or key file others can read works, and is said here as every run's log says it (config/file-mode.ts).
    const { secret, certificate } = connector.purview;
    const files = [
      ...(secret && 'file' in secret ? [{ path: secret.file, what: 'purview.secret' }] : []),
      ...(certificate ? [{ path: certificate.keyFile, what: 'purview.certificate.keyFile' }] : []),
    ];
    const exposed = files.flatMap(({ path, what }) => fileExposure(path, what)?.message ?? []);
    if (exposed.length > 0) return { status: 'warn', detail: `Entra ID client_credentials grant succeeded; ${exposed.join('; ')}` };
    return 'Entra ID client_credentials grant succeeded';
  });
  await check('Purview ingestion host reachable', [], () => ingestionReachable(runtime, connector));
}
type DoctorRuntime = DoctorContext & { events: SyncEvents };

/** The EHR side: keys, token endpoint, clock, token, /metadata. */
async function fhirChecks(check: Check, runtime: DoctorRuntime, connector: ConnectorConfig, fhir: FhirSettings, smart: SmartSettings): Promise<void> {
  const context = runtime;
  let tokenUrl = smart.tokenUrl;
  await check('key files present with safe modes', [], () => keyFilesCheck(smart.keysDir));
  await check('signing kid published in the JWK Set', ['key files present with safe modes'], async () => {
    const key = await openKeyStore(smart.keysDir, { logger: context.logger }).activeKey();
    return `kid ${key.kid} (${key.alg}) is in ${join(smart.keysDir, 'jwks.json')}`;
  });
  const jku = smart.jku;
  if (jku) {
    const urlContext = { fetch: context.fetch ?? networkFetch(runtime), clock: context.clock, logger: context.logger };
    await check(JWKS_URL_CHECK, ['signing kid published in the JWK Set'], () => jwksUrlCheck(urlContext, jku, smart.keysDir));
  }
  const preset = connector.profile ? ` (preset by profile ${connector.profile})` : ' (from the config)';
  await check('token endpoint discovered', [], async () => {
    if (tokenUrl)
      return `${tokenUrl}${connector.profile && PROFILES[connector.profile]?.smart.tokenUrl === tokenUrl ? preset : ' (from smart.tokenUrl)'}; FHIR base ${fhir.baseUrl}${connector.profile && PROFILES[connector.profile]?.fhir.baseUrl === fhir.baseUrl ? preset : ''}`;
    tokenUrl = await discoverTokenUrl(fhir.baseUrl, { clientId: smart.clientId, fetch: context.fetch ?? networkFetch(runtime) });
    return `${tokenUrl} (discovered from ${fhir.baseUrl}/.well-known/smart-configuration)`;
  });
  await check('clock skew against the token server', ['token endpoint discovered'], () => skewCheck(runtime, tokenUrl as string, smart));
  await check('SMART access token obtained', ['signing kid published in the JWK Set', 'token endpoint discovered'], async () => {
    await buildSmartTokenSource(runtime, connector).getToken();
    return 'client_credentials grant succeeded';
  });
  // Only the search source reads AuditEvents by search: a Bulk export delivers them in files, a drop folder in an export.
  if (connector.source.type !== 'fhir-search') return;
  await check('/metadata lists AuditEvent search', ['SMART access token obtained'], async () => {
    await buildFhirClient(runtime, connector).client.requireAuditEventSearch(fhir.dateParam);
    return `AuditEvent search by ${fhir.dateParam} is offered`;
  });
}

/** Maps a sample of recent events and reports every column's fill. */
async function fillCheck(check: Check, runtime: DoctorRuntime, connector: ConnectorConfig, fhir: FhirSettings): Promise<void> {
  const context = runtime;
  await check(FILL_CHECK, ['/metadata lists AuditEvent search', MAPPING_CHECK], async () => {
    const { client, resolver } = buildFhirClient(runtime, connector);
    const sample = await sampleFill(
      { client, resolver, mapping: loadConnectorMapping(connector), dateParam: fhir.dateParam, now: context.clock.now() },
      context.sample,
    );
    const window = `${sample.since} – ${sample.until}`;
    if (sample.events === 0) return { status: 'warn', detail: `no AuditEvent recorded in ${window}; fill rates not measured (widen the sample window)` };
    const counts = `${sample.events} event(s) of ${window} → ${sample.report.rows} row(s), ${sample.skipped} skipped, ${sample.rejects.reduce((n, r) => n + r.count, 0)} rejected`;
    const lines = formatFillTable(sample);
    if (sample.warnings.length === 0) return { status: 'pass', detail: `${counts}; every mandatory and key column is filled in at least 95% of rows`, lines };
    return { status: 'warn', detail: `${counts}; ${sample.warnings.map((warning) => warning.message).join('; ')}`, lines };
  });
}

function keyFilesCheck(keysDir: string): string {
  const { activeKid, keys, next } = describeKeys(keysDir);
  if (!activeKid) throw new BridgeError('BRG_ERR_KEY_INVALID', `No active signing key in ${keysDir}; run \`bridge keys generate --alg ES384\`.`);
  const pem = join(keysDir, `${activeKid}.pem`);
  const mode = statSync(pem).mode & 0o777;
  // Windows reports 0666 whatever the ACL says: the mode means nothing there (as keys.ts reads it).
  if (process.platform !== 'win32' && mode & 0o077)
    throw new BridgeError('BRG_ERR_KEY_INVALID', `${pem} has mode ${mode.toString(8)}; run \`chmod 600 ${pem}\`.`);
  const waiting = next ? `, next ${next.kid} signs from ${new Date(next.activeFromMs).toISOString()}` : '';
  return `${keys.length} key(s), active ${activeKid}${waiting}, private key mode 600`;
}

/**
 * What Epic tolerates is not symmetric. Ahead: iat (now − clockSkewSec) must not be in the server's future, and exp
 * (now + assertionLifetimeSec) at most 5 minutes ahead of it. Behind: exp must still be in the server's future.
 */
async function skewCheck(
  context: DoctorRuntime,
  tokenUrl: string,
  smart: { readonly clockSkewSec: number; readonly assertionLifetimeSec: number },
): Promise<CheckOutcome> {
  const before = context.clock.now();
  // Any answer carries a Date header; a GET to a token endpoint is refused harmlessly.
  let response: Response;
  try {
    response = await (context.fetch ?? networkFetch(context))(tokenUrl, { method: 'GET' });
  } catch (error) {
    // Not a clock problem: say so plainly, with what was tried and what failed (no internal error).
    return {
      status: 'warn',
      detail: `could not reach ${new URL(tokenUrl).origin} to compare clocks (${networkCode(error)}); check the network or network.proxy, then run doctor again`,
    };
  }
  await response.body?.cancel();
  // The Date header is whole seconds, truncated: the server's time lies in [date, date + 1 s), half a second on average.
  const serverMs = Date.parse(response.headers.get('date') ?? '') + 500;
  if (Number.isNaN(serverMs)) return 'the token server sent no Date header; skew not measured';
  const localMs = (before + context.clock.now()) / 2;
  const skewMs = localMs - serverMs;
  const seconds = Math.round(skewMs / 1000);
  // At least the Date header's own resolution: a synced host is not told it is ahead.
  const aheadMs = context.maxSkewMs ?? Math.max(1, Math.min(smart.clockSkewSec, 300 - smart.assertionLifetimeSec)) * 1000;
  const behindMs = context.maxSkewMs ?? (smart.assertionLifetimeSec - 10) * 1000;
  if (Math.abs(skewMs) > 300_000) {
    throw new BridgeError(
      'BRG_ERR_SMART_INVALID_CLIENT',
      `This host's clock is ${Math.abs(seconds)} s ${skewMs > 0 ? 'ahead of' : 'behind'} the token server; Epic refuses assertions whose iat/nbf are in the future or exp more than 5 minutes ahead (or already past). Sync the clock (NTP).`,
    );
  }
  if (skewMs > aheadMs || skewMs < -behindMs) {
    // The client measures the offset from the refusal and retries once, corrected: tokens come, one refusal per process.
    const allowance = skewMs > 0 ? `more than smart.clockSkewSec (${smart.clockSkewSec} s) allows` : "so far that the assertion's exp is already past";
    return {
      status: 'warn',
      detail: `${Math.abs(seconds)} s ${skewMs > 0 ? 'ahead of' : 'behind'} the token server, ${allowance}: each process's first assertion is refused and retried with a corrected clock; sync the clock (NTP)`,
    };
  }
  return `${seconds} s (tolerated: ${aheadMs / 1000} s ahead, ${behindMs / 1000} s behind; the Date header has 1 s resolution)`;
}

/** Any HTTP answer from the ingestion host proves DNS, the route (through the proxy when set) and the TLS handshake. */
async function ingestionReachable(context: DoctorRuntime, connector: ConnectorConfig): Promise<string> {
  const p = connector.purview;
  const base = p.ingestionBase ?? CLOUDS[p.cloud].ingestionBase;
  const network = resolveNetwork(context.config.network, context.env);
  const dispatcher = createHttpsAgent(p.caFile ? readFileSync(p.caFile, 'utf8') : undefined, network);
  try {
    const response = await request(`${base.replace(/\/+$/, '')}/`, { method: 'HEAD', dispatcher, headersTimeout: 15_000, bodyTimeout: 15_000 });
    await response.body.dump();
    const route = routeOf(network, base);
    return `${new URL(base).host} answered HTTP ${response.statusCode} over TLS (${route === 'direct' ? 'direct' : `through the proxy ${route}`})`;
  } catch (error) {
    const refusal = proxyRefusalIn(error);
    if (refusal) throw proxyRefusedError(refusal, `Purview ingestion host ${new URL(base).host}`);
    throw new BridgeError(
      'BRG_ERR_PURVIEW_UNAVAILABLE',
      `Cannot reach the ingestion host ${new URL(base).host} (${proxyTunnelIn(error)?.message ?? networkCode(error)}); check purview.cloud / purview.ingestionBase, the firewall and network.proxy.`,
      { cause: error },
    );
  } finally {
    await dispatcher.close();
  }
}

/** The proxy (and CA bundle) of the network section, for the doctor's own requests. */
function networkFetch(context: DoctorRuntime): typeof fetch {
  return fetchVia(createDispatcher(resolveNetwork(context.config.network, context.env)));
}

/** The first error code in a cause chain (ECONNREFUSED, UND_ERR_CONNECT_TIMEOUT, …): names no URL or secret. */
function networkCode(error: unknown): string {
  const queue: unknown[] = [error];
  for (let seen = 0; queue.length > 0 && seen < 10; seen++) {
    const current = queue.shift();
    if (!(current instanceof Error)) continue;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code)) return code;
    // A refused connection to several addresses arrives as an AggregateError of one error each.
    queue.push(current.cause, ...(current instanceof AggregateError ? current.errors : []));
  }
  return error instanceof Error ? error.message.slice(0, 80) : 'network error';
}

export function formatChecks(results: readonly CheckResult[]): string[] {
  const mark: Record<CheckStatus, string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };
  return results.flatMap((r) => [
    `${mark[r.status]}  ${r.name}: ${r.detail}`,
    ...(r.fix ? [`      fix: ${r.fix}`] : []),
    ...(r.lines ?? []).map((line) => `      ${line}`),
  ]);
}

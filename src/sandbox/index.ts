/**
 * The offline sandbox: an Epic-like SMART token server, a FHIR R4 server with seeded Epic-shaped data, an Entra ID
 * emulator and a Purview ingestion emulator, all on 127.0.0.1 with ephemeral ports. Started in-process by tests,
 * `npm run demo` and `bridge sandbox`, which writes a config file (secrets in 0600 files beside it) to sync against it.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FhirResource } from 'fhir/r4.js';
import { stringify } from 'yaml';
import type { Clock } from '../clock.js';
import type { ConfigInput } from '../config/index.js';
import { generateKey } from '../smart/index.js';
import { type EntraEmulator, startEntraEmulator } from './entra.js';
import { type EpicAuthServer, startEpicAuthServer } from './epic-auth.js';
import { SANDBOX_IDS } from './epic-ids.js';
import { createMemoryBackend, type MemoryBackend } from './fhir-backend.js';
import { type SandboxFhirServer, startFhirServer } from './fhir-server.js';
import { createGeneratedBackend } from './generated-backend.js';
import { type GeneratedDataset, type GeneratorOptions, generateDataset } from './generator.js';
import { startJwksHost } from './jwks-host.js';
import { type PurviewIngestEmulator, startPurviewIngestEmulator } from './purview-ingest.js';
import { createSandboxCertificate } from './tls.js';

/** The row digest the demo takes of what it wrote, to compare with the ingestion emulator's (loaded with the sandbox). */
export { createRowDigest, type RowDigest, type RowDigestValue } from './row-digest.js';

export interface SandboxOptions {
  /** Where the sandbox writes its client key, CA, secret and config. Created 0700. */
  readonly dir: string;
  readonly data?: Partial<GeneratorOptions>;
  /** 'memory' loads every resource into medplum's MemoryRepository (real search); 'generated' serves the dataset lazily (benchmarks). */
  readonly backend?: 'memory' | 'generated';
  readonly listAuditEvent?: boolean;
  readonly clock?: Clock;
  readonly smartTokenLifetimeSec?: number;
  /** Most results one search of a type serves before Epic's 4127 cuts it short (FhirServerOptions.searchResultCaps). */
  readonly searchResultCaps?: Readonly<Record<string, number>>;
  /** 'count' keeps only row counts in the ingestion emulator, 'digest' counts and a digest of the rows: both stay flat in memory. */
  readonly ingestRecord?: 'rows' | 'count' | 'digest';
  /** The Purview connector schema of the sandbox's job, and so of its config's mapping (default epic). */
  readonly schema?: 'epic' | 'healthcare';
}

export interface Sandbox {
  readonly auth: EpicAuthServer;
  readonly fhir: SandboxFhirServer;
  /** The memory backend behind the FHIR server (undefined with the generated backend): tests add late events through it. */
  readonly store?: MemoryBackend;
  readonly entra: EntraEmulator;
  readonly ingest: PurviewIngestEmulator;
  readonly dataset: GeneratedDataset;
  /** `tenantDomain`: the tenant's domain, which Entra takes in place of its id (`<tenant id's first part>.onmicrosoft.com`). */
  readonly ids: { clientId: string; tenantId: string; tenantDomain: string; appId: string; jobId: string };
  /** A complete, valid config for one connector named "sandbox" pointing at this sandbox. */
  readonly config: ConfigInput;
  /** The same config written as YAML. */
  readonly configPath: string;
  /** A 0600 file holding the API token `bridge serve` with this config takes (`Authorization: Bearer <token>`). */
  readonly apiTokenPath: string;
  close(): Promise<void>;
}

export const DEFAULT_SANDBOX_DATA: GeneratorOptions = {
  seed: 42,
  practitioners: 25,
  patients: 200,
  events: 1_000,
  start: '2026-11-01T00:00:00.000Z',
  end: '2026-11-02T00:00:00.000Z',
};

/** A first sync without --since reads back two days: all of `bridge sandbox`'s day before today, whenever it runs. */
export const SANDBOX_INITIAL_LOOKBACK_HOURS = 48;

/** What the sandbox's app record selects: read access to the event and everything a row or an export may name. */
export const SANDBOX_APP_SCOPES = [
  'system/AuditEvent.read',
  'system/Patient.read',
  'system/Practitioner.read',
  'system/PractitionerRole.read',
  'system/Encounter.read',
  'system/Location.read',
  'system/Organization.read',
  'system/Group.read',
] as const;

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tenantId = randomUUID();
  const ids = {
    clientId: `sandbox-${randomUUID()}`,
    tenantId,
    tenantDomain: `sandbox-${tenantId.slice(0, 8)}.onmicrosoft.com`,
    appId: randomUUID(),
    jobId: randomUUID(),
  };
  const dataset = generateDataset({ ...DEFAULT_SANDBOX_DATA, ...options.data });
  const clockOption = options.clock ? { clock: options.clock } : {};

  const keysDir = join(dir, 'keys');
  await generateKey(keysDir, 'ES384', { force: true });
  const auth = await startEpicAuthServer({ ...clockOption, ...(options.smartTokenLifetimeSec ? { tokenLifetimeSec: options.smartTokenLifetimeSec } : {}) });
  // Epic takes EC keys only from a JWK Set URL: the sandbox's client registers one, serving the bridge's published set.
  const jwksHost = await startJwksHost(join(keysDir, 'jwks.json'));
  // The app record's APIs, as Epic grants only those (invalid_scope for any other, a write or a user/ scope included).
  auth.registerClient({ clientId: ids.clientId, jwksUrl: jwksHost.url, scopes: [...SANDBOX_APP_SCOPES] });

  const store = options.backend === 'generated' ? undefined : await loadMemoryBackend(dataset);
  const backend = store ?? createGeneratedBackend(dataset);
  const fhir = await startFhirServer({
    backend,
    verifyAccessToken: (token) => auth.verifyAccessToken(token) ?? false,
    tokenUrl: auth.tokenUrl,
    ...(options.listAuditEvent === undefined ? {} : { listAuditEvent: options.listAuditEvent }),
    ...(options.searchResultCaps ? { searchResultCaps: options.searchResultCaps } : {}),
    // One clock for the EHR's servers: an export's transactionTime is the server's time, as its tokens' are.
    ...(options.clock ? { bulkExport: { clock: options.clock } } : {}),
    // Pages gzipped as Epic's servers send them to a client that accepts it.
    gzip: true,
  });

  const tls = await createSandboxCertificate();
  const entra = await startEntraEmulator({ ...clockOption, tls });
  const secret = randomBytes(24).toString('base64url');
  entra.registerApp({ tenantId: ids.tenantId, domains: [ids.tenantDomain], appId: ids.appId, secret });
  const ingest = await startPurviewIngestEmulator({
    verifyAccessToken: (token) => entra.verifyAccessToken(token),
    tls,
    record: options.ingestRecord ?? 'rows',
  });
  const schema = options.schema ?? 'epic';
  ingest.registerJob(ids.jobId, ids, schema);

  const caFile = writePrivate(join(dir, 'sandbox-ca.pem'), tls.certPem);
  const secretFile = writePrivate(join(dir, 'purview-app-secret'), secret);
  // `bridge serve` with this config answers /v1 to this token alone (the config keeps its SHA-256, as in production).
  const apiToken = randomBytes(32).toString('base64url');
  const apiTokenPath = writePrivate(join(dir, 'api-token'), apiToken);
  // The SHA-256 of the token, hex, as server.apiTokenSha256 takes it (`bridge token hash`).
  const apiTokenSha256 = createHash('sha256').update(apiToken, 'utf8').digest('hex');
  const config = sandboxConfig({ dir, keysDir, caFile, secretFile, ids, auth, fhir, entra, ingest, apiTokenSha256, schema });
  const configPath = writePrivate(join(dir, 'bridge.config.yaml'), stringify(config));

  return {
    auth,
    fhir,
    entra,
    ingest,
    dataset,
    ids,
    config,
    configPath,
    apiTokenPath,
    ...(store ? { store } : {}),
    async close() {
      await Promise.allSettled([auth.close(), fhir.close(), entra.close(), ingest.close(), jwksHost.close()]);
    },
  };
}

async function loadMemoryBackend(dataset: GeneratedDataset) {
  const backend = await createMemoryBackend();
  const batch: FhirResource[] = [];
  const flush = async (): Promise<void> => {
    await backend.load(batch.splice(0));
  };
  for (const source of [dataset.practitioners(), dataset.patients(), dataset.events()] as Iterable<FhirResource>[]) {
    for (const resource of source) {
      batch.push(resource);
      if (batch.length >= 1000) await flush();
    }
  }
  await flush();
  return backend;
}

interface ConfigParts {
  dir: string;
  keysDir: string;
  caFile: string;
  secretFile: string;
  ids: Sandbox['ids'];
  auth: EpicAuthServer;
  fhir: SandboxFhirServer;
  entra: EntraEmulator;
  ingest: PurviewIngestEmulator;
  apiTokenSha256: string;
  schema: 'epic' | 'healthcare';
}

function sandboxConfig(p: ConfigParts): ConfigInput {
  return {
    stateDir: join(p.dir, 'state'),
    server: { apiTokenSha256: [p.apiTokenSha256] },
    connectors: [
      {
        name: 'sandbox',
        fhir: { baseUrl: p.fhir.baseUrl, settleMinutes: 0, overlapMinutes: 15, initialLookbackHours: SANDBOX_INITIAL_LOOKBACK_HOURS },
        smart: { clientId: p.ids.clientId, tokenUrl: p.auth.tokenUrl, keysDir: p.keysDir },
        // Site options a real Epic organisation would set for its own identifier systems.
        mapping: {
          schema: p.schema,
          options: { mrnSystems: [SANDBOX_IDS.mrnSystem], loginSystems: [SANDBOX_IDS.empSystem], userIdSystems: [SANDBOX_IDS.serSystem] },
        },
        purview: {
          authorityHost: p.entra.authorityHost,
          ingestionBase: p.ingest.baseUrl,
          caFile: p.caFile,
          tenantId: p.ids.tenantId,
          appId: p.ids.appId,
          jobId: p.ids.jobId,
          secret: { file: p.secretFile },
        },
        schedule: { cron: '0 2 * * *', enabled: false },
      },
    ],
  };
}

function writePrivate(path: string, content: string): string {
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

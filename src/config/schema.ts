/**
 * The configuration schema: `ConfigInput` (what a file and env may say, everything optional that has a default) →
 * `Config` (resolved, readonly). Every key carries a description; docs/configuration.md is generated from this file
 * and a test keeps it current. Secrets are never values here: only the name of an env var or a file path.
 */
import { Cron } from 'croner';
import { z } from 'zod';
import { DELIMITER_INPUTS, encodingName } from '../connector-file/index.js';
import { parseTimeFormat } from '../mapping/time.js';
import { CLOUDS } from '../purview/clouds.js';
import { destinationKey } from '../purview/ledger.js';
import { normaliseBase } from '../reference-keys.js';
import { INSECURE_ENDPOINT, isSecureOrLocal } from './endpoints.js';
import { ENV_VAR_NAME } from './secrets.js';

const DEFAULT_SCOPE = 'system/AuditEvent.read system/Patient.read system/Practitioner.read';

/**
 * A file path where a secret or private key is read from: one line, not a PEM block. A secret pasted where its path
 * belongs is refused at load (and never echoed: the keys holding it are not shown in validation messages).
 */
const secretFilePath = () =>
  z
    .string()
    .min(1)
    .refine(
      (path) => !/[\r\n]/.test(path) && !path.includes('-----BEGIN'),
      'a file path (the secret or key itself never goes in the config; if it did, rotate it)',
    );

/** A secret is referenced, never inlined: `{ env: NAME }` or `{ file: path }`. */
export const secretRef = z
  .union(
    [
      z.object({ env: z.string().regex(ENV_VAR_NAME, 'an environment variable name such as PURVIEW_APP_SECRET') }).strict(),
      z.object({ file: secretFilePath() }).strict(),
    ],
    {
      // The likeliest mistake is the secret itself where its reference goes (a BRIDGE__… variable set to it): zod's own
      // text ("Invalid input") says nothing of what to write.
      error: 'a reference, exactly one of { env: NAME } or { file: /path/to/file }, never the secret itself (if the secret was written here, rotate it)',
    },
  )
  .describe('Reference to a secret: { env: VAR_NAME } or { file: /run/secrets/name }. Never the secret itself.');

/** Endpoints are HTTPS (config/endpoints.ts), refused at load rather than at the first request; ftp://, file:// never. */
const httpUrl = () =>
  z
    .url({ protocol: /^https?$/, error: 'an http:// or https:// URL' })
    .refine(isSecureOrLocal, { error: INSECURE_ENDPOINT })
    // Credentials never ride in a URL: it is logged, shown by bridge doctor and quoted in errors (and fetch refuses it).
    .refine((url) => !hasUserinfo(url), { error: 'a URL without user:password@ (credentials go in the secret settings, never in a URL)' });

function hasUserinfo(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.username !== '' || parsed.password !== '';
  } catch {
    return false;
  }
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * A cron expression croner accepts and that fires, checked at load rather than when `bridge serve` first schedules it:
 * one no date matches (`0 0 30 2 *`, February 30th) parses, but its schedule would stop at once, silently.
 */
function cronProblem(expression: string, timezone: string | undefined): string | undefined {
  let cron: Cron;
  try {
    cron = new Cron(expression, { paused: true, ...(timezone ? { timezone } : {}) });
  } catch (error) {
    return `a cron expression of 5 or 6 fields such as "0 2 * * *" (${error instanceof Error ? error.message : String(error)})`;
  }
  // A time zone that is none is refused as such (schedule.timezone): whether the expression fires there means nothing.
  if ((timezone !== undefined && !isTimeZone(timezone)) || cron.nextRun() !== null) return undefined;
  return `a cron expression that fires: no date to come matches this one (in ${timezone ?? "the host's time zone"}), so it never fires and the connector would never be scheduled; check its day of month against its month (day 30 of month 2, February 30th, never comes)`;
}

const fhirSchema = z
  .object({
    baseUrl: httpUrl().describe('FHIR R4 base URL, e.g. https://ehr.example.org/interconnect-fhir-oauth/api/FHIR/R4.'),
    concurrency: z.int().min(1).max(32).default(4).describe('FHIR requests in flight at once.'),
    requestsPerSecond: z.number().positive().max(1000).default(20).describe('Cap on FHIR requests per second (be gentle with the EHR).'),
    timeoutMs: z.int().min(1000).default(30_000).describe('Timeout of one FHIR request.'),
    maxResponseBytes: z
      .int()
      .min(65_536)
      .default(33_554_432)
      .describe(
        'Largest FHIR response body read (bytes, default 32 MiB; a compressed answer by its decoded size); a larger one stops the run before it is parsed. Lower fhir.pageSize rather than raising this: a parsed page takes several times its size in memory.',
      ),
    pageSize: z.int().min(1).max(1000).default(200).describe('_count for AuditEvent searches.'),
    dateParam: z.enum(['date', '_lastUpdated']).default('date').describe('Search parameter for the time window.'),
    maxResultsPerSlice: z.int().min(100).default(10_000).describe('Split a window so one search never exceeds this many results.'),
    checkSearchTotal: z
      .boolean()
      .default(true)
      .describe(
        "Compare each searched slice's events with the Bundle.total of its first page: a short walk is read again, then stops the run. Turn off only for a server whose total is an estimate.",
      ),
    overlapMinutes: z
      .number()
      .min(0)
      .default(15)
      .describe('Re-read this much before the watermark to catch late events (de-duplicated); at most state.ledgerRetentionDays.'),
    settleMinutes: z
      .number()
      .min(0)
      .default(5)
      .describe(
        'Stop the window this long before now, so events still being written are not missed (a search; a Bulk export ends at its own transactionTime).',
      ),
    initialLookbackHours: z.number().positive().default(24).describe('First run without a watermark starts this far back.'),
    prefetchEvents: z
      .int()
      .min(1)
      .max(100_000)
      .default(2_000)
      .describe(
        'Events pulled before one Patient/Practitioner prefetch and mapping pass (memory ≈ this many events); partial _id batches are held for the next pass, so this barely changes the request count.',
      ),
    referenceBatchSize: z.int().min(1).max(100).default(50).describe('Ids per _id=a,b,c lookup of Patient/Practitioner.'),
    referenceCacheSize: z.int().min(100).default(20_000).describe('Resolved Patient/Practitioner kept in the LRU cache.'),
    referenceCacheTtlMs: z
      .int()
      .min(60_000)
      .default(3_600_000)
      .describe(
        'How long a resolved resource stays cached (at least a minute: the resources prefetched for a group of events must still be there when the group is mapped).',
      ),
    unknownUserCacheTtlMs: z
      .int()
      .min(60_000)
      .default(86_400_000)
      .describe(
        "How long a requestor's identifier that no Practitioner carries (at Epic: staff without a provider record) is remembered as nobody's, across runs (kept in the state database per connector and FHIR server). Each look-up of one costs a search of its own and finds nothing; their rows map from the identifier and display all the same.",
      ),
  })
  .strict();

const smartSchema = z
  .object({
    clientId: z.string().min(1).describe('Backend app client id (Epic: the non-production id for sandboxes).'),
    tokenUrl: httpUrl().optional().describe('Token endpoint; discovered from {fhir.baseUrl}/.well-known/smart-configuration when absent.'),
    scope: z.string().min(1).default(DEFAULT_SCOPE).describe('Requested scopes (SMART v1 by default; v2 ".rs" also accepted).'),
    keysDir: z.string().min(1).default('keys').describe('Directory with the private keys and jwks.json (bridge keys generate).'),
    jku: httpUrl()
      .optional()
      .describe(
        'JWK Set URL to put in the assertion header; must equal the URL registered with the EHR. When set, a rotated key signs only once this URL serves it, and bridge doctor checks it serves the signing key.',
      ),
    assertionLifetimeSec: z
      .int()
      .min(30)
      .max(300)
      .default(240)
      .describe('exp − now of the client assertion: at most 300 − clockSkewSec, and at most 290 (Epic allows 5 minutes, by its own clock).'),
    clockSkewSec: z.int().min(0).max(120).default(30).describe('iat/nbf are set this far in the past to absorb clock skew.'),
  })
  .strict()
  // exp − iat is what Epic limits to 5 minutes: both settings together, or every token request fails at run time.
  // exp − now too, against Epic's clock with no leeway: 10 s of it are kept for a client clock running ahead, so
  // 300 with clockSkewSec 0 is refused (one refusal and a skew retry per process the moment this host is 1 s fast).
  .refine((s) => s.assertionLifetimeSec + Math.max(s.clockSkewSec, 10) <= 300, {
    path: ['assertionLifetimeSec'],
    message:
      'at most 300 − smart.clockSkewSec, and at most 290 even when smart.clockSkewSec is under 10: the assertion runs from iat (now − clockSkewSec) to exp, and Epic allows 5 minutes, ' +
      'checking exp against its own clock with no leeway (10 s are kept for a clock running ahead)',
  });

const mappingSchema = z
  .object({
    schema: z.enum(['epic', 'healthcare']).default('epic').describe('Purview connector schema.'),
    file: z
      .string()
      .trim()
      .min(1, 'a path to a mapping file, not empty; leave it out for the built-in mapping')
      .optional()
      .describe('Own mapping file; default mappings/<schema>-connector.json.'),
    delimiter: z
      .enum(DELIMITER_INPUTS)
      .optional()
      .describe('Overrides the mapping file delimiter: tab, pipe or comma (healthcare only; "csv" is its older name).'),
    strict: z.boolean().optional().describe('Reject rows with any empty mandatory cell.'),
    timeFormat: z
      .string()
      // Checked here, not only by the mapping compiler, so a refusal names this key rather than the mapping file.
      .refine((text) => parseTimeFormat(text) !== undefined, 'iso-utc, iso-offset or local:<IANA zone> with a zone this Node knows, e.g. local:America/Chicago')
      .optional()
      .describe('iso-utc | iso-offset | local:<IANA zone>.'),
    options: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        "Site options merged over the mapping file's (e.g. mrnSystems, loginSystems, userIdSystems, btgCodes); checked by the mapping compiler, which names a value it refuses by this key (or the variable that set it), not as the mapping file's.",
      ),
  })
  .strict();

const purviewSchema = z
  .object({
    cloud: z.enum(['commercial', 'gcc', 'gcc-high', 'dod']).default('commercial').describe('Microsoft cloud preset.'),
    authorityHost: httpUrl().optional().describe('Overrides the cloud preset login host.'),
    ingestionBase: httpUrl().optional().describe('Overrides the cloud preset ingestion host.'),
    resource: z
      .string()
      .trim()
      .min(1, 'an App ID URI, not empty; leave it out for the default')
      .optional()
      .describe("Token resource (App ID URI); default the current id from Microsoft's script."),
    tenantId: z.string().min(1).describe('Entra tenant id.'),
    appId: z.string().min(1).describe('Entra app (client) id that owns the connector job.'),
    jobId: z.string().min(1).describe('Connector job id from the Purview portal.'),
    secret: secretRef.optional().describe('Client secret reference ({env} or {file}); or use certificate.'),
    certificate: z
      .object({ keyFile: secretFilePath(), thumbprintSha256: z.string().regex(/^[0-9a-fA-F]{64}$/) })
      .strict()
      .optional()
      .describe('Certificate credential: PEM private key file and SHA-256 thumbprint.'),
    caFile: z.string().optional().describe('Extra CA (PEM) to trust for Entra and ingestion; only for the local sandbox.'),
    blockRows: z
      .int()
      .min(1)
      .max(100_000)
      .default(100_000)
      .describe("Rows per upload block (sent sequentially); at most 100,000, the block size Microsoft's connector documentation describes."),
    timeoutMs: z.int().min(1000).default(400_000).describe("Timeout of one block upload (Microsoft's script uses 400 s)."),
  })
  .strict()
  .refine((p) => p.secret !== undefined || p.certificate !== undefined, {
    message: 'one of purview.secret or purview.certificate is required',
  })
  // Both would leave one silently unused (an env override of the secret that does nothing).
  .refine((p) => p.secret === undefined || p.certificate === undefined, {
    message: 'purview.secret or purview.certificate, not both; remove the one this app does not use',
  });

const scheduleSchema = z
  .object({
    cron: z
      .string()
      .min(1)
      .default('0 2 * * *')
      .describe('Cron expression for scheduled syncs (default daily 02:00); one that never fires in its time zone (February 30th) is refused.'),
    timezone: z
      .string()
      .min(1)
      .refine((zone) => isTimeZone(zone), 'an IANA time zone such as America/Chicago')
      .optional()
      .describe('IANA time zone of the cron expression; default the host zone.'),
    enabled: z.boolean().default(true).describe('Run on the schedule when `bridge serve` runs.'),
  })
  .strict()
  .superRefine((schedule, context) => {
    const problem = cronProblem(schedule.cron, schedule.timezone);
    if (problem) context.addIssue({ code: 'custom', path: ['cron'], message: problem });
  });

const resourceType = z.string().regex(/^[A-Z][A-Za-z]{1,63}$/, 'a FHIR resource type such as AuditEvent');

/** Where a connector's audit data comes from. */
const sourceSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('fhir-search').describe('Page `AuditEvent?date=…` over a time window (the default).') }).strict(),
    z
      .object({
        type: z.literal('bulk-export').describe('SMART Bulk Data `$export`: one asynchronous job, then NDJSON files.'),
        level: z.enum(['system', 'patient', 'group']).default('system').describe('`{base}/$export`, `/Patient/$export` or `/Group/{groupId}/$export`.'),
        groupId: z
          .string()
          .regex(/^[A-Za-z0-9\-.]{1,64}$/, 'a FHIR id')
          .optional()
          .describe('The Group exported, with level group.'),
        types: z
          .array(resourceType)
          .min(1)
          // Without AuditEvent a run reads no event yet moves the watermark to the export's transactionTime: the events
          // before it would never be exported once AuditEvent is added.
          .refine(
            (types) => types.includes('AuditEvent'),
            'a list that includes AuditEvent (the events pushed); add it, e.g. [AuditEvent, Patient, Practitioner]',
          )
          .default(['AuditEvent', 'Patient', 'Practitioner'])
          .describe('`_type` of the export; must include AuditEvent, e.g. [AuditEvent, Patient, Practitioner].'),
        pollMinSeconds: z.number().min(1).max(600).default(2).describe("Shortest wait between status polls (the server's Retry-After is honoured above it)."),
        pollMaxMinutes: z.number().min(1).max(10_080).default(240).describe('Give up on an export whose manifest is not ready after this long.'),
        checkCounts: z
          .boolean()
          .default(true)
          .describe(
            "Refuse an export file holding fewer resources than the manifest's `count` (it ended early; the next run asks for a new export). false only for a server known to miscount: then logged.",
          ),
      })
      .strict(),
    z
      .object({
        type: z.literal('flat-file').describe('Files an EHR export (e.g. Clarity) drops in a folder, pushed as they are.'),
        dir: z.string().min(1).describe('The drop folder to pick files up from.'),
        pattern: z.string().min(1).default('*.txt').describe('Glob of the file names taken, e.g. "*.txt" or "access_log_*.csv".'),
        archiveDir: z.string().min(1).describe('Where done/ and rejected/ files go (same filesystem as dir).'),
        settleSeconds: z
          .number()
          .min(0)
          .max(86_400)
          .default(60)
          .describe(
            'A file changed more recently than this (written, or its times set: the later of mtime and ctime, so a copy that keeps an old mtime still counts) is still being written and waits for the next run.',
          ),
        schema: z.enum(['epic', 'healthcare']).optional().describe('Connector schema of the files; default mapping.schema.'),
        encoding: z
          .string()
          .min(1)
          .refine((label) => encodingName(label) !== undefined, 'a text encoding Node knows, e.g. utf-8, windows-1252, latin1, utf-16le')
          .default('utf-8')
          .describe('Text encoding of the files (converted to UTF-8), e.g. utf-8, windows-1252, latin1, utf-16le.'),
        maxLineBytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(1024 * 1024)
          .describe('Longest row accepted, in bytes: a longer line is refused as a broken file (one row per line).'),
        enrich: z
          .object({
            fhir: z.boolean().default(false).describe("Fill empty patient and employee columns from FHIR (needs the connector's fhir and smart sections)."),
            mrnSystem: z.string().min(1).optional().describe('Identifier system of the MRN in `Patient?identifier=<system>|<mrn>`.'),
            userSystem: z.string().min(1).optional().describe('Identifier system of the employee id in `Practitioner?identifier=<system>|<id>`.'),
            timeZone: z
              .string()
              .min(1)
              .refine((zone) => parseTimeFormat(`local:${zone}`) !== undefined, 'an IANA time zone this Node knows, e.g. America/Chicago')
              .optional()
              .describe(
                "IANA zone of access times written without an offset (a Clarity export's local time), read to choose the name and address valid then. Default: the zone of a mapping timeFormat local:<zone>, else UTC (never the host's).",
              ),
          })
          .strict()
          .default({ fhir: false }),
      })
      .strict(),
  ])
  .default({ type: 'fhir-search' });

export const connectorSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes')
      .describe(
        "Connector name. It keys the connector's state (watermark, delivery ledger): to rename a connector that has run, use `bridge state rename <old> <new>`.",
      ),
    profile: z
      .enum(['epic-sandbox'])
      .optional()
      .describe("Presets: 'epic-sandbox' fills fhir.baseUrl, smart.tokenUrl and smart.scope with fhir.epic.com's R4 sandbox (docs/epic-sandbox.md)."),
    source: sourceSchema.describe('Where the audit data comes from: fhir-search (default), bulk-export or flat-file.'),
    fhir: fhirSchema.optional().describe('The FHIR server; required unless the source is flat-file without FHIR enrichment.'),
    smart: smartSchema.optional().describe('SMART backend-services credentials for the FHIR server; required with fhir.'),
    mapping: mappingSchema.default({ schema: 'epic' }),
    purview: purviewSchema,
    schedule: scheduleSchema.default({ cron: '0 2 * * *', enabled: true }),
  })
  .strict()
  .superRefine((connector, context) => {
    const needsFhir = connector.source.type !== 'flat-file' || connector.source.enrich.fhir;
    for (const section of ['fhir', 'smart'] as const) {
      if (needsFhir && connector[section] === undefined) {
        context.addIssue({
          code: 'custom',
          path: [section],
          message: `a ${section} section: the ${connector.source.type} source${connector.source.type === 'flat-file' ? ' with enrich.fhir' : ''} reads the FHIR server`,
        });
      }
    }
    // One prefetch pass fetches the references of fhir.prefetchEvents events (a patient, a user, now and then an encounter
    // or a role each). The resolver keeps one pass's finds until its events are mapped whatever the cache's size; a cache
    // smaller than a few passes would fetch the same users again pass after pass. A Bulk export's lookup re-reads a miss
    // from its local index, so only the FHIR-reading sources need the room.
    const f = connector.fhir;
    if (needsFhir && connector.source.type !== 'bulk-export' && f !== undefined && f.referenceCacheSize < 4 * f.prefetchEvents) {
      context.addIssue({
        code: 'custom',
        path: ['fhir', 'referenceCacheSize'],
        message: `at least 4 × fhir.prefetchEvents (${4 * f.prefetchEvents}): the cache should hold several prefetch passes' Patients and Practitioners, or each pass fetches the same users again`,
      });
    }
    if (connector.source.type === 'bulk-export' && connector.source.level === 'group' && !connector.source.groupId) {
      context.addIssue({ code: 'custom', path: ['source', 'groupId'], message: 'a Group id with level group' });
    }
  });

const stateSchema = z
  .object({
    leaseTtlSeconds: z
      .int()
      .min(10)
      .max(3600)
      .default(120)
      .describe(
        'One run per connector at a time across processes: a run holds a lease it renews every quarter of this, and stops itself once less than half of it, plus the 5 s busy wait of the state database, is left since its last renewal; a holder that crashed on another machine, or in another container or PID namespace, blocks others for at most this long (one of this host and PID namespace, not at all).',
      ),
    ledgerRetentionDays: z
      .number()
      .min(1)
      .max(3650)
      .default(31)
      .describe(
        'How long the delivery ledger remembers which events Purview acknowledged (about 50 bytes per event); a backfill may not start earlier than this before the watermark, nor before what a run with a shorter retention already forgot, and fhir.overlapMinutes may not be longer.',
      ),
  })
  .strict();

const serverSchema = z
  .object({
    // An empty host (an unset ${VAR} in Compose, `Environment=…host=` in a unit) would bind every interface, /metrics included.
    host: z
      .string()
      .trim()
      .min(1, 'an address to listen on, not empty (empty binds every interface); leave it out for 127.0.0.1')
      .default('127.0.0.1')
      .describe('Bind address of `bridge serve`.'),
    port: z.int().min(0).max(65535).default(8080).describe('Port of `bridge serve`.'),
    apiTokenSha256: z
      // Upper-case hex (PowerShell's Get-FileHash) is the same digest: taken, and compared in lower case (service.ts).
      .array(z.string().regex(/^[0-9a-fA-F]{64}$/, 'hex SHA-256 of an API token (64 hex digits)'))
      .default([])
      .describe('SHA-256 (hex) of each accepted API bearer token for /v1 routes; `bridge token hash` prints one.'),
    apiTokens: secretRef.optional().describe('Reference to a file or env var with API tokens, one per line (hashed at load).'),
    jwksMaxAgeSec: z.int().min(0).default(3600).describe('Cache-Control max-age of GET /.well-known/jwks.json.'),
    rateLimitMax: z.int().min(1).default(60).describe('Requests per minute per client on /v1 routes.'),
    shutdownGraceMs: z.int().min(0).default(30_000).describe('On SIGTERM, time to finish or checkpoint the current block.'),
    lateAfterMinutes: z
      .number()
      .positive()
      .optional()
      .describe('A connector is late when its lag (now − watermark) exceeds this; default twice the longest gap of schedule.cron plus fhir.settleMinutes.'),
  })
  .strict();

const networkSchema = z
  .object({
    proxy: z
      .object({
        url: z
          .url({ protocol: /^https?$/ })
          .refine((url) => !/^[a-z]+:\/\/[^/@]*@/i.test(url), 'no user:password in the URL: use network.proxy.credentials')
          .optional()
          .describe(
            'Forward proxy for every outbound request (SMART, FHIR, Entra ID, ingestion), e.g. http://proxy.example.org:3128; https targets are tunnelled with CONNECT. Overrides HTTPS_PROXY and HTTP_PROXY.',
          ),
        noProxy: z
          .array(z.string().min(1))
          .optional()
          .describe(
            'Hosts reached directly: example.org (and its subdomains), .example.org, host:port, or *. Overrides NO_PROXY. Loopback is not exempt unless listed.',
          ),
        credentials: secretRef
          .optional()
          .describe(
            'Proxy credentials for Basic Proxy-Authorization: { env } or { file } holding user:password. Also used with a proxy from HTTPS_PROXY / HTTP_PROXY.',
          ),
      })
      .strict()
      .optional()
      .describe('Forward proxy; without it HTTPS_PROXY, HTTP_PROXY and NO_PROXY (or their lowercase forms) apply.'),
    caFile: z
      .string()
      .min(1)
      .optional()
      .describe('CA bundle (PEM) trusted on top of the system roots by every outbound TLS connection, the proxy included (corporate TLS inspection).'),
  })
  .strict();

export const configSchema = z
  .object({
    stateDir: z.string().min(1).default('state').describe('SQLite state, spool and rejects files (0600).'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level.'),
    retainFiles: z
      .boolean()
      .default(false)
      .describe('Keep spool files (and rejects, whatever their retention) after a successful run; for debugging only, they hold PHI.'),
    state: stateSchema.default({ leaseTtlSeconds: 120, ledgerRetentionDays: 31 }),
    retention: z
      .object({
        rejectsDays: z
          .number()
          .min(0)
          .max(3650)
          .default(14)
          .describe(
            "How long a run's rejects file is kept under stateDir/rejects (NDJSON, mode 0600: one line per rejected row with the AuditEvent id, an opaque patient reference, the reason and column; rows given up after Purview refused them also carry the row as sent, which is PHI); 0 deletes it when the run completes.",
          ),
        runLogDays: z
          .number()
          .min(1)
          .max(3650)
          .default(90)
          .describe(
            "How long a finished run's event log is kept under stateDir/runs (NDJSON, counts and opaque ids: pages, blocks, retries, rejects), counted from its last line; the run's record in the state database stays.",
          ),
      })
      .strict()
      .default({ rejectsDays: 14, runLogDays: 90 }),
    connectors: z
      .array(connectorSchema)
      .min(1)
      .describe(
        'One entry per Epic organisation / Purview job. Two connectors reading the same FHIR server may not send to the same Purview job: each would send every event.',
      ),
    network: networkSchema.default({}).describe('Outbound proxy and TLS trust, for every connector.'),
    server: serverSchema.default({ host: '127.0.0.1', port: 8080, apiTokenSha256: [], jwksMaxAgeSec: 3600, rateLimitMax: 60, shutdownGraceMs: 30_000 }),
  })
  .strict()
  .refine((c) => new Set(c.connectors.map((k) => k.name)).size === c.connectors.length, {
    message: 'connector names must be unique',
    path: ['connectors'],
  })
  .superRefine((config, context) => {
    refuseOverlapBeyondRetention(config, context);
    refuseSharedSourceAndJob(config, context);
  });

type ParsedConfig = z.output<typeof configSchema>;
type ParsedConnector = z.output<typeof connectorSchema>;

/**
 * Every run of a FHIR source re-reads fhir.overlapMinutes before its watermark: longer than the delivery ledger's
 * retention, the oldest part of it is de-duplicated by nothing. Refused at load, as each run would (sync/ledger-horizon.ts).
 */
function refuseOverlapBeyondRetention(config: ParsedConfig, context: z.RefinementCtx): void {
  const days = config.state.ledgerRetentionDays;
  config.connectors.forEach((connector, index) => {
    if (connector.source.type === 'flat-file' || connector.fhir === undefined) return;
    if (connector.fhir.overlapMinutes * 60_000 <= days * 86_400_000) return;
    context.addIssue({
      code: 'custom',
      path: ['connectors', index, 'fhir', 'overlapMinutes'],
      message:
        `at most state.ledgerRetentionDays (${days} day(s) = ${days * 1440} min): each run re-reads the overlap, and the delivery ledger forgets acknowledgements older than its retention, so rows could be sent twice. ` +
        'Lower fhir.overlapMinutes or raise state.ledgerRetentionDays.',
    });
  });
}

/**
 * Each connector claims the AuditEvents it sends in the delivery ledger under its own name: two connectors reading the
 * same FHIR server (by search or by Bulk export, whatever the group) and sending to the same Purview job (a connector
 * copied, renamed in the copy) would each send every event. Flat-file rows are claimed by their file's content, not by
 * connector (two connectors on one folder, by two patterns, send nothing twice), and a FHIR connector beside the
 * flat-file one it replaces sends other rows: both allowed.
 */
function refuseSharedSourceAndJob(config: ParsedConfig, context: z.RefinementCtx): void {
  const first = new Map<string, ParsedConnector>();
  config.connectors.forEach((connector, index) => {
    if (connector.source.type === 'flat-file') return;
    const source = sourceOf(connector);
    const p = connector.purview;
    const key = `${source.key}\n${destinationKey({ ingestionBase: p.ingestionBase ?? CLOUDS[p.cloud].ingestionBase, jobId: p.jobId })}`;
    const earlier = first.get(key);
    if (earlier === undefined) {
      first.set(key, connector);
      return;
    }
    // The same name twice is refused as such (unique names) already.
    if (earlier.name === connector.name) return;
    context.addIssue({
      code: 'custom',
      path: ['connectors', index, 'purview', 'jobId'],
      message:
        `a Purview job no other connector reading the same source sends to: connectors "${earlier.name}" and "${connector.name}" both read ${source.shown} and send to Purview job "${p.jobId}", ` +
        '(by search or by Bulk export, at any level or group: their AuditEvents overlap), each claiming deliveries in the ledger under its own name, so every event would be sent twice. Keep one connector per source and Purview job: remove the copy, or send it to another job; ' +
        'to rename a connector that has run, use `bridge state rename <old> <new>` rather than a copy under the new name.',
    });
  });
}

/** The FHIR server a connector of either FHIR source reads, in one form for every spelling of its base. */
function sourceOf(connector: ParsedConnector): { key: string; shown: string } {
  const base = connector.fhir?.baseUrl ?? '';
  const normal = normaliseBase(base) ?? base;
  return { key: `fhir ${normal}`, shown: `the FHIR server ${normal}` };
}

export type ConfigInput = z.input<typeof configSchema>;
export type Config = Readonly<z.output<typeof configSchema>>;
export type ConnectorConfig = Readonly<z.output<typeof connectorSchema>>;
export type SecretRef = z.output<typeof secretRef>;
export { DEFAULT_SCOPE };

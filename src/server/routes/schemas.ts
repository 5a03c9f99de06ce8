/**
 * JSON schemas of the HTTP API's answers: fastify serializes with them (a property missing here is dropped from the
 * answer) and @fastify/swagger publishes them in /docs/json, so the OpenAPI document is the code's own description.
 */

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const instantOut = { type: 'string', format: 'date-time' } as const;

export const errorBody = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string', description: 'Stable error code (README, "Errors")' }, message: str },
} as const;

/**
 * Every /v1 route needs the API token; these answers can come from any of them. `conflict`: the route answers 409,
 * described by the string when it is one (else: a run of the connector already in flight).
 */
export function v1Responses(ok: Record<string, unknown>, extra: { notFound?: boolean; conflict?: boolean | string } = {}): Record<string, unknown> {
  return {
    ...ok,
    400: { description: 'A parameter or the body is invalid; the message names it', ...errorBody },
    401: { description: 'No or wrong API token (Authorization: Bearer)', ...errorBody },
    ...(extra.notFound ? { 404: { description: 'No such connector or run (or its rejects were removed)', ...errorBody } } : {}),
    ...(extra.conflict
      ? { 409: { description: typeof extra.conflict === 'string' ? extra.conflict : 'A run of this connector is already in flight', ...errorBody } }
      : {}),
    429: { description: 'Rate limited (server.rateLimitMax per minute); see Retry-After', ...errorBody },
  };
}

export const v1Security = [{ apiToken: [] }];

const counts = {
  type: 'object',
  properties: Object.fromEntries(
    [
      'events',
      'duplicates',
      'skipped',
      'rows',
      'rejects',
      'blocks',
      'blocksAcked',
      'rowsAcked',
      'possiblyDuplicated',
      'rowsAlreadyDelivered',
      'rowsPossiblyDuplicated',
    ].map((name) => [name, int]),
  ),
} as const;

const reasons = { type: 'object', additionalProperties: int, description: 'Count per reason code' } as const;
const runError = { type: 'object', properties: { code: str, message: str } } as const;
const runState = { type: 'string', enum: ['running', 'pushing', 'completed', 'failed'] } as const;
const runTrigger = { type: 'string', enum: ['cli', 'schedule', 'http', 'resume'] } as const;

const fill = {
  type: 'object',
  description: 'How many rows left each mandatory or key column empty',
  properties: {
    rows: int,
    columns: {
      type: 'array',
      items: { type: 'object', properties: { column: str, empty: int, mandatory: { type: 'boolean' }, watched: { type: 'boolean' } } },
    },
  },
} as const;

export const runSchema = {
  type: 'object',
  properties: {
    id: str,
    connector: str,
    state: runState,
    trigger: runTrigger,
    since: instantOut,
    until: instantOut,
    startedAt: instantOut,
    finishedAt: instantOut,
    counts,
    error: runError,
    spoolPath: str,
    rejectsPath: { type: 'string', description: "Where the run's rejects file is (it holds PHI); only while it exists" },
    rejectsAvailable: { type: 'boolean', description: 'The rejects file is still there (GET /v1/runs/{id}/rejects serves it once the run is over)' },
    rejectsExpireAt: { type: 'string', format: 'date-time', description: 'When retention.rejectsDays removes it' },
    dryRun: { type: 'boolean' },
    backfill: { type: 'boolean' },
    details: {
      type: 'object',
      properties: {
        skipReasons: reasons,
        rejectReasons: reasons,
        possiblyDuplicatedBlocks: { type: 'array', items: int },
        unexported: { ...int, description: 'Resources the FHIR server reported it could not export (Bulk export error files); not in Purview' },
        fill,
      },
    },
  },
} as const;

const progress = {
  type: 'object',
  properties: {
    runId: str,
    phase: { type: 'string', enum: ['pulling', 'pushing'] },
    startedAt: instantOut,
    events: int,
    rows: int,
    rejects: int,
    rowsAcked: int,
    blocksAcked: int,
    blocksTotal: { type: 'integer', description: 'Estimate, once the spool is complete' },
  },
} as const;

const runBrief = {
  type: 'object',
  properties: {
    id: str,
    state: runState,
    trigger: runTrigger,
    startedAt: instantOut,
    finishedAt: instantOut,
    durationSeconds: { type: 'number' },
    counts,
    error: runError,
    unexported: { type: 'integer', description: 'Resources the FHIR server reported it could not export (Bulk export error files); not in Purview' },
  },
} as const;

export const statusSchema = {
  type: 'object',
  properties: {
    now: instantOut,
    healthy: { type: 'boolean', description: 'Every connector is ok' },
    connectors: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: str,
          health: { type: 'string', enum: ['ok', 'late', 'failing'] },
          reason: str,
          watermark: instantOut,
          lagSeconds: { type: 'number', description: 'now − watermark' },
          lateAfterSeconds: { type: 'number' },
          lastRun: runBrief,
          lastSuccess: { type: 'object', properties: { runId: str, finishedAt: instantOut } },
          lastStartFailure: {
            type: 'object',
            description:
              'The last run this service could not start (it left no run record), while no run has started since; a window asked for and not run (window), until a run of it starts',
            properties: { code: str, message: str, at: instantOut, window: { type: 'object', properties: { since: str, until: str } } },
          },
          nextRunAt: instantOut,
          schedule: { type: 'object', properties: { cron: str, timezone: str, enabled: { type: 'boolean' } } },
          inFlight: { type: 'object', properties: { runId: str, holder: str, since: instantOut, progress } },
        },
      },
    },
  },
} as const;

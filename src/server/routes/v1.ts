/**
 * /v1: trigger syncs, read status and runs, stream status, read a run's rejects. Every route needs an API bearer token
 * and is rate limited; every one declares its answers, which /docs/json publishes.
 */
import { createReadStream, existsSync } from 'node:fs';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { parseInstant } from '../../sync/window.js';
import type { AppDeps } from '../app.js';
import { bearerToken, hashApiToken, verifyApiToken } from '../auth.js';
import { rejectsFinal, rejectsGone, rejectsUnfinished, runView } from '../run-view.js';
import { errorBody, runSchema, statusSchema, v1Responses, v1Security } from './schemas.js';
import { statusStreamRoute } from './stream.js';

/** ISO 8601 date or instant, as --since/--until take it (an explicit pattern: fastify's ajv ships without format checks). */
const instant = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2}))?$' } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } } as const;

export async function v1Routes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  // One bucket per valid token, one per address for everything else: behind a reverse proxy (or Docker's published
  // port) every client has the proxy's address, and a shared bucket would let anyone lock every operator out.
  await app.register(rateLimit, {
    max: deps.rateLimitMax,
    timeWindow: 60_000,
    keyGenerator: (request) => {
      const token = bearerToken(request.headers.authorization);
      return token !== undefined && verifyApiToken(token, deps.apiTokenHashes) ? `token:${hashApiToken(token)}` : `address:${request.ip}`;
    },
  });
  // The rate limit hooks each route's onRequest; checking the token after it makes a wrong token count toward the
  // limit like any request, so guessing tokens is throttled too. Checked before the body is read (preParsing): a
  // caller without a token gets its 401 at once, and cannot make the server read or parse a body.
  app.addHook('preParsing', async (request, reply, payload) => {
    if (!verifyApiToken(bearerToken(request.headers.authorization), deps.apiTokenHashes)) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ code: 'BRG_ERR_UNAUTHORIZED', message: 'Send Authorization: Bearer <API token>.' });
    }
    return payload;
  });
  // "Sync now" may come with nothing in it, whatever its type says: `curl -d ''` sends it as a form, `curl -H
  // 'content-type: application/json' -d ''` as JSON. That is no body, as the README promises, not fastify's 400 "Body
  // cannot be empty" nor its bare 415. A body that is there must be JSON; any other type is a 415 saying so.
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    json(request, text, done);
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    done(notJson(request.headers['content-type']), undefined);
  });

  app.post<{ Params: { name: string }; Body: { since?: string; until?: string } | undefined }>(
    '/connectors/:name/syncs',
    {
      // "Sync now" needs no window: a POST without a body is an empty one, not a 400 "body must be object".
      // The ends are read before the schema: its pattern's refusal quotes a regular expression, where the shared parser
      // says what to fix (a time without a zone: add Z or the offset; 2026-02-30: no such day), naming the body's field.
      preValidation: async (request) => {
        request.body ??= {};
        checkWindowEnds(request.body);
      },
      schema: {
        summary: 'Start a sync of one connector (on-demand pull)',
        security: v1Security,
        params: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
        body: { type: 'object', additionalProperties: false, properties: { since: instant, until: instant } },
        response: v1Responses(
          {
            202: {
              description:
                'Started. With `resumed: true`, runId is an unfinished run of the connector whose push is finished first; the run of this request follows it under its own id (GET /v1/runs).',
              type: 'object',
              properties: { runId: { type: 'string' }, resumed: { type: 'boolean' } },
            },
            415: {
              description: 'A body that is not JSON: send Content-Type: application/json. An empty body, of any type, is no body (sync now).',
              ...errorBody,
            },
          },
          { notFound: true, conflict: true },
        ),
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      if (!deps.connectors.includes(name)) return reply.code(404).send({ code: 'BRG_ERR_NOT_FOUND', message: `No connector named "${name}".` });
      const started = await deps.runner.start(name, { trigger: 'http', ...(request.body ?? {}) });
      return reply.code(202).send(started.resumed ? started : { runId: started.runId });
    },
  );

  app.get(
    '/status',
    {
      schema: {
        summary: 'Each connector at a glance: health (ok, late, failing), lag, last run, last success, next run, the run in flight',
        security: v1Security,
        response: v1Responses({ 200: { description: 'Status of every connector', ...statusSchema } }),
      },
    },
    async () => deps.status(),
  );

  statusStreamRoute(app, deps);

  app.get<{ Querystring: { connector?: string; limit?: number } }>(
    '/runs',
    {
      schema: {
        summary: 'Recent runs, newest first',
        security: v1Security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { connector: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 500 } },
        },
        response: v1Responses({ 200: { description: 'Runs', type: 'object', properties: { runs: { type: 'array', items: runSchema } } } }),
      },
    },
    async (request) => ({ runs: deps.store.listRuns(request.query).map((run) => runView(run, deps.rejects, deps.store.deliveredOf(run.id))) }),
  );

  app.get<{ Params: { id: string } }>(
    '/runs/:id',
    {
      schema: {
        summary: 'One run: state, window, counts, skip and reject reasons, column fill, error',
        security: v1Security,
        params: idParams,
        response: v1Responses({ 200: { description: 'The run', ...runSchema } }, { notFound: true }),
      },
    },
    async (request, reply) => {
      const run = deps.store.getRun(request.params.id);
      return run
        ? runView(run, deps.rejects, deps.store.deliveredOf(run.id))
        : reply.code(404).send({ code: 'BRG_ERR_NOT_FOUND', message: `No run ${request.params.id}.` });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/runs/:id/rejects',
    {
      schema: {
        summary: "The run's rejects file as NDJSON: one line per row that could not be sent, with its reason. CONTAINS PHI.",
        description:
          'Kept retention.rejectsDays (default 14) after the run completes, mode 0600; a failed run keeps none (its rerun rejects the same rows). Served once the run is over: 409 while it is running or pushing (rows are still being added).',
        security: v1Security,
        params: idParams,
        response: v1Responses(
          { 200: { description: 'NDJSON (holds PHI)', content: { 'application/x-ndjson': { schema: { type: 'string' } } } } },
          { notFound: true, conflict: 'The run is still in progress (running or pushing): its rejects file is not whole yet; fetch it once the run completes' },
        ),
      },
    },
    async (request, reply) => {
      const run = deps.store.getRun(request.params.id);
      if (!run) return reply.code(404).send({ code: 'BRG_ERR_NOT_FOUND', message: `No run ${request.params.id}.` });
      // A partial file (a push still adds the rows Purview refused, as sent) is no answer: the caller would keep it as whole.
      if (!rejectsFinal(run)) return reply.code(409).send({ code: 'BRG_ERR_RUN_IN_PROGRESS', message: rejectsUnfinished(run) });
      if (!run.rejectsPath || !existsSync(run.rejectsPath)) {
        return reply.code(404).send({ code: 'BRG_ERR_NOT_FOUND', message: rejectsGone(run, deps.rejects.retentionDays) });
      }
      return reply
        .type('application/x-ndjson; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('content-disposition', `attachment; filename="rejects-${run.id}.ndjson"`)
        .send(createReadStream(run.rejectsPath));
    },
  );
}

/** Each end of the window the body gives, as a string, through the parser --since/--until use: its 400 says what to fix. */
function checkWindowEnds(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  for (const field of ['since', 'until'] as const) {
    const value = (body as Record<string, unknown>)[field];
    // A long value is no instant, and its echo would fill the answer: the schema's pattern refuses it.
    if (typeof value === 'string' && value.length <= 64) parseInstant(value, field);
  }
}

/** A 415 (the error handler answers it as BRG_ERR_INPUT_INVALID with this message) saying what to send instead. */
function notJson(contentType: string | undefined): Error {
  const sent = contentType === undefined ? 'A body without a Content-Type' : `A body of type ${JSON.stringify(contentType.slice(0, 80))}`;
  const message = `${sent} is not taken: send JSON with Content-Type: application/json (e.g. {"since": "2026-11-01"}), or no body at all to sync now.`;
  return Object.assign(new Error(message), { statusCode: 415 });
}

/** /v1: trigger syncs and read runs. Every route needs an API bearer token and is rate limited. */
import type { FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { BridgeError } from '../../errors.js';
import { bearerToken, verifyApiToken } from '../auth.js';
import type { AppDeps } from '../app.js';

/** ISO 8601 date or instant, as --since/--until take it (an explicit pattern: fastify's ajv ships without format checks). */
const instant = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2}))?$' } as const;
const errorBody = { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } as const;

export async function v1Routes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  await app.register(rateLimit, { max: deps.rateLimitMax, timeWindow: 60_000 });
  // The rate limit hooks each route's onRequest; checking the token after it (preValidation, still before the body is
  // validated) makes a wrong token count toward the limit like any request, so guessing tokens is throttled too.
  app.addHook('preValidation', async (request, reply) => {
    if (!verifyApiToken(bearerToken(request.headers.authorization), deps.apiTokenHashes)) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ code: 'BRG_ERR_UNAUTHORIZED', message: 'Send Authorization: Bearer <API token>.' });
    }
  });

  app.post<{ Params: { name: string }; Body: { since?: string; until?: string } | undefined }>(
    '/connectors/:name/syncs',
    {
      schema: {
        summary: 'Start a sync of one connector (on-demand pull)',
        params: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
        body: { type: 'object', additionalProperties: false, properties: { since: instant, until: instant } },
        response: { 202: { type: 'object', properties: { runId: { type: 'string' } } }, 404: errorBody, 409: errorBody },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      if (!deps.connectors.includes(name)) return reply.code(404).send({ code: 'BRG_ERR_NOT_FOUND', message: `No connector named "${name}".` });
      const runId = await deps.runner.start(name, { trigger: 'http', ...(request.body ?? {}) });
      return reply.code(202).send({ runId });
    },
  );

  app.get<{ Querystring: { connector?: string; limit?: number } }>(
    '/runs',
    {
      schema: {
        summary: 'Recent runs, newest first',
        querystring: { type: 'object', additionalProperties: false, properties: { connector: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 500 } } },
      },
    },
    async (request) => ({ runs: deps.store.listRuns(request.query) }),
  );

  app.get<{ Params: { id: string } }>(
    '/runs/:id',
    { schema: { summary: 'One run: state, counts, error', params: { type: 'object', properties: { id: { type: 'string' } } }, response: { 404: errorBody } } },
    async (request, reply) => {
      const run = deps.store.getRun(request.params.id);
      return run ?? reply.code(404).send({ code: 'BRG_ERR_NOT_FOUND', message: `No run ${request.params.id}.` });
    },
  );

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof BridgeError) return reply.code(error.httpStatus).send({ code: error.code, message: error.message });
    const status = typeof error === 'object' && error !== null && 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
    const message = error instanceof Error ? error.message : 'internal error';
    return reply.code(status).send({ code: status === 400 ? 'BRG_ERR_INPUT_INVALID' : status === 429 ? 'BRG_ERR_RATE_LIMITED' : 'BRG_ERR_INTERNAL', message });
  });
}

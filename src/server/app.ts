/**
 * The HTTP service, built apart from listen so tests use a real loopback listen or inject().
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { toBridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { StateStore } from '../sync/state/index.js';
import { installErrorHandler } from './error-handler.js';
import type { Metrics } from './metrics.js';
import { pageRoutes } from './routes/page.js';
import { errorBody } from './routes/schemas.js';
import { v1Routes } from './routes/v1.js';
import type { SyncRunner } from './runner.js';
import type { StatusReport } from './status.js';

export interface AppDeps {
  readonly connectors: readonly string[];
  readonly runner: SyncRunner;
  readonly store: StateStore;
  readonly metrics: Metrics;
  /** Every connector's status now (health, lag, last run, the run in flight with its progress). */
  readonly status: () => StatusReport;
  /** Calls the listener when a run of this process starts, progresses or ends; returns detach. */
  readonly watchStatus: (listener: () => void) => () => void;
  /** How rejects files are kept, for the run view ("kept until") and the 404 of a removed one. */
  readonly rejects: { readonly retentionDays: number; readonly retainFiles: boolean };
  /** Period of the status stream's unprompted messages (default 15 s). */
  readonly streamTickMs?: number;
  /** The public JWK Set the EHR fetches (the key store's publicJwks). */
  readonly jwks: () => { keys: readonly object[] };
  readonly jwksMaxAgeSec: number;
  readonly apiTokenHashes: readonly string[];
  readonly rateLimitMax: number;
  readonly logger: Logger;
  /** False once shutdown began: /readyz answers 503 so load balancers stop sending work. */
  readonly isReady: () => boolean;
}

export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
}

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();
/** How long a request may take to arrive, headers and body. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** Every route the app registered (HEAD twins of GET routes left out), so a test can hold the OpenAPI document to it. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registered.get(app) ?? [];
}

const text = (description: string, type = 'text/plain') => ({ description, content: { [type]: { schema: { type: 'string' } } } });
const statusBody = { type: 'object', properties: { status: { type: 'string' } } } as const;

/** The router's refusal as an HTTP status: 414 for a parameter too long, 400 for a path that does not decode. */
function routerErrorStatus(error: Error & { statusCode?: number }): number {
  return error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
}

/** What the router refused, in the house's shape; the path is the caller's text, shortened and without its query. */
function routerErrorBody(error: Error & { code?: string }, url: string): { code: string; message: string } {
  const path = url.split('?')[0]?.slice(0, 200) ?? '';
  const why =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? 'has a segment longer than the API takes (connector names and run ids are short)'
      : 'is not a valid URL (a % not followed by two hex digits, or bytes that are not UTF-8)';
  return {
    code: 'BRG_ERR_INPUT_INVALID',
    message: `The path ${JSON.stringify(path)} ${why}; percent-encode it as RFC 3986 says, or check it against GET /docs/json.`,
  };
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // pino's Logger is fastify's base logger; the cast only narrows fastify's generic logger parameter.
  // removeAdditional off: an unknown field is a 400 naming it, not silently dropped (a typo in `since` must not start a full backfill).
  // requestTimeout: a request whose headers or body never finish arriving is dropped after 30 s instead of holding its
  // socket (and the shutdown) forever; responses, the status stream's included, are not bounded by it.
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    ajv: { customOptions: { removeAdditional: false } },
    requestTimeout: REQUEST_TIMEOUT_MS,
    // A request arriving while the service closes (on a kept-alive connection) reaches the routes: a trigger is refused
    // by the draining runner with a typed BRG_ERR_ABORTED 503 ("start the sync again once it is back"), and /readyz says
    // it is shutting down, instead of fastify's own 503 without a code.
    return503OnClosing: false,
    // A path that is not URL-decodable (`%zz`) or a parameter over the router's length limit is refused by the router
    // before any route or error handler: typed here like every other input error, not fastify's own shape echoing the path.
    // (The reply's type is the raw route generic here: the plain FastifyReply is what it is.)
    frameworkErrors: (error, request, reply) => {
      void (reply as FastifyReply).code(routerErrorStatus(error)).send(routerErrorBody(error, request.url));
    },
  });
  installErrorHandler(app);
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, url: route.url });
  });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Epic FHIR → Purview bridge',
        version: '0.1.0',
        description: 'Every /v1 route needs an API token (Authorization: Bearer) and is rate limited.',
      },
      components: {
        securitySchemes: {
          apiToken: { type: 'http', scheme: 'bearer', description: 'An API token whose SHA-256 is in server.apiTokenSha256 (or in server.apiTokens)' },
        },
      },
    },
  });
  app.get(
    '/docs/json',
    { schema: { summary: 'This OpenAPI document', response: { 200: { description: 'OpenAPI 3 document', type: 'object', additionalProperties: true } } } },
    async () => app.swagger(),
  );
  app.get('/healthz', { schema: { summary: 'Liveness', response: { 200: { description: 'Alive', ...statusBody } } } }, async () => ({ status: 'ok' }));
  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: state store reachable and not shutting down',
        response: { 200: { description: 'Ready', ...statusBody }, 503: { description: 'Not ready', ...statusBody } },
      },
    },
    async (_request, reply) => {
      try {
        deps.store.listRuns({ limit: 1 });
      } catch {
        return reply.code(503).send({ status: 'state store unavailable' });
      }
      return deps.isReady() ? { status: 'ready' } : reply.code(503).send({ status: 'shutting down' });
    },
  );
  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics (no PHI: counts, reason codes, connector names)', response: { 200: text('Prometheus text format') } } },
    async (_request, reply) => {
      return reply.header('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    },
  );
  let lastJwksError: unknown;
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        summary: 'Public JWK Set for the EHR (SMART JWK Set URL)',
        response: {
          200: { description: 'JWK Set', type: 'object', properties: { keys: { type: 'array', items: { type: 'object', additionalProperties: true } } } },
          503: { description: 'No published key set (the service log says why)', ...errorBody },
        },
      },
    },
    async (request, reply) => {
      let jwks: ReturnType<AppDeps['jwks']>;
      try {
        jwks = deps.jwks();
      } catch (error) {
        // A public URL, fetched by the EHR and maybe through a cache: no path or key detail in the answer, nothing a cache
        // keeps once the keys are fixed. The log says what is wrong.
        const typed = toBridgeError(error);
        // Once per failure read (the service reads the keys at most every few seconds), not once per request.
        if (error !== lastJwksError) request.log.error({ code: typed.code, reason: typed.message }, 'the JWK Set could not be served');
        lastJwksError = error;
        return reply
          .code(503)
          .header('cache-control', 'no-store')
          .header('retry-after', '60')
          .send({ code: typed.code, message: 'The JWK Set is not available; the service log says why.' });
      }
      return reply.header('cache-control', `public, max-age=${deps.jwksMaxAgeSec}`).send(jwks);
    },
  );
  pageRoutes(app);
  await app.register(async (scope) => v1Routes(scope, deps), { prefix: '/v1' });
  return app;
}

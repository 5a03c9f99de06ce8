/**
 * The HTTP service, built apart from listen so tests use a real loopback listen or inject().
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from '../log.js';
import type { StateStore } from '../sync/state/index.js';
import type { Metrics } from './metrics.js';
import type { SyncRunner } from './runner.js';
import { v1Routes } from './routes/v1.js';

export interface AppDeps {
  readonly connectors: readonly string[];
  readonly runner: SyncRunner;
  readonly store: StateStore;
  readonly metrics: Metrics;
  /** The public JWK Set the EHR fetches (the key store's publicJwks). */
  readonly jwks: () => { keys: readonly object[] };
  readonly jwksMaxAgeSec: number;
  readonly apiTokenHashes: readonly string[];
  readonly rateLimitMax: number;
  readonly logger: Logger;
  /** False once shutdown began: /readyz answers 503 so load balancers stop sending work. */
  readonly isReady: () => boolean;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // pino's Logger is fastify's base logger; the cast only narrows fastify's generic logger parameter.
  // removeAdditional off: an unknown field is a 400 naming it, not silently dropped (a typo in `since` must not start a full backfill).
  const app: FastifyInstance = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, ajv: { customOptions: { removeAdditional: false } } });
  await app.register(swagger, {
    openapi: {
      info: { title: 'Epic FHIR → Purview bridge', version: '0.1.0' },
      components: { securitySchemes: { apiToken: { type: 'http', scheme: 'bearer' } } },
    },
  });
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/healthz', { schema: { summary: 'Liveness' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { summary: 'Readiness: state store reachable and not shutting down' } }, async (_request, reply) => {
    try {
      deps.store.listRuns({ limit: 1 });
    } catch {
      return reply.code(503).send({ status: 'state store unavailable' });
    }
    return deps.isReady() ? { status: 'ready' } : reply.code(503).send({ status: 'shutting down' });
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return reply.header('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  app.get('/.well-known/jwks.json', { schema: { summary: 'Public JWK Set for the EHR (SMART JWK Set URL)' } }, async (_request, reply) => {
    return reply.header('cache-control', `public, max-age=${deps.jwksMaxAgeSec}`).send(deps.jwks());
  });
  await app.register(async (scope) => v1Routes(scope, deps), { prefix: '/v1' });
  return app;
}

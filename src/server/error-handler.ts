/**
 * One error answer for every route, /v1 and the public ones (JWK Set, readiness, metrics): `{ code, message }` with the
 * error's own HTTP status. Fastify's own 4xx (a bad body, 413 too large, 415 wrong type) are the request's fault: an
 * input error. Anything else is typed through toBridgeError (a locked state database is BRG_ERR_STATE, a cancelled run
 * BRG_ERR_ABORTED); an error that stays internal is answered with the request id only, its message (which may name
 * paths) going to the log.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { BridgeError, toBridgeError } from '../errors.js';

export function installErrorHandler(app: FastifyInstance): void {
  // An unknown path or method answers like every other error: a stable code, not fastify's own shape.
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      code: 'BRG_ERR_NOT_FOUND',
      message: `No route ${request.method} ${request.url.split('?')[0]?.slice(0, 200) ?? ''}; GET /docs/json lists the API.`,
    }),
  );
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    const status = 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : undefined;
    if (!(error instanceof BridgeError) && status !== undefined && status >= 400 && status < 500) {
      const code = status === 429 ? 'BRG_ERR_RATE_LIMITED' : 'BRG_ERR_INPUT_INVALID';
      return reply.code(status).send({ code, message: unknownField(error) ?? error.message });
    }
    const typed = toBridgeError(error);
    if (typed.code === 'BRG_ERR_INTERNAL') {
      request.log.error({ err: error, requestId: request.id }, 'request failed');
      return reply.code(500).send({ code: typed.code, message: `Internal error (request ${request.id}); the service log has the details.` });
    }
    if (typed.httpStatus >= 500) request.log.warn({ code: typed.code, requestId: request.id }, 'request failed');
    return reply.code(typed.httpStatus).send({ code: typed.code, message: typed.message });
  });
}

/**
 * The schema's "must NOT have additional properties" names no field: a misspelt one (`snice`) is named, so the 400
 * says what to fix. Shortened: the name is the caller's text.
 */
function unknownField(error: FastifyError | Error): string | undefined {
  const { validation, validationContext } = error as FastifyError;
  const extra = validation?.find((issue) => issue.keyword === 'additionalProperties');
  const name = (extra?.params as { additionalProperty?: unknown } | undefined)?.additionalProperty;
  if (typeof name !== 'string') return undefined;
  const where = `${validationContext ?? 'body'}${extra?.instancePath ?? ''}`;
  return `${where} has a field ${JSON.stringify(name.slice(0, 64))} this request does not take; GET /docs/json lists the fields.`;
}

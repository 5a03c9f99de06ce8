/**
 * GET /v1/status/stream: Server-Sent Events of the status, for the operator page's live progress. One long request
 * instead of polling, so an open page costs one request of the rate limit, not one every few seconds. The page reads it
 * with fetch (EventSource cannot send the Authorization header, and the token never goes into a URL).
 */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { bearerToken, hashApiToken } from '../auth.js';
import { v1Responses, v1Security } from './schemas.js';

/** At most this often a burst of progress events becomes one message (a page of events fires several). */
const COALESCE_MS = 250;
/** Open streams per API token: a page per operator and a few scripts; each costs a socket and a timer. */
export const MAX_STREAMS_PER_TOKEN = 8;

export function statusStreamRoute(app: FastifyInstance, deps: AppDeps): void {
  const open = new Set<() => void>();
  const perToken = new Map<string, number>();
  // Open streams never end by themselves: end them when the server closes, or close() would wait for the clients.
  app.addHook('preClose', (done) => {
    for (const close of [...open]) close();
    done();
  });

  app.get(
    '/status/stream',
    {
      schema: {
        summary: 'Server-Sent Events: an "event: status" message (data: the GET /v1/status body) at once, on every progress change and periodically',
        security: v1Security,
        response: v1Responses({
          200: {
            description: 'text/event-stream',
            content: {
              'text/event-stream': { schema: { type: 'string', description: 'Messages of "event: status" whose "data:" is the JSON body of GET /v1/status' } },
            },
          },
        }),
      },
    },
    async (request, reply) => {
      const token = hashApiToken(bearerToken(request.headers.authorization) ?? '');
      const streams = perToken.get(token) ?? 0;
      if (streams >= MAX_STREAMS_PER_TOKEN) {
        return reply.code(429).send({
          code: 'BRG_ERR_RATE_LIMITED',
          message: `This API token has ${streams} status streams open already; close one (a page tab) first.`,
        });
      }
      perToken.set(token, streams + 1);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        // Reverse proxies (nginx) would otherwise buffer the stream and the page would see nothing until it ends.
        'x-accel-buffering': 'no',
      });
      let pending: NodeJS.Timeout | undefined;
      let closed = false;
      const send = (): void => {
        // Every message is the whole status: a reader that has not taken the last one yet misses nothing by skipping
        // this one, and the server buffers nothing for it.
        if (closed || raw.writableNeedDrain) return;
        try {
          raw.write(`event: status\ndata: ${JSON.stringify(deps.status())}\n\n`);
        } catch (error) {
          request.log.warn({ code: error instanceof Error ? error.name : 'unknown' }, 'status stream ended: status unavailable');
          close();
        }
      };
      const stopWatching = deps.watchStatus(() => {
        pending ??= setTimeout(() => {
          pending = undefined;
          send();
        }, COALESCE_MS);
      });
      // Lag grows and other processes run syncs without an event here: a periodic message keeps the page true (and the
      // connection alive through idle timeouts).
      const tick = setInterval(send, deps.streamTickMs ?? 15_000);
      function close(): void {
        if (closed) return;
        closed = true;
        const left = (perToken.get(token) ?? 1) - 1;
        if (left > 0) perToken.set(token, left);
        else perToken.delete(token);
        stopWatching();
        clearInterval(tick);
        clearTimeout(pending);
        open.delete(close);
        raw.end();
      }
      open.add(close);
      raw.on('close', close);
      send();
    },
  );
}

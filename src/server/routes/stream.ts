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

/** One open stream: its socket, as the broadcaster writes to it. */
interface OpenStream {
  write(message: string): void;
  close(): void;
}

/**
 * Every open stream gets the same message, computed once per change (after COALESCE_MS) or tick: the status reads the
 * runs of every connector, so one computation per stream grew with the readers (8 streams took over a second of the
 * event loop each second during a run). Watching and ticking happen only while a stream is open.
 */
class StatusBroadcaster {
  readonly open = new Set<OpenStream>();
  private pending: NodeJS.Timeout | undefined;
  private tick: NodeJS.Timeout | undefined;
  private stopWatching: (() => void) | undefined;

  constructor(
    private readonly deps: AppDeps,
    private readonly log: FastifyInstance['log'],
  ) {}

  /** The message for the status as it is now, or undefined (logged) when the status cannot be read. */
  message(): string | undefined {
    try {
      return `event: status\ndata: ${JSON.stringify(this.deps.status())}\n\n`;
    } catch (error) {
      this.log.warn({ code: error instanceof Error ? error.name : 'unknown' }, 'status stream ended: status unavailable');
      return undefined;
    }
  }

  add(stream: OpenStream): void {
    this.open.add(stream);
    if (this.stopWatching) return;
    this.stopWatching = this.deps.watchStatus(() => {
      this.pending ??= setTimeout(() => {
        this.pending = undefined;
        this.broadcast();
      }, COALESCE_MS);
    });
    // Lag grows and other processes run syncs without an event here: a periodic message keeps the pages true (and the
    // connections alive through idle timeouts).
    this.tick = setInterval(() => this.broadcast(), this.deps.streamTickMs ?? 15_000);
  }

  remove(stream: OpenStream): void {
    this.open.delete(stream);
    if (this.open.size > 0) return;
    this.stopWatching?.();
    this.stopWatching = undefined;
    clearInterval(this.tick);
    clearTimeout(this.pending);
    this.pending = undefined;
  }

  private broadcast(): void {
    if (this.open.size === 0) return;
    const message = this.message();
    for (const stream of [...this.open]) {
      if (message === undefined) stream.close();
      else stream.write(message);
    }
  }
}

export function statusStreamRoute(app: FastifyInstance, deps: AppDeps): void {
  const broadcaster = new StatusBroadcaster(deps, app.log);
  const perToken = new Map<string, number>();
  // Open streams never end by themselves: end them when the server closes, or close() would wait for the clients.
  app.addHook('preClose', (done) => {
    for (const stream of [...broadcaster.open]) stream.close();
    done();
  });

  app.get(
    '/status/stream',
    {
      // A HEAD would be counted as an open stream that never answers (Node sends no headers for it until the body ends).
      exposeHeadRoute: false,
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
      let closed = false;
      const stream: OpenStream = {
        // Every message is the whole status: a reader that has not taken the last one yet misses nothing by skipping
        // this one, and the server buffers nothing for it.
        write(message) {
          if (!closed && !raw.writableNeedDrain) raw.write(message);
        },
        close() {
          if (closed) return;
          closed = true;
          const left = (perToken.get(token) ?? 1) - 1;
          if (left > 0) perToken.set(token, left);
          else perToken.delete(token);
          broadcaster.remove(stream);
          raw.end();
        },
      };
      raw.on('close', () => stream.close());
      const first = broadcaster.message();
      if (first === undefined) {
        stream.close();
        return;
      }
      broadcaster.add(stream);
      stream.write(first);
    },
  );
}

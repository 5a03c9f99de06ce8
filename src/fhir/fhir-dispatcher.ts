/**
 * The undici dispatcher of one FHIR client: the connector's proxy and CA (src/net), and the response size cap of
 * issue #14.8 (a 300 MB page crashed V8). fhir-kit-client reads every body whole with `response.text()`, so the cap
 * lives below it, in the dispatcher: undici's `maxResponseSize` stops a body at the cap while it streams (chunked, or
 * a Content-Length that lies), and the interceptor here refuses a declared Content-Length over the cap before a byte
 * of the body is read, so the error can say how large the answer was. It also notes each answer's Date header, the
 * server's clock (server-clock.ts).
 */
import type { Dispatcher } from 'undici';
import { createDispatcher, DIRECT_NETWORK, type NetworkSettings } from '../net/index.js';
import { ResponseTooLargeError } from './http-errors.js';
import type { ServerClock } from './server-clock.js';

/** `serverClock`: notes every answer's Date header (server-clock.ts). */
export function createFhirDispatcher(network: NetworkSettings | undefined, maxResponseBytes: number, serverClock?: ServerClock): Dispatcher {
  return createDispatcher(network ?? DIRECT_NETWORK, { maxResponseSize: maxResponseBytes }).compose(
    (dispatch) => (options, handler) => dispatch(options, new DeclaredLengthGuard(maxResponseBytes, handler, serverClock)),
  );
}

type Handler = Dispatcher.DispatchHandler;
type ArgsOf<K extends keyof Handler> = Parameters<NonNullable<Handler[K]>>;

/**
 * Passes everything through, except a response whose Content-Length exceeds `limit`: that one is aborted unread. Each
 * answer's Date header goes to `serverClock` first.
 */
class DeclaredLengthGuard implements Handler {
  constructor(
    private readonly limit: number,
    private readonly next: Handler,
    private readonly serverClock: ServerClock | undefined,
  ) {}

  onRequestStart(...args: ArgsOf<'onRequestStart'>): void {
    this.next.onRequestStart?.(...args);
  }

  onRequestUpgrade(...args: ArgsOf<'onRequestUpgrade'>): void {
    this.next.onRequestUpgrade?.(...args);
  }

  onResponseStart(...args: ArgsOf<'onResponseStart'>): void {
    const [controller, , headers] = args;
    this.serverClock?.observe(headers['date'], headers['age']);
    const declared = contentLength(headers['content-length']);
    if (declared !== undefined && declared > this.limit) {
      // fetch rejects with TypeError('fetch failed', { cause: this error }); the socket is closed, the body never read.
      controller.abort(new ResponseTooLargeError(this.limit, declared));
      return;
    }
    this.next.onResponseStart?.(...args);
  }

  onResponseData(...args: ArgsOf<'onResponseData'>): void {
    this.next.onResponseData?.(...args);
  }

  onResponseEnd(...args: ArgsOf<'onResponseEnd'>): void {
    this.next.onResponseEnd?.(...args);
  }

  onResponseError(...args: ArgsOf<'onResponseError'>): void {
    this.next.onResponseError?.(...args);
  }
}

function contentLength(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  return text !== undefined && /^\d+$/.test(text.trim()) ? Number(text) : undefined;
}

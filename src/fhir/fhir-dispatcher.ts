/**
 * The undici dispatcher of one FHIR client: the connector's proxy and CA (src/net), and the response size cap of
 * issue #14.8 (a 300 MB page crashed V8). fhir-kit-client reads every body whole with `response.text()`, so the cap
 * lives below it, in the dispatcher: undici's `maxResponseSize` stops a body at the cap while it streams (chunked, or
 * a Content-Length that lies), and the interceptor here refuses a declared Content-Length over the cap before a byte
 * of the body is read, so the error can say how large the answer was. It also notes each answer's Date header, the
 * server's clock (server-clock.ts).
 *
 * A compressed answer is decoded here, below the guard, so the guard counts decoded bytes: `maxResponseSize` counts
 * the bytes on the wire, and fetch would otherwise decode a 300 KB gzip page into 300 MB for `response.text()` to hold.
 * undici's decoder is stricter than fetch's own (no raw deflate, no gzip without its trailer, no empty compressed
 * body), so the client asks for gzip and br only (ACCEPT_ENCODING), and error answers are left to fetch, as before:
 * a 401 or 429 with an empty gzip body must stay a 401 or 429. Their size is capped on the wire only.
 */
import { type Dispatcher, interceptors } from 'undici';
import { createDispatcher, DIRECT_NETWORK, type NetworkSettings } from '../net/index.js';
import { ResponseTooLargeError } from './http-errors.js';
import type { ServerClock } from './server-clock.js';

/** `serverClock`: notes every answer's Date header (server-clock.ts). */
export function createFhirDispatcher(network: NetworkSettings | undefined, maxResponseBytes: number, serverClock?: ServerClock): Dispatcher {
  // compose applies its interceptors in order, the last outermost: answers pass the decoder, then the guard, then fetch.
  return createDispatcher(network ?? DIRECT_NETWORK, { maxResponseSize: maxResponseBytes }).compose(
    decompress(),
    (dispatch) => (options, handler) => dispatch(options, new SizeGuard(maxResponseBytes, handler, serverClock)),
  );
}

let decoder: Dispatcher.DispatcherComposeInterceptor | undefined;

/** What the FHIR client asks for: the encodings undici's decoder reads as fetch would (no deflate: raw or zlib-wrapped). */
export const ACCEPT_ENCODING = 'gzip, br';

/**
 * undici's decoder of successful answers. It announces itself as experimental with a process warning, once: that line
 * would reach every CLI user's terminal for a detail of this module, so it is kept out; the version is pinned in
 * package.json and the tests cover what is used.
 */
function decompress(): Dispatcher.DispatcherComposeInterceptor {
  if (decoder !== undefined) return decoder;
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (!text.startsWith('DecompressInterceptor is experimental')) (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    decoder = interceptors.decompress();
  } finally {
    process.emitWarning = emitWarning;
  }
  return decoder;
}

type Handler = Dispatcher.DispatchHandler;
type ArgsOf<K extends keyof Handler> = Parameters<NonNullable<Handler[K]>>;

/**
 * Passes everything through, except a response larger than `limit`: one whose Content-Length says so is aborted
 * unread, and any other as soon as its (decoded) bytes pass the limit. Each answer's Date header goes to `serverClock`
 * first.
 */
class SizeGuard implements Handler {
  private received = 0;

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
    const [controller, chunk] = args;
    this.received += chunk.length;
    if (this.received > this.limit) {
      controller.abort(new ResponseTooLargeError(this.limit, undefined));
      return;
    }
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

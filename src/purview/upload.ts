/**
 * One block upload on the wire, byte for byte what Microsoft's script sends through .NET's MultipartFormDataContent
 * (docs/purview-protocol.md §2): `POST {base}/api/signals?jobid=…`, a bearer token, `multipart/form-data` with a
 * quoted GUID boundary and exactly one part named `file` holding the header line and the block's rows. The body
 * streams from the spool on disk with its Content-Length computed, so a block is never held in memory.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import { abortError } from '../clock.js';

export interface BlockRequest {
  readonly url: string;
  readonly token: string;
  readonly boundary: string;
  /** `tmp_<guid><NNNN>.txt`, like the script since df20c14. */
  readonly filename: string;
  /** Header line with its CRLF. */
  readonly header: Buffer;
  readonly spoolPath: string;
  /** Byte ranges [start, end) of the block's rows in the spool, in order (rows already delivered are left out). */
  readonly segments: readonly ByteRange[];
  readonly dispatcher: Dispatcher;
  /** Whole-request timeout, like HttpClient.Timeout in the script (400 s there). */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface BlockResponse {
  readonly status: number;
  /** The reason phrase; Purview puts its 403 explanation here (docs/purview-protocol.md §2.4). */
  readonly statusText: string;
  readonly retryAfter: string | undefined;
  /** At most the first 4 KiB of the body, for error messages. */
  readonly body: string;
  /** The whole request body had gone out before the answer came: the server may have stored the block. */
  readonly bodySent: boolean;
}

/** The request got no HTTP answer: refused, reset, or timed out. `bodySent` tells whether Purview may have it all. */
export class UploadNetworkError extends Error {
  override readonly name = 'UploadNetworkError';
  constructor(
    readonly reason: string,
    readonly bodySent: boolean,
    options: { cause?: unknown } = {},
  ) {
    super(reason, options);
  }
}

export interface MultipartFrame {
  readonly contentType: string;
  readonly preamble: Buffer;
  readonly epilogue: Buffer;
}

/**
 * The part framing .NET writes: tokens left unquoted, `filename*` added, no part Content-Type (StreamContent has
 * none), and the boundary quoted in the request's Content-Type.
 */
export function multipartFrame(boundary: string, filename: string): MultipartFrame {
  return {
    contentType: `multipart/form-data; boundary="${boundary}"`,
    preamble: Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name=file; filename=${filename}; filename*=utf-8''${encodeURIComponent(filename)}\r\n\r\n`,
    ),
    epilogue: Buffer.from(`\r\n--${boundary}--\r\n`),
  };
}

export async function postBlock(block: BlockRequest): Promise<BlockResponse> {
  const frame = multipartFrame(block.boundary, block.filename);
  const progress = { bodySent: false };
  const rowBytes = block.segments.reduce((sum, segment) => sum + (segment.end - segment.start), 0);
  const length = frame.preamble.length + block.header.length + rowBytes + frame.epilogue.length;
  const timeout = AbortSignal.timeout(block.timeoutMs);
  const signal = block.signal ? AbortSignal.any([block.signal, timeout]) : timeout;
  try {
    const response = await request(block.url, {
      method: 'POST',
      dispatcher: block.dispatcher,
      headers: { authorization: `Bearer ${block.token}`, 'content-type': frame.contentType, 'content-length': String(length) },
      body: blockBody(block, frame, progress),
      signal,
      headersTimeout: block.timeoutMs,
      bodyTimeout: block.timeoutMs,
    });
    const retryAfter = response.headers['retry-after'];
    return {
      status: response.statusCode,
      statusText: response.statusText,
      retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
      body: await readSome(response.body),
      bodySent: progress.bodySent,
    };
  } catch (cause) {
    if (block.signal?.aborted) throw abortError(block.signal);
    const reason = timeout.aborted ? `no answer within ${block.timeoutMs} ms` : describeNetworkError(cause);
    throw new UploadNetworkError(reason, progress.bodySent, { cause });
  }
}

function blockBody(block: BlockRequest, frame: MultipartFrame, progress: { bodySent: boolean }): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    yield frame.preamble;
    yield block.header;
    for (const { start, end } of block.segments) {
      if (end <= start) continue;
      // `end` of createReadStream is inclusive.
      for await (const chunk of createReadStream(block.spoolPath, { start, end: end - 1, highWaterMark: 1 << 20 })) {
        yield chunk as Buffer;
      }
    }
    // From here the server may hold the whole body: a failure without an answer means "outcome unknown".
    progress.bodySent = true;
    yield frame.epilogue;
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** Reads up to `limit` bytes of an answer and discards the rest; a body cut short by a reset still counts as answered. */
async function readSome(body: AsyncIterable<Buffer>, limit = 4096): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      if (size < limit) parts.push(chunk.subarray(0, limit - size));
      size += chunk.length;
    }
  } catch {
    // The status line arrived; the body is only for messages.
  }
  return Buffer.concat(parts).toString('utf8');
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const inner = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${typeof code === 'string' ? code : error.name}: ${error.message}${inner}`.slice(0, 300);
}

/** Reads a request body for the emulators, capped; the caller turns an over-size body into its own protocol's error. */
import type { IncomingMessage } from 'node:http';

export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  constructor(readonly limit: number) {
    super(`the request body exceeds ${limit} bytes`);
  }
}

export function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    request.on('end', () => (size > limit ? reject(new BodyTooLargeError(limit)) : resolve(Buffer.concat(chunks, size))));
    request.on('error', reject);
  });
}

/** readBody as UTF-8 text, with over-size bodies mapped to `onTooLarge()`. */
export async function readTextBody(request: IncomingMessage, limit: number, onTooLarge: () => Error): Promise<string> {
  try {
    return (await readBody(request, limit)).toString('utf8');
  } catch (error) {
    throw error instanceof BodyTooLargeError ? onTooLarge() : error;
  }
}

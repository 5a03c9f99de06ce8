/**
 * The spool is the complete connector file of one run (header + rows, CRLF, UTF-8 without BOM), written to disk as
 * rows come so memory stays flat; the push streams blocks out of it. Rejects go to an NDJSON file beside it. Both 0600.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';

export interface LineWriter {
  /** Appends lines (each gets CRLF); resolves when the stream can take more. */
  write(lines: readonly string[]): Promise<void>;
  close(): Promise<void>;
  readonly lines: number;
}

export function openLineWriter(path: string, terminator: '\r\n' | '\n'): LineWriter {
  const stream: WriteStream = createWriteStream(path, { mode: 0o600, flags: 'w' });
  let count = 0;
  let failure: Error | undefined;
  stream.on('error', (error) => {
    failure = error;
  });
  return {
    async write(lines) {
      if (failure) throw failure;
      if (lines.length === 0) return;
      count += lines.length;
      if (!stream.write(lines.join(terminator) + terminator)) await once(stream, 'drain');
    },
    async close() {
      if (failure) throw failure;
      stream.end();
      await once(stream, 'finish');
    },
    get lines() {
      return count;
    },
  };
}

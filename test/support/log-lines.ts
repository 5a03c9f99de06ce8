/**
 * The production logger (src/log.ts: its redaction paths included) writing into an array, so a test can assert on what
 * was logged and, above all, on what never is (PHI, tokens).
 */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.js';

export function linesLogger(lines: string[], level = 'debug'): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return createLogger({ level, destination: sink });
}

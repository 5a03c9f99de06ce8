/**
 * A malformed jwks.json: V8's JSON.parse message quotes the input around the fault, and the file may hold a private
 * `d` pasted by mistake; the typed error names the file and the position only.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { JWKS_FILE, readPublishedSet } from '../../src/smart/key-files.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('readPublishedSet on a jwks.json that is not JSON', () => {
  it('names the file and says it is not valid JSON, quoting none of its content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwks-parse-'));
    dirs.push(dir);
    const path = join(dir, JWKS_FILE);
    for (const content of ['{"keys":[{"kty":"EC","d":"SECRETSECRET" x}]}', 'SECRETSECRET', '{"keys":[{"d":"SECRETSECRET"']) {
      writeFileSync(path, content);
      let thrown: unknown;
      try {
        readPublishedSet(dir);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, content).toBeInstanceOf(BridgeError);
      const failure = thrown as BridgeError;
      expect(failure.code).toBe('BRG_ERR_KEY_INVALID');
      expect(failure.message).toContain(`${path} is not valid JSON`);
      for (const text of [failure.message, failure.stack ?? '', JSON.stringify(failure.details), String((failure.cause as Error | undefined)?.message)]) {
        expect(text, content).not.toContain('SECRET');
      }
    }
  });
});

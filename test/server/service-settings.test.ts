/**
 * `bridge serve`'s own settings: why it cannot listen (each cause the configuration can fix is a config error, exit 2,
 * naming the setting), and the API tokens it takes.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { BridgeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { hashApiToken } from '../../src/server/auth.js';
import { apiTokenHashes, listenError } from '../../src/server/service.js';
import { errorOf } from '../support/error-of.js';
import { MINIMAL_CONFIG } from '../support/minimal-config.js';

const failure = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`listen ${code}`), { code });

describe('listenError', () => {
  it('a host that does not resolve is the configuration to fix (a service manager must not restart it in a loop), naming server.host', () => {
    for (const code of ['ENOTFOUND', 'EAI_NONAME']) {
      const error = listenError(failure(code), 'bridge-host.invalid', 8080) as BridgeError;
      expect(error).toBeInstanceOf(BridgeError);
      expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
      expect(error.message).toBe(
        `Cannot listen on bridge-host.invalid:8080: it names a host that does not resolve (a typo in server.host?) (${code}). Set server.port or server.host (or BRIDGE__server__port, BRIDGE__server__host).`,
      );
    }
  });

  it('keeps the causes it knew, and passes any other failure on as it is', () => {
    expect((listenError(failure('EADDRINUSE'), '127.0.0.1', 80) as BridgeError).message).toContain('is in use by another process');
    expect((listenError(failure('EADDRNOTAVAIL'), '10.9.9.9', 80) as BridgeError).message).toContain('is not an address of this machine');
    const other = failure('EMFILE');
    expect(listenError(other, '127.0.0.1', 80)).toBe(other);
    // A resolver not answering yet (DNS not up at boot) is no config error: a service manager restarts on it.
    const later = failure('EAI_AGAIN');
    expect(listenError(later, 'bridge.example.org', 80)).toBe(later);
  });
});

describe('apiTokenHashes', () => {
  const config = loadConfig({ base: MINIMAL_CONFIG, env: { BRIDGE__server__apiTokens__env: 'API_TOKENS' } });

  it('takes one token per line (CRLF, blank lines and padding aside)', () => {
    expect(apiTokenHashes(config, { API_TOKENS: ' tok-a \r\n\r\ntok-b\n' }, silentLogger())).toEqual([hashApiToken('tok-a'), hashApiToken('tok-b')]);
  });

  it('takes a digest in upper-case hex (PowerShell Get-FileHash) as the same digest', () => {
    const upper = loadConfig({ base: MINIMAL_CONFIG, env: { BRIDGE__server__apiTokenSha256: JSON.stringify([hashApiToken('tok-a').toUpperCase()]) } });
    expect(apiTokenHashes(upper, {}, silentLogger())).toEqual([hashApiToken('tok-a')]);
    expect(errorOf(() => loadConfig({ base: MINIMAL_CONFIG, env: { BRIDGE__server__apiTokenSha256: '["abc"]' } })).message).toContain('64 hex digits');
  });

  it('refuses a line holding white space (two tokens on one line): hashed whole it would match no request, and every call would get 401 unexplained', () => {
    const error = errorOf(() => apiTokenHashes(config, { API_TOKENS: 'tok-a\ntok-b tok-c\n' }, silentLogger()));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toBe(
      'server.apiTokens: token 2 holds white space, which no bearer token can: put one token per line (the token itself is not shown).',
    );
    expect(error.message).not.toContain('tok-');
  });
});

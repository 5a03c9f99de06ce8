/**
 * Issue #20.1, the settings: which proxy a request takes (network.proxy over HTTPS_PROXY / HTTP_PROXY, NO_PROXY
 * hosts, suffixes, ports and `*`, loopback not special), where credentials come from, and that neither a logger nor an
 * error message ever sees them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/index.js';
import { BridgeError } from '../../src/errors.js';
import { bypassesProxy, DIRECT_NETWORK, parseNoProxy, resolveNetwork, routeOf } from '../../src/net/index.js';
import { createSandboxCertificate } from '../../src/sandbox/tls.js';
import { errorOf } from '../support/error-of.js';

const PROXY = 'http://proxy.example.org:3128';

describe('NO_PROXY', () => {
  const entries = parseNoProxy('ehr.example.org, .corp.example, *.internal:8443 [::1] 10.0.0.7:9000');
  const direct = (url: string): boolean => bypassesProxy(new URL(url), entries);

  it.each([
    ['https://ehr.example.org/R4', true],
    ['https://fhir.ehr.example.org/R4', true], // subdomain of a listed host
    ['https://notehr.example.org/R4', false], // a suffix match needs the dot
    ['https://corp.example/', true],
    ['https://login.corp.example/', true],
    ['https://svc.internal:8443/', true],
    ['https://svc.internal/', false], // listed with a port: other ports go through the proxy
    ['http://[::1]:8080/', true],
    ['http://10.0.0.7:9000/', true],
    ['http://10.0.0.7:9001/', false],
    ['http://127.0.0.1:8080/', false], // loopback is not special
    ['http://localhost:8080/', false],
  ])('%s → direct: %s', (url, expected) => {
    expect(direct(url)).toBe(expected);
  });

  it('`*` sends everything direct; an empty list nothing', () => {
    expect(bypassesProxy(new URL('https://any.example/'), parseNoProxy('*'))).toBe(true);
    expect(bypassesProxy(new URL('https://any.example/'), parseNoProxy(''))).toBe(false);
    expect(bypassesProxy(new URL('https://any.example/'), parseNoProxy(['a.example', 'b.example']))).toBe(false);
  });
});

describe('resolveNetwork', () => {
  it('HTTPS_PROXY serves https targets, HTTP_PROXY http ones, lowercase names first; nothing set means direct', () => {
    const network = resolveNetwork(undefined, { HTTPS_PROXY: 'http://upper:1', https_proxy: 'http://lower:2', HTTP_PROXY: 'plain:3' });
    expect(routeOf(network, 'https://ehr.example.org/R4')).toBe('http://lower:2');
    expect(routeOf(network, 'http://ehr.example.org/R4')).toBe('http://plain:3'); // no scheme means http
    expect(routeOf(resolveNetwork(undefined, {}), 'https://ehr.example.org/')).toBe('direct');
    expect(routeOf(resolveNetwork(undefined, { HTTP_PROXY: PROXY }), 'https://ehr.example.org/')).toBe('direct');
    expect(routeOf(DIRECT_NETWORK, 'https://ehr.example.org/')).toBe('direct');
  });

  it('network.proxy overrides the environment: url for both schemes, noProxy for NO_PROXY', () => {
    const env = { HTTPS_PROXY: 'http://env-proxy:1', NO_PROXY: 'ehr.example.org' };
    const network = resolveNetwork({ proxy: { url: PROXY, noProxy: ['login.example.com'] } }, env);
    expect(routeOf(network, 'https://ehr.example.org/')).toBe(PROXY);
    expect(routeOf(network, 'http://ehr.example.org/')).toBe(PROXY);
    expect(routeOf(network, 'https://login.example.com/')).toBe('direct');
    // noProxy alone keeps the environment's proxy.
    expect(routeOf(resolveNetwork({ proxy: { noProxy: [] } }, env), 'https://ehr.example.org/')).toBe('http://env-proxy:1');
  });

  it('credentials: from HTTPS_PROXY userinfo, or network.proxy.credentials ({env} or {file}, user:password), never serialised', () => {
    const fromUrl = resolveNetwork(undefined, { HTTPS_PROXY: 'http://svc%40corp:p%3Ass@proxy.example.org:3128' }).httpsProxy;
    expect(fromUrl?.url).toBe(PROXY);
    expect(fromUrl?.authorization()).toBe(`Basic ${Buffer.from('svc@corp:p:ss').toString('base64')}`);

    const dir = mkdtempSync(join(tmpdir(), 'bridge-net-'));
    writeFileSync(join(dir, 'proxy-credentials'), 'svc:file-secret\n', { mode: 0o600 });
    const fromFile = resolveNetwork({ proxy: { url: PROXY, credentials: { file: join(dir, 'proxy-credentials') } } }, {});
    expect(fromFile.httpsProxy?.authorization()).toBe(`Basic ${Buffer.from('svc:file-secret').toString('base64')}`);
    const fromEnv = resolveNetwork({ proxy: { credentials: { env: 'PROXY_CREDENTIALS' } } }, { HTTPS_PROXY: PROXY, PROXY_CREDENTIALS: 'svc:env-secret' });
    expect(fromEnv.httpsProxy?.authorization()).toBe(`Basic ${Buffer.from('svc:env-secret').toString('base64')}`);

    for (const network of [fromUrl, fromFile, fromEnv]) {
      const text = JSON.stringify(network);
      for (const secret of ['p:ss', 'p%3Ass', 'file-secret', 'env-secret', 'Basic ']) expect(text).not.toContain(secret);
    }
    expect(JSON.stringify(fromFile.httpsProxy)).toBe(`{"url":"${PROXY}","source":"network.proxy.url","credentials":true}`);
  });

  it('a bad proxy URL from the environment is a config error that does not quote it (it may hold a password)', () => {
    for (const value of ['http://user:hunter2@[bad', 'socks5://user:hunter2@proxy:1080']) {
      let error: unknown;
      try {
        resolveNetwork(undefined, { HTTPS_PROXY: value });
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).code).toBe('BRG_ERR_CONFIG_INVALID');
      expect((error as BridgeError).message).toMatch(/^HTTPS_PROXY /);
      expect((error as BridgeError).message).not.toContain('hunter2');
    }
    expect(() => resolveNetwork({ proxy: { url: PROXY, credentials: { env: 'C' } } }, { C: 'no-colon' })).toThrow(/must read user:password/);
  });

  it('a proxy URL from the environment whose credentials are not valid percent-encoding is a config error naming the variable, never its value', () => {
    const error = errorOf(() => resolveNetwork(undefined, { HTTPS_PROXY: 'http://user:pa%ZZss@proxy.example.org:3128' }));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toMatch(/^HTTPS_PROXY has a user name or password that is not valid percent-encoding/);
    expect(error.message).not.toContain('pa%ZZss');
  });

  it('network.caFile must be a readable PEM; the config refuses credentials in network.proxy.url', async () => {
    expect(() => resolveNetwork({ caFile: '/nonexistent/ca.pem' }, {})).toThrow(/network\.caFile: cannot read/);
    expect(() => resolveNetwork({ caFile: 'ca.pem' }, {}, { readFile: () => 'not a certificate' })).toThrow(/holds no PEM certificate/);
    const pem = (await createSandboxCertificate()).certPem;
    expect(resolveNetwork({ caFile: 'ca.pem' }, {}, { readFile: () => pem }).caPems).toEqual([pem]);
    // A bundle of several, with CRLF line ends and text between them, as corporate bundles come.
    const other = (await createSandboxCertificate()).certPem;
    const bundle = `# our CA\r\n${pem.replace(/\n/g, '\r\n')}\r\nsubject=the other\r\n${other}`;
    expect(resolveNetwork({ caFile: 'ca.pem' }, {}, { readFile: () => bundle }).caPems).toEqual([bundle]);
    // One unreadable block would make Node trust none of the file, silently: refused, naming the block.
    const lines = other.trimEnd().split('\n');
    const damaged = `${pem}${[...lines.slice(0, 3), ...lines.slice(4)].join('\n')}\n`;
    expect(() => resolveNetwork({ caFile: 'ca.pem' }, {}, { readFile: () => damaged })).toThrow(
      'network.caFile: block 2 of ca.pem is not a readable certificate (a line lost or changed in a copy?): export the CA again; nothing in the file would be trusted.',
    );
    const trusted = `${pem}${other.replace(/CERTIFICATE-----/g, 'TRUSTED CERTIFICATE-----')}`;
    expect(() => resolveNetwork({ caFile: 'ca.pem' }, {}, { readFile: () => trusted })).toThrow(
      /block 2 of ca\.pem is a TRUSTED CERTIFICATE, not a CERTIFICATE/,
    );

    const connector = {
      name: 'c',
      fhir: { baseUrl: 'https://ehr.example.org/R4' },
      smart: { clientId: 'x' },
      purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } },
    };
    expect(validateConfig({ connectors: [connector] }, 'test').network).toEqual({});
    expect(() => validateConfig({ connectors: [connector], network: { proxy: { url: 'http://u:pw@proxy:3128' } } }, 'test')).toThrow(
      /network\.proxy\.url.*use network\.proxy\.credentials/s,
    );
    expect(() => validateConfig({ connectors: [connector], network: { proxy: { url: 'socks5://proxy:1080' } } }, 'test')).toThrow(BridgeError);
  });
});

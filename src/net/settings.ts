/**
 * Where outbound requests go (issue #20.1): the forward proxy for http:// and https:// targets, the hosts reached
 * directly, and the CA bundle trusted on top of the system roots. Resolved once from the config's `network` section
 * and the environment the composition root passes in (this module never reads process.env):
 * - `network.proxy.url` overrides HTTPS_PROXY and HTTP_PROXY, `network.proxy.noProxy` overrides NO_PROXY (lowercase
 *   names win over uppercase, as in curl and undici). HTTPS_PROXY serves https:// targets, HTTP_PROXY http:// ones.
 * - Proxy credentials come only from the environment or a file: `network.proxy.credentials` (a secret reference
 *   holding `user:password`) or the userinfo of HTTPS_PROXY / HTTP_PROXY. The config file cannot hold them (the
 *   schema refuses a url with userinfo). They are kept in a private field, so no logger or serialiser sees them,
 *   and no message quotes an env proxy URL (it may carry them).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SecretRef } from '../config/schema.js';
import { readSecret } from '../config/secrets.js';
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { type NoProxyEntry, parseNoProxy } from './no-proxy.js';

/** The config's `network` section (src/config/schema.ts). */
export interface NetworkConfig {
  readonly proxy?:
    | {
        readonly url?: string | undefined;
        readonly noProxy?: readonly string[] | undefined;
        readonly credentials?: SecretRef | undefined;
      }
    | undefined;
  readonly caFile?: string | undefined;
}

/** One forward proxy: its origin (never with userinfo) and, privately, its Proxy-Authorization value. */
export class ProxyEndpoint {
  readonly #authorization: string | undefined;

  constructor(
    /** `http://proxy.example.org:3128`: scheme, host and port only. */
    readonly url: string,
    /** Where it was set, for messages: `network.proxy.url`, `HTTPS_PROXY`, … */
    readonly source: string,
    authorization?: string,
  ) {
    this.#authorization = authorization;
  }

  /** `Basic …` for Proxy-Authorization, or undefined. A method, so enumerating the object never reaches it. */
  authorization(): string | undefined {
    return this.#authorization;
  }

  toJSON(): { url: string; source: string; credentials: boolean } {
    return { url: this.url, source: this.source, credentials: this.#authorization !== undefined };
  }
}

export interface NetworkSettings {
  /** Proxy for http:// targets; undefined: direct. */
  readonly httpProxy: ProxyEndpoint | undefined;
  /** Proxy for https:// targets (tunnelled with CONNECT); undefined: direct. */
  readonly httpsProxy: ProxyEndpoint | undefined;
  /** Hosts reached directly even when a proxy is set. */
  readonly noProxy: readonly NoProxyEntry[];
  /** PEM bundles trusted on top of the system roots, by every connection (targets and an https proxy): network.caFile. */
  readonly caPems: readonly string[];
  /**
   * What NODE_EXTRA_CA_CERTS adds to Node's own trust: added to a pool's trust only when the pool builds one of its own
   * (caPems, the sandbox's purview.caFile), which replaces Node's default store. Without one, Node's default store
   * (the system's, on a Node built or run to use it) stays as it is. Read on first call, so never when no pool needs it.
   */
  readonly processCaPems?: () => readonly string[];
}

/** No proxy, system roots only: the default of library code and tests. */
export const DIRECT_NETWORK: NetworkSettings = Object.freeze({ httpProxy: undefined, httpsProxy: undefined, noProxy: [], caPems: [] });

export type Environment = Readonly<Record<string, string | undefined>>;

export interface ResolveNetworkOptions {
  /** Default readFileSync (UTF-8); tests inject files. */
  readonly readFile?: (path: string) => string;
  /**
   * Where a `network.proxy.credentials` file readable by others is warned about (config/file-mode.ts). One caller per run
   * passes it (the Purview side, which every connector has): the section is resolved several times a run.
   */
  readonly logger?: Pick<Logger, 'warn'>;
}

export function resolveNetwork(config: NetworkConfig | undefined, env: Environment, options: ResolveNetworkOptions = {}): NetworkSettings {
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const proxy = config?.proxy;
  const credentials = proxy?.credentials ? basicFromSecret(readSecret(proxy.credentials, env, 'network.proxy.credentials', options.logger)) : undefined;
  const configured = proxy?.url === undefined ? undefined : proxyEndpoint(proxy.url, 'network.proxy.url', credentials);
  const endpoint = (name: 'HTTPS_PROXY' | 'HTTP_PROXY'): ProxyEndpoint | undefined => {
    if (configured) return configured;
    const fromEnv = envValue(env, name);
    return fromEnv === undefined ? undefined : proxyEndpoint(fromEnv.value, fromEnv.name, credentials);
  };
  const noProxy = proxy?.noProxy ?? envValue(env, 'NO_PROXY')?.value ?? '';
  return {
    httpProxy: endpoint('HTTP_PROXY'),
    httpsProxy: endpoint('HTTPS_PROXY'),
    noProxy: parseNoProxy(noProxy),
    caPems: config?.caFile ? [readCaFile(config.caFile, readFile)] : [],
    processCaPems: once(() => processExtraCas(env, readFile)),
  };
}

function once<T>(compute: () => T): () => T {
  let value: { readonly v: T } | undefined;
  return () => {
    value ??= { v: compute() };
    return value.v;
  };
}

/**
 * The CAs NODE_EXTRA_CA_CERTS adds to Node's own trust. A pool given CAs of its own (network.caFile, the sandbox's
 * purview.caFile) gets a TLS context of the system roots plus those, which replaces Node's default store, and with it
 * these: a site trusting its TLS-inspecting proxy that way would lose it by adding a caFile. So they go in too. An
 * unreadable file is left out, as Node leaves it out (with its own warning at start).
 */
function processExtraCas(env: Environment, readFile: (path: string) => string): string[] {
  const path = env['NODE_EXTRA_CA_CERTS'];
  if (!path) return [];
  try {
    const pem = readFile(path);
    return pem.includes('-----BEGIN CERTIFICATE-----') ? [pem] : [];
  } catch {
    return [];
  }
}

/** `https_proxy` before `HTTPS_PROXY`; an empty value counts as unset. */
function envValue(env: Environment, name: string): { name: string; value: string } | undefined {
  for (const key of [name.toLowerCase(), name]) {
    const value = env[key]?.trim();
    if (value) return { name: key, value };
  }
  return undefined;
}

function proxyEndpoint(raw: string, source: string, credentials: string | undefined): ProxyEndpoint {
  // `proxy.example.org:3128` without a scheme means http, as in curl.
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw invalidProxy(source, 'is not a URL', cause);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidProxy(source, `uses ${url.protocol.replace(/:$/, '')}`);
  let fromUserinfo: string | undefined;
  try {
    fromUserinfo = url.username ? basic(decodeURIComponent(url.username), decodeURIComponent(url.password)) : undefined;
  } catch {
    // URIError, quoting nothing; neither does this.
    throw invalidProxy(source, 'has a user name or password that is not valid percent-encoding (a % must start %XX, e.g. %40 for @)');
  }
  return new ProxyEndpoint(url.origin, source, credentials ?? fromUserinfo);
}

/** Never quotes the value: an env proxy URL may carry credentials. */
function invalidProxy(source: string, problem: string, cause?: unknown): BridgeError {
  return new BridgeError(
    'BRG_ERR_CONFIG_INVALID',
    `${source} ${problem}; expected http://host:port or https://host:port (credentials in the URL only when it comes from the environment).`,
    { ...(cause ? { cause } : {}), details: { key: source } },
  );
}

function basicFromSecret(secret: string): string {
  const colon = secret.indexOf(':');
  if (colon <= 0) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', 'network.proxy.credentials: the secret must read user:password.', {
      details: { key: 'network.proxy.credentials' },
    });
  }
  return basic(secret.slice(0, colon), secret.slice(colon + 1));
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

function readCaFile(path: string, readFile: (path: string) => string): string {
  let pem: string;
  try {
    pem = readFile(path);
  } catch (cause) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `network.caFile: cannot read ${path}.`, { cause, details: { key: 'network.caFile', path } });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new BridgeError('BRG_ERR_CONFIG_INVALID', `network.caFile: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----).`, {
      details: { key: 'network.caFile', path },
    });
  }
  checkPemBlocks(pem, path);
  return pem;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/**
 * Every block of the bundle, read: Node's TLS context takes a bundle with one unreadable certificate (a line lost in a
 * copy, an `openssl x509 -trustout` TRUSTED CERTIFICATE) without a word and trusts none of it, and every connection then
 * fails as if the CA were missing. Refused here, naming the block.
 */
function checkPemBlocks(pem: string, path: string): void {
  let index = 0;
  for (const match of pem.matchAll(PEM_BLOCK)) {
    index += 1;
    const fail = (what: string): never => {
      throw new BridgeError('BRG_ERR_CONFIG_INVALID', `network.caFile: block ${index} of ${path} ${what}; nothing in the file would be trusted.`, {
        details: { key: 'network.caFile', path, block: index },
      });
    };
    if (match[1] !== 'CERTIFICATE')
      fail(`is a ${match[1]}, not a CERTIFICATE (a TRUSTED CERTIFICATE from openssl -trustout: export it again with openssl x509 without -trustout)`);
    try {
      new X509Certificate(match[0]);
    } catch {
      fail('is not a readable certificate (a line lost or changed in a copy?): export the CA again');
    }
  }
}

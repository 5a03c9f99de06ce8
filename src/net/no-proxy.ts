/**
 * NO_PROXY (or network.proxy.noProxy): which hosts are reached directly. The curl / undici conventions: entries
 * separated by commas or spaces; `example.org`, `.example.org` and `*.example.org` all match that domain and its
 * subdomains; `host:port` only that port; `*` alone every host. IPv6 literals with or without brackets. Loopback is
 * not special: a proxy set for every host also carries requests to 127.0.0.1 unless an entry says otherwise (the
 * sandbox tests rely on that). No CIDR ranges.
 * See: https://everything.curl.dev/usingcurl/proxies/env.html#no-proxy
 */

export interface NoProxyEntry {
  /** Lowercase host without brackets or leading dot; `*` for every host. */
  readonly host: string;
  /** Only this port; undefined for any port. */
  readonly port?: number;
}

export function parseNoProxy(value: string | readonly string[]): NoProxyEntry[] {
  const items = typeof value === 'string' ? value.split(/[\s,]+/) : value.flatMap((item) => item.split(/[\s,]+/));
  return items
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item.length > 0)
    .map(parseEntry);
}

function parseEntry(entry: string): NoProxyEntry {
  if (entry === '*') return { host: '*' };
  // `[::1]:8080`, `host:8080`; a bare IPv6 literal has several colons and no port.
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return withPort(bracketed[1] ?? '', bracketed[2]);
  const hostPort = /^([^:]+):(\d+)$/.exec(entry);
  if (hostPort) return withPort(stripWildcard(hostPort[1] ?? ''), hostPort[2]);
  return { host: stripWildcard(entry) };
}

function withPort(host: string, port: string | undefined): NoProxyEntry {
  return port === undefined ? { host } : { host, port: Number(port) };
}

function stripWildcard(host: string): string {
  return host.replace(/^\*?\./, '');
}

/** True when `url` must be reached directly. */
export function bypassesProxy(url: URL, entries: readonly NoProxyEntry[]): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return entries.some((entry) => {
    if (entry.port !== undefined && entry.port !== port) return false;
    return entry.host === '*' || host === entry.host || host.endsWith(`.${entry.host}`);
  });
}

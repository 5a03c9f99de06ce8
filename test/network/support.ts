/**
 * A forward proxy on 127.0.0.1:0 for tests, written with node:http only: CONNECT tunnels (https targets) and
 * absolute-form requests (http targets), each recorded by target host:port, optionally demanding Basic
 * Proxy-Authorization (407 otherwise). What it records is what went through it; a target missing from the records
 * was reached some other way.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';

export interface TestProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** host:port of every CONNECT accepted, in order. */
  readonly tunnels: string[];
  /** host:port of every absolute-form request forwarded, in order. */
  readonly forwarded: string[];
  /** Requests and CONNECTs answered 407. */
  readonly refused: string[];
  /** The Proxy-Authorization values seen (to check what was sent, never logged by the bridge). */
  readonly authorizations: string[];
  close(): Promise<void>;
}

export async function startTestProxy(options: { credentials?: string } = {}): Promise<TestProxy> {
  const expected = options.credentials === undefined ? undefined : `Basic ${Buffer.from(options.credentials).toString('base64')}`;
  const tunnels: string[] = [];
  const forwarded: string[] = [];
  const refused: string[] = [];
  const authorizations: string[] = [];
  const sockets = new Set<Socket>();
  const authorized = (headers: IncomingHttpHeaders, target: string): boolean => {
    const given = headers['proxy-authorization'];
    if (given) authorizations.push(given);
    if (expected === undefined || given === expected) return true;
    refused.push(target);
    return false;
  };

  const server = createServer((req, res) => {
    const target = new URL(req.url ?? '/');
    if (!authorized(req.headers, target.host)) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test"' }).end();
      return;
    }
    forwarded.push(target.host);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: `${target.pathname}${target.search}`, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const target = req.url ?? '';
    if (!authorized(req.headers, target)) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    tunnels.push(target);
    const [host = '', port = '443'] = target.split(/:(?=\d+$)/);
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels,
    forwarded,
    refused,
    authorizations,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** host:port of a URL, as the proxy records it. */
export function hostPort(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || (parsed.protocol === 'https:' ? '443' : '80')}`;
}

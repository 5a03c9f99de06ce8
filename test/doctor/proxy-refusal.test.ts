/**
 * `bridge doctor` behind a proxy that tunnels to Entra ID but refuses CONNECT to the ingestion host (not allow-listed):
 * the check names the proxy's refusal and what to ask for, not a network error code.
 */
import { createServer } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { findConnector } from '../../src/composition/index.js';
import { loadConfig } from '../../src/config/index.js';
import { runDoctor } from '../../src/doctor/index.js';
import { silentLogger } from '../../src/log.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 1, events: 5, patients: 2, practitioners: 1 } });
});
afterAll(async () => h?.close());

it('says the proxy refused the ingestion host (BRG_ERR_PROXY_REFUSED, ask for it to be allowed), the Entra token through it still obtained', async () => {
  const config = loadConfig({ base: h.sandbox.config, env: {} });
  const connector = findConnector(config, 'sandbox');
  const ingestion = new URL(connector.purview.ingestionBase as string);
  const sockets = new Set<Socket>();
  const proxy = createServer((_request, response) => response.end());
  proxy.on('connect', (request, client: Socket) => {
    sockets.add(client);
    client.on('error', () => client.destroy());
    if (request.url === `${ingestion.hostname}:${ingestion.port}`) {
      client.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: 34\r\n\r\n<html>Blocked by URL filter</html>');
      return;
    }
    const [host = '', port = '443'] = String(request.url).split(':');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  try {
    const results = await runDoctor({ config, env: { HTTPS_PROXY: proxyUrl }, clock: systemClock, logger: silentLogger() }, connector);
    const byName = Object.fromEntries(results.map((result) => [result.name, result]));
    expect(byName['Purview access token obtained']?.status).toBe('pass');
    const reachable = byName['Purview ingestion host reachable'];
    expect(reachable?.status).toBe('fail');
    expect(reachable?.detail).toContain(`the proxy ${proxyUrl} (HTTPS_PROXY) refused the connection with HTTP 403`);
    expect(reachable?.detail).toContain('Ask for the host to be allowed through the proxy');
    expect(reachable?.detail).not.toContain('UND_ERR_ABORTED');
  } finally {
    for (const socket of sockets) socket.destroy();
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  }
});

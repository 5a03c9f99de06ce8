/**
 * Issue #20.1 end to end: a full sandbox sync with HTTPS_PROXY / HTTP_PROXY (with credentials) in the environment the
 * composition root passes in sends every outbound request through a real forward proxy on loopback: SMART discovery
 * and token (http, forwarded), FHIR (http, forwarded), Entra ID and ingestion (https, CONNECT tunnels, the sandbox CA
 * checked end to end through them). NO_PROXY naming one host:port sends that one direct. NO_PROXY is always set
 * explicitly (127.0.0.1 is a common default there, and loopback is not special-cased). The proxy password never
 * reaches a log line.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { buildSyncDeps, findConnector } from '../../src/composition/index.js';
import { type ConfigInput, loadConfig } from '../../src/config/index.js';
import { uuidSource } from '../../src/ids.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { SyncEvents } from '../../src/sync/events.js';
import { runSync, type SyncSummary } from '../../src/sync/pipeline.js';
import { openStateStore } from '../../src/sync/state/index.js';
import { linesLogger } from '../support/log-lines.js';
import { hostPort, startTestProxy, type TestProxy } from './support.js';

const USER = 'bridge-svc';
const PASSWORD = 'pr0xy-Secret-42';

let sandbox: Sandbox;
let proxy: TestProxy;
const logLines: string[] = [];

beforeAll(async () => {
  sandbox = await startSandbox({ dir: mkdtempSync(join(tmpdir(), 'bridge-proxy-')), data: { events: 120, patients: 30, practitioners: 8 } });
  proxy = await startTestProxy({ credentials: `${USER}:${PASSWORD}` });
});
afterAll(async () => {
  await proxy?.close();
  await sandbox?.close();
});

/** One full sync (fresh state dir) with `env` as the process environment; the token URL is discovered. */
async function syncWith(env: Record<string, string>): Promise<SyncSummary> {
  const base = structuredClone(sandbox.config) as ConfigInput & { connectors: Array<{ smart: { tokenUrl?: string } }> };
  delete base.connectors[0]?.smart.tokenUrl; // discovery goes through the proxy too
  const stateDir = mkdtempSync(join(tmpdir(), 'bridge-proxy-state-'));
  const config = loadConfig({ base, env, flags: { stateDir } });
  const logger = linesLogger(logLines);
  const store = openStateStore(config.stateDir, systemClock);
  try {
    const deps = buildSyncDeps(
      { config, env, clock: systemClock, logger, events: new SyncEvents(), store, newId: uuidSource },
      findConnector(config, 'sandbox'),
    );
    const { start, end } = sandbox.dataset.options;
    return await runSync(deps, { trigger: 'cli', since: start, until: end });
  } finally {
    store.close();
  }
}

function proxyEnv(noProxy: string): Record<string, string> {
  const withCredentials = proxy.url.replace('http://', `http://${USER}:${encodeURIComponent(PASSWORD)}@`);
  return { HTTPS_PROXY: withCredentials, HTTP_PROXY: withCredentials, NO_PROXY: noProxy };
}

describe('a full sandbox sync behind a forward proxy', () => {
  let summary: SyncSummary;
  let before: { fhir: number; tokens: number; entra: number; rows: number };
  beforeAll(async () => {
    before = {
      fhir: sandbox.fhir.requests.length,
      tokens: sandbox.auth.stats.issued,
      entra: sandbox.entra.stats.requests,
      rows: sandbox.ingest.acceptedRowCount(sandbox.ids.jobId),
    };
    // `localhost` does not cover 127.0.0.1: nothing here is exempt.
    summary = await syncWith(proxyEnv('localhost'));
  });

  it('completes, pushing every row', () => {
    expect(summary.counts.rowsAcked).toBeGreaterThan(0);
    expect(summary.counts.rowsAcked).toBe(summary.counts.rows);
    expect(sandbox.ingest.acceptedRowCount(sandbox.ids.jobId) - before.rows).toBe(summary.counts.rows);
  });

  it('sends SMART discovery, the token request and every FHIR request through the proxy (forwarded, with credentials)', () => {
    const fhirRequests = sandbox.fhir.requests.length - before.fhir; // discovery, /metadata, searches, reads
    const tokenRequests = sandbox.auth.stats.issued - before.tokens;
    expect(fhirRequests).toBeGreaterThan(3);
    expect(tokenRequests).toBeGreaterThan(0);
    expect(proxy.forwarded.filter((target) => target === hostPort(sandbox.fhir.baseUrl))).toHaveLength(fhirRequests);
    expect(proxy.forwarded.filter((target) => target === hostPort(sandbox.auth.tokenUrl))).toHaveLength(tokenRequests);
    expect(proxy.refused).toEqual([]);
    expect(new Set(proxy.authorizations)).toEqual(new Set([`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`]));
  });

  it('tunnels Entra ID through the proxy with CONNECT, the sandbox CA still checked end to end', () => {
    expect(sandbox.entra.stats.requests).toBeGreaterThan(before.entra);
    expect(proxy.tunnels).toContain(hostPort(sandbox.entra.authorityHost));
  });

  // Needs src/purview/push.ts to pass PushOptions.network to createHttpsAgent(caPem, network) (see the report).
  it('tunnels the ingestion upload through the proxy with CONNECT', () => {
    expect(proxy.tunnels).toContain(hostPort(sandbox.ingest.baseUrl));
  });

  it('never logs the proxy password or its Basic value', () => {
    const basic = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    for (const line of logLines) {
      expect(line).not.toContain(PASSWORD);
      expect(line).not.toContain(encodeURIComponent(PASSWORD));
      expect(line).not.toContain(basic);
    }
  });
});

describe('NO_PROXY', () => {
  it('reaches the host:port it names directly (no CONNECT recorded), everything else still through the proxy', async () => {
    const entra = hostPort(sandbox.entra.authorityHost);
    const tunnelsBefore = proxy.tunnels.length;
    const forwardedBefore = proxy.forwarded.length;
    const entraBefore = sandbox.entra.stats.requests;

    const summary = await syncWith(proxyEnv(entra));

    expect(summary.counts.rowsAcked).toBeGreaterThan(0);
    expect(sandbox.entra.stats.requests).toBeGreaterThan(entraBefore); // Entra was used, directly
    expect(proxy.tunnels.slice(tunnelsBefore)).not.toContain(entra);
    expect(proxy.forwarded.slice(forwardedBefore)).toContain(hostPort(sandbox.fhir.baseUrl));
  });
});

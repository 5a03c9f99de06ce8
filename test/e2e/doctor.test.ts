import { chmodSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offsetClock, systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/index.js';
import { runDoctor, type CheckResult } from '../../src/doctor/index.js';
import { silentLogger } from '../../src/log.js';
import { findConnector } from '../../src/sync/runtime.js';
import { startHarness, type SandboxHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 1, events: 20, patients: 5, practitioners: 2 }, listAuditEvent: false });
});
afterAll(async () => h?.close());

async function doctor(flags: Record<string, unknown> = {}, clock = systemClock): Promise<Record<string, CheckResult>> {
  const config = loadConfig({ base: h.sandbox.config, env: {}, flags });
  const results = await runDoctor({ config, env: {}, clock, logger: silentLogger() }, findConnector(config, 'sandbox'));
  return Object.fromEntries(results.map((r) => [r.name, r]));
}

describe('bridge doctor against the sandbox', () => {
  it('passes the auth, key, job and Purview checks, and fails loudly where /metadata lists no AuditEvent', async () => {
    const r = await doctor();
    for (const name of ['config valid', 'key files present with safe modes', 'signing kid published in the JWK Set', 'token endpoint discovered',
      'clock skew against the token server', 'SMART access token obtained', 'Purview job id well-formed', 'Purview access token obtained']) {
      expect(r[name]?.status, `${name}: ${r[name]?.detail}`).toBe('pass');
    }
    expect(r['/metadata lists AuditEvent search']).toMatchObject({ status: 'fail' });
    expect(r['/metadata lists AuditEvent search']?.detail).toContain('BRG_ERR_FHIR_CAPABILITY');
    expect(r['/metadata lists AuditEvent search']?.fix).toContain('AuditEvent');
  });

  it('fails a malformed job id and a wrong Purview secret, each with its fix', async () => {
    const secretFile = join(h.config.stateDir, '..', 'purview-app-secret');
    const r = await doctor({ 'connectors.0.purview.jobId': 'job-123', 'connectors.0.purview.secret': { env: 'WRONG_SECRET' } });
    expect(r['Purview job id well-formed']).toMatchObject({ status: 'fail' });
    expect(r['Purview job id well-formed']?.detail).toContain('not a GUID');
    expect(r['Purview access token obtained']).toMatchObject({ status: 'fail' });
    expect(r['Purview access token obtained']?.detail).toContain('WRONG_SECRET');
    writeFileSync(join(h.config.stateDir, '..', 'wrong-secret'), 'not-the-secret', { mode: 0o600 });
    const wrong = await doctor({ 'connectors.0.purview.secret': { file: join(h.config.stateDir, '..', 'wrong-secret') } });
    expect(wrong['Purview access token obtained']?.detail).toContain('BRG_ERR_PURVIEW_AUTH');
    expect(wrong['Purview access token obtained']?.detail).not.toContain('not-the-secret');
    expect(secretFile).toBeTruthy();
  });

  it('fails a group-readable private key and skips the checks that need it', async () => {
    const keysDir = join(h.config.stateDir, '..', 'keys');
    const pem = readdirSync(keysDir).find((f) => f.endsWith('.pem')) as string;
    chmodSync(join(keysDir, pem), 0o640);
    try {
      const r = await doctor();
      expect(r['key files present with safe modes']).toMatchObject({ status: 'fail' });
      expect(r['key files present with safe modes']?.detail).toContain('chmod 600');
      expect(r['signing kid published in the JWK Set']?.status).toBe('skip');
      expect(r['SMART access token obtained']?.status).toBe('skip');
    } finally {
      chmodSync(join(keysDir, pem), 0o600);
    }
  });

  it('fails when this host clock is 10 minutes ahead of the token server', async () => {
    const r = await doctor({}, offsetClock(10 * 60_000));
    expect(r['clock skew against the token server']).toMatchObject({ status: 'fail' });
    expect(r['clock skew against the token server']?.detail).toMatch(/(599|600|601) s ahead/);
  });
});

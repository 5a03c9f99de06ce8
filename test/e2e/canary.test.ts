/**
 * Canary test: a full sandbox sync whose data carries unique canary names, addresses, MRNs and logins. No log line and
 * no run-log line may contain any of them, nor the access tokens, the client secret or the private key.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
const issuedTokens: string[] = [];

beforeAll(async () => {
  h = await startHarness({ data: { seed: 11, events: 250, patients: 40, practitioners: 8, canary: true } });
  // Capture the bearer tokens actually sent, so the test can look for them in the logs.
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const auth = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)).get('authorization');
    if (auth?.startsWith('Bearer ')) issuedTokens.push(auth.slice(7));
    return realFetch(input, init);
  };
  try {
    await h.sync();
  } finally {
    globalThis.fetch = realFetch;
  }
});
afterAll(async () => h?.close());

describe('no PHI or secret in any log', () => {
  it('the data really carries canaries and the sync really ran', () => {
    const patient = h.sandbox.dataset.patientAt(0);
    expect(JSON.stringify(patient.name)).toContain('CANARY');
    expect(h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length).toBeGreaterThan(0);
    expect(issuedTokens.length).toBeGreaterThan(0);
  });

  it('pino lines and the per-run NDJSON event log contain no canary, token, secret or key', () => {
    const runLogDir = join(h.config.stateDir, 'runs');
    const runLogLines = readdirSync(runLogDir).flatMap((f) => readFileSync(join(runLogDir, f), 'utf8').split('\n').filter(Boolean));
    expect(runLogLines.some((l) => l.includes('"eventId":"block_acked"'))).toBe(true);
    const secret = readFileSync(join(h.config.stateDir, '..', 'purview-app-secret'), 'utf8');
    const keyDir = join(h.config.stateDir, '..', 'keys');
    const privateKeys = readdirSync(keyDir)
      .filter((f) => f.endsWith('.pem'))
      .map((f) => readFileSync(join(keyDir, f), 'utf8'));
    const keyBodies = privateKeys.map((pem) => pem.split('\n')[1] ?? 'missing');
    const forbidden = [...new Set(issuedTokens), secret, ...keyBodies, 'CANARY'];
    for (const line of [...h.logLines, ...runLogLines]) {
      for (const value of forbidden) expect(line.includes(value), `a log line contains a forbidden value (${value.slice(0, 6)}…)`).toBe(false);
      expect(line).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/); // no JWT (assertion) of any kind
    }
  });
});

import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offsetClock, systemClock } from '../../src/clock.js';
import { findConnector } from '../../src/composition/index.js';
import { loadConfig } from '../../src/config/index.js';
import {
  type CheckResult,
  DEPARTMENT_CHECK,
  DROP_FOLDER_CHECK,
  FILL_CHECK,
  type FillSampleOptions,
  formatChecks,
  MAPPING_CHECK,
  runDoctor,
} from '../../src/doctor/index.js';
import { silentLogger } from '../../src/log.js';
import { phiValues } from '../support/generated-values.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
/** A sandbox whose /metadata lists AuditEvent, so the fill check runs (the first one's does not). */
let listed: SandboxHarness;
beforeAll(async () => {
  [h, listed] = await Promise.all([
    startHarness({ data: { seed: 1, events: 20, patients: 5, practitioners: 2 }, listAuditEvent: false }),
    startHarness({ data: { seed: 3, events: 300, patients: 40, practitioners: 6 } }),
  ]);
});
afterAll(async () => Promise.all([h?.close(), listed?.close()]));

async function doctorResults(
  harness: SandboxHarness,
  flags: Record<string, unknown> = {},
  clock = systemClock,
  sample?: FillSampleOptions,
): Promise<CheckResult[]> {
  const config = loadConfig({ base: harness.sandbox.config, env: {}, flags });
  return runDoctor({ config, env: {}, clock, logger: silentLogger(), ...(sample ? { sample } : {}) }, findConnector(config, 'sandbox'));
}

async function doctor(flags: Record<string, unknown> = {}, clock = systemClock): Promise<Record<string, CheckResult>> {
  return Object.fromEntries((await doctorResults(h, flags, clock)).map((r) => [r.name, r]));
}

describe('bridge doctor against the sandbox', () => {
  it('passes the auth, key, job and Purview checks, and fails loudly where /metadata lists no AuditEvent', async () => {
    const r = await doctor();
    for (const name of [
      'config valid',
      'key files present with safe modes',
      'signing kid published in the JWK Set',
      'token endpoint discovered',
      'clock skew against the token server',
      'SMART access token obtained',
      'Purview job id well-formed',
      'Purview access token obtained',
    ]) {
      expect(r[name]?.status, `${name}: ${r[name]?.detail}`).toBe('pass');
    }
    expect(r['/metadata lists AuditEvent search']).toMatchObject({ status: 'fail' });
    expect(r['/metadata lists AuditEvent search']?.detail).toContain('BRG_ERR_FHIR_CAPABILITY');
    expect(r['/metadata lists AuditEvent search']?.fix).toContain('AuditEvent');
    expect(r[MAPPING_CHECK]?.status).toBe('pass');
    expect(r[FILL_CHECK]).toMatchObject({ status: 'skip', detail: 'needs "/metadata lists AuditEvent search"' });
  });

  it('checks AuditEvent search and column fill only for the search source: a Bulk export or a drop folder needs neither', async () => {
    const bulk = await doctor({ 'connectors.0.source': { type: 'bulk-export' } });
    expect(bulk['SMART access token obtained']?.status).toBe('pass');
    expect(bulk['/metadata lists AuditEvent search']).toBeUndefined();
    expect(bulk[FILL_CHECK]).toBeUndefined();
    expect(Object.values(bulk).filter((r) => r.status === 'fail')).toEqual([]);

    const drop = mkdtempSync(join(tmpdir(), 'bridge-doctor-drop-'));
    const flat = (dir: string) => ({ type: 'flat-file', dir, archiveDir: join(drop, 'archive'), enrich: { fhir: true } });
    const enriched = await doctor({ 'connectors.0.source': flat(join(drop, 'in')) });
    expect(enriched['/metadata lists AuditEvent search']).toBeUndefined();
    expect(enriched[DROP_FOLDER_CHECK]?.status, enriched[DROP_FOLDER_CHECK]?.detail).toBe('fail');
    expect(enriched[DROP_FOLDER_CHECK]?.detail).toMatch(/^BRG_ERR_DROP_FOLDER: the drop folder source\.dir .*\/in cannot be read \(ENOENT\)/);
    mkdirSync(join(drop, 'in'));
    const ready = await doctor({ 'connectors.0.source': flat(join(drop, 'in')) });
    expect(ready[DROP_FOLDER_CHECK]?.status, ready[DROP_FOLDER_CHECK]?.detail).toBe('pass');
    expect(ready[DROP_FOLDER_CHECK]?.detail).toContain('the first run makes');
    expect(Object.values(ready).filter((r) => r.status === 'fail')).toEqual([]);
    // Checked without writing: the doctor may run as another user, whose files the bridge could not move.
    expect(readdirSync(drop).sort()).toEqual(['in']);
    expect(readdirSync(join(drop, 'in'))).toEqual([]);
    rmSync(drop, { recursive: true, force: true });
  });

  it('warns, without failing, when the Purview secret file is readable by others, naming it and chmod 600', async () => {
    const secret = h.sandbox.config.connectors[0]?.purview.secret;
    const file = secret && 'file' in secret ? secret.file : '';
    chmodSync(file, 0o644);
    try {
      const r = await doctor();
      expect(r['Purview access token obtained']).toMatchObject({ status: 'warn' });
      expect(r['Purview access token obtained']?.detail).toBe(
        `Entra ID client_credentials grant succeeded; purview.secret: ${file} has mode 644, so other users have access to it; run \`chmod 600 ${file}\` with the file owned by the bridge's user (or mode 640 with the bridge's own group)`,
      );
    } finally {
      chmodSync(file, 0o600);
    }
    expect((await doctor())['Purview access token obtained']?.status).toBe('pass');
  });

  it("fails the SMART token for a scope the sandbox's app record does not grant (a write, a user/ scope), as Epic does", async () => {
    for (const extra of ['system/AuditEvent.write', 'user/Patient.read']) {
      const r = await doctor({ 'connectors.0.smart.scope': `system/AuditEvent.read ${extra}` });
      expect(r['SMART access token obtained']?.status, extra).toBe('fail');
      expect(r['SMART access token obtained']?.detail, extra).toContain(extra);
    }
    const allowed = await doctor({ 'connectors.0.smart.scope': 'system/AuditEvent.read system/Patient.read system/Practitioner.read system/Group.read' });
    expect(allowed['SMART access token obtained']?.status).toBe('pass');
  });

  it('warns, before the first sync, that the department column stays empty without Encounter and Location in smart.scope', async () => {
    const without = await doctor();
    expect(without[DEPARTMENT_CHECK]).toMatchObject({ status: 'warn' });
    expect(without[DEPARTMENT_CHECK]?.detail).toContain('Add system/Encounter.read and system/Location.read to smart.scope');
    expect(without[DEPARTMENT_CHECK]?.detail).toContain('(CLARITY_DEP.DEPARTMENT_NAME stays empty');
    // Named as the connector's file names it: the healthcare schema's column.
    const healthcare = await doctor({ 'connectors.0.mapping.schema': 'healthcare' });
    expect(healthcare[DEPARTMENT_CHECK]?.detail).toContain('(Patient Department stays empty');
    const scope = 'system/AuditEvent.read system/Patient.read system/Practitioner.read system/Encounter.read system/Location.rs';
    const withScopes = await doctor({ 'connectors.0.smart.scope': scope });
    expect(withScopes[DEPARTMENT_CHECK]).toMatchObject({ status: 'pass', detail: 'Encounter and Location reads are requested' });
    const noDepartment = await doctor({ 'connectors.0.mapping.options': { departmentSources: [] } });
    expect(noDepartment[DEPARTMENT_CHECK]?.status).toBe('pass');
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

  it('on Windows, where every file reads as mode 0666, does not fail the key check on the mode (and so goes on to the token)', async () => {
    const keysDir = join(h.config.stateDir, '..', 'keys');
    const pem = readdirSync(keysDir).find((f) => f.endsWith('.pem')) as string;
    const platform = Object.getOwnPropertyDescriptor(process, 'platform') as PropertyDescriptor;
    chmodSync(join(keysDir, pem), 0o666);
    Object.defineProperty(process, 'platform', { ...platform, value: 'win32' });
    try {
      const r = await doctor();
      expect(r['key files present with safe modes']?.status).toBe('pass');
      expect(r['SMART access token obtained']?.status).toBe('pass');
    } finally {
      Object.defineProperty(process, 'platform', platform);
      chmodSync(join(keysDir, pem), 0o600);
    }
  });

  it('judges the skew as Epic does: a little ahead is refused (iat in the future), far behind is fine until exp passes', async () => {
    const ahead = (await doctor({}, offsetClock(45_000)))['clock skew against the token server'];
    expect(ahead).toMatchObject({ status: 'warn', detail: expect.stringContaining('ahead of the token server, more than smart.clockSkewSec (30 s) allows') });
    const behind = (await doctor({}, offsetClock(-200_000)))['clock skew against the token server'];
    expect(behind).toMatchObject({ status: 'pass', detail: expect.stringContaining('tolerated: 30 s ahead, 230 s behind') });
    const past = (await doctor({}, offsetClock(-250_000)))['clock skew against the token server'];
    expect(past).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/(249|250|251) s behind the token server, so far that the assertion's exp is already past/),
    });
    const synced = (await doctor({ 'connectors.0.smart.clockSkewSec': 0, 'connectors.0.smart.assertionLifetimeSec': 240 }))[
      'clock skew against the token server'
    ];
    expect(synced?.status).toBe('pass');
  });

  it('fails when this host clock is 10 minutes ahead of the token server', async () => {
    const r = await doctor({}, offsetClock(10 * 60_000));
    expect(r['clock skew against the token server']).toMatchObject({ status: 'fail' });
    expect(r['clock skew against the token server']?.detail).toMatch(/(599|600|601) s ahead/);
  });
});

describe('bridge doctor: column fill of recent AuditEvents', () => {
  /** The sandbox data lies in the past: sample the dataset's last day. */
  const sample = (): FillSampleOptions => ({ until: listed.sandbox.dataset.options.end, lookbackHours: 24, events: 200 });
  const fillOf = async (flags: Record<string, unknown> = {}): Promise<CheckResult | undefined> =>
    (await doctorResults(listed, flags, systemClock, sample())).find((r) => r.name === FILL_CHECK);

  it('maps the last 200 events of the day and prints every column, all filled, with the Epic-shaped data and no site options', async () => {
    const fill = await fillOf({ 'connectors.0.mapping.options': {} });
    expect(fill?.status, fill?.detail).toBe('pass');
    expect(fill?.detail).toMatch(
      /^200 event\(s\) of 2026-11-01T00:00:00\.000Z – 2026-11-02T00:00:00\.000Z → \d+ row\(s\), \d+ skipped, \d+ rejected; every mandatory and key column is filled/,
    );
    const lines = fill?.lines ?? [];
    const columns = listed.config.connectors[0]?.mapping.schema === 'epic' ? 22 : 23;
    expect(lines.filter((line) => !line.startsWith('rejected:'))).toHaveLength(columns);
    expect(lines.find((line) => line.startsWith('PATIENT.PAT_MRN_ID'))).toMatch(/^PATIENT\.PAT_MRN_ID +100% filled \((\d+) of \1\)$/);
    expect(lines.find((line) => line.startsWith('CLARITY_EMP.USER_ID'))).toMatch(/100% filled/);
    expect(lines.find((line) => line.startsWith('PATIENT.PAT_MIDDLE_NAME'))).toMatch(/% filled \(\d+ of \d+\) {2}optional$/);
    expect(lines.find((line) => line.startsWith('ZC_BTG_REASON.NAME'))).toMatch(/% filled \(\d+ of \d+\) {2}may be empty$/);
  });

  it('flags a column over 5% empty with the site option that fixes it (MRN read from a system the site does not use)', async () => {
    const file = join(listed.config.stateDir, '..', 'site-mapping.json');
    writeFileSync(
      file,
      JSON.stringify({
        extends: 'epic',
        columns: [{ name: 'PATIENT.PAT_MRN_ID', expressions: ["%patient.identifier.where(system = 'urn:oid:2.16.840.1.113883.19.5').value"] }],
      }),
    );
    const fill = await fillOf({ 'connectors.0.mapping.file': file });
    expect(fill?.status).toBe('warn');
    expect(fill?.detail).toMatch(
      /PATIENT\.PAT_MRN_ID is empty in 100% of rows \((\d+) of \1\); set mapping\.options\.mrnSystems .* or mapping\.options\.mrnTypeTexts/,
    );
    expect(fill?.lines?.find((line) => line.startsWith('PATIENT.PAT_MRN_ID'))).toMatch(
      / 0% filled \(0 of \d+\) {2}<- over 5% empty: set mapping\.options\.mrnSystems/,
    );
  });

  it('reports rejects by reason with the fix, and a misspelt site option as a failed mapping check with no sample', async () => {
    const noLogin = await fillOf({ 'connectors.0.mapping.file': writeLoginless() });
    expect(noLogin?.status).toBe('warn');
    expect(
      noLogin?.lines?.some((line) =>
        /^rejected: missing-employee-login \(EMP\.SYSTEM_LOGIN\): \d+ row\(s\) {2}<- set mapping\.options\.loginSystems/.test(line),
      ),
    ).toBe(true);
    const typo = await doctorResults(listed, { 'connectors.0.mapping.options': { mrnTypeText: ['EPI'] } }, systemClock, sample());
    const byName = Object.fromEntries(typo.map((r) => [r.name, r]));
    expect(byName[MAPPING_CHECK]).toMatchObject({ status: 'fail' });
    expect(byName[MAPPING_CHECK]?.detail).toContain('did you mean "mrnTypeTexts"?');
    expect(byName[FILL_CHECK]).toMatchObject({ status: 'skip' });
  });

  it('says so when the window holds no event, and prints counts and column names only (no PHI)', async () => {
    const empty = (await doctorResults(listed, {}, systemClock, { until: '2026-10-01T00:00:00Z', lookbackHours: 1 })).find((r) => r.name === FILL_CHECK);
    expect(empty).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('no AuditEvent recorded in 2026-09-30T23:00:00.000Z – 2026-10-01T00:00:00.000Z'),
    });
    const output = formatChecks([
      ...(await doctorResults(listed, {}, systemClock, sample())),
      ...(await doctorResults(listed, { 'connectors.0.mapping.options': {} }, systemClock, sample())),
    ]).join('\n');
    expect(output).toContain('PATIENT.PAT_MRN_ID');
    for (const value of phiValues(listed.sandbox.dataset)) expect(output.includes(value), 'doctor output leaks a PHI value').toBe(false);
  });

  /** A site mapping whose login expressions find nothing, so every row is rejected as missing-employee-login. */
  function writeLoginless(): string {
    const file = join(listed.config.stateDir, '..', 'loginless-mapping.json');
    writeFileSync(
      file,
      JSON.stringify({ extends: 'epic', columns: [{ name: 'EMP.SYSTEM_LOGIN', expressions: ["%user.identifier.where(system = 'urn:none').value"] }] }),
    );
    return file;
  }
});

describe('bridge doctor tells the truth (#20.3)', () => {
  it('checks that the ingestion host answers over TLS, and says the route', async () => {
    const r = Object.fromEntries((await doctorResults(listed)).map((c) => [c.name, c]));
    expect(r['Purview ingestion host reachable']).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(/^127\.0\.0\.1:\d+ answered HTTP \d{3} over TLS \(direct\)$/),
    });
    expect(r['token endpoint discovered']?.detail).toMatch(/\(from smart\.tokenUrl\)/);
  });

  it('a clock check that cannot reach the token server warns plainly; an unreachable ingestion host fails naming it', async () => {
    const port = await closedPort();
    const config = loadConfig({
      base: listed.sandbox.config,
      env: {},
      flags: { 'connectors.0.smart.tokenUrl': `http://127.0.0.1:${port}/token`, 'connectors.0.purview.ingestionBase': `https://127.0.0.1:${port}` },
    });
    const results = await runDoctor({ config, env: {}, clock: systemClock, logger: silentLogger() }, findConnector(config, 'sandbox'));
    const r = Object.fromEntries(results.map((c) => [c.name, c]));
    expect(r['clock skew against the token server']).toMatchObject({
      status: 'warn',
      detail: `could not reach http://127.0.0.1:${port} to compare clocks (ECONNREFUSED); check the network or network.proxy, then run doctor again`,
    });
    expect(r['Purview ingestion host reachable']).toMatchObject({ status: 'fail' });
    expect(r['Purview ingestion host reachable']?.detail).toContain(`Cannot reach the ingestion host 127.0.0.1:${port} (ECONNREFUSED)`);
    expect(results.some((c) => c.detail.includes('BRG_ERR_INTERNAL'))).toBe(false);
  });

  it('runs with --profile epic-sandbox --client-id and no config file, saying what is preset, with the exit code of the README', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const root = join(import.meta.dirname, '../..');
    const cwd = mkdtempSync(join(tmpdir(), 'bridge-doctor-'));
    const { BRIDGE_CONFIG: _unset, ...env } = process.env;
    const run = spawnSync(process.execPath, [join(root, 'bin/bridge.js'), 'doctor', '--profile', 'epic-sandbox', '--client-id', 'abc-123'], {
      cwd,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(1);
    expect(run.stdout).toContain(
      'PASS  token endpoint discovered: https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token (preset by profile epic-sandbox); FHIR base https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4 (preset by profile epic-sandbox)',
    );
    expect(run.stdout).toContain('FAIL  key files present with safe modes');
    expect(run.stdout).toContain('SKIP  Purview: no config file: the Purview side is not configured');
    const usage = spawnSync(process.execPath, [join(root, 'bin/bridge.js'), 'doctor'], { cwd, env, encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('give --config <file> (or set BRIDGE_CONFIG), or check the EHR side alone with --profile epic-sandbox --client-id <id>');
  });
});

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, readSecret } from '../../src/config/index.js';
import { errorOf } from '../support/error-of.js';
import { MINIMAL_CONFIG } from '../support/minimal-config.js';

/** A private key made for the run (none is kept in the repository), and a piece of its body no message may hold. */
const PEM = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const PEM_BODY = PEM.split('\n')[1]?.slice(0, 24) ?? PEM;

const minimal = MINIMAL_CONFIG;

describe('loadConfig', () => {
  it('fills documented defaults and freezes the result', () => {
    const config = loadConfig({ base: minimal, env: {} });
    const c = config.connectors[0];
    expect(c?.fhir?.concurrency).toBe(4);
    expect(c?.smart?.scope).toBe('system/AuditEvent.read system/Patient.read system/Practitioner.read');
    expect(c?.purview.blockRows).toBe(100_000);
    expect(c?.mapping.schema).toBe('epic');
    expect(config.server.host).toBe('127.0.0.1');
    expect(Object.isFrozen(c?.fhir)).toBe(true);
  });

  it('layers file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-config-'));
    const path = join(dir, 'bridge.config.yaml');
    writeFileSync(
      path,
      `stateDir: /from/file\nconnectors:\n  - name: main\n    fhir: { baseUrl: "https://a.example/R4", pageSize: 50 }\n    smart: { clientId: c }\n    purview: { tenantId: t, appId: a, jobId: j, secret: { env: S } }\n`,
    );
    const config = loadConfig({
      path,
      env: { BRIDGE__stateDir: '/from/env', BRIDGE__connectors__0__fhir__pageSize: '75', BRIDGE__logLevel: 'debug' },
      flags: { stateDir: '/from/flag' },
    });
    expect(config.stateDir).toBe('/from/flag');
    expect(config.logLevel).toBe('debug');
    expect(config.connectors[0]?.fhir?.pageSize).toBe(75);
  });

  it('lists every bad key with the value and the expected form', () => {
    const bad = structuredClone(minimal) as unknown as { connectors: Array<Record<string, Record<string, unknown>>> };
    const connector = bad.connectors[0] as Record<string, Record<string, unknown>>;
    (connector['fhir'] as Record<string, unknown>)['baseUrl'] = 'not a url';
    (connector['fhir'] as Record<string, unknown>)['concurrency'] = 0;
    const error = errorOf(() => loadConfig({ base: bad, env: {} }));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toContain('connectors.0.fhir.baseUrl: got "not a url"');
    expect(error.message).toContain('connectors.0.fhir.concurrency: got 0');
  });

  it('refuses a reference cache lifetime under a minute, which the resolver cannot run with (0 crashed the first sync)', () => {
    for (const ttl of [0, 59_999]) {
      const error = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__0__fhir__referenceCacheTtlMs: String(ttl) } }));
      expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
      expect(error.message).toContain(`connectors.0.fhir.referenceCacheTtlMs: got ${ttl}`);
    }
    expect(loadConfig({ base: minimal, env: { BRIDGE__connectors__0__fhir__referenceCacheTtlMs: '60000' } }).connectors[0]?.fhir?.referenceCacheTtlMs).toBe(
      60_000,
    );
  });

  it("names the variable that made a section of the file invalid (an env secret beside the file's, a certificate beside a secret), with the file's line", () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-config-'));
    const path = join(dir, 'bridge.config.yaml');
    writeFileSync(
      path,
      [
        'stateDir: /tmp/bridge-state',
        'connectors:',
        '  - name: a',
        '    source: { type: flat-file, dir: /tmp/drop, archiveDir: /tmp/archive }',
        '    purview:',
        '      tenantId: t',
        '      appId: a',
        '      jobId: j',
        '      secret: { file: /run/secrets/purview }',
        '',
      ].join('\n'),
    );
    const secret = errorOf(() => loadConfig({ path, env: { BRIDGE__connectors__0__purview__secret__env: 'PURVIEW_APP_SECRET' } }));
    expect(secret.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(secret.message).toContain("(the file's value merged with BRIDGE__connectors__0__purview__secret__env)");
    expect(secret.message).toContain('line 9');
    const certificate = errorOf(() =>
      loadConfig({
        path,
        env: { BRIDGE__connectors__0__purview__certificate: JSON.stringify({ keyFile: '/run/secrets/k.pem', thumbprintSha256: 'a'.repeat(64) }) },
      }),
    );
    expect(certificate.message).toContain("(the file's value merged with BRIDGE__connectors__0__purview__certificate)");
  });

  it('refuses an empty server.host (an unset variable in Compose would bind every interface), mapping.file or purview.resource, naming the variable', () => {
    const host = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__server__host: '' } }));
    expect(host.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(host.message).toContain('server.host: got ""; expected an address to listen on, not empty (empty binds every interface)');
    expect(host.message).toContain('(set by BRIDGE__server__host)');
    expect(errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__server__host: '  ' } })).message).toContain('expected an address to listen on, not empty');
    expect(errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__0__mapping__file: '' } })).message).toContain(
      'connectors.0.mapping.file: got ""; expected a path to a mapping file, not empty',
    );
    expect(errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__0__purview__resource: '' } })).message).toContain(
      'connectors.0.purview.resource: got ""; expected an App ID URI, not empty',
    );
    expect(loadConfig({ base: minimal, env: {} }).server.host).toBe('127.0.0.1');
  });

  it('never echoes a value under a secret-like key', () => {
    const bad = structuredClone(minimal) as unknown as { connectors: Array<{ purview: Record<string, unknown> }> };
    (bad.connectors[0] as { purview: Record<string, unknown> }).purview['secret'] = 'hunter2-super-secret';
    const error = errorOf(() => loadConfig({ base: bad, env: {} }));
    expect(error.message).toContain('connectors.0.purview.secret: got a text of 20 characters (not shown)');
    expect(error.message).not.toContain('hunter2');
    // It says what belongs there, and to rotate a secret written in its place (a BRIDGE__… variable set to it).
    const fromEnv = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__0__purview__secret: 'hunter2-super-secret' } }));
    expect(fromEnv.message).toContain(
      'connectors.0.purview.secret: got a text of 20 characters (not shown); expected a reference, exactly one of { env: NAME } or { file: /path/to/file }, never the secret itself (if the secret was written here, rotate it) (set by BRIDGE__connectors__0__purview__secret)',
    );
    expect(fromEnv.message).not.toContain('hunter2');
  });

  it('never echoes pasted content: a text where a section belongs, the whole file at the root, a PEM, a long or multi-line text', () => {
    const purview = minimal.connectors[0]?.purview;
    const cases: Array<[unknown, string]> = [
      [{ connectors: [{ ...minimal.connectors[0], purview: 'S3cretValue' }] }, 'connectors.0.purview: got a text of 11 characters (not shown)'],
      [
        { connectors: [{ ...minimal.connectors[0], purview: { ...purview, secret: undefined, certificate: PEM } }] },
        'connectors.0.purview.certificate: got a text of',
      ],
      [{ connectors: [{ ...minimal.connectors[0], purview: { ...purview, cloud: PEM } }] }, 'connectors.0.purview.cloud: got a text of'],
    ];
    for (const [base, shown] of cases) {
      const message = errorOf(() => loadConfig({ base: base as never, env: {} })).message;
      expect(message).toContain(shown);
      expect(message).not.toContain('S3cretValue');
      expect(message).not.toContain(PEM_BODY);
    }
    // An env file given as the config: its text lands at the root.
    const dir = mkdtempSync(join(tmpdir(), 'bridge-config-'));
    const path = join(dir, 'bridge.env');
    writeFileSync(path, 'PURVIEW_APP_SECRET=S3cretValue BRIDGE_API_TOKENS=tok\n');
    const root = errorOf(() => loadConfig({ path, env: {} })).message;
    expect(root).toContain('(root) (line 1, column 1): got a text of');
    expect(root).not.toContain('S3cretValue');
  });

  it('refuses a secret or key pasted where its file path belongs, credentials in an endpoint URL, and both purview credentials', () => {
    const purview = minimal.connectors[0]?.purview;
    const withPurview = (over: Record<string, unknown>) => ({ connectors: [{ ...minimal.connectors[0], purview: { ...purview, ...over } }] }) as never;
    const file = errorOf(() => loadConfig({ base: withPurview({ secret: { file: PEM } }), env: {} })).message;
    expect(file).toContain('connectors.0.purview.secret');
    expect(file).not.toContain(PEM_BODY);
    const keyFile = errorOf(() =>
      loadConfig({ base: withPurview({ secret: undefined, certificate: { keyFile: PEM, thumbprintSha256: 'a'.repeat(64) } }), env: {} }),
    ).message;
    expect(keyFile).toContain('connectors.0.purview.certificate.keyFile: got a text of');
    expect(keyFile).toContain('expected a file path (the secret or key itself never goes in the config; if it did, rotate it)');
    expect(keyFile).not.toContain(PEM_BODY);
    const both = errorOf(() =>
      loadConfig({ base: withPurview({ certificate: { keyFile: '/run/secrets/key.pem', thumbprintSha256: 'a'.repeat(64) } }), env: {} }),
    );
    expect(both.message).toContain('purview.secret or purview.certificate, not both');
    const url = errorOf(() =>
      loadConfig({
        base: {
          connectors: [{ ...minimal.connectors[0], fhir: { ...minimal.connectors[0]?.fhir, baseUrl: 'https://user:S3CRETPW@ehr.example.org/fhir' } }],
        } as never,
        env: {},
      }),
    ).message;
    expect(url).toContain('connectors.0.fhir.baseUrl: got "https://…@ehr.example.org/fhir"; expected a URL without user:password@');
    expect(url).not.toContain('S3CRETPW');
  });

  it('takes an env value that looks like a number as the text written where the key wants a text (a Group id, a name)', () => {
    const config = loadConfig({
      base: minimal,
      env: { BRIDGE__connectors__0__name: '2024', BRIDGE__connectors__0__fhir__pageSize: '50', BRIDGE__connectors__0__purview__jobId: '2024' },
    });
    expect(config.connectors[0]?.name).toBe('2024');
    expect(config.connectors[0]?.fhir?.pageSize).toBe(50);
    expect(config.connectors[0]?.purview.jobId).toBe('2024');
  });

  it('addresses a list by position from the environment: a gap or a name is refused naming the variable, any order fills it', () => {
    // connectors.5 of a one-connector config crashed the loader (BRG_ERR_INTERNAL); a name was silently ignored.
    const gap = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__5__fhir__pageSize: '50' } }));
    expect(gap.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(gap.message).toMatch(/^BRIDGE__connectors__5__fhir__pageSize names connectors\.5, but connectors is a list of 1 entry/);
    const named = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__main__fhir__pageSize: '50' } }));
    expect(named.message).toMatch(/^BRIDGE__connectors__main__fhir__pageSize names connectors\.main/);
    expect(errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__01__name: 'x' } })).message).toMatch(/names connectors\.01/);
    // The environment alone: no list yet, so a first position other than 0 is a gap too (it crashed the loader).
    expect(errorOf(() => loadConfig({ env: { BRIDGE__connectors__1__name: 'x' } })).message).toMatch(
      /^BRIDGE__connectors__1__name names connectors\.1, but connectors is a list of 0 entries/,
    );
    // The environment lists variables in any order; positions are taken in order (10 after 2).
    const env: Record<string, string> = {};
    for (const i of [10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9]) {
      Object.assign(env, {
        [`BRIDGE__connectors__${i}__name`]: `c${i}`,
        [`BRIDGE__connectors__${i}__fhir__baseUrl`]: `https://ehr${i}.example.org/R4`,
        [`BRIDGE__connectors__${i}__smart__clientId`]: 'c',
        [`BRIDGE__connectors__${i}__purview`]: JSON.stringify({ tenantId: 't', appId: 'a', jobId: `j${i}`, secret: { env: 'S' } }),
      });
    }
    expect(loadConfig({ env }).connectors.map((c) => c.name)).toEqual(Array.from({ length: 11 }, (_, i) => `c${i}`));
    // A value the environment set is refused naming the variable, not only the file.
    const bad = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__0__fhir__pageSize: 'many' } }));
    expect(bad.message).toContain('connectors.0.fhir.pageSize: got "many"; expected number, received string (set by BRIDGE__connectors__0__fhir__pageSize)');
  });

  it('says a config that is the environment alone came from no file, naming --config and $BRIDGE_CONFIG', () => {
    const error = errorOf(() => loadConfig({ env: { BRIDGE__stateDir: '/tmp/x' } }));
    expect(error.message).toMatch(/^Invalid configuration in the environment alone \(no --config file, no \$BRIDGE_CONFIG\):\n/);
  });

  it('names no secret file path it cannot read (the secret itself may be there), and takes an empty one for a missing secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-secret-'));
    const missing = errorOf(() => readSecret({ file: 'Sup3rS3cretValue~abc' }, {}, 'purview.secret'));
    expect(missing.code).toBe('BRG_ERR_CONFIG_SECRET_MISSING');
    expect(missing.message).toBe('purview.secret: cannot read the secret file its `file` names (ENOENT). Check the path and that this user may read it.');
    expect(JSON.stringify(missing.details)).not.toContain('Sup3r');
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    const blank = errorOf(() => readSecret({ file: empty }, {}, 'purview.secret'));
    expect([blank.code, blank.message]).toEqual(['BRG_ERR_CONFIG_SECRET_MISSING', 'purview.secret: the secret file its `file` names is empty.']);
  });

  it('reports YAML syntax errors with file, line and column', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-config-'));
    const path = join(dir, 'broken.yaml');
    writeFileSync(path, 'connectors:\n  - name: main\n    fhir: { baseUrl: "x"\n');
    const error = errorOf(() => loadConfig({ path, env: {} }));
    expect(error.message).toMatch(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+`));
  });

  it('names the line and column of each refused key the file wrote: a value, an unknown key, a section missing a key; a value the environment set names its variable instead', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-config-'));
    const path = join(dir, 'bridge.config.yaml');
    writeFileSync(
      path,
      [
        'stateDir: ./state',
        'connectors:',
        '  - name: main',
        '    fhir:',
        '      baseUrl: https://fhir.example.org/api/FHIR/R4',
        '      pageSize: -3',
        '    smart:',
        '      clientId: abc',
        '      clientSecrt: hunter2',
        '    purview:',
        '      tenantId: t',
        '',
      ].join('\n'),
    );
    const error = errorOf(() => loadConfig({ path, env: { BRIDGE__connectors__0__fhir__timeoutMs: 'abc' } }));
    expect(error.message).toContain('connectors.0.fhir.pageSize (line 6, column 17): got -3');
    expect(error.message).toContain('connectors.0.smart (line 9, column 7): unknown key(s) "clientSecrt"');
    expect(error.message).toContain('connectors.0.purview.appId (in the section at line 11, column 7): got nothing');
    expect(error.message).toContain('connectors.0.fhir.timeoutMs: got "abc"; expected number, received string (set by BRIDGE__connectors__0__fhir__timeoutMs)');
    expect(error.message).not.toContain('hunter2');
    expect(error.details).toMatchObject({ line: 6, column: 17 });
    // An unknown key a variable added is no line of the file's: the variable is named.
    const added = errorOf(() =>
      loadConfig({
        path,
        env: { BRIDGE__connectors__0__fhir__pageSize: '100', BRIDGE__connectors__0__purview__clientSecret__env: 'PS', BRIDGE__STATEDIR: '/x' },
      }),
    );
    expect(added.message).toContain('connectors.0.purview: unknown key(s) "clientSecret" (values not shown)');
    expect(added.message).toMatch(/connectors\.0\.purview: unknown key\(s\) "clientSecret" .*\(set by BRIDGE__connectors__0__purview__clientSecret__env\)/);
    expect(added.message).toMatch(/\(root\): unknown key\(s\) "STATEDIR" .*\(set by BRIDGE__STATEDIR\)/);
    expect(added.message).not.toMatch(/purview \(line|\(root\) \(line/);

    // JSON is YAML: the same positions. A key a command-line option set names the option, not the file.
    const json = join(dir, 'bridge.config.json');
    writeFileSync(json, '{\n  "connectors": [\n    { "name": "a",\n      "fhir": { "baseUrl": "https://x.example/fhir", "pageSize": 0 } } ]\n}\n');
    const fromJson = errorOf(() => loadConfig({ path: json, env: {}, flags: { stateDir: 7 } }));
    expect(fromJson.message).toContain('connectors.0.fhir.pageSize (line 4, column 66): got 0');
    expect(fromJson.message).toContain('connectors.0.purview (in the section at line 3, column 5): got nothing');
    expect(fromJson.message).toContain('stateDir: got 7; expected string, received number (set by a command-line option)');

    // Through an alias, the anchored value's place; a connector only the environment made has none in the file; an
    // option given no value set nothing, and is not named.
    const anchored = join(dir, 'anchored.yaml');
    writeFileSync(
      anchored,
      [
        'defaults: &fhir',
        '  baseUrl: https://x.example/fhir',
        '  pageSize: 0',
        'connectors:',
        '  - name: a',
        '    fhir: *fhir',
        '    smart: { clientId: c }',
        '    purview: { tenantId: t, appId: a, jobId: j, secret: { env: S } }',
        '',
      ].join('\n'),
    );
    const throughAlias = errorOf(() =>
      loadConfig({ path: anchored, env: { BRIDGE__connectors__1__name: 'b' }, flags: { 'connectors.0.purview.blockRows': undefined } }),
    );
    expect(throughAlias.message).toContain('connectors.0.fhir.pageSize (line 3, column 13): got 0');
    expect(throughAlias.message).toMatch(/ {2}- connectors\.1\.purview: got nothing/);
    expect(throughAlias.message).not.toContain('command-line option');
  });

  it('requires a Purview secret or certificate and unique connector names', () => {
    const noCredential = structuredClone(minimal) as unknown as { connectors: Array<{ purview: Record<string, unknown>; name: string }> };
    delete (noCredential.connectors[0] as { purview: Record<string, unknown> }).purview['secret'];
    expect(errorOf(() => loadConfig({ base: noCredential, env: {} })).message).toContain('one of purview.secret or purview.certificate is required');
    const twice = { connectors: [minimal.connectors[0], minimal.connectors[0]] };
    expect(errorOf(() => loadConfig({ base: twice, env: {} })).message).toContain('connector names must be unique');
  });
});

describe('readSecret', () => {
  it('reads env vars and files, and names what is missing without a value', () => {
    expect(readSecret({ env: 'X_SECRET' }, { X_SECRET: 's3' }, 'purview.secret')).toBe('s3');
    const dir = mkdtempSync(join(tmpdir(), 'bridge-secret-'));
    writeFileSync(join(dir, 's'), 'from-file\n');
    expect(readSecret({ file: join(dir, 's') }, {}, 'purview.secret')).toBe('from-file');
    const error = errorOf(() => readSecret({ env: 'MISSING_SECRET' }, {}, 'purview.secret'));
    expect(error.code).toBe('BRG_ERR_CONFIG_SECRET_MISSING');
    expect(error.message).toBe('purview.secret: environment variable MISSING_SECRET is not set.');
  });
});

describe('profiles', () => {
  it("epic-sandbox presets fhir.epic.com's R4 base and token URL, and explicit values win", () => {
    const { fhir: _fhir, ...rest } = minimal.connectors[0] as Record<string, unknown>;
    const config = loadConfig({ base: { connectors: [{ ...rest, profile: 'epic-sandbox' }] }, env: {} });
    expect(config.connectors[0]?.fhir?.baseUrl).toBe('https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4');
    expect(config.connectors[0]?.smart?.tokenUrl).toBe('https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token');
    const own = loadConfig({ base: minimal, env: {}, flags: { 'connectors.0.profile': 'epic-sandbox' } });
    expect(own.connectors[0]?.fhir?.baseUrl).toBe('https://ehr.example.org/api/FHIR/R4');
    expect(own.connectors[0]?.smart?.tokenUrl).toBe('https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token');
  });
});

describe('errors that say what, never a secret', () => {
  // Issue #14.10: a misspelt secret key in the environment was echoed, value and all.
  it('names an unknown key without its value, and never echoes objects', () => {
    const secret = 'sUp3r-s3cr3t-value-0123456789';
    const error = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__0__purview__clientSecret: secret } }));
    expect(error.message).toContain('connectors.0.purview: unknown key(s) "clientSecret" (values not shown)');
    expect(error.message).not.toContain(secret);
    const nested = errorOf(() => loadConfig({ base: minimal, env: { BRIDGE__connectors__0__fhir: `{"baseUrl":"https://x.example","password":"${secret}"}` } }));
    expect(nested.message).not.toContain(secret);
    const wrongType = errorOf(() => loadConfig({ base: { ...minimal, server: { host: { secret } } }, env: {} }));
    expect(wrongType.message).toContain('server.host: got an object');
    expect(wrongType.message).not.toContain(secret);
  });

  // Issue #14.11: refused at load, not when `bridge serve` first schedules or the first request goes out.
  it('refuses a bad cron expression or time zone, and non-HTTP(S) endpoints', () => {
    const withSchedule = (schedule: object) => ({ connectors: [{ ...minimal.connectors[0], schedule }] });
    expect(errorOf(() => loadConfig({ base: withSchedule({ cron: '0 25 * * *' }), env: {} })).message).toMatch(
      /connectors\.0\.schedule\.cron: got "0 25 \* \* \*"; expected a cron expression/,
    );
    expect(errorOf(() => loadConfig({ base: withSchedule({ cron: '0 2 * * *', timezone: 'Mars/Olympus' }), env: {} })).message).toContain(
      'connectors.0.schedule.timezone: got "Mars/Olympus"; expected an IANA time zone such as America/Chicago',
    );
    expect(loadConfig({ base: withSchedule({ cron: '*/15 * * * *', timezone: 'America/Denver' }), env: {} }).connectors[0]?.schedule.timezone).toBe(
      'America/Denver',
    );
    const ftp = { connectors: [{ ...minimal.connectors[0], fhir: { baseUrl: 'ftp://ehr.example.org/R4' } }] };
    expect(errorOf(() => loadConfig({ base: ftp, env: {} })).message).toContain(
      'connectors.0.fhir.baseUrl: got "ftp://ehr.example.org/R4"; expected an http:// or https:// URL',
    );
    const fileIngest = { connectors: [{ ...minimal.connectors[0], purview: { ...minimal.connectors[0]?.purview, ingestionBase: 'file:///etc/passwd' } }] };
    expect(errorOf(() => loadConfig({ base: fileIngest, env: {} })).message).toContain('purview.ingestionBase');
    // Plain http carries assertions, tokens and PHI in the clear: only to this machine.
    const base = minimal.connectors[0];
    const overHttp = (section: 'fhir' | 'smart' | 'purview', key: string, url: string) => ({
      connectors: [{ ...base, [section]: { ...base?.[section], [key]: url } }],
    });
    for (const [section, key] of [
      ['fhir', 'baseUrl'],
      ['smart', 'tokenUrl'],
      ['smart', 'jku'],
      ['purview', 'authorityHost'],
      ['purview', 'ingestionBase'],
    ] as const) {
      // (A key named like a secret, tokenUrl, does not show its value.)
      expect(errorOf(() => loadConfig({ base: overHttp(section, key, 'http://ehr.example.org/x'), env: {} })).message).toMatch(
        new RegExp(
          `connectors\\.0\\.${section}\\.${key}: got ("http://ehr\\.example\\.org/x"|a text of 24 characters \\(not shown\\)); expected an https:// URL: plain http only to this machine`,
        ),
      );
      for (const local of ['http://127.0.0.1:8080/x', 'http://localhost:8080/x', 'http://[::1]:8080/x', 'https://ehr.example.org/x']) {
        expect(() => loadConfig({ base: overHttp(section, key, local), env: {} }), `${section}.${key} ${local}`).not.toThrow();
      }
    }
  });
});

describe('sources', () => {
  const purview = minimal.connectors[0]?.purview;
  it('defaults to fhir-search, which needs the fhir and smart sections', () => {
    expect(loadConfig({ base: minimal, env: {} }).connectors[0]?.source).toEqual({ type: 'fhir-search' });
    const error = errorOf(() => loadConfig({ base: { connectors: [{ name: 'x', purview }] }, env: {} }));
    expect(error.message).toContain('connectors.0.fhir: got nothing; expected a fhir section: the fhir-search source reads the FHIR server');
  });

  it('refuses an assertion lifetime that with the clock skew passes Epic’s 5 minutes, at load and not at the 2 am run', () => {
    const error = errorOf(() => loadConfig({ base: minimal, env: {}, flags: { 'connectors.0.smart.assertionLifetimeSec': 300 } }));
    expect(error.message).toContain('connectors.0.smart.assertionLifetimeSec');
    expect(error.message).toContain('at most 300 − smart.clockSkewSec');
    expect(loadConfig({ base: minimal, env: {}, flags: { 'connectors.0.smart.assertionLifetimeSec': 270 } })).toBeDefined();
  });

  it('a reference cache too small for one prefetch pass is refused, naming both settings (a Bulk export re-reads locally)', () => {
    const error = errorOf(() => loadConfig({ base: minimal, env: {}, flags: { 'connectors.0.fhir.referenceCacheSize': 1000 } }));
    expect(error.message).toContain('connectors.0.fhir.referenceCacheSize');
    expect(error.message).toContain('at least 4 × fhir.prefetchEvents (8000)');
    expect(
      loadConfig({ base: minimal, env: {}, flags: { 'connectors.0.fhir.referenceCacheSize': 1000, 'connectors.0.fhir.prefetchEvents': 250 } }),
    ).toBeDefined();
    const bulk = { type: 'bulk-export', level: 'system', types: ['AuditEvent', 'Patient', 'Practitioner'] };
    expect(loadConfig({ base: minimal, env: {}, flags: { 'connectors.0.source': bulk, 'connectors.0.fhir.referenceCacheSize': 1000 } })).toBeDefined();
  });

  it('a flat-file source needs no FHIR server unless it enriches from one', () => {
    const drop = { type: 'flat-file', dir: '/drop', archiveDir: '/archive' };
    const config = loadConfig({ base: { connectors: [{ name: 'clarity', source: drop, purview }] }, env: {} });
    expect(config.connectors[0]?.source).toEqual({
      ...drop,
      pattern: '*.txt',
      settleSeconds: 60,
      encoding: 'utf-8',
      maxLineBytes: 1_048_576,
      enrich: { fhir: false },
    });
    expect(config.connectors[0]?.fhir).toBeUndefined();
    const enriching = errorOf(() => loadConfig({ base: { connectors: [{ name: 'clarity', source: { ...drop, enrich: { fhir: true } }, purview }] }, env: {} }));
    expect(enriching.message).toContain('the flat-file source with enrich.fhir reads the FHIR server');
  });

  it('a bulk-export source by group needs the group id', () => {
    const base = { connectors: [{ ...minimal.connectors[0], source: { type: 'bulk-export', level: 'group' } }] };
    expect(errorOf(() => loadConfig({ base, env: {} })).message).toContain('connectors.0.source.groupId: got nothing; expected a Group id with level group');
    const ok = loadConfig({ base: { connectors: [{ ...minimal.connectors[0], source: { type: 'bulk-export' } }] }, env: {} });
    expect(ok.connectors[0]?.source).toMatchObject({
      type: 'bulk-export',
      level: 'system',
      types: ['AuditEvent', 'Patient', 'Practitioner'],
      pollMinSeconds: 2,
    });
  });

  it('a bulk-export source must export AuditEvent: without it a run would move the watermark past events it never read', () => {
    const base = { connectors: [{ ...minimal.connectors[0], source: { type: 'bulk-export', types: ['Patient', 'Practitioner'] } }] };
    const error = errorOf(() => loadConfig({ base, env: {} }));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toContain('connectors.0.source.types: got a list; expected a list that includes AuditEvent (the events pushed); add it');
    const ok = loadConfig({ base: { connectors: [{ ...minimal.connectors[0], source: { type: 'bulk-export', types: ['Patient', 'AuditEvent'] } }] }, env: {} });
    expect(ok.connectors[0]?.source).toMatchObject({ type: 'bulk-export', types: ['Patient', 'AuditEvent'] });
  });
});

describe('refused at load rather than at run time', () => {
  const main = minimal.connectors[0] as (typeof minimal.connectors)[number];

  // A cron croner parses but no date matches: the schedule stopped at once, silently, and `bridge status` said
  // "not scheduled (schedule.enabled is false)".
  it('refuses a cron expression that never fires, in its time zone, naming the key', () => {
    for (const [cron, timezone] of [
      ['0 0 30 2 *', undefined],
      ['0 0 31 4 *', 'America/Chicago'],
      ['0 0 0 30 2 *', 'Etc/UTC'],
    ] as const) {
      const schedule = { cron, ...(timezone ? { timezone } : {}) };
      const error = errorOf(() => loadConfig({ base: { connectors: [{ ...main, schedule }] }, env: {} }));
      expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
      expect(error.message).toContain(`connectors.0.schedule.cron: got ${JSON.stringify(cron)}; expected a cron expression that fires`);
      expect(error.message).toContain(`(in ${timezone ?? "the host's time zone"}), so it never fires`);
    }
    // Disabled or not: status and the lateness default read it too.
    expect(() => loadConfig({ base: { connectors: [{ ...main, schedule: { cron: '0 0 30 2 *', enabled: false } }] }, env: {} })).toThrow(/never fires/);
    // February 29th comes, once in four years.
    expect(loadConfig({ base: { connectors: [{ ...main, schedule: { cron: '0 0 29 2 *' } }] }, env: {} }).connectors[0]?.schedule.cron).toBe('0 0 29 2 *');
  });

  it('refuses two connectors reading the same FHIR server and sending to the same Purview job, naming both and what to do', () => {
    const copy = { ...main, name: 'main-copy' };
    const expectRefused = (connectors: unknown[], shown: string, index = 1) => {
      const error = errorOf(() => loadConfig({ base: { connectors }, env: {} }));
      expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
      expect(error.message).toContain(`connectors.${index}.purview.jobId: got`);
      expect(error.message).toMatch(/connectors "main" and "main-copy" both read /);
      expect(error.message).toContain(shown);
      expect(error.message).toContain('so every event would be sent twice. Keep one connector per source and Purview job');
      expect(error.message).toContain('`bridge state rename <old> <new>`');
    };
    // A copied connector; the same server and job written another way; a Bulk export of the same server.
    expectRefused([main, copy], 'the FHIR server https://ehr.example.org/api/FHIR/R4 and send to Purview job "j"');
    expectRefused(
      [main, { ...copy, fhir: { baseUrl: 'HTTPS://EHR.example.org:443/api/FHIR/R4/' }, purview: { ...main.purview, jobId: 'J' } }],
      'the FHIR server https://ehr.example.org/api/FHIR/R4 and send to Purview job "J"',
    );
    expectRefused([main, { ...copy, source: { type: 'bulk-export' } }], 'the FHIR server https://ehr.example.org/api/FHIR/R4');
    // The job id alone names the job (a GUID), whatever ingestion host or cloud preset reaches it.
    expectRefused([main, { ...copy, purview: { ...main.purview, cloud: 'gcc' } }], 'send to Purview job "j"');
    const drop = (dir: string) => ({ type: 'flat-file', dir, archiveDir: '/archive' });
    const clarity = { name: 'main', source: drop('/mnt/drop'), purview: main.purview };

    // Another job, another server or another folder: different destinations or rows.
    const allowed: unknown[][] = [
      [main, { ...copy, purview: { ...main.purview, jobId: 'other-job' } }],
      [main, { ...copy, fhir: { baseUrl: 'https://ehr.example.org/api/FHIR/R4-test' } }],
      [clarity, { ...clarity, name: 'main-copy', source: drop('/mnt/other-drop') }],
      // Two flat-file connectors on one folder (two patterns, say): their rows are claimed by file content, not by
      // connector, so nothing goes twice.
      [clarity, { ...clarity, name: 'main-copy', source: drop('/mnt/drop/') }],
      // A FHIR connector beside the flat-file one it replaces (README, migrating from a Clarity export): other rows.
      [clarity, copy],
      [{ ...clarity, source: { ...drop('/mnt/drop'), enrich: { fhir: true } }, fhir: main.fhir, smart: main.smart }, copy],
    ];
    for (const connectors of allowed) expect(loadConfig({ base: { connectors }, env: {} }).connectors).toHaveLength(2);
  });

  it('refuses fhir.overlapMinutes longer than state.ledgerRetentionDays, naming the key, in the words a run uses', () => {
    const error = errorOf(() =>
      loadConfig({ base: { ...minimal, state: { ledgerRetentionDays: 1 } }, env: { BRIDGE__connectors__0__fhir__overlapMinutes: '1441' } }),
    );
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toContain(
      'connectors.0.fhir.overlapMinutes: got 1441; expected at most state.ledgerRetentionDays (1 day(s) = 1440 min): each run re-reads the overlap, and the delivery ledger forgets acknowledgements older than its retention, so rows could be sent twice. Lower fhir.overlapMinutes or raise state.ledgerRetentionDays.',
    );
    expect(error.message).toContain('(set by BRIDGE__connectors__0__fhir__overlapMinutes)');
    // A Bulk export re-reads its overlap too; a flat-file source has none (its fhir section only enriches).
    const bulk = { ...main, source: { type: 'bulk-export' }, fhir: { ...main.fhir, overlapMinutes: 2 * 1440 } };
    expect(() => loadConfig({ base: { connectors: [bulk], state: { ledgerRetentionDays: 1 } }, env: {} })).toThrow(/connectors\.0\.fhir\.overlapMinutes/);
    const enriching = {
      name: 'clarity',
      source: { type: 'flat-file', dir: '/drop', archiveDir: '/archive', enrich: { fhir: true } },
      fhir: { ...main.fhir, overlapMinutes: 2 * 1440 },
      smart: main.smart,
      purview: main.purview,
    };
    expect(loadConfig({ base: { connectors: [enriching], state: { ledgerRetentionDays: 1 } }, env: {} }).connectors).toHaveLength(1);
    expect(loadConfig({ base: { ...minimal, state: { ledgerRetentionDays: 1 } }, env: { BRIDGE__connectors__0__fhir__overlapMinutes: '1440' } })).toBeDefined();
  });
});

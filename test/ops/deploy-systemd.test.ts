/**
 * deploy/systemd/: the units are hardened as documented, start real `bridge` command lines with the shipped node flags,
 * and their credentials match the secret files the shipped config names; `systemd-analyze verify` and
 * `systemd-analyze security --offline=yes` accept them (skipped, with the package to install, where systemd-analyze is
 * missing: Debian's `systemd` package provides it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BRIDGE_NODE_OPTIONS } from '../../bench/e2e.js';
import { validateConfig } from '../../src/config/index.js';
import { assertBridgeArgs } from './bridge-args.js';

const root = resolve(import.meta.dirname, '../..');
const dir = resolve(root, 'deploy/systemd');

type Unit = Record<string, Record<string, string[]>>;
/** A unit file as section → key → values (a key may repeat); comments and blank lines dropped. */
function readUnit(name: string): Unit {
  const unit: Unit = {};
  let section = '';
  for (const raw of readFileSync(resolve(dir, name), 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1] ?? '';
      unit[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    expect(eq, `${name}: ${line}`).toBeGreaterThan(0);
    let entries = unit[section];
    if (!entries) {
      entries = {};
      unit[section] = entries;
    }
    const key = line.slice(0, eq);
    let values = entries[key];
    if (!values) {
      values = [];
      entries[key] = values;
    }
    values.push(line.slice(eq + 1));
  }
  return unit;
}
const one = (unit: Unit, section: string, key: string): string | undefined => unit[section]?.[key]?.at(-1);
/** Expands the instance specifier for a connector. */
const instance = (value: string, connector: string): string => value.replaceAll('%i', connector);

const serve = readUnit('bridge.service');
const sync = readUnit('bridge-sync@.service');
const timer = readUnit('bridge-sync@.timer');
const services: Array<[string, Unit]> = [
  ['bridge.service', serve],
  ['bridge-sync@.service', sync],
];
const config = validateConfig(parse(readFileSync(resolve(dir, 'bridge.config.yaml'), 'utf8')), 'deploy/systemd/bridge.config.yaml');
const benchPeakMb = Number(/\| end to end \|[^|]*peak RSS (\d+) MB/.exec(readFileSync(resolve(root, 'bench/results.md'), 'utf8'))?.[1]);

/** LoadCredential= of a unit (instance expanded) as ID → source file. */
function credentials(unit: Unit, connector: string): Map<string, string> {
  return new Map(
    (unit['Service']?.['LoadCredential'] ?? []).map((line) => {
      const [id = '', ...path] = instance(line, connector).split(':');
      return [id, path.join(':')];
    }),
  );
}

describe('deploy/systemd units', () => {
  it('start the compiled CLI with the shipped node flags and real bridge subcommands', () => {
    const prefix = `/usr/bin/node ${BRIDGE_NODE_OPTIONS} /opt/bridge/dist/cli/main.js `;
    expect(one(serve, 'Service', 'ExecStart')).toBe(`${prefix}serve`);
    expect(one(sync, 'Service', 'ExecStart')).toBe(`${prefix}sync --connector %i`);
    for (const [name, unit] of services) {
      const exec = one(unit, 'Service', 'ExecStart') ?? '';
      assertBridgeArgs(instance(exec.slice(prefix.length), 'main').split(' '));
      expect(unit['Service']?.['Environment'], name).toContain('BRIDGE_CONFIG=/etc/bridge/bridge.config.yaml');
    }
    expect(one(serve, 'Service', 'Type')).toBe('simple');
    expect(one(sync, 'Service', 'Type')).toBe('oneshot');
  });

  it('are hardened: a dynamic user sharing one state directory, a read-only system, credentials, no privileges', () => {
    const required: Record<string, string> = {
      DynamicUser: 'yes',
      User: 'bridge',
      Group: 'bridge',
      StateDirectory: 'bridge',
      StateDirectoryMode: '0700',
      UMask: '0077',
      WorkingDirectory: '/var/lib/bridge',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      PrivateMounts: 'yes',
      ProtectProc: 'invisible',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectKernelLogs: 'yes',
      ProtectControlGroups: 'yes',
      ProtectClock: 'yes',
      ProtectHostname: 'yes',
      NoNewPrivileges: 'yes',
      CapabilityBoundingSet: '',
      AmbientCapabilities: '',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      RestrictNamespaces: 'yes',
      RestrictRealtime: 'yes',
      RestrictSUIDSGID: 'yes',
      LockPersonality: 'yes',
      SystemCallArchitectures: 'native',
      SystemCallErrorNumber: 'EPERM',
    };
    for (const [name, unit] of services) {
      for (const [key, value] of Object.entries(required)) expect(one(unit, 'Service', key), `${name}: ${key}=`).toBe(value);
      expect(unit['Service']?.['SystemCallFilter'], name).toEqual(['@system-service', '~@privileged']);
      expect(unit['Service']?.['LoadCredential']?.length, `${name}: LoadCredential=`).toBeGreaterThan(0);
      // V8's JIT needs writable + executable pages: MemoryDenyWriteExecute=yes would kill node.
      expect(one(unit, 'Service', 'MemoryDenyWriteExecute'), name).toBeUndefined();
      expect(unit['Unit']?.['After'], name).toContain('network-online.target');
      expect(unit['Unit']?.['Wants'], name).toContain('network-online.target');
      // Memory: the 1M-event sync peaks at about 300 MB RSS.
      const max = Number(/^(\d+)M$/.exec(one(unit, 'Service', 'MemoryMax') ?? '')?.[1]);
      expect(max * 1024 * 1024, `${name}: MemoryMax ≥ 1.5 × the benchmark's peak RSS`).toBeGreaterThanOrEqual(1.5 * benchPeakMb * 1e6);
      // SIGTERM: the run in flight reaches a block checkpoint within server.shutdownGraceMs, before systemd's SIGKILL.
      expect(Number(one(unit, 'Service', 'TimeoutStopSec')) * 1000, name).toBeGreaterThan(config.server.shutdownGraceMs);
    }
    expect(one(serve, 'Service', 'RestartPreventExitStatus')).toBe('2');
    expect(one(serve, 'Install', 'WantedBy')).toBe('multi-user.target');
  });

  it('the timer starts the sync of its instance daily and catches up after downtime', () => {
    expect(one(timer, 'Timer', 'Unit')).toBe('bridge-sync@%i.service');
    expect(one(timer, 'Timer', 'OnCalendar')).toBe('*-*-* 02:00:00');
    expect(one(timer, 'Timer', 'Persistent')).toBe('true');
    expect(one(timer, 'Install', 'WantedBy')).toBe('timers.target');
  });

  it('the shipped config keeps its files in the state directory and names secrets the units load as credentials', () => {
    for (const path of [config.stateDir, ...config.connectors.map((c) => c.smart?.keysDir ?? '')]) expect(path.startsWith('/var/lib/bridge/')).toBe(true);
    // Only bridge.service reads the API tokens (at start).
    expect(config.server.apiTokens).toEqual({ file: '/run/credentials/bridge.service/api-tokens' });
    expect(credentials(serve, 'main').get('api-tokens')).toBe('/etc/bridge/credentials/api-tokens');
    for (const connector of config.connectors) {
      const ref = connector.purview.secret;
      const file = ref && 'file' in ref ? ref.file : '';
      // /run/credentials/<full unit name, instance included>/<credential ID>
      const match = /^\/run\/credentials\/([^/]+)\/([^/]+)$/.exec(file);
      expect(match, `${connector.name}: purview.secret`).not.toBeNull();
      const [, unitName, id = ''] = match ?? [];
      expect(unitName).toBe(`bridge-sync@${connector.name}.service`);
      expect(connector.schedule.enabled, `${connector.name}: its timer schedules it, not bridge serve`).toBe(false);
      const fromTimerUnit = credentials(sync, connector.name).get(id);
      expect(fromTimerUnit, `${unitName} loads ${id}`).toBe(`/etc/bridge/credentials/${id}`);
      // The other way (bridge serve runs the syncs) loads the same file under the same ID.
      expect(credentials(serve, connector.name).get(id), `bridge.service loads ${id}`).toBe(fromTimerUnit);
    }
  });
});

const analyzer = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const hasAnalyzer = analyzer.status === 0;
const unitsDir = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')));
if (!hasAnalyzer || !unitsDir)
  console.warn('deploy-systemd: systemd-analyze not found, skipping verify and security checks; install it with `apt-get install -y systemd`');

describe.skipIf(!hasAnalyzer || !unitsDir)('deploy/systemd with systemd-analyze (install: apt-get install -y systemd)', () => {
  // A file system root with the units installed, the distribution's units (sysinit.target, …) and a stand-in for
  // /usr/bin/node, so that the check does not depend on where this machine's node lives.
  let fsRoot = '';
  let installed = '';
  beforeAll(() => {
    fsRoot = mkdtempSync(join(tmpdir(), 'bridge-systemd-'));
    installed = join(fsRoot, 'etc/systemd/system');
    mkdirSync(installed, { recursive: true });
    mkdirSync(join(fsRoot, 'usr/lib/systemd'), { recursive: true });
    cpSync(unitsDir as string, join(fsRoot, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    for (const file of ['bridge.service', 'bridge-sync@.service', 'bridge-sync@.timer']) copyFileSync(resolve(dir, file), join(installed, file));
    mkdirSync(join(fsRoot, 'usr/bin'), { recursive: true });
    writeFileSync(join(fsRoot, 'usr/bin/node'), '#!/bin/sh\n');
    chmodSync(join(fsRoot, 'usr/bin/node'), 0o755);
  });
  afterAll(() => {
    if (fsRoot) rmSync(fsRoot, { recursive: true, force: true });
  });

  const analyze = (args: string[]) => spawnSync('systemd-analyze', args, { cwd: installed, encoding: 'utf8' });

  it('systemd-analyze verify accepts the service, an instance of the template and its timer, without a warning', () => {
    const result = analyze(['verify', '--man=no', `--root=${fsRoot}`, 'bridge.service', 'bridge-sync@main.service', 'bridge-sync@main.timer']);
    expect(result.stderr + result.stdout, 'systemd-analyze verify output').toBe('');
    expect(result.status).toBe(0);
  });

  it('systemd-analyze verify notices a broken unit (the check is not vacuous)', () => {
    writeFileSync(join(installed, 'broken.service'), '[Service]\nExecStart=/usr/bin/node-missing serve\nProtectSystm=strict\n');
    const result = analyze(['verify', '--man=no', `--root=${fsRoot}`, 'broken.service']);
    expect(result.stderr).toMatch(/Unknown key 'ProtectSystm'/);
    expect(result.stderr).toMatch(/node-missing/);
    expect(result.status).not.toBe(0);
  });

  it('systemd-analyze security rates both services below exposure 2.0 ("OK")', () => {
    for (const unit of ['bridge.service', 'bridge-sync@main.service']) {
      const result = analyze(['security', '--offline=yes', '--man=no', `--root=${fsRoot}`, '--threshold=20', unit]);
      const exposure = Number(/Overall exposure level for \S+: (\d+\.\d)/.exec(result.stdout)?.[1]);
      expect(result.status, result.stderr).toBe(0);
      expect(exposure, `${unit}:\n${result.stdout}`).toBeLessThan(2);
    }
  });

  it("systemd-analyze calendar accepts the timer's OnCalendar=", () => {
    const result = analyze(['calendar', one(timer, 'Timer', 'OnCalendar') ?? '']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Normalized form: \*-\*-\* 02:00:00/);
  });
});

/**
 * The nspawn check's sandbox, without root or a container: the command the script starts it with, its paths mapped
 * back through the script's bind mounts, runs here and writes the sandbox's config (what the script waits for). A
 * sandbox started from the build the script compiles with tsconfig.build.json cannot run: that dist/ leaves
 * src/sandbox out (exit 2, BRG_ERR_SANDBOX_UNAVAILABLE), and every check after it would fail.
 */
describe('deploy/systemd/check-in-nspawn.sh: the sandbox command, run outside the container', () => {
  const script = readFileSync(resolve(dir, 'check-in-nspawn.sh'), 'utf8').replace(/\\\n\s*/g, ' ');
  const fsRoot = mkdtempSync(join(tmpdir(), 'bridge-nspawn-sandbox-'));
  afterAll(() => rmSync(fsRoot, { recursive: true, force: true }));

  /** Where a path of the container is on this machine: through the script's --bind-ro=SOURCE:TARGET, $repo = the checkout. */
  function onHost(path: string): { source: string; host: string } | undefined {
    const binds = [...script.matchAll(/--bind-ro="?([^":\s]+):([^":\s]+)"?/g)].map(([, source = '', target = '']) => ({ source, target }));
    const bind = binds.filter((b) => path === b.target || path.startsWith(`${b.target}/`)).sort((a, b) => b.target.length - a.target.length)[0];
    if (!bind) return undefined;
    return { source: bind.source, host: bind.source.replace(/^\$repo(?=\/|$)/, root) + path.slice(bind.target.length) };
  }

  it('starts the sandbox from the sources (bound into the container), and that command starts it', async () => {
    const line = script.split('\n').find((l) => l.startsWith('systemd-run --unit=sandbox ')) ?? '';
    expect(line, 'the systemd-run line that starts the sandbox').toMatch(/ sandbox --dir \S+/);
    const workdir = /-p WorkingDirectory=(\S+)/.exec(line)?.[1] ?? '/';
    const argv = line
      .slice(line.indexOf(' /usr/bin/node ') + 1)
      .trim()
      .split(/\s+/);
    expect(argv[0]).toBe('/usr/bin/node');
    // node's own options (a value after --import / --require), then the program.
    let at = 1;
    while (argv[at]?.startsWith('-')) at += ['--import', '--require', '-r'].includes(argv[at] ?? '') ? 2 : 1;
    const program = argv[at] ?? '';
    const programPath = program.startsWith('/') ? program : `${workdir}/${program}`;
    const mapped = onHost(programPath);
    expect(parse(readFileSync(resolve(root, 'tsconfig.build.json'), 'utf8')).exclude).toContain('src/sandbox');
    expect(mapped?.source, `${programPath}: the checkout bound into the container, not the dist/ compiled without src/sandbox`).toMatch(/^\$repo(\/|$)/);
    expect(mapped?.host ?? '', programPath).not.toMatch(/\/dist\//);
    const cwd = onHost(workdir)?.host;
    expect(cwd, `WorkingDirectory ${workdir} is bound from this machine`).toBeDefined();

    // Run it, as the units' user would inside the container, with its --dir in a temp directory.
    const args = argv.slice(1).map((arg, i, all) => (all[i - 1] === '--dir' ? join(fsRoot, 'sandbox') : arg === program ? (mapped?.host ?? arg) : arg));
    const child = spawn(process.execPath, args, { cwd, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('close', (code) => done(code)));
    try {
      const configPath = join(fsRoot, 'sandbox/bridge.config.yaml');
      const deadline = Date.now() + 45_000;
      // What the script's loop waits for: a non-empty config from the sandbox.
      while (!(existsSync(configPath) && readFileSync(configPath, 'utf8').includes('connectors:'))) {
        if (child.exitCode !== null || Date.now() > deadline) expect.fail(`the sandbox did not write its config (exit ${child.exitCode}):\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // The config is written before the endpoints are printed: wait for the line, not only for the file.
      while (!/FHIR R4 base +http:\/\/127\.0\.0\.1:\d+\//.test(output) && child.exitCode === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(output).toMatch(/FHIR R4 base +http:\/\/127\.0\.0\.1:\d+\//);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 60_000);
});

/**
 * Opt-in (BRIDGE_TEST_NSPAWN=1, as root, with Debian's systemd-container): deploy/systemd/check-in-nspawn.sh boots a
 * throwaway systemd container of this host and runs the units for real against the sandbox, in both ways (timer, serve).
 */
describe.runIf(process.env['BRIDGE_TEST_NSPAWN'] === '1')('deploy/systemd units in a systemd-nspawn container', () => {
  it('sync through bridge-sync@sandbox.service, then bridge.service serves and syncs, and stops on SIGTERM', () => {
    const result = spawnSync('bash', [resolve(dir, 'check-in-nspawn.sh')], { encoding: 'utf8', timeout: 400_000 });
    expect(result.stdout).toContain('CHECK-DONE');
    expect(result.stdout).not.toContain('CHECK-FAIL');
    expect(result.status, result.stdout + result.stderr).toBe(0);
  }, 420_000);
});

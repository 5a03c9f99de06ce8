/**
 * The compiled build the Dockerfile ships (`npm run build` → dist/): every module of the CLI loads under plain Node
 * (no tsx), and the compiled CLI works. Built into .test-dist/ so a developer's dist/ is left alone; it sits at the
 * same depth as dist/, so paths resolved from the module (mappings/, package.json) are the same.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const out = join(root, '.test-dist');
const node = (...args: string[]): string => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });

beforeAll(() => {
  rmSync(out, { recursive: true, force: true });
  node(join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', out);
}, 120_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('compiled build', () => {
  it('loads the whole CLI under plain Node and reports the package version', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    expect(node(join(out, 'cli/main.js'), '--version').trim()).toBe(version);
  });

  it('runs a command end to end: keys generate writes a 0600 key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-build-'));
    try {
      const printed = execFileSync(process.execPath, [join(out, 'cli/main.js'), 'keys', 'generate'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, NODE_OPTIONS: '', BRIDGE_KEYS_DIR: join(dir, 'keys') },
      });
      const kid = /^generated ES384 key ([\w-]{43}) in /.exec(printed)?.[1] ?? '';
      expect(kid).not.toBe('');
      expect(statSync(join(dir, 'keys', `${kid}.pem`)).mode & 0o777).toBe(0o600);
      expect(printed).not.toMatch(/PRIVATE KEY/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

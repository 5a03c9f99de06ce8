/**
 * .dockerignore: `docker build .` sends the whole directory to the builder unless this file says otherwise, and a
 * working copy holds SMART private keys (keys/), the state with spool and rejects files (PHI at a real site), the
 * filled-in Compose env file and hundreds of MB of node_modules. The patterns are read with Docker's rules (Go
 * filepath.Match plus `**`, relative to the context root, a pattern that matches a directory excludes what is under it,
 * `!` re-includes, the last match wins): what must stay out stays out, and every file the Dockerfile copies stays in.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const read = (path: string): string => readFileSync(resolve(root, path), 'utf8');

/** One .dockerignore pattern as a regular expression over a slash-separated path relative to the context root. */
function patternRegex(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i] ?? '';
    if (c === '*' && pattern[i + 1] === '*') {
      // `**/` matches any number of directories, none included; a trailing `**` anything.
      const slash = pattern[i + 2] === '/';
      source += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

const rules = (existsSync(resolve(root, '.dockerignore')) ? read('.dockerignore') : '')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'))
  .map((line) => {
    const exception = line.startsWith('!');
    const pattern = (exception ? line.slice(1) : line).replace(/^\/+/, '').replace(/\/+$/, '');
    return { exception, regex: patternRegex(pattern), pattern };
  });

/** True when Docker leaves `path` out of the build context: the path or one of its parent directories matches. */
function ignored(path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let out = false;
  for (const rule of rules) if (candidates.some((candidate) => rule.regex.test(candidate))) out = !rule.exception;
  return out;
}

function filesUnder(dir: string): string[] {
  return readdirSync(resolve(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

describe('.dockerignore', () => {
  it('keeps secrets, state, local installs and scratch work out of the build context', () => {
    expect(existsSync(resolve(root, '.dockerignore'))).toBe(true);
    for (const path of [
      'keys/5f2c.pem',
      'keys/jwks.json',
      'keys/active-kid',
      'state/bridge.sqlite',
      'state/spool/run-1.csv',
      'state/rejects/run-1.ndjson',
      'state/sandbox/purview-app-secret',
      'deploy/bridge.env',
      '.env',
      'node_modules/fastify/package.json',
      'dist/cli/main.js',
      '.vitest-results.json',
      '.vitest-artifacts/trace.zip',
      '.scratch/notes.md',
      '.tmp-bench/events.ndjson',
      'bench/.work/run.csv',
      'bridge.log',
      'state/runs/run-1.log',
      '.git/HEAD',
    ]) {
      expect(ignored(path), `${path} is left out`).toBe(true);
    }
    // What git keeps out of the repository (local, possibly private) stays out of the image's context too.
    for (const line of read('.gitignore').split('\n')) {
      if (line.trim() === '' || line.startsWith('#') || line.startsWith('!')) continue;
      const sample = line.replace(/^\/+/, '').replace(/\/+$/, '').replaceAll('*', 'x');
      expect(ignored(sample), `.gitignore's ${line} (${sample})`).toBe(true);
    }
  });

  it('keeps every file the Dockerfile copies, the committed env example included', () => {
    const dockerfile = read('Dockerfile');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/));
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'bin', 'mappings']));
    let files = 0;
    for (const source of sources) {
      const paths = statSync(resolve(root, source)).isDirectory() ? filesUnder(source) : [source];
      for (const path of paths) {
        files += 1;
        expect(ignored(path.split(sep).join('/')), `${path} (COPY ${source}) stays in the context`).toBe(false);
      }
    }
    expect(files).toBeGreaterThan(50);
    // src/smart/keys.ts is no `keys` directory: the patterns are anchored at the context root.
    expect(ignored('src/smart/keys.ts')).toBe(false);
    expect(ignored('deploy/bridge.env.example')).toBe(false);
  });
});

#!/usr/bin/env node
// Runs the compiled build (dist/, `npm run build`: less memory and a faster start) when it is at least as new as
// every source file; otherwise runs the TypeScript sources through tsx, so a fresh clone needs no build step and an
// edited checkout never runs stale code.
// dist/ is compiled without the offline sandbox (a development tool, tsconfig.build.json), so `bridge sandbox` and
// `bridge demo` run the sources when dist/ has none. tsx is a dev dependency: a production install (`npm ci --omit=dev`)
// runs dist/ only, and says so when dist/ is missing or stale instead of failing on the missing tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const builtUrl = new URL('../dist/cli/main.js', import.meta.url);
const built = fileURLToPath(builtUrl);

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** tsx's loader API, or undefined when tsx is not installed (a production install). */
async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch (error) {
    if (error?.code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

const sources = `${root}src`;
const hasSources = existsSync(`${sources}/cli/main.ts`);
const fresh = existsSync(built) && (!hasSources || statSync(built).mtimeMs >= newestSource(sources));
const command = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
const sandboxMissing = (command === 'sandbox' || command === 'demo') && !existsSync(`${root}dist/sandbox/index.js`);

const tsx = hasSources && (!fresh || sandboxMissing) ? await loadTsx() : undefined;
if (tsx) {
  tsx.register();
  await import('../src/cli/main.ts');
} else if (fresh) {
  // Without tsx, `bridge sandbox` / `bridge demo` run the build too, which says how to get the sandbox (exit 2).
  await import(builtUrl.href);
} else {
  process.stderr.write(
    `bridge: ${existsSync(built) ? 'dist/ is older than src/' : 'dist/ is missing'} and tsx, which runs the sources, is a dev dependency that is not installed.\n` +
      '  what to do: build it (`npm ci && npm run build && npm prune --omit=dev`), or install the dev dependencies (`npm ci --include=dev`).\n',
  );
  process.exitCode = 2;
}

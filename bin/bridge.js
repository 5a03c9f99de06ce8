#!/usr/bin/env node
// Runs the compiled build (dist/, `npm run build`: less memory and a faster start) when it is at least as new as
// every source file; otherwise runs the TypeScript sources through tsx, so a fresh clone needs no build step and an
// edited checkout never runs stale code.
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

const sources = `${root}src`;
const useBuild = existsSync(built) && (!existsSync(sources) || statSync(built).mtimeMs >= newestSource(sources));
if (useBuild) {
  await import(builtUrl.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}

import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';
import { systemClock } from '../../src/clock.js';
import { configSchema } from '../../src/config/schema.js';
import { BRIDGE_NODE_OPTIONS } from '../../bench/e2e.js';

const root = resolve(import.meta.dirname, '../..');
interface Service { profiles?: string[]; command?: string[]; entrypoint?: string[]; env_file?: string[]; volumes?: string[]; ports?: string[]; environment?: Record<string, string>; network_mode?: string; depends_on?: string[] }
const compose = parse(readFileSync(resolve(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const dockerfile = readFileSync(resolve(root, 'Dockerfile'), 'utf8');
const packageJson = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
const program = buildProgram({ env: {}, print: () => undefined, clock: systemClock, stdout: process.stdout, signal: new AbortController().signal, stopSignal: new AbortController().signal });

/** Checks a `bridge …` argv against the real command tree: the subcommand and every long flag must exist. */
function assertBridgeArgs(args: readonly string[]): void {
  const [name, ...rest] = args;
  const command = program.commands.find((c: Command) => c.name() === name);
  expect(command, `bridge ${name}`).toBeDefined();
  const flags = new Set(command?.options.map((o) => o.long));
  for (const arg of rest.filter((a) => a.startsWith('--'))) expect(flags, `bridge ${name} ${arg}`).toContain(arg);
}

describe('docker-compose.yml and Dockerfile', () => {
  it('has a sandbox profile that needs no credentials and a production profile with env files', () => {
    const profiles = new Set(Object.values(compose.services).flatMap((s) => s.profiles ?? []));
    expect([...profiles].sort()).toEqual(['production', 'sandbox']);
    for (const service of Object.values(compose.services).filter((s) => s.profiles?.includes('sandbox'))) expect(service.env_file).toBeUndefined();
  });

  it('names only commands and flags that exist', () => {
    for (const service of Object.values(compose.services)) {
      if (service.command) assertBridgeArgs(service.command);
      const shell = service.entrypoint?.join(' ') ?? '';
      for (const match of shell.matchAll(/dist\/cli\/main\.js ([^;&]+)/g)) assertBridgeArgs((match[1] ?? '').trim().split(/\s+/));
    }
    const cmd = /CMD \["([^"]+)"\]/.exec(dockerfile)?.[1];
    assertBridgeArgs([cmd ?? 'missing']);
    const flags = BRIDGE_NODE_OPTIONS.split(' ');
    expect(dockerfile).toContain(`ENTRYPOINT ${JSON.stringify(['node', ...flags, 'dist/cli/main.js']).replaceAll(',', ', ')}`);
    // The benchmark measures the bridge with the flags it ships with, everywhere it is started.
    expect(compose.services['bridge-sandbox']?.entrypoint?.join(' ')).toContain(`node ${BRIDGE_NODE_OPTIONS} dist/cli/main.js serve`);
    for (const script of ['bridge', 'demo']) expect(packageJson.scripts[script]).toContain(`node ${BRIDGE_NODE_OPTIONS} --import tsx src/cli/main.ts`);
    // dist/ is what `npm run build` writes from src/: the entry point must be the compiled CLI entry.
    expect(existsSync(resolve(root, 'src/cli/main.ts'))).toBe(true);
    expect(dockerfile).toMatch(/RUN npm run build/);
    expect(packageJson.scripts['build']).toBe('tsc -p tsconfig.build.json');
    expect(parse(readFileSync(resolve(root, 'tsconfig.build.json'), 'utf8')).compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
  });

  it('names only files that exist in the repository', () => {
    for (const service of Object.values(compose.services)) {
      for (const file of service.env_file ?? []) expect(existsSync(resolve(root, file)), file).toBe(true);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] ?? '';
        if (source.startsWith('.')) expect(existsSync(resolve(root, source)), source).toBe(true);
        else expect(compose.volumes).toHaveProperty(source);
      }
    }
    for (const match of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const source of (match[1] ?? '').split(/\s+/)) expect(existsSync(resolve(root, source)), source).toBe(true);
    }
  });

  it('uses the default server port and a healthcheck on /healthz, and a config that validates', () => {
    const defaults = configSchema.parse({ connectors: [parse(readFileSync(resolve(root, 'deploy/bridge.config.yaml'), 'utf8')).connectors[0]] });
    expect(defaults.server.port).toBe(8080);
    expect(dockerfile).toContain(`EXPOSE ${defaults.server.port}`);
    expect(dockerfile).toContain(`http://127.0.0.1:${defaults.server.port}/healthz`);
    const ports = Object.values(compose.services).flatMap((s) => s.ports ?? []);
    for (const port of ports) expect(port.endsWith(`:${defaults.server.port}`)).toBe(true);
    expect(dockerfile).toMatch(/USER bridge/);
    expect(dockerfile).toMatch(/VOLUME \["\/app\/state", "\/app\/keys"\]/);
  });
});

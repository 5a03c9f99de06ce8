/**
 * The deployment documents stay true to the code: docs/deployment.md links every recipe, every `bridge` command line in
 * the recipes names real subcommands and flags (with the mandatory ones of `push`), the Windows page maps every
 * parameter of sample_script.ps1 and lists every exit status the CLI has, and the compose sandbox walkthrough uses the
 * sandbox's data window, the token file and the service names of docker-compose.yml; the systemd and Kubernetes recipes
 * show a proxy setting the bridge reads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BRIDGE_NODE_OPTIONS } from '../../bench/e2e.js';
import { loadConfig } from '../../src/config/index.js';
import { ERROR_CODES } from '../../src/errors.js';
import { bypassesProxy, resolveNetwork } from '../../src/net/index.js';
import { SANDBOX_INITIAL_LOOKBACK_HOURS } from '../../src/sandbox/index.js';
import { assertBridgeArgs } from './bridge-args.js';

const root = resolve(import.meta.dirname, '../..');
const read = (path: string): string => readFileSync(resolve(root, path), 'utf8');

const recipes = ['docs/deployment.md', 'docs/windows-task-scheduler.md', 'deploy/systemd/README.md', 'deploy/kubernetes/README.md'];
/** Every bridge command line in a document: after the compiled CLI, `npm run bridge --` or a compose `run --rm bridge`. */
function bridgeCommandLines(text: string): string[][] {
  return [...text.matchAll(/(?:dist[\\/]cli[\\/]main\.js|npm run bridge --|run --rm bridge) ([^\n`'"|>#]+)/g)].map((m) => (m[1] ?? '').trim().split(/\s+/));
}

describe('deployment documents', () => {
  it('docs/deployment.md links every recipe, and every relative link resolves', () => {
    const page = read('docs/deployment.md');
    for (const target of ['../deploy/systemd/README.md', '../deploy/kubernetes/README.md', 'windows-task-scheduler.md', '../docker-compose.yml']) {
      expect(page).toContain(`](${target})`);
    }
    for (const doc of recipes) {
      for (const [, link] of read(doc).matchAll(/\]\(([^)#]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(link ?? '')) continue;
        expect(existsSync(resolve(root, dirname(doc), link ?? '')), `${doc}: ${link}`).toBe(true);
      }
    }
  });

  it('every bridge command line in the recipes is a real command with real flags', () => {
    let count = 0;
    for (const doc of recipes) {
      for (const args of bridgeCommandLines(read(doc))) {
        const command = assertBridgeArgs(args);
        count += 1;
        // push: every mandatory option is given (as sample_script.ps1's parameters were).
        for (const option of command.options.filter((o) => o.mandatory)) expect(args, `${doc}: bridge ${args.join(' ')}`).toContain(option.long);
        expect(args, `${doc}: a secret is never a command-line value`).not.toContain('--app-secret');
      }
    }
    expect(count).toBeGreaterThanOrEqual(8);
  });

  it('Windows: node runs with the shipped flags, every sample_script.ps1 parameter is mapped, every exit status is listed', () => {
    const page = read('docs/windows-task-scheduler.md');
    for (const line of page.split('\n').filter((l) => /main\.js (push|sync)/.test(l))) {
      expect(line.replace(/^.*?(--max-old-space-size)/, '$1')).toMatch(new RegExp(`^${BRIDGE_NODE_OPTIONS} C:\\\\bridge\\\\dist\\\\cli\\\\main\\.js `));
    }
    for (const [param, flag] of [
      ['-tenantId', '--tenant-id'],
      ['-appId', '--app-id'],
      ['-jobId', '--job-id'],
      ['-filePath', '--file'],
    ]) {
      expect(page, param).toMatch(new RegExp(`\\| \`${param}\` \\| \`${flag}\``));
    }
    expect(page).toMatch(/\| `-appSecret` \| never on the command line: `--app-secret-file <file>`, or the environment variable `PURVIEW_APP_SECRET`/);
    const table = page.slice(page.indexOf('## Exit status'));
    const listed = [...table.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    const exits = [0, ...new Set(Object.values(ERROR_CODES).map((c) => c.exit))].sort((a, b) => a - b);
    expect(listed).toEqual(exits);
  });

  it("the compose sandbox walkthrough reaches the sandbox's data, uses the token file and the services of docker-compose.yml", () => {
    const page = read('docs/deployment.md');
    const compose = parse(read('docker-compose.yml')) as {
      services: Record<string, { environment?: Record<string, string>; ports?: string[]; working_dir?: string }>;
    };
    // "Sync now", no window: `bridge sandbox` fills the day before today, and its config's first sync reads back far enough.
    expect(page).not.toMatch(/-d '\{"since"/);
    expect(SANDBOX_INITIAL_LOOKBACK_HOURS).toBeGreaterThanOrEqual(48);
    const exec = /docker compose --profile sandbox exec (\S+) cat (\S+)\)/.exec(page);
    const service = compose.services[exec?.[1] ?? ''];
    expect(service, 'the service the token is read from').toBeDefined();
    const tokens = loadConfig({ base: { connectors: [parse(read('deploy/bridge.config.yaml')).connectors[0]] }, env: { ...service?.environment } }).server
      .apiTokens;
    expect(tokens).toEqual({ file: exec?.[2] });
    expect(compose.services['sandbox']?.ports).toEqual(['127.0.0.1:8080:8080']);
    for (const url of page.matchAll(/http:\/\/([\d.]+):(\d+)\//g)) expect(`${url[1]}:${url[2]}`).toBe('127.0.0.1:8080');
    expect(page).toContain('/v1/connectors/sandbox/syncs');
  });

  it('the systemd and Kubernetes recipes say how to give the bridge a proxy, in a form the bridge reads', () => {
    // Hospital egress usually goes through a forward proxy; the EHR inside the network usually does not.
    const recipesEnv: Array<[string, Record<string, string>]> = [];
    const systemd = read('deploy/systemd/README.md').replace(/\s+/g, ' ');
    const dropIn = /Environment=((?:[A-Z_]+=[^\s`]+ ?)+)`/.exec(systemd)?.[1] ?? '';
    recipesEnv.push([
      'deploy/systemd/README.md',
      Object.fromEntries(
        dropIn
          .trim()
          .split(' ')
          .map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]),
      ),
    ]);
    const kubernetes = read('deploy/kubernetes/README.md').replace(/\s+/g, ' ');
    const podEnv = (parse(/`(env: \[[^`]+\])`/.exec(kubernetes)?.[1] ?? 'env: []') as { env: Array<{ name: string; value: string }> }).env;
    recipesEnv.push(['deploy/kubernetes/README.md', Object.fromEntries(podEnv.map((e) => [e.name, e.value]))]);
    for (const [doc, env] of recipesEnv) {
      expect(Object.keys(env).sort(), doc).toEqual(['HTTPS_PROXY', 'NO_PROXY']);
      const network = resolveNetwork(undefined, env);
      expect(network.httpsProxy?.url, `${doc}: HTTPS_PROXY`).toBe(new URL(env['HTTPS_PROXY'] ?? '').origin);
      expect(bypassesProxy(new URL(`https://${env['NO_PROXY']}/api/FHIR/R4`), network.noProxy), `${doc}: NO_PROXY`).toBe(true);
      expect(bypassesProxy(new URL('https://login.microsoftonline.com/'), network.noProxy), doc).toBe(false);
      // Or the config's own setting, which overrides the environment.
      expect(read(doc), doc).toContain('`network.proxy`');
    }
  });
});

/**
 * docker-compose.yml and the Dockerfile, checked as far as a machine without a Docker engine allows: the command lines
 * name real subcommands and flags; the bridge listens on every interface inside its container and is published on the
 * host's 127.0.0.1 only; volumes are named volumes the image's non-root user owns; and the sandbox profile works as
 * documented: both of its entry-point scripts run here (in a temp directory standing in for /app, with `node` mapping
 * the image's dist/cli/main.js to the sources), and a sync triggered over the API with the generated token completes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BRIDGE_NODE_OPTIONS } from '../../bench/e2e.js';
import { dayBefore } from '../../src/cli/commands/sandbox.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/index.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { assertBridgeArgs } from './bridge-args.js';

const root = resolve(import.meta.dirname, '../..');
interface Healthcheck {
  test?: string[];
}
interface Service {
  build?: string | { context?: string; target?: string };
  profiles?: string[];
  command?: string[];
  entrypoint?: string[];
  env_file?: Array<string | { path: string; required?: boolean }>;
  volumes?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  network_mode?: string;
  depends_on?: string[] | Record<string, { condition?: string }>;
  working_dir?: string;
  healthcheck?: Healthcheck;
  stop_grace_period?: string;
  mem_limit?: string;
  restart?: string;
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  security_opt?: string[];
}
const compose = parse(readFileSync(resolve(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const dockerfile = readFileSync(resolve(root, 'Dockerfile'), 'utf8');
const packageJson = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

const services = Object.entries(compose.services);
/** Peak RSS of the benchmark's 1M-event end-to-end run (the Kubernetes and systemd limits are sized from it too). */
const benchPeakMb = Number(/\| end to end \|[^|]*peak RSS (\d+) MB/.exec(readFileSync(resolve(root, 'bench/results.md'), 'utf8'))?.[1]);
/** The multi-token line deploy/bridge.env.example documents (a comment there), as an operator would copy it. */
const tokensLine = /^#\s+(BRIDGE_API_TOKENS=".*")\s*$/m.exec(readFileSync(resolve(root, 'deploy/bridge.env.example'), 'utf8'))?.[1];
const serving = services.filter(([, s]) => s.command?.[0] === 'serve' || / dist\/cli\/main\.js serve\b/.test(s.entrypoint?.join(' ') ?? ''));
const uid = /useradd [^\n]*--uid (\d+)/.exec(dockerfile)?.[1];

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
      for (const match of shell.matchAll(/(?:dist\/cli\/main\.js|src\/cli\/main\.ts) ([^;&]+)/g)) assertBridgeArgs((match[1] ?? '').trim().split(/\s+/));
    }
    const cmd = /CMD \["([^"]+)"\]/.exec(dockerfile)?.[1];
    assertBridgeArgs([cmd ?? 'missing']);
    const flags = BRIDGE_NODE_OPTIONS.split(' ');
    expect(dockerfile).toContain(`ENTRYPOINT ${JSON.stringify(['node', ...flags, 'dist/cli/main.js']).replaceAll(',', ', ')}`);
    // The benchmark measures the bridge with the flags it ships with, everywhere it is started.
    expect(compose.services['bridge-sandbox']?.entrypoint?.join(' ')).toContain(`node ${BRIDGE_NODE_OPTIONS} dist/cli/main.js serve`);
    for (const service of Object.values(compose.services)) {
      for (const match of (service.entrypoint?.join(' ') ?? '').matchAll(/exec node (.*?) ?dist\/cli\/main\.js/g)) expect(match[1]).toBe(BRIDGE_NODE_OPTIONS);
      for (const match of (service.entrypoint?.join(' ') ?? '').matchAll(/exec node (.*?) --import tsx src\/cli\/main\.ts/g))
        expect(match[1]).toBe(BRIDGE_NODE_OPTIONS);
    }
    for (const script of ['bridge', 'demo']) expect(packageJson.scripts[script]).toContain(`node ${BRIDGE_NODE_OPTIONS} --import tsx src/cli/main.ts`);
    // dist/ is what `npm run build` writes from src/: the entry point must be the compiled CLI entry.
    expect(existsSync(resolve(root, 'src/cli/main.ts'))).toBe(true);
    expect(dockerfile).toMatch(/RUN npm run build/);
    // Emptied first: tsc never removes what it no longer compiles (an older dist/sandbox/ would pass for current).
    expect(packageJson.scripts['build']).toMatch(
      /^node -e "require\('node:fs'\)\.rmSync\('dist', \{ recursive: true, force: true \}\)" && tsc -p tsconfig\.build\.json$/,
    );
    expect(parse(readFileSync(resolve(root, 'tsconfig.build.json'), 'utf8')).compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
  });

  it('names only files that exist in the repository', () => {
    for (const service of Object.values(compose.services)) {
      for (const entry of service.env_file ?? []) {
        // `${VAR:-default}`: the operator's own secrets file, else the committed (empty) example.
        const file = typeof entry === 'string' ? (/^\$\{\w+:-(.+)\}$/.exec(entry)?.[1] ?? entry) : entry.path;
        expect(existsSync(resolve(root, file)), file).toBe(true);
      }
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

  it('gives every serving container longer to stop than the run in flight needs to reach its block checkpoint', () => {
    const graceMs = configSchema.parse({ connectors: [parse(readFileSync(resolve(root, 'deploy/bridge.config.yaml'), 'utf8')).connectors[0]] }).server
      .shutdownGraceMs;
    expect(serving.length).toBeGreaterThan(0);
    for (const [name, service] of serving) {
      const seconds = Number(/^(\d+)s$/.exec(service.stop_grace_period ?? '')?.[1] ?? 10); // Docker's default: 10 s
      expect(seconds * 1000, `${name}: stop_grace_period`).toBeGreaterThan(graceMs);
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

  it("publishes the API on the host's 127.0.0.1 only, and the bridge listens on every interface inside its container", () => {
    const ports = services.flatMap(([, s]) => s.ports ?? []);
    expect(ports.length).toBeGreaterThan(0);
    for (const port of ports) expect(port, 'published on loopback only').toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    expect(serving.map(([name]) => name).sort()).toEqual(['bridge', 'bridge-sandbox']);
    for (const [name, service] of serving) {
      // Docker forwards a published port to the container's own interface, which a bridge bound to 127.0.0.1 never sees.
      expect(service.environment?.['BRIDGE__server__host'], name).toBe('0.0.0.0');
      expect(service.environment?.['BRIDGE__server__port'], name).toBe('8080');
      // Its port is published either by itself or by the service whose network namespace it shares.
      const owner = service.network_mode?.startsWith('service:') ? compose.services[service.network_mode.slice('service:'.length)] : service;
      expect(owner?.ports, name).toEqual(['127.0.0.1:8080:8080']);
    }
    // The production config as the container sees it: file + compose environment.
    const production = compose.services['bridge'] as Service;
    const config = loadConfig({ path: resolve(root, 'deploy/bridge.config.yaml'), env: { ...production.environment } });
    expect(config.server).toMatchObject({ host: '0.0.0.0', port: 8080 });
    expect(config.server.apiTokens).toEqual({ env: 'BRIDGE_API_TOKENS' });
    expect(readFileSync(resolve(root, 'deploy/bridge.env.example'), 'utf8')).toMatch(/^BRIDGE_API_TOKENS=$/m);
    // Where the docs say to keep the filled-in copy, git never takes it.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's own variable syntax, compared as written.
    expect(production.env_file).toEqual(['${BRIDGE_ENV_FILE:-./deploy/bridge.env.example}']);
    expect(readFileSync(resolve(root, '.gitignore'), 'utf8').split('\n')).toContain('deploy/bridge.env');
  });

  it('several API tokens are documented on one line of the env file, the only form an env file keeps', () => {
    // An env file is one variable per line: a second token on a line of its own became a variable of its own (Compose
    // 1.29: `tok2: null`), and its client got 401 with nothing to say why.
    expect(tokensLine, 'deploy/bridge.env.example shows the line for two tokens').toBeDefined();
    const value = /^BRIDGE_API_TOKENS="(.*)"$/.exec(tokensLine ?? '')?.[1] ?? '';
    expect(value.split('\\n'), 'two tokens, separated by \\n').toHaveLength(2);
    for (const token of value.split('\\n')) expect(token).toMatch(/^[\w-]+$/);
    const guide = readFileSync(resolve(root, 'docs/deployment.md'), 'utf8');
    expect(guide).toContain(`\`${tokensLine}\``);
    for (const [file, text] of [
      ['docs/deployment.md', guide],
      ['deploy/bridge.env.example', readFileSync(resolve(root, 'deploy/bridge.env.example'), 'utf8')],
    ] as const) {
      expect(text.replace(/\s+/g, ' '), `${file}: tokens "one per line" in an env file`).not.toMatch(/BRIDGE_API_TOKENS[^.;]*\bone (token )?per line/);
    }
  });

  it("the production service's memory limit is the Kubernetes and systemd budget, and a restart survives a reboot", () => {
    const production = compose.services['bridge'] as Service;
    expect(benchPeakMb).toBeGreaterThan(100);
    const mb = Number(/^(\d+)m$/.exec(production.mem_limit ?? '')?.[1]);
    expect(mb * 1024 * 1024, "mem_limit ≥ 1.5 × the benchmark's peak RSS (heap cap 256 MB + native)").toBeGreaterThanOrEqual(1.5 * benchPeakMb * 1e6);
    // The same budget as the Kubernetes limit (512Mi) and systemd's MemoryMax=512M.
    expect(production.mem_limit).toBe('512m');
    expect(readFileSync(resolve(root, 'deploy/systemd/bridge.service'), 'utf8')).toMatch(/^MemoryMax=512M$/m);
    expect(readFileSync(resolve(root, 'deploy/kubernetes/deployment.yaml'), 'utf8')).toMatch(/limits: \{ cpu: "1", memory: 512Mi \}/);
    // Docker cannot exempt an exit status from restarts (systemd's RestartPreventExitStatus=2); on-failure[:N] would
    // not bring the service back after a reboot. So unless-stopped, and the guide says what a config error looks like.
    expect(production.restart).toBe('unless-stopped');
    expect(readFileSync(resolve(root, 'docs/deployment.md'), 'utf8').replace(/\s+/g, ' ')).toMatch(/exit status 2[^.]*Restarting/);
  });

  it('mounts only named volumes where the bridge writes, created by the image and owned by its non-root user', () => {
    expect(uid).toBe('10001');
    expect(dockerfile).toMatch(/groupadd [^\n]*--gid 10001 bridge/);
    const created = /mkdir -p ((?:\/app\/\w+ ?)+)/.exec(dockerfile)?.[1]?.trim().split(' ') ?? [];
    const owned = /chown bridge:bridge ((?:\/app\/\w+ ?)+)/.exec(dockerfile)?.[1]?.trim().split(' ') ?? [];
    const volumesInImage = JSON.parse(/VOLUME (\[.*\])/.exec(dockerfile)?.[1] ?? '[]') as string[];
    expect(owned.sort()).toEqual([...volumesInImage].sort());
    expect(created.sort()).toEqual([...volumesInImage].sort());
    for (const [name, service] of services) {
      for (const volume of service.volumes ?? []) {
        const [source = '', target = '', mode] = volume.split(':');
        if (source.startsWith('.')) {
          // A bind mount keeps the host's owner: only read-only inputs are bind-mounted.
          expect(mode, `${name}: ${volume}`).toBe('ro');
        } else {
          expect(volumesInImage, `${name}: ${volume} must be a directory the image creates for uid ${uid}`).toContain(target);
        }
      }
    }
    // Production: state and keys (the config's stateDir and keysDir) are both named volumes.
    const production = compose.services['bridge'] as Service;
    const config = loadConfig({ path: resolve(root, 'deploy/bridge.config.yaml'), env: { ...production.environment } });
    const targets = new Map((production.volumes ?? []).map((v) => [v.split(':')[1], v.split(':')[0]]));
    expect(compose.volumes).toHaveProperty(targets.get(config.stateDir) ?? 'missing');
    expect(compose.volumes).toHaveProperty(targets.get(config.connectors[0]?.smart?.keysDir ?? '') ?? 'missing');
  });

  it('the production service is hardened as the Kubernetes pods are: read-only root, /tmp in memory, no capabilities, no new privileges', () => {
    const production = compose.services['bridge'] as Service;
    expect(production.read_only).toBe(true);
    expect(production.tmpfs).toEqual(['/tmp']);
    expect(production.cap_drop).toEqual(['ALL']);
    expect(production.security_opt).toEqual(['no-new-privileges:true']);
    // A read-only root leaves the bridge its volumes and /tmp: the state and keys directories are volumes, not the image's.
    const config = loadConfig({ path: resolve(root, 'deploy/bridge.config.yaml'), env: { ...production.environment } });
    const writable = new Set([...(production.volumes ?? []).filter((v) => !v.endsWith(':ro')).map((v) => v.split(':')[1]), ...(production.tmpfs ?? [])]);
    for (const dir of [config.stateDir, ...config.connectors.map((c) => c.smart?.keysDir ?? config.stateDir), '/tmp']) expect(writable, dir).toContain(dir);
    // The Kubernetes pods' bridge container, field for field.
    const k8s = parse(readFileSync(resolve(root, 'deploy/kubernetes/deployment.yaml'), 'utf8').split(/^---$/m)[0] ?? '') as {
      spec: { template: { spec: { containers: Array<{ name: string; securityContext: Record<string, unknown> }> } } };
    };
    expect(k8s.spec.template.spec.containers.find((c) => c.name === 'bridge')?.securityContext).toMatchObject({
      readOnlyRootFilesystem: production.read_only,
      allowPrivilegeEscalation: false,
      capabilities: { drop: production.cap_drop },
    });
  });

  it('the production image (the default target) has no sandbox; only the sandbox service builds the sandbox target', () => {
    const stages = [...dockerfile.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)].map((m) => ({ from: m[1], name: m[2] }));
    // The last stage is the default target of `docker build .` and of every service without a target: the runtime.
    expect(stages.at(-1)).toEqual({ from: 'runtime', name: undefined });
    expect(stages.map((stage) => stage.name)).toContain('sandbox');
    const stage = (name: string): string => dockerfile.slice(dockerfile.search(new RegExp(`^FROM \\S+ AS ${name}$`, 'm'))).split(/^FROM /m)[1] ?? '';
    // The runtime copies everything from the pruned stage, which checks that no sandbox package or dist/sandbox is left.
    expect(stage('runtime')).not.toMatch(/--from=build\b/);
    expect(stage('production-deps')).toMatch(/npm prune --omit=dev/);
    for (const path of ['node_modules/@medplum', 'node_modules/selfsigned', 'node_modules/tsx', 'dist/sandbox'])
      expect(stage('production-deps')).toContain(`test ! -e ${path}`);
    // The sandbox target adds the dev dependencies and the sources (dist/ is compiled without the sandbox).
    expect(stage('sandbox')).toMatch(/COPY --from=build \/app\/node_modules \.\/node_modules/);
    expect(stage('sandbox')).toMatch(/COPY --from=build \/app\/src \.\/src/);
    expect(parse(readFileSync(resolve(root, 'tsconfig.build.json'), 'utf8')).exclude).toContain('src/sandbox');
    for (const [name, service] of services) {
      const target = typeof service.build === 'object' ? service.build.target : undefined;
      expect(target, name).toBe(name === 'sandbox' ? 'sandbox' : undefined);
      // Only the sandbox target can run `bridge sandbox` (from the sources); every other service runs the production image's dist/.
      const shell = service.entrypoint?.join(' ') ?? '';
      if (name === 'sandbox') expect(shell).toMatch(/ --import tsx src\/cli\/main\.ts sandbox /);
      else expect(shell).not.toMatch(/src\/|tsx| sandbox /);
    }
  });

  it('sandbox profile: the bridge waits for a healthy (freshly written) sandbox and is given an API token', () => {
    const sandbox = compose.services['sandbox'] as Service;
    const bridge = compose.services['bridge-sandbox'] as Service;
    expect(bridge.depends_on).toEqual({ sandbox: { condition: 'service_healthy' } });
    expect(bridge.network_mode).toBe('service:sandbox');
    expect(sandbox.healthcheck?.test).toEqual(['CMD', 'test', '-s', '/app/state/sandbox/bridge.config.yaml']);
    expect(sandbox.entrypoint?.join(' ')).toMatch(/rm -rf state\/sandbox && exec node .* sandbox --dir state\/sandbox$/);
    for (const service of [sandbox, bridge]) expect(service.working_dir).toBe('/app');
    // The env override parses as a { file } secret reference (BRIDGE__ values that are JSON are used as such).
    const config = loadConfig({
      base: { connectors: [parse(readFileSync(resolve(root, 'deploy/bridge.config.yaml'), 'utf8')).connectors[0]] },
      env: { ...bridge.environment },
    });
    expect(config.server.apiTokens).toEqual({ file: 'state/api-token' });
  });
});

/** `docker compose` (v2 plugin) or `docker-compose` (Debian's package), when either is installed: `config` needs no engine. */
const composeCli = [['docker', 'compose'], ['docker-compose']].find(
  ([bin, ...sub]) => spawnSync(bin ?? '', [...sub, 'version'], { encoding: 'utf8' }).status === 0,
);
if (!composeCli)
  console.warn(
    'compose.test: neither `docker compose` nor `docker-compose` found, skipping `config` validation; install it with `apt-get install -y docker-compose`',
  );

describe.skipIf(!composeCli)('docker compose config (validation by Compose itself; install: apt-get install -y docker-compose)', () => {
  it.each(['sandbox', 'production'])('profile %s validates', (profile) => {
    const [bin, ...sub] = composeCli ?? [];
    const result = spawnSync(bin ?? '', [...sub, '--profile', profile, 'config', '--quiet'], { cwd: root, encoding: 'utf8' });
    expect(result.stderr, `${(composeCli ?? []).join(' ')} --profile ${profile} config`).toBe('');
    expect(result.status).toBe(0);
  });

  it('the documented multi-token line reaches the bridge as two tokens, and bridge serve accepts each', async () => {
    // An env file with the documented line, read by Compose as the production service reads deploy/bridge.env.
    const dir = mkdtempSync(join(tmpdir(), 'bridge-compose-env-'));
    try {
      writeFileSync(join(dir, 'bridge.env'), `PURVIEW_APP_SECRET=x\n${tokensLine ?? 'BRIDGE_API_TOKENS='}\n`);
      writeFileSync(join(dir, 'docker-compose.yml'), 'services:\n  bridge:\n    image: bridge\n    env_file: [./bridge.env]\n');
      const [bin, ...sub] = composeCli ?? [];
      const result = spawnSync(bin ?? '', [...sub, 'config'], { cwd: dir, encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      const environment = (parse(result.stdout) as { services: Record<string, Service> }).services['bridge']?.environment ?? {};
      const tokens = /^BRIDGE_API_TOKENS="(.*)"$/.exec(tokensLine ?? '')?.[1]?.split('\\n') ?? [];
      expect(tokens).toHaveLength(2);
      expect(String(environment['BRIDGE_API_TOKENS'])).toBe(tokens.join('\n'));

      // The production config with the container's environment, on loopback and a temp state directory.
      const config = loadConfig({
        path: resolve(root, 'deploy/bridge.config.yaml'),
        env: { BRIDGE__stateDir: join(dir, 'state'), BRIDGE__server__host: '127.0.0.1', BRIDGE__server__port: '0' },
      });
      const { startService } = await import('../../src/server/service.js');
      const service = await startService({ config, env: { ...environment }, clock: systemClock, logger: createLogger({ level: 'silent' }), schedules: false });
      try {
        const status = async (token: string) => (await fetch(`${service.url}/v1/runs`, { headers: { authorization: `Bearer ${token}` } })).status;
        for (const token of tokens) expect(await status(token), token).toBe(200);
        expect(await status('a-token-nobody-configured')).toBe(401);
      } finally {
        await service.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docker compose --profile sandbox, run without Docker', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'bridge-compose-')));
  const children: ChildProcess[] = [];
  afterAll(async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once('close', () => done());
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a service's `sh -c` entry point with /app = `dir` and a `node` that runs dist/cli/main.js from the sources. */
  function runEntrypoint(name: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
    const service = compose.services[name] as Service;
    const [shell, flag, script] = service.entrypoint ?? [];
    expect([shell, flag]).toEqual(['sh', '-c']);
    expect(dir.startsWith(realpathSync(tmpdir()))).toBe(true); // the scripts `rm -rf state/sandbox` relative to their cwd
    const child = spawn('sh', ['-c', script ?? 'exit 99'], {
      cwd: dir,
      env: {
        PATH: `${join(dir, '.bin')}:${process.env['PATH'] ?? ''}`,
        HOME: dir,
        NODE_OPTIONS: '',
        BRIDGE_REAL_NODE: process.execPath,
        BRIDGE_TSX: pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href,
        BRIDGE_CLI: resolve(root, 'src/cli/main.ts'),
        ...service.environment,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return { child, output: () => output };
  }

  async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, output: () => string, ms = 60_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('starts the sandbox, creates a 0600 API token, and a sync triggered with it completes', async () => {
    // The image's `node`, except that dist/cli/main.js (the compiled CLI) runs from src/ through tsx, and the sandbox
    // target's src/cli/main.ts and tsx are this checkout's.
    mkdirSync(join(dir, '.bin'));
    writeFileSync(
      join(dir, '.bin/node'),
      [
        '#!/bin/sh',
        'for a; do shift; case "$a" in',
        '  dist/cli/main.js) set -- "$@" --import "$BRIDGE_TSX" "$BRIDGE_CLI" ;;',
        // The sandbox target's own sources and tsx (its dev dependencies): this checkout's.
        '  src/cli/main.ts) set -- "$@" "$BRIDGE_CLI" ;;',
        '  tsx) set -- "$@" "$BRIDGE_TSX" ;;',
        '  *) set -- "$@" "$a" ;;',
        'esac; done',
        'exec "$BRIDGE_REAL_NODE" "$@"',
        '',
      ].join('\n'),
    );
    chmodSync(join(dir, '.bin/node'), 0o755);
    mkdirSync(join(dir, 'state/sandbox/state'), { recursive: true });
    writeFileSync(join(dir, 'state/sandbox/bridge.config.yaml'), 'stale: config of an earlier start\n');

    const sandbox = runEntrypoint('sandbox', {});
    // The sandbox service's healthcheck, with /app mapped to the temp directory: healthy once the new config is written.
    const healthcheck = (compose.services['sandbox']?.healthcheck?.test ?? []).slice(1).map((a) => a.replace(/^\/app\//, `${dir}/`));
    await until(
      'the sandbox to be healthy',
      () => {
        const probe = spawnSync(healthcheck[0] ?? 'false', healthcheck.slice(1));
        // The sandbox removes the stale config before it writes the new one: a probe can pass on the stale file just
        // before it goes, so a missing file is "not yet", not a failure.
        if (probe.status !== 0) return undefined;
        try {
          return /connectors:/.test(readFileSync(join(dir, 'state/sandbox/bridge.config.yaml'), 'utf8')) ? true : undefined;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw error;
        }
      },
      sandbox.output,
    );

    // The compose environment, except: an ephemeral port, and loopback rather than every interface of this machine.
    const bridge = runEntrypoint('bridge-sandbox', { BRIDGE__server__port: '0', BRIDGE__server__host: '127.0.0.1', BRIDGE__logLevel: 'warn' });
    const url = await until('bridge serve to listen', () => /listening on (\S+)/.exec(bridge.output())?.[1], bridge.output);
    const tokenFile = join(dir, 'state/api-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8');
    expect(token).toMatch(/^[\w-]{43}$/);

    // `bridge sandbox` fills the UTC day before today.
    const { start: since, end: until_ } = dayBefore(Date.now());
    const post = (headers: Record<string, string>) =>
      fetch(`${url}/v1/connectors/sandbox/syncs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ since, until: until_ }),
      });
    expect((await post({})).status).toBe(401);
    const accepted = await post({ authorization: `Bearer ${token}` });
    expect(accepted.status).toBe(202);
    const { runId } = (await accepted.json()) as { runId: string };
    const run = await until(
      'the run to finish',
      async () => {
        const response = await fetch(`${url}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${token}` } });
        const body = (await response.json()) as { state: string; counts: { rows: number; rowsAcked?: number } };
        return ['completed', 'failed'].includes(body.state) ? body : undefined;
      },
      bridge.output,
    );
    expect(run.state, bridge.output()).toBe('completed');
    expect(run.counts.rows).toBeGreaterThan(0);

    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    // A restart of the bridge keeps the token (it lives in the volume, outside the directory the sandbox recreates).
    const stopped = new Promise((done) => bridge.child.once('close', done));
    bridge.child.kill('SIGTERM');
    expect(await stopped).toBe(0);
    const again = runEntrypoint('bridge-sandbox', { BRIDGE__server__port: '0', BRIDGE__server__host: '127.0.0.1', BRIDGE__logLevel: 'warn' });
    const url2 = await until('bridge serve to listen again', () => /listening on (\S+)/.exec(again.output())?.[1], again.output);
    expect(readFileSync(tokenFile, 'utf8')).toBe(token);
    const runs = await fetch(`${url2}/v1/runs?connector=sandbox`, { headers: { authorization: `Bearer ${token}` } });
    expect(runs.status).toBe(200);
    expect(((await runs.json()) as { runs: Array<{ id: string }> }).runs.map((r) => r.id)).toContain(runId);
  }, 180_000);
});

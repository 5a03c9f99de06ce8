/** `bridge keys` through commander, on a real temp directory. */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommanderError } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { keysCommand } from '../../src/cli/commands/keys.js';
import { BridgeError, ERROR_CODES } from '../../src/errors.js';
import { openKeyStore } from '../../src/smart/index.js';
import { removeTempDirs, sendJson, startStubServer, tempDir } from './support.js';

afterAll(removeTempDirs);

/** The CLI's clock: two hours after the files' real mtimes, so retire's wait on them has passed. */
const NOW = Date.now() + 2 * 3_600_000;

function cli(dir: string, env: NodeJS.ProcessEnv = { BRIDGE_KEYS_DIR: dir }, now = () => NOW) {
  const printed: string[] = [];
  const command = keysCommand({ env, print: (line) => printed.push(line), now });
  for (const sub of [command, ...command.commands]) sub.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  const run = async (...args: string[]): Promise<string[]> => {
    printed.length = 0;
    await command.parseAsync(args, { from: 'user' });
    return [...printed];
  };
  return { run };
}

function publishedKids(output: string[]): string[] {
  const set = JSON.parse(output.join('\n')) as { keys: Array<Record<string, unknown>> };
  for (const key of set.keys) for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(secret);
  return set.keys.map((k) => String(k['kid']));
}

describe('bridge keys', () => {
  it('prints follow-up commands for the keys directory it was given', async () => {
    const dir = join(tempDir(), 'my keys');
    const { run } = cli(dir, {});
    await run('generate', '--keys-dir', dir);
    const rotated = await run('rotate', '--keys-dir', dir);
    const where = `--keys-dir '${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`;
    expect(rotated.at(-1)).toMatch(new RegExp(`^5 minutes after \\S+ signs, run: bridge keys retire ${where} -- \\S+$`));
    expect(rotated.at(-2)).toMatch(new RegExp(`; to switch earlier: bridge keys activate ${where} --now -- \\S+$`));
    // A second rotation while the first waits names the directory in the commands it suggests too.
    const again = (await run('rotate', '--keys-dir', dir).catch((e: unknown) => e)) as BridgeError;
    expect(again.message).toMatch(new RegExp(`run \`bridge keys activate ${where} -- \\S+\`, or \`bridge keys retire ${where} -- \\S+\` to cancel`));
  });

  it('generate → rotate (keeping the alg) → retire, with 0600 private keys and a public-only jwks', async () => {
    const dir = join(tempDir(), 'keys');
    const { run } = cli(dir);

    const generated = await run('generate');
    const kid = /^generated ES384 key ([\w-]{43}) in /.exec(generated[0] ?? '')?.[1] ?? '';
    expect(generated).toEqual([
      `generated ES384 key ${kid} in ${dir}`,
      `publish ${dir}/jwks.json at your JWK Set URL (bridge serve: GET /.well-known/jwks.json) before the first sync`,
    ]);
    expect(statSync(join(dir, `${kid}.pem`)).mode & 0o777).toBe(0o600);
    expect(publishedKids(await run('jwks'))).toEqual([kid]);

    const refused: unknown = await run('generate', '--alg', 'RS384').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BridgeError);
    expect((refused as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');

    const replaced = await run('generate', '--alg', 'RS384', '--force');
    const rsKid = /^generated RS384 key ([\w-]{43})/.exec(replaced[0] ?? '')?.[1] ?? '';
    const rotated = await run('rotate');
    const newKid = /^rotated: published RS384 key ([\w-]{43}) in /.exec(rotated[0] ?? '')?.[1] ?? '';
    const due = new Date(NOW + 3_605_000).toISOString();
    expect(rotated).toEqual([
      `rotated: published RS384 key ${newKid} in ${dir}/jwks.json; ${rsKid} keeps signing for now`,
      `${newKid} signs from the first token request after ${due} (5 s for bridge serve to re-read jwks.json, then server.jwksMaxAgeSec 3600 s: caches of the JWK Set serve it by then)`,
      `if your JWK Set URL serves a copy, upload ${dir}/jwks.json there now; to switch earlier: bridge keys activate --now -- ${newKid}`,
      `5 minutes after ${newKid} signs, run: bridge keys retire -- ${rsKid}`,
    ]);
    expect(publishedKids(await run('jwks'))).toEqual([rsKid, newKid]);
    expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(rsKid);

    const early = await cli(dir, { BRIDGE_KEYS_DIR: dir }, () => NOW + 3_005_000)
      .run('activate', '--', newKid)
      .catch((e: unknown) => e);
    expect((early as BridgeError).message).toMatch(
      /^Key [\w-]{43} was published 50 minute\(s\) ago: until .* activate it in 10 minute\(s\), or now with --now\.$/,
    );
    expect(await cli(dir, { BRIDGE_KEYS_DIR: dir }, () => NOW + 3_605_000).run('activate', '--', newKid)).toEqual([
      `activated: ${newKid} signs from the next token request`,
      `5 minutes from now, run: bridge keys retire -- ${rsKid}`,
    ]);
    expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(newKid);

    expect(await run('retire', rsKid)).toEqual([`retired ${rsKid}`]);
    expect(publishedKids(await run('jwks'))).toEqual([newKid]);
    expect(readdirSync(dir).sort()).toEqual(['active-kid', 'jwks.json', `${newKid}.pem`].sort());
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.pem'))) expect(statSync(join(dir, file)).mode & 0o777).toBe(0o600);
  });

  it('takes a kid that starts with "-" as the kid, with or without "--" before it', async () => {
    const dir = join(tempDir(), 'keys');
    const { run } = cli(dir);
    await run('generate');
    for (const args of [
      ['-FWBPfliSTBM2xHD9lZ90M0olBWal6o7xZqVBUMslks'],
      ['--', '-hWBPfliSTBM2xHD9lZ90M0olBWal6o7xZqVBUMslk'],
      ['-VWBPfliSTBM2xHD9lZ90M0olBWal6o7xZqVBUMslk'],
    ]) {
      const kid = args[args.length - 1] ?? '';
      const error: unknown = await run('retire', ...args).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).message).toContain(`No key ${kid} in `);
    }
  });

  it('activate and retire refuse an option written with its value as an unknown option, without printing the value', async () => {
    const dir = join(tempDir(), 'keys');
    const { run } = cli(dir);
    for (const args of [
      ['retire', '--app-secret=S3CRET'],
      ['retire', '--', '-appSecret:S3CRET'],
      ['activate', '--now', '--client-secret:S3CRET'],
    ]) {
      const error = (await run(...args).catch((e: unknown) => e)) as CommanderError;
      expect(error, args.join(' ')).toBeInstanceOf(CommanderError);
      expect(error.code).toBe('commander.unknownOption');
      expect(error.message).toMatch(/^error: unknown option '-[-\w]+' \(the value given is not shown\)$/);
      expect(error.message).not.toContain('S3CRET');
    }
    expect(() => readdirSync(dir)).toThrow(/ENOENT/);
  });

  // Issue #20.3: caches of the JWK Set must have seen the active key before the old one goes.
  it('retire refuses while the active key is younger than the JWK Set cache max-age, unless --force', async () => {
    const dir = join(tempDir(), 'keys');
    const { run } = cli(dir, { BRIDGE_KEYS_DIR: dir }, () => Date.now());
    await run('generate');
    const [, next = '', old = ''] = /^rotated: published ES384 key ([\w-]{43}) in .*; ([\w-]{43}) keeps signing/.exec((await run('rotate'))[0] ?? '') ?? [];
    await run('activate', '--now', '--', next);
    const refused: unknown = await run('retire', '--', old).catch((e: unknown) => e);
    expect((refused as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((refused as BridgeError).message).toMatch(
      /^The active key [\w-]{43} was published 0 minute\(s\) ago; until 60 minute\(s\) have passed .* Retire it in 60 minute\(s\), or now with --force\.$/,
    );
    expect(await run('retire', '--force', '--', old)).toEqual([`retired ${old}`]);
  });

  it('finds the keys directory in the config (smart.keysDir), before $BRIDGE_KEYS_DIR; --keys-dir before both', async () => {
    const root = tempDir();
    const configured = join(root, 'configured-keys');
    const configPath = join(root, 'bridge.config.json');
    writeOneConnectorConfig(configPath, { keysDir: configured });
    const { run } = cli('unused', { BRIDGE_CONFIG: configPath, BRIDGE_KEYS_DIR: join(root, 'env-keys') });
    expect((await run('generate'))[0]).toContain(` in ${configured}`);
    expect((await run('generate', '--keys-dir', join(root, 'flag-keys')))[0]).toContain(` in ${join(root, 'flag-keys')}`);
    const fromEnv = cli('unused', { BRIDGE_KEYS_DIR: join(root, 'env-keys') });
    expect((await fromEnv.run('generate'))[0]).toContain(` in ${join(root, 'env-keys')}`);
  });

  // A flat-file connector has no smart section (README's migration from sample_script.ps1): it neither names the keys
  // directory nor stops the others' keys from being managed, listed first or not.
  it("a config with a flat-file connector (no smart section): keys act on the smart connector's keysDir", async () => {
    const root = tempDir();
    const keysDir = join(root, 'epic-keys');
    const configPath = join(root, 'bridge.config.json');
    const purview = { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } };
    writeFileSync(
      configPath,
      JSON.stringify({
        connectors: [
          { name: 'clarity', source: { type: 'flat-file', dir: join(root, 'drop'), archiveDir: join(root, 'archive') }, purview },
          { name: 'epic', fhir: { baseUrl: 'https://ehr.example.org/R4' }, smart: { clientId: 'c', keysDir }, purview },
        ],
      }),
    );
    const { run } = cli('unused', { BRIDGE_KEYS_DIR: join(root, 'env-keys') });
    const generated = await run('generate', '--config', configPath);
    const kid = /^generated ES384 key ([\w-]{43}) in /.exec(generated[0] ?? '')?.[1] ?? '';
    expect(generated[0]).toBe(`generated ES384 key ${kid} in ${keysDir}`);
    expect(readdirSync(keysDir).sort()).toEqual(['active-kid', 'jwks.json', `${kid}.pem`].sort());
    expect(publishedKids(await run('jwks', '--config', configPath, '--connector', 'epic'))).toEqual([kid]);
    expect((await run('rotate', '--config', configPath))[0]).toContain(` in ${keysDir}/jwks.json; ${kid} keeps signing`);
    // The smart connector first and the flat file after it (every connector sharing the directory is looked at).
    const smartFirst = join(root, 'smart-first.json');
    const { connectors } = JSON.parse(readFileSync(configPath, 'utf8')) as { connectors: unknown[] };
    writeFileSync(smartFirst, JSON.stringify({ connectors: [...connectors].reverse() }));
    expect((await run('generate', '--force', '--config', smartFirst))[0]).toMatch(new RegExp(`^generated ES384 key [\\w-]{43} in ${keysDir}$`));
    // $BRIDGE_CONFIG, as the Docker image sets it, with --keys-dir naming a copy.
    const copy = join(root, 'copy');
    expect((await cli('unused', { BRIDGE_CONFIG: configPath }).run('generate', '--keys-dir', copy))[0]).toContain(` in ${copy}`);
    // Naming the flat-file connector is still refused, saying why.
    const named = (await run('jwks', '--config', configPath, '--connector', 'clarity').catch((e: unknown) => e)) as BridgeError;
    expect(named.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(named.message).toContain('Connector "clarity" has no smart section');
    // A config whose only connector is a flat file: the directory as without a config ($BRIDGE_KEYS_DIR here).
    const flatOnly = join(root, 'flat-only.json');
    writeFileSync(flatOnly, JSON.stringify({ connectors: connectors.slice(0, 1) }));
    expect((await run('generate', '--config', flatOnly))[0]).toContain(` in ${join(root, 'env-keys')}`);
  });

  it('with smart.jku in the config, activate reads that URL and refuses until it serves the new key with the same public members', async () => {
    const root = tempDir();
    const dir = join(root, 'keys');
    let served: () => unknown = () => ({ keys: [] });
    let status = 200;
    const host = await startStubServer((_request, response) => sendJson(response, status, served()));
    const jku = `${host.origin}/.well-known/jwks.json`;
    const configPath = join(root, 'bridge.config.json');
    writeOneConnectorConfig(configPath, { keysDir: dir, jku }, { jwksMaxAgeSec: 600 });
    try {
      const { run } = cli(dir, { BRIDGE_CONFIG: configPath });
      await run('generate');
      const rotated = await run('rotate');
      const [, kid = '', oldKid = ''] = /^rotated: published ES384 key ([\w-]{43}) in .*; ([\w-]{43}) keeps signing/.exec(rotated[0] ?? '') ?? [];
      expect(rotated[1]).toBe(
        `${kid} signs from the first token request after ${new Date(NOW + 605_000).toISOString()} (5 s for bridge serve to re-read jwks.json, then server.jwksMaxAgeSec 600 s: caches of the JWK Set serve it by then, and once ${jku} serves it)`,
      );
      const published = (JSON.parse((await run('jwks')).join('\n')) as { keys: Array<Record<string, unknown>> }).keys;
      const refusal = async (): Promise<BridgeError> => (await run('activate', '--now', '--', kid).catch((e: unknown) => e)) as BridgeError;

      served = () => ({ keys: published.filter((k) => k['kid'] === oldKid) }); // a cache still answering the old set
      const stale = await refusal();
      expect(stale.code).toBe('BRG_ERR_KEY_NOT_PUBLISHED');
      expect(stale.message).toBe(
        `The JWK Set URL ${jku} (smart.jku) does not serve key ${kid} yet (kid ${kid} is not in the served set); the EHR would refuse its signatures. Publish jwks.json there (or let its cache expire), then activate again.`,
      );
      const other = published.find((k) => k['kid'] === oldKid) ?? {};
      served = () => ({ keys: [{ ...other, kid }] }); // the kid with another key's members
      expect((await refusal()).message).toContain(`(kid ${kid} is served with other public key members than jwks.json has)`);
      status = 503;
      expect((await refusal()).message).toContain('(could not read it: HTTP 503)');
      expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(oldKid);

      status = 200;
      served = () => ({ keys: published });
      const activated = await run('activate', '--now', '--', kid);
      expect(activated[0]).toBe(`activated: ${kid} signs from the next token request (served at ${jku})`);
      // Activated early: retire waits for the cache max-age since the key was published (600 s here), not 5 minutes.
      const from = new RegExp(`^from (\\S+) \\(server\\.jwksMaxAgeSec 600 s after ${kid} was published\\), run: bridge keys retire -- ${oldKid}$`).exec(
        activated[1] ?? '',
      )?.[1];
      // Rotated at NOW (the test's clock): retire's own rule allows it from NOW + 600 s.
      expect(from, activated[1]).toBe(new Date(NOW + 600_000).toISOString());
      expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(kid);
      expect(host.requests.map((r) => [r.method, r.url])).toEqual(Array.from({ length: 4 }, () => ['GET', '/.well-known/jwks.json']));
    } finally {
      await host.close();
    }
  });

  // --keys-dir names a copy of the keys (the Kubernetes guide manages them outside the pod): the config still gives
  // server.jwksMaxAgeSec and smart.jku.
  it('with --keys-dir and a config, rotate waits server.jwksMaxAgeSec and activate checks smart.jku', async () => {
    const root = tempDir();
    const dir = join(root, 'managed-keys');
    const host = await startStubServer((_request, response) => sendJson(response, 200, { keys: [] }));
    const jku = `${host.origin}/.well-known/jwks.json`;
    const configPath = join(root, 'bridge.config.json');
    writeOneConnectorConfig(configPath, { keysDir: join(root, 'app-keys'), jku }, { jwksMaxAgeSec: 86_400 });
    try {
      for (const env of [{}, { BRIDGE_CONFIG: configPath }]) {
        const flags = 'BRIDGE_CONFIG' in env ? ['--keys-dir', dir] : ['--config', configPath, '--keys-dir', dir];
        const { run } = cli(dir, env);
        await run('generate', '--force', ...flags);
        const rotated = await run('rotate', ...flags);
        const kid = /^rotated: published ES384 key ([\w-]{43}) in /.exec(rotated[0] ?? '')?.[1] ?? '';
        expect(rotated[0]).toContain(` in ${dir}/jwks.json;`);
        expect(rotated[1]).toBe(
          `${kid} signs from the first token request after ${new Date(NOW + 86_405_000).toISOString()} (5 s for bridge serve to re-read jwks.json, then server.jwksMaxAgeSec 86400 s: caches of the JWK Set serve it by then, and once ${jku} serves it)`,
        );
        const refused = (await run('activate', '--now', ...flags, '--', kid).catch((e: unknown) => e)) as BridgeError;
        expect(refused.code).toBe('BRG_ERR_KEY_NOT_PUBLISHED');
        expect(refused.message).toContain(`The JWK Set URL ${jku} (smart.jku) does not serve key ${kid} yet`);
        expect(readFileSync(join(dir, 'next-key.json'), 'utf8')).toContain(kid);
        await run('retire', ...flags, '--', kid);
      }
      expect(host.requests).toHaveLength(2);
    } finally {
      await host.close();
    }
  });

  it('rotate records the smart.jku of every connector sharing the keys directory, and activate checks each of them', async () => {
    const root = tempDir();
    const dir = join(root, 'shared-keys');
    const host = await startStubServer((_request, response) => sendJson(response, 200, { keys: [] }));
    const jku = `${host.origin}/a/jwks.json`;
    const configPath = join(root, 'bridge.config.json');
    const connector = (name: string, smart: Record<string, unknown>) => ({
      name,
      fhir: { baseUrl: 'https://ehr.example.org/R4' },
      smart: { clientId: name, keysDir: dir, ...smart },
      // A Purview job of its own: two connectors of one source may not send to the same job.
      purview: { tenantId: 't', appId: 'a', jobId: `j-${name}`, secret: { env: 'S' } },
    });
    writeFileSync(configPath, JSON.stringify({ connectors: [connector('a', { jku }), connector('b', {})] }));
    try {
      const { run } = cli(dir, { BRIDGE_CONFIG: configPath });
      await run('generate', '--connector', 'b');
      const rotated = await run('rotate', '--connector', 'b');
      const kid = /^rotated: published ES384 key ([\w-]{43}) in /.exec(rotated[0] ?? '')?.[1] ?? '';
      expect(rotated[1]).toContain(`, and once ${jku} serves it)`);
      expect(JSON.parse(readFileSync(join(dir, 'next-key.json'), 'utf8'))).toMatchObject({ kid, jkus: [jku] });
      const refused = (await run('activate', '--now', '--connector', 'b', '--', kid).catch((e: unknown) => e)) as BridgeError;
      expect(refused.code).toBe('BRG_ERR_KEY_NOT_PUBLISHED');
      expect(host.requests.map((r) => r.url)).toEqual(['/a/jwks.json']);
    } finally {
      await host.close();
    }
  });

  // The Kubernetes guide's command: `activate --keys-dir <copy>` with no config. The URLs rotate recorded are all it
  // knows, and the token-request switch waits for them too, so activate must not switch before they serve the key.
  it('activate with --keys-dir and no config checks the JWK Set URLs rotate recorded in next-key.json', async () => {
    const root = tempDir();
    const dir = join(root, 'managed-keys');
    let servedKids: string[] = [];
    const host = await startStubServer((_request, response) => {
      const set = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')) as { keys: Array<Record<string, unknown>> };
      sendJson(response, 200, { keys: set.keys.filter((k) => servedKids.includes(String(k['kid']))) });
    });
    const jku = `${host.origin}/.well-known/jwks.json`;
    const configPath = join(root, 'bridge.config.json');
    writeOneConnectorConfig(configPath, { keysDir: join(root, 'app-keys'), jku });
    try {
      const { run } = cli(dir, {});
      const oldKid = /^generated ES384 key ([\w-]{43})/.exec((await run('generate', '--keys-dir', dir))[0] ?? '')?.[1] ?? '';
      const rotated = await run('rotate', '--config', configPath, '--keys-dir', dir);
      const kid = /^rotated: published ES384 key ([\w-]{43}) in /.exec(rotated[0] ?? '')?.[1] ?? '';
      expect(JSON.parse(readFileSync(join(dir, 'next-key.json'), 'utf8'))).toMatchObject({ kid, jkus: [jku] });

      servedKids = [oldKid]; // the URL (or a cache in front of it) still answers the old set
      const refused = (await run('activate', '--now', '--keys-dir', dir, '--', kid).catch((e: unknown) => e)) as BridgeError;
      expect(refused).toBeInstanceOf(BridgeError);
      expect(refused.code).toBe('BRG_ERR_KEY_NOT_PUBLISHED');
      expect(refused.message).toBe(
        `The JWK Set URL ${jku} (recorded by rotate in next-key.json) does not serve key ${kid} yet (kid ${kid} is not in the served set); the EHR would refuse its signatures. Publish jwks.json there (or let its cache expire), then activate again.`,
      );
      expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(oldKid);

      servedKids = [oldKid, kid];
      const activated = await run('activate', '--now', '--keys-dir', dir, '--', kid);
      expect(activated[0]).toBe(`activated: ${kid} signs from the next token request (served at ${jku})`);
      expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(kid);
      expect(host.requests.map((r) => r.url)).toEqual(['/.well-known/jwks.json', '/.well-known/jwks.json']);
    } finally {
      await host.close();
    }
  });

  // Rotating alone never recovered: the rotated key switches in only once the active key loads, which is what fails.
  // The test runs the commands the error names, in order, as an operator would.
  it.each([
    ['unpublished (jwks.json lacks it)', 'BRG_ERR_KEY_NOT_PUBLISHED', false],
    ['without its private key file', 'BRG_ERR_KEY_INVALID', false],
    ['unpublished, with a rotated key already waiting to sign', 'BRG_ERR_KEY_NOT_PUBLISHED', true],
  ] as const)('an active key %s: the commands the error gives get a key that signs', async (_name, code, rotatedBefore) => {
    const dir = join(tempDir(), 'keys');
    const { run } = cli(dir);
    const oldKid = /^generated ES384 key ([\w-]{43})/.exec((await run('generate'))[0] ?? '')?.[1] ?? '';
    if (rotatedBefore) await run('rotate');
    if (code === 'BRG_ERR_KEY_NOT_PUBLISHED') {
      const set = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')) as { keys: Array<Record<string, unknown>> };
      writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: set.keys.filter((k) => k['kid'] !== oldKid) }));
    } else {
      rmSync(join(dir, `${oldKid}.pem`));
    }
    const broken = (await openKeyStore(dir)
      .activeKey()
      .catch((e: unknown) => e)) as BridgeError;
    expect(broken.code).toBe(code);
    expect(ERROR_CODES[code].fix).toContain('`bridge keys rotate`, then `bridge keys activate --now -- <new kid>`');

    const advised = [...broken.message.matchAll(/`bridge keys ([^`]+)`/g)].map((m) => m[1] ?? '');
    expect(advised.length).toBeGreaterThan(0);
    let printedKid = '';
    for (const command of advised) {
      const output = await run(...command.replace(/<[^>]+>/, printedKid).split(' '));
      printedKid = /^rotated: published ES384 key ([\w-]{43})/.exec(output[0] ?? '')?.[1] ?? printedKid;
    }
    const key = await openKeyStore(dir).activeKey();
    expect(key.kid).not.toBe(oldKid);
    expect(readFileSync(join(dir, 'active-kid'), 'utf8').trim()).toBe(key.kid);
  });

  it('rejects an alg outside RS384|ES384 before touching the directory', async () => {
    const dir = join(tempDir(), 'keys');
    const error: unknown = await cli(dir)
      .run('generate', '--alg', 'RS256')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommanderError);
    expect((error as CommanderError).code).toBe('commander.invalidArgument');
    expect(() => readdirSync(dir)).toThrow(/ENOENT/);
  });
});

/** A config of one FHIR connector, `main`, whose smart section (client id `c`) takes `smart`; `server` when given. */
function writeOneConnectorConfig(path: string, smart: Record<string, unknown>, server?: Record<string, unknown>): void {
  const connector = {
    name: 'main',
    fhir: { baseUrl: 'https://ehr.example.org/R4' },
    smart: { clientId: 'c', ...smart },
    purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } },
  };
  writeFileSync(path, JSON.stringify({ ...(server ? { server } : {}), connectors: [connector] }));
}

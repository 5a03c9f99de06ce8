/** `bridge keys` through commander, on a real temp directory. */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommanderError } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { keysCommand } from '../../src/cli/commands/keys.js';
import { BridgeError } from '../../src/errors.js';
import { removeTempDirs, tempDir } from './support.js';

afterAll(removeTempDirs);

function cli(dir: string, env: NodeJS.ProcessEnv = { BRIDGE_KEYS_DIR: dir }, now = () => Date.now() + 2 * 3_600_000) {
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
    const newKid = /^rotated: RS384 key ([\w-]{43}) now signs/.exec(rotated[0] ?? '')?.[1] ?? '';
    expect(rotated).toEqual([
      `rotated: RS384 key ${newKid} now signs; ${rsKid} stays published`,
      `after 60 minutes (the JWK Set's cache max-age, at least the 5-minute assertion lifetime), run: bridge keys retire -- ${rsKid}`,
    ]);
    expect(publishedKids(await run('jwks'))).toEqual([rsKid, newKid]);

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

  // Issue #20.3: caches of the JWK Set must have seen the active key before the old one goes.
  it('retire refuses while the active key is younger than the JWK Set cache max-age, unless --force', async () => {
    const dir = join(tempDir(), 'keys');
    const { run } = cli(dir, { BRIDGE_KEYS_DIR: dir }, () => Date.now());
    await run('generate');
    const old = /now signs; ([\w-]{43}) stays published/.exec((await run('rotate'))[0] ?? '')?.[1] ?? '';
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
    writeFileSync(
      configPath,
      JSON.stringify({
        connectors: [
          {
            name: 'main',
            fhir: { baseUrl: 'https://ehr.example.org/R4' },
            smart: { clientId: 'c', keysDir: configured },
            purview: { tenantId: 't', appId: 'a', jobId: 'j', secret: { env: 'S' } },
          },
        ],
      }),
    );
    const { run } = cli('unused', { BRIDGE_CONFIG: configPath, BRIDGE_KEYS_DIR: join(root, 'env-keys') });
    expect((await run('generate'))[0]).toContain(` in ${configured}`);
    expect((await run('generate', '--keys-dir', join(root, 'flag-keys')))[0]).toContain(` in ${join(root, 'flag-keys')}`);
    const fromEnv = cli('unused', { BRIDGE_KEYS_DIR: join(root, 'env-keys') });
    expect((await fromEnv.run('generate'))[0]).toContain(` in ${join(root, 'env-keys')}`);
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

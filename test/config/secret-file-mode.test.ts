/**
 * A secret file or the Purview certificate's private key readable by other users is warned about, through the caller's
 * logger, naming the setting, the file and its mode and `chmod 600`, never the secret; it is still read (systemd
 * credentials and Kubernetes Secret volumes have modes of their own: file-mode.ts).
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { buildPurviewCredential, buildPushTarget } from '../../src/composition/credentials.js';
import { exposureOf, loadConfig, readSecret } from '../../src/config/index.js';
import { SyncEvents } from '../../src/sync/events.js';
import { linesLogger } from '../support/log-lines.js';
import { MINIMAL_CONFIG } from '../support/minimal-config.js';

const SECRET = 'pUrv13w-app-s3cret-value';
const PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const posix = process.platform !== 'win32';

function secretFile(mode: number, content = `${SECRET}\n`): string {
  const path = join(mkdtempSync(join(tmpdir(), 'bridge-secret-mode-')), 'secret');
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

function warnings(lines: string[]): Array<Record<string, unknown>> {
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line['level'] === 40);
}

describe.skipIf(!posix)('secret files readable by others', () => {
  it('readSecret: a 0644 { file } is read and warned about once, naming the file, its mode and chmod 600; 0600 is not', () => {
    const lines: string[] = [];
    const open = secretFile(0o644);
    expect(readSecret({ file: open }, {}, 'purview.secret', linesLogger(lines))).toBe(SECRET);
    const warned = warnings(lines);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ setting: 'purview.secret', file: open, mode: '644' });
    expect(String(warned[0]?.['msg'])).toBe(
      `purview.secret: ${open} has mode 644, so other users have access to it; run \`chmod 600 ${open}\` with the file owned by the bridge's user (or mode 640 with the bridge's own group)`,
    );
    expect(lines.join('\n')).not.toContain(SECRET);

    const quiet: string[] = [];
    expect(readSecret({ file: secretFile(0o600) }, {}, 'server.apiTokens', linesLogger(quiet))).toBe(SECRET);
    expect(readSecret({ file: secretFile(0o400) }, {}, 'network.proxy.credentials', linesLogger(quiet))).toBe(SECRET);
    // Readable through the bridge's own group: a Kubernetes Secret volume (0440, the pod's fsGroup = runAsGroup).
    expect(readSecret({ file: secretFile(0o440) }, {}, 'purview.secret', linesLogger(quiet))).toBe(SECRET);
    // An env reference has no file.
    expect(readSecret({ env: 'S' }, { S: SECRET }, 'purview.secret', linesLogger(quiet))).toBe(SECRET);
    expect(warnings(quiet)).toEqual([]);
  });

  it('purview.certificate.keyFile: a 0644 key is used and warned about once, naming the file; 0600 is not', () => {
    const connector = (keyFile: string) => {
      const { secret: _secret, ...purview } = MINIMAL_CONFIG.connectors[0]?.purview ?? {};
      const base = { connectors: [{ ...MINIMAL_CONFIG.connectors[0], purview: { ...purview, certificate: { keyFile, thumbprintSha256: 'a'.repeat(64) } } }] };
      const loaded = loadConfig({ base, env: {} }).connectors[0];
      if (!loaded) throw new Error('no connector');
      return loaded;
    };
    const lines: string[] = [];
    const open = secretFile(0o644, PEM);
    expect(buildPurviewCredential(connector(open), {}, linesLogger(lines))).toMatchObject({ kind: 'certificate', privateKeyPem: PEM });
    const warned = warnings(lines);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ setting: 'purview.certificate.keyFile', file: open, mode: '644' });
    expect(String(warned[0]?.['msg'])).toContain(`chmod 600 ${open}`);
    expect(lines.join('\n')).not.toContain(PEM.split('\n')[1] ?? PEM);

    const quiet: string[] = [];
    buildPurviewCredential(connector(secretFile(0o600, PEM)), {}, linesLogger(quiet));
    expect(warnings(quiet)).toEqual([]);
  });

  it('purview.secret { file } through buildPurviewCredential: warned about with the caller’s logger', () => {
    const lines: string[] = [];
    const file = secretFile(0o604);
    const base = { connectors: [{ ...MINIMAL_CONFIG.connectors[0], purview: { ...MINIMAL_CONFIG.connectors[0]?.purview, secret: { file } } }] };
    const loaded = loadConfig({ base, env: {} }).connectors[0];
    if (!loaded) throw new Error('no connector');
    expect(buildPurviewCredential(loaded, {}, linesLogger(lines))).toEqual({ kind: 'secret', secret: SECRET });
    expect(warnings(lines).map((line) => [line['file'], line['mode']])).toEqual([[file, '604']]);
  });

  it('network.proxy.credentials { file }: warned about once a run (the Purview side, which every connector has), never the value', () => {
    const lines: string[] = [];
    const file = secretFile(0o644, 'proxyuser:pr0xy-pa55\n');
    const config = loadConfig({ base: { ...MINIMAL_CONFIG, network: { proxy: { url: 'http://proxy.example.org:3128', credentials: { file } } } }, env: {} });
    const connector = config.connectors[0];
    if (!connector) throw new Error('no connector');
    const context = { env: { PURVIEW_SECRET: SECRET }, clock: systemClock, logger: linesLogger(lines), events: new SyncEvents(), config };
    buildPushTarget(context, { ...connector, purview: { ...connector.purview, secret: { env: 'PURVIEW_SECRET' } } });
    expect(warnings(lines).map((line) => [line['setting'], line['file'], line['mode']])).toEqual([['network.proxy.credentials', file, '644']]);
    expect(lines.join('\n')).not.toContain('pr0xy-pa55');
  });

  it('who may read: others always count, the group only when it is not the bridge’s own, nothing on Windows', () => {
    const own = 1000;
    expect(exposureOf({ mode: 0o100600, gid: 5 }, own)).toBeUndefined();
    expect(exposureOf({ mode: 0o100400, gid: 5 }, own)).toBeUndefined();
    expect(exposureOf({ mode: 0o100440, gid: own }, own)).toBeUndefined();
    expect(exposureOf({ mode: 0o100640, gid: own }, own)).toBeUndefined();
    expect(exposureOf({ mode: 0o100640, gid: 5 }, own)).toBe('group');
    expect(exposureOf({ mode: 0o100620, gid: 5 }, own)).toBe('group');
    expect(exposureOf({ mode: 0o100644, gid: own }, own)).toBe('others');
    expect(exposureOf({ mode: 0o100604, gid: own }, own)).toBe('others');
    expect(exposureOf({ mode: 0o100666, gid: own }, own, 'win32')).toBeUndefined();
  });

  // Only root can give a file a group the process is not in.
  it.skipIf(process.getuid?.() !== 0)('a 0640 file of another group is warned about, naming the group', () => {
    const file = secretFile(0o640);
    chownSync(file, 0, 4242);
    const lines: string[] = [];
    expect(readSecret({ file }, {}, 'server.apiTokens', linesLogger(lines))).toBe(SECRET);
    const warned = warnings(lines);
    expect(warned).toHaveLength(1);
    expect(String(warned[0]?.['msg'])).toContain(`${file} has mode 640, so the members of its group (gid 4242, not this process's) have access to it`);
  });
});

describe('secrets from the environment', () => {
  it('are trimmed as a file is: a value set from a file that ends in a newline (a Kubernetes secretKeyRef, a CRLF env file) works', () => {
    expect(readSecret({ env: 'S' }, { S: `${SECRET}\n` }, 'purview.secret')).toBe(SECRET);
    expect(readSecret({ env: 'S' }, { S: `${SECRET}\r\n` }, 'purview.secret')).toBe(SECRET);
    expect(() => readSecret({ env: 'S' }, { S: ' \n' }, 'purview.secret')).toThrow('purview.secret: environment variable S is not set.');
  });
});

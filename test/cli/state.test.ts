/**
 * `bridge state rename` and `retire` over a state directory no run has used (a mistyped stateDir): refused saying no
 * state database is there, and none is created (it would only say the connector has no history).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { stateCommand } from '../../src/cli/commands/state.js';
import type { BridgeError } from '../../src/errors.js';
import { MINIMAL_CONFIG } from '../support/minimal-config.js';
import { recordingContext } from './support.js';

it('rename and retire refuse a stateDir that names no state database, and create none', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-state-typo-'));
  try {
    const stateDir = join(dir, 'typo-state');
    const configPath = join(dir, 'bridge.config.json');
    writeFileSync(configPath, JSON.stringify({ ...MINIMAL_CONFIG, stateDir }));
    for (const args of [
      ['rename', 'old-main', 'main'],
      ['retire', 'old-main'],
    ]) {
      const ctx = recordingContext({ env: { PURVIEW_APP_SECRET: 'x' } });
      const error = (await stateCommand(ctx)
        .exitOverride()
        .parseAsync([...args, '--config', configPath], { from: 'user' })
        .catch((e: unknown) => e)) as BridgeError;
      expect(error.code, args[0]).toBe('BRG_ERR_CONFIG_INVALID');
      expect(error.message).toContain(`No state database at ${join(stateDir, 'bridge.sqlite')}`);
      expect(error.message).toContain('Check stateDir in the config');
      expect(ctx.printed).toEqual([]);
      expect(existsSync(stateDir), args[0]).toBe(false);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("rename and retire refuse what is no connector's name (a flat file's deliveries, bridge push's memory): only a connector's state moves", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-state-names-'));
  try {
    const stateDir = join(dir, 'state');
    const configPath = join(dir, 'bridge.config.json');
    writeFileSync(configPath, JSON.stringify({ ...MINIMAL_CONFIG, stateDir }));
    const sha = 'a'.repeat(64);
    for (const args of [
      ['retire', `file:${sha}`],
      ['retire', 'file:push'],
      ['rename', `file:${sha}`, 'main'],
    ]) {
      const ctx = recordingContext({ env: { PURVIEW_APP_SECRET: 'x' } });
      const error = (await stateCommand(ctx)
        .exitOverride()
        .parseAsync([...args, '--config', configPath], { from: 'user' })
        .catch((e: unknown) => e)) as BridgeError;
      expect(error.code, args.join(' ')).toBe('BRG_ERR_INPUT_INVALID');
      expect(error.message).toContain("is no connector's name");
      expect(existsSync(stateDir), args.join(' ')).toBe(false);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

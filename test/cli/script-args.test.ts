/**
 * `bridge push` reads sample_script.ps1's parameters; whatever the spelling of a flag and its value (one or two dashes,
 * `=` or PowerShell's `:`), a word commander cannot read is never handed to it whole: commander prints such a word back,
 * value and all, and a secret would reach the task's log.
 */
import { describe, expect, it } from 'vitest';
import { translateScriptArgs } from '../../src/cli/script-args.js';
import type { BridgeError } from '../../src/errors.js';

const KNOWN = ['--tenant-id', '--app-id', '--job-id', '--file', '--app-secret', '--app-secret-env', '--config'];

function refusal(args: string[]): BridgeError {
  try {
    translateScriptArgs(args, KNOWN);
  } catch (error) {
    return error as BridgeError;
  }
  throw new Error(`${args.join(' ')} was taken`);
}

describe('translateScriptArgs', () => {
  it("hands the bridge's own flags to commander as --flag=value, whatever the dashes and separator", () => {
    expect(translateScriptArgs(['--app-secret:p@ss'], KNOWN)).toEqual(['--app-secret=p@ss']);
    expect(translateScriptArgs(['-app-secret:p@ss'], KNOWN)).toEqual(['--app-secret=p@ss']);
    expect(translateScriptArgs(['-app-secret=p@ss'], KNOWN)).toEqual(['--app-secret=p@ss']);
    // The secret as the next word, even one that looks like a flag: joined to its flag, never a word of its own.
    expect(translateScriptArgs(['--app-secret', '--p@ss', '--file', 'x.txt'], KNOWN)).toEqual(['--app-secret=--p@ss', '--file', 'x.txt']);
    expect(translateScriptArgs(['-appSecret', 'p@ss'], KNOWN)).toEqual(['--app-secret=p@ss']);
    expect(translateScriptArgs(['-tenant-id', 't', '--job-id=j', '-appId:a'], KNOWN)).toEqual(['--tenant-id', 't', '--job-id=j', '--app-id=a']);
    expect(translateScriptArgs(['--config', 'bridge.yaml', '--', '-x'], KNOWN)).toEqual(['--config', 'bridge.yaml', '--', '-x']);
  });

  it('refuses an unknown flag by its name alone, never with its value', () => {
    for (const word of ['--client-secret=p@ss', '--client-secret:p@ss', '-client-secret:p@ss', '-appSecrt:p@ss', '--app_secret=p@ss', '-client_secret:p@ss']) {
      const error = refusal([word]);
      expect(error.code, word).toBe('BRG_ERR_INPUT_INVALID');
      expect(error.message, word).toMatch(/^Unknown option -/);
      expect(error.message, word).not.toContain('p@ss');
    }
  });
});
